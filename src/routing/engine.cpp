// The routing protocol engine (engine.hpp); the protocol is specified in
// docs/design/router-protocol.md.
//
// Layout of the state:
//  - nodes_: one Node per router id we hold anything about (link-state
//    record, address record, or a mention in another record's links),
//    addressed by index; index 0 is this router. The graph paths are
//    computed over is kept in index form (adj_: two-way links only, updated
//    per record), so that a path computation touches no strings.
//  - neighbors_: one Neighbor per connection, with what is queued for it.
//  - Every public entry point does its work, then finish(): recompute paths
//    if the graph changed, report path-table and address changes, advertise
//    our own address changes, update the visible sets of edge children, and
//    send what was queued, batched per neighbour. Computations and sends are
//    paced (at most one per millisecond, and per neighbour; see finish() and
//    sendPending()): what a burst leaves over is done one millisecond later,
//    by the next call or the tick() that nextTick() asks for.
#include "routing/engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <unordered_map>
#include <utility>

#include "routing/protocol.hpp"
#include "routing/signing.hpp"

namespace vane::routing {

namespace proto = protocol;

namespace {

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint32_t kSelf = 0;
constexpr std::uint64_t kInfinity = std::numeric_limits<std::uint64_t>::max();
constexpr Millis kNever = std::numeric_limits<Millis>::max();

constexpr const char* kProtocolError = "vane:protocol-error";
constexpr const char* kDuplicateId = "vane:duplicate-router-id";
constexpr const char* kNeighborDead = "vane:neighbor-dead";
constexpr const char* kResourceLimit = "vane:resource-limit-exceeded";
// Messages waiting for a neighbour's update rate: at most this many bytes.
constexpr std::size_t kMaxDeferredBytes = 64 * 1024 * 1024;
// Limit log lines: at most one per kind per this many milliseconds.
constexpr Millis kLimitLogInterval = 10000;

struct Link {
  std::uint32_t node;
  std::uint32_t cost;
  bool operator<(const Link& o) const { return node < o.node; }
};

// A two-way link of the graph paths are computed over; `back` is the index
// of the reverse edge in adj_[node], for O(1) removal.
struct Edge {
  std::uint32_t node;
  std::uint32_t cost;  // the larger of both sides'
  std::uint32_t back;
};

struct HeapEntry {
  std::uint64_t dist;
  std::uint32_t rank;
  std::uint32_t node;
  bool operator>(const HeapEntry& o) const {
    return dist != o.dist ? dist > o.dist : rank != o.rank ? rank > o.rank : node > o.node;
  }
};

// Where the last path computation put a router.
struct Route {
  bool reachable = false;
  std::uint64_t dist = kInfinity;
  std::uint32_t rank = kNone;       // rank of the first hop's id among our neighbours
  std::uint32_t first_hop = kNone;  // node
  std::uint32_t parent = kNone;     // node
  NeighborId next_hop = 0;          // valid while reachable
};

const Link* findLink(const std::vector<Link>& links, std::uint32_t node) {
  const auto it = std::lower_bound(links.begin(), links.end(), Link{node, 0});
  return it != links.end() && it->node == node ? &*it : nullptr;
}

bool newer(std::uint64_t instance, std::uint64_t seq, std::uint64_t old_instance,
           std::uint64_t old_seq) {
  return instance != old_instance ? instance > old_instance : seq > old_seq;
}

std::uint64_t saturatingAdd(std::uint64_t a, std::uint64_t b) {
  return a > kInfinity - b ? kInfinity : a + b;
}

// One router's address record as we hold it.
struct AddressSet {
  bool held = false;
  std::uint64_t instance = 0;
  std::uint64_t seq = 0;
  std::set<std::string> addresses;
  std::string sig;  // the originator's signature over (id, instance, seq, addresses)
};

enum class Apply { kApplied, kStale, kGap };

// What applyRecord() would do with `rec`, without doing it.
Apply classify(const AddressSet& held, const proto::AddressRecord& rec) {
  if (rec.full) {
    if (held.held && !newer(rec.instance, rec.seq, held.instance, held.seq)) return Apply::kStale;
    return Apply::kApplied;
  }
  if (!held.held || rec.instance > held.instance ||
      (rec.instance == held.instance && rec.seq > held.seq + 1)) {
    return Apply::kGap;
  }
  if (rec.instance < held.instance || rec.seq <= held.seq) return Apply::kStale;
  return Apply::kApplied;
}

// The address set `rec` results in when applied to `held` (sorted): what
// its signature covers.
std::vector<const std::string*> resultingSet(const AddressSet& held,
                                             const proto::AddressRecord& rec) {
  std::vector<const std::string*> out;
  if (rec.full) {
    out.reserve(rec.exist.size());
    for (const auto& a : rec.exist) out.push_back(&a);
    return out;
  }
  out.reserve(held.addresses.size() + rec.add.size());
  auto a = held.addresses.begin();
  auto b = rec.add.begin();
  while (a != held.addresses.end() || b != rec.add.end()) {
    const std::string* next;
    if (b == rec.add.end() || (a != held.addresses.end() && *a < *b)) {
      next = &*a++;
    } else if (a == held.addresses.end() || *b < *a) {
      next = &*b++;
    } else {
      next = &*a++;
      ++b;
    }
    if (!std::binary_search(rec.del.begin(), rec.del.end(), *next)) out.push_back(next);
  }
  return out;
}

std::string addressInput(const std::string& id, std::uint64_t instance, std::uint64_t seq,
                         const std::vector<const std::string*>& addresses) {
  signing::SetHasher h;
  h.count(static_cast<std::uint32_t>(addresses.size()));
  for (const std::string* a : addresses) h.add(*a);
  return signing::addressInputFromDigest(id, instance, seq, h.finish());
}

// A link-state record's links as signed: without the record's own id.
std::vector<std::pair<std::string, std::uint32_t>> signedLinks(const proto::LinkStateRecord& rec) {
  std::vector<std::pair<std::string, std::uint32_t>> links;
  links.reserve(rec.links.size());
  for (const auto& l : rec.links) {
    if (l.first != rec.id) links.push_back(l);
  }
  return links;
}

// Applies a received record to `held` under the (instance, seq) rules;
// `changed(address, present)` is called for each address that comes or goes.
template <typename Changed>
Apply applyRecord(AddressSet& held, const proto::AddressRecord& rec, Changed&& changed) {
  if (rec.full) {
    if (held.held && !newer(rec.instance, rec.seq, held.instance, held.seq)) return Apply::kStale;
    std::set<std::string> next(rec.exist.begin(), rec.exist.end());
    for (const auto& a : held.addresses) {
      if (next.count(a) == 0) changed(a, false);
    }
    for (const auto& a : next) {
      if (held.addresses.count(a) == 0) changed(a, true);
    }
    held.addresses = std::move(next);
  } else {
    if (!held.held || rec.instance > held.instance ||
        (rec.instance == held.instance && rec.seq > held.seq + 1)) {
      return Apply::kGap;
    }
    if (rec.instance < held.instance || rec.seq <= held.seq) return Apply::kStale;
    // Result: (S ∪ add) \ del.
    for (const auto& a : rec.add) {
      if (std::binary_search(rec.del.begin(), rec.del.end(), a)) continue;
      if (held.addresses.insert(a).second) changed(a, true);
    }
    for (const auto& a : rec.del) {
      if (held.addresses.erase(a) > 0) changed(a, false);
    }
  }
  held.held = true;
  held.instance = rec.instance;
  held.seq = rec.seq;
  return Apply::kApplied;
}

proto::AddressRecord fullRecord(const std::string& id, std::uint64_t instance, std::uint64_t seq,
                                const std::set<std::string>& addresses) {
  proto::AddressRecord rec;
  rec.id = id;
  rec.instance = instance;
  rec.seq = seq;
  rec.full = true;
  rec.exist.assign(addresses.begin(), addresses.end());
  return rec;
}

using Fragment = std::shared_ptr<const std::string>;

Fragment fragment(const proto::AddressRecord& rec) {
  return std::make_shared<const std::string>(proto::encodeRecord(rec));
}

}  // namespace

struct Engine::Impl {
  struct Node {
    std::string id;
    bool used = false;
    // Link-state record.
    bool has_ls = false;
    std::uint64_t ls_instance = 0;
    std::uint64_t ls_seq = 0;
    std::vector<Link> links;  // sorted by node
    std::uint32_t refs = 0;   // links of held records (ours included) naming this node
    AddressSet addr;
    // In the reported path table (its addresses are reported).
    bool in_table = false;
    std::optional<Millis> unreachable_since;
    // Established interior adjacency to this router.
    bool adjacent = false;
    NeighborId adjacency = 0;
    // Trust on first use: the public key the router's records (and hello,
    // for a neighbour) carry. Binding while the router has records held or
    // an adjacency (see bound()); records under another key are refused.
    std::string key;
    std::string ls_sig;  // the held link-state record's signature
    bool conflict_logged = false;
    // Refused records under another key while the bound records were
    // unreachable (a restarted router with a new key whose old records have
    // not aged out here yet): applied when they have.
    std::optional<proto::LinkStateRecord> pending_ls;
    std::optional<proto::AddressRecord> pending_addr;
  };

  struct Neighbor {
    NeighborId nid = 0;
    std::string peer_id;
    NeighborRole role = NeighborRole::kInterior;
    std::uint32_t our_cost = 1;
    bool established = false;
    std::uint32_t link_cost = 0;
    std::uint64_t peer_instance = 0;
    std::uint32_t their_cost = 0;
    Millis last_heard = 0;
    Millis next_hello = 0;
    std::uint32_t node = kNone;  // kInterior: the peer's node, once established
    // kEdge: the child's own address record. kUplink: the record of what the
    // interior router makes visible to us.
    AddressSet addr;
    bool in_table = false;  // kEdge, kUplink
    // kEdge: the visible set we advertised to the child.
    std::uint64_t visible_seq = 0;
    std::set<std::string> visible;
    // Queued output: sent at the end of the call, unless something was
    // already sent to this neighbour at the same `now` (see sendPending).
    std::vector<std::uint32_t> out_ls;
    std::vector<Fragment> out_mau;
    std::set<std::string> out_mar;
    std::optional<Millis> sent_at;
    // The peer's key and hello signature (from its first hello), and our
    // hello's signature for it.
    std::string peer_key, peer_sig, hello_sig;
    // Update rate: a token bucket, and the messages waiting for tokens.
    double tokens = 0;
    Millis refilled_at = 0;
    struct Waiting {
      proto::Message message;
      std::uint64_t cost;
      std::size_t bytes;
    };
    std::deque<Waiting> deferred;
    std::uint64_t deferred_cost = 0;
    std::size_t deferred_bytes = 0;
    bool pending() const { return !out_ls.empty() || !out_mau.empty() || !out_mar.empty(); }
  };

  Impl(EngineConfig c, EngineOutput& o) : cfg(std::move(c)), out(o) {
    if (!cfg.key) cfg.key = signing::KeyPair::generate();
    own_key_ = cfg.key->publicKey();
    Node self;
    self.id = cfg.id;
    self.used = true;
    self.has_ls = !cfg.edge;
    self.ls_instance = cfg.instance;
    self.ls_seq = 1;
    nodes_.push_back(std::move(self));
    by_id_.emplace(cfg.id, kSelf);
    Route route;
    route.reachable = true;
    route.dist = 0;
    routes_.push_back(route);
    adj_.emplace_back();
  }

  EngineConfig cfg;
  EngineOutput& out;
  EngineStats stats;
  std::string own_key_;
  // Signatures of our own current records, by seq.
  mutable std::uint64_t own_ls_sig_seq_ = 0;
  mutable std::string own_ls_sig_;
  std::uint64_t own_addr_sig_seq_ = 0;
  std::string own_addr_sig_;
  bool self_conflict_logged_ = false;
  std::size_t total_addresses_ = 0;  // over nodes_[1..].addr
  enum LimitKind { kRouterLimit, kAddressLimit, kRouterAddressLimit, kRateLimit, kLimitKinds };
  Millis next_limit_log_[kLimitKinds] = {0, 0, 0, 0};

  // Indexed by node: the records, the graph in index form (adj_: two-way
  // links only), the last computation's result, and all used nodes sorted
  // by id (so the path table needs no sorting).
  std::vector<Node> nodes_;
  std::vector<std::vector<Edge>> adj_;
  std::vector<Route> routes_;
  std::vector<std::uint32_t> sorted_;  // see sortedNodes()
  bool sorted_dirty_ = false;
  std::unordered_map<std::string, std::uint32_t> by_id_;
  std::vector<std::uint32_t> free_nodes_;
  std::map<NeighborId, Neighbor> neighbors_;  // ordered: deterministic output
  std::vector<Path> paths_;

  // Our address record: interior = local ∪ edge children's, edge = local.
  std::set<std::string> local_;
  std::map<std::string, bool> pending_local_;
  std::unordered_map<std::string, std::uint32_t> own_refs_;  // interior
  std::set<std::string> own_touched_;                        // own_refs_ crossed zero
  std::set<std::string> own_advertised_;
  std::uint64_t own_addr_seq_ = 1;

  // Interior: providers of each address (local, edge children, interior
  // routers in the path table), for the edge children's visible sets.
  std::unordered_map<std::string, std::uint32_t> providers_;
  std::set<std::string> visible_touched_;
  std::size_t edge_children_ = 0;

  bool graph_dirty_ = false;           // recompute paths at finish()
  std::optional<Millis> computed_at_;  // the last path computation
  bool table_changed_ = false;         // edge children / uplink came or went
  // Reachability changed or records were dropped: updateAgeing() rescans.
  bool records_changed_ = false;
  Millis now_ = 0;  // of the current public call
  Millis age_deadline_ = kNever;

  // Scratch for computePaths(), kept to avoid reallocation.
  struct Scratch {
    std::vector<std::uint64_t> dist;
    std::vector<std::uint32_t> rank, parent, first_hop;
    std::vector<bool> settled;
    std::vector<HeapEntry> heap;
  } scratch_;

  // --- nodes ----------------------------------------------------------------

  std::uint32_t findNode(const std::string& id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? kNone : it->second;
  }

  // sorted_ is rebuilt when needed rather than kept up to date: a message
  // can name many new routers at once.
  const std::vector<std::uint32_t>& sortedNodes() {
    if (sorted_dirty_) {
      sorted_.clear();
      for (std::uint32_t x = 1; x < nodes_.size(); ++x) {
        if (nodes_[x].used) sorted_.push_back(x);
      }
      std::sort(sorted_.begin(), sorted_.end(),
                [this](std::uint32_t a, std::uint32_t b) { return nodes_[a].id < nodes_[b].id; });
      sorted_dirty_ = false;
    }
    return sorted_;
  }

  std::uint32_t nodeFor(const std::string& id) {
    const std::uint32_t found = findNode(id);
    if (found != kNone) return found;
    std::uint32_t x;
    if (!free_nodes_.empty()) {
      x = free_nodes_.back();
      free_nodes_.pop_back();
      nodes_[x] = Node{};
      routes_[x] = Route{};
    } else {
      x = static_cast<std::uint32_t>(nodes_.size());
      nodes_.emplace_back();
      routes_.emplace_back();
      adj_.emplace_back();
    }
    nodes_[x].id = id;
    nodes_[x].used = true;
    by_id_.emplace(id, x);
    sorted_dirty_ = true;
    return x;
  }

  void addEdge(std::uint32_t x, std::uint32_t v, std::uint32_t cost) {
    const auto xi = static_cast<std::uint32_t>(adj_[x].size());
    const auto vi = static_cast<std::uint32_t>(adj_[v].size());
    adj_[x].push_back(Edge{v, cost, vi});
    adj_[v].push_back(Edge{x, cost, xi});
  }

  // Removes adj_[u][i] (not its reverse).
  void eraseEdge(std::uint32_t u, std::uint32_t i) {
    auto& list = adj_[u];
    if (i + 1 != list.size()) {
      list[i] = list.back();
      adj_[list[i].node][list[i].back].back = i;
    }
    list.pop_back();
  }

  // Rebuilds x's two-way links after its record changed.
  void updateEdges(std::uint32_t x) {
    for (const Edge& e : adj_[x]) eraseEdge(e.node, e.back);
    adj_[x].clear();
    if (!nodes_[x].has_ls) return;
    for (const Link& l : nodes_[x].links) {
      const Node& nv = nodes_[l.node];
      const Link* back = nv.has_ls ? findLink(nv.links, x) : nullptr;
      if (back != nullptr) addEdge(x, l.node, std::max(l.cost, back->cost));
    }
  }

  // Frees a node nothing refers to any more.
  void maybeFree(std::uint32_t x) {
    Node& n = nodes_[x];
    if (x == kSelf || !n.used || n.refs > 0 || n.has_ls || n.addr.held || n.adjacent) return;
    sorted_dirty_ = true;
    by_id_.erase(n.id);
    n = Node{};
    routes_[x] = Route{};
    free_nodes_.push_back(x);
  }

  // Replaces x's links, keeping reference counts and noting the graph change.
  void setLinks(std::uint32_t x, std::vector<Link> links) {
    for (const Link& l : links) ++nodes_[l.node].refs;
    std::vector<Link> old = std::move(nodes_[x].links);
    noteLinksChanged(x, old, links);
    nodes_[x].links = std::move(links);
    updateEdges(x);
    for (const Link& l : old) {
      --nodes_[l.node].refs;
      maybeFree(l.node);
    }
  }

  // Decides whether a change of x's links can change any path; if so, marks
  // the graph for recomputation. Uses the last computation's result, which
  // stays valid while no change has needed a recomputation: removing an edge
  // off the shortest-path tree, or adding one that shortens no path (in the
  // (distance, first hop) order), changes nothing.
  void noteLinksChanged(std::uint32_t x, const std::vector<Link>& old_links,
                        const std::vector<Link>& new_links) {
    if (graph_dirty_) return;
    if (x == kSelf) {
      graph_dirty_ = true;
      return;
    }
    const Route& nx = routes_[x];
    const auto removed = [&](const Link& l) {
      const Node& nv = nodes_[l.node];
      if (!nv.has_ls || findLink(nv.links, x) == nullptr) return false;  // was one-way
      if (l.node == kSelf) return true;
      const Route& rv = routes_[l.node];
      return (rv.reachable && rv.parent == x) || (nx.reachable && nx.parent == l.node);
    };
    const auto better = [&](const Route& from, std::uint64_t cost, const Route& to) {
      const std::uint64_t d = saturatingAdd(from.dist, cost);
      return d < to.dist || (d == to.dist && from.rank < to.rank);
    };
    const auto added = [&](const Link& l) {
      const Node& nv = nodes_[l.node];
      if (!nv.has_ls) return false;
      const Link* back = findLink(nv.links, x);
      if (back == nullptr) return false;  // one-way
      if (l.node == kSelf) return true;
      const Route& rv = routes_[l.node];
      if (rv.reachable != nx.reachable) return true;
      if (!rv.reachable) return false;
      const std::uint64_t cost = std::max(l.cost, back->cost);
      return better(nx, cost, rv) || better(rv, cost, nx);
    };
    auto o = old_links.begin();
    auto n = new_links.begin();
    while (o != old_links.end() || n != new_links.end()) {
      bool dirty = false;
      if (n == new_links.end() || (o != old_links.end() && o->node < n->node)) {
        dirty = removed(*o++);
      } else if (o == old_links.end() || n->node < o->node) {
        dirty = added(*n++);
      } else {
        if (o->cost != n->cost) dirty = removed(*o) || added(*n);
        ++o;
        ++n;
      }
      if (dirty) {
        graph_dirty_ = true;
        return;
      }
    }
  }

  // --- sending ----------------------------------------------------------------

  void send(NeighborId to, std::string message) {
    ++stats.messages_sent;
    out.send(to, std::move(message));
  }

  void sendHello(Neighbor& nb, Millis now) {
    proto::Hello h;
    h.id = cfg.id;
    h.instance = cfg.instance;
    h.cost = nb.our_cost;
    h.mode = cfg.edge ? proto::Mode::kEdge : proto::Mode::kInterior;
    if (nb.hello_sig.empty()) {
      nb.hello_sig = cfg.key->sign(signing::helloInput(cfg.id, cfg.instance, nb.peer_id));
    }
    h.key = own_key_;
    h.sig = nb.hello_sig;
    send(nb.nid, proto::encodeHello(h));
    nb.next_hello = now + cfg.hello_interval_ms;
  }

  bool isInteriorPeer(const Neighbor& nb) const {
    return nb.established && nb.role == NeighborRole::kInterior;
  }

  void floodLs(std::uint32_t x, NeighborId except, bool skip_except) {
    for (auto& [nid, nb] : neighbors_) {
      if (isInteriorPeer(nb) && !(skip_except && nid == except)) nb.out_ls.push_back(x);
    }
  }

  void floodMau(const Fragment& f, NeighborId except, bool skip_except) {
    for (auto& [nid, nb] : neighbors_) {
      if (isInteriorPeer(nb) && !(skip_except && nid == except)) nb.out_mau.push_back(f);
    }
  }

  proto::LinkStateRecord lsRecord(std::uint32_t x) const {
    const Node& n = nodes_[x];
    proto::LinkStateRecord rec;
    rec.id = n.id;
    rec.instance = n.ls_instance;
    rec.seq = n.ls_seq;
    rec.links.reserve(n.links.size());
    for (const Link& l : n.links) rec.links.emplace_back(nodes_[l.node].id, l.cost);
    std::sort(rec.links.begin(), rec.links.end());
    if (x == kSelf) {
      if (own_ls_sig_seq_ != n.ls_seq) {
        own_ls_sig_ =
            cfg.key->sign(signing::linkStateInput(cfg.id, cfg.instance, n.ls_seq, rec.links));
        own_ls_sig_seq_ = n.ls_seq;
      }
      rec.key = own_key_;
      rec.sig = own_ls_sig_;
    } else {
      rec.key = n.key;
      rec.sig = n.ls_sig;
    }
    return rec;
  }

  // Our address record's signature at own_addr_seq_ (own_advertised_).
  const std::string& ownAddressSignature() {
    if (own_addr_sig_seq_ != own_addr_seq_) {
      own_addr_sig_ = cfg.key->sign(
          signing::addressInput(cfg.id, cfg.instance, own_addr_seq_, own_advertised_));
      own_addr_sig_seq_ = own_addr_seq_;
    }
    return own_addr_sig_;
  }

  Fragment ownFullRecord() {
    proto::AddressRecord rec = fullRecord(cfg.id, cfg.instance, own_addr_seq_, own_advertised_);
    rec.key = own_key_;
    rec.sig = ownAddressSignature();
    return fragment(rec);
  }

  // The full address record we hold for node x, with its originator's
  // signature (which covers the set, whatever records built it here).
  Fragment heldFullRecord(std::uint32_t x) const {
    const Node& n = nodes_[x];
    proto::AddressRecord rec = fullRecord(n.id, n.addr.instance, n.addr.seq, n.addr.addresses);
    rec.key = n.key;
    rec.sig = n.addr.sig;
    return fragment(rec);
  }

  // Flood pacing: at most one batch (one message of each type, unless it
  // is too large) per neighbour per millisecond. Of a burst of messages
  // arriving in the same millisecond, the first one's output is sent at
  // once, and everything else (only the latest version of each link-state
  // record) one millisecond later, by whichever call comes first (nextTick()
  // asks for one). Without this, every version of every record would travel
  // in a message of its own (a cold start of N routers of degree d: O(N² d²)
  // messages instead of O(N² d)).
  void sendPending(Millis now) {
    std::unordered_map<std::uint32_t, std::string> ls_cache;
    for (auto& [nid, nb] : neighbors_) {
      if (!nb.pending() || nb.sent_at == now) continue;
      nb.sent_at = now;
      if (!nb.out_ls.empty()) {
        std::sort(nb.out_ls.begin(), nb.out_ls.end());
        nb.out_ls.erase(std::unique(nb.out_ls.begin(), nb.out_ls.end()), nb.out_ls.end());
        std::vector<const std::string*> records;
        for (const std::uint32_t x : nb.out_ls) {
          if (!nodes_[x].used || !nodes_[x].has_ls) continue;
          auto it = ls_cache.find(x);
          if (it == ls_cache.end()) {
            it = ls_cache.emplace(x, proto::encodeRecord(lsRecord(x))).first;
          }
          records.push_back(&it->second);
        }
        for (auto& m : proto::assemble(proto::Batch::kLsu, records)) send(nid, std::move(m));
        nb.out_ls.clear();
      }
      if (!nb.out_mau.empty()) {
        std::vector<const std::string*> records;
        records.reserve(nb.out_mau.size());
        for (const auto& f : nb.out_mau) records.push_back(f.get());
        for (auto& m : proto::assemble(proto::Batch::kMau, records)) send(nid, std::move(m));
        nb.out_mau.clear();
      }
      if (!nb.out_mar.empty()) {
        std::vector<std::string> ids;
        std::size_t bytes = 0;
        for (const auto& id : nb.out_mar) {
          if (bytes + id.size() > proto::kTargetMessageBytes && !ids.empty()) {
            send(nid, proto::encodeMar(ids));
            ids.clear();
            bytes = 0;
          }
          bytes += id.size() + 3;
          ids.push_back(id);
        }
        send(nid, proto::encodeMar(ids));
        nb.out_mar.clear();
      }
    }
  }

  // --- addresses ----------------------------------------------------------------

  void ownRef(const std::string& a, bool add) {
    if (add) {
      if (own_refs_[a]++ == 0) own_touched_.insert(a);
    } else {
      const auto it = own_refs_.find(a);
      if (it == own_refs_.end()) return;
      if (--it->second == 0) {
        own_refs_.erase(it);
        own_touched_.insert(a);
      }
    }
  }

  void providerRef(const std::string& a, bool add) {
    if (cfg.edge) return;
    if (add) {
      ++providers_[a];
    } else {
      const auto it = providers_.find(a);
      if (it == providers_.end()) return;
      if (--it->second == 0) providers_.erase(it);
    }
    if (edge_children_ > 0) visible_touched_.insert(a);
  }

  void report(const std::string& a, const std::string& router, bool present) {
    out.remoteAddress(a, router, present);
  }

  // An interior router's address changed (it is in_table or not).
  void nodeAddressChanged(Node& n, const std::string& a, bool present) {
    if (!n.in_table) return;
    report(a, n.id, present);
    providerRef(a, present);
  }

  void clearNodeAddresses(std::uint32_t x) {
    Node& n = nodes_[x];
    if (!n.addr.held) return;
    for (const auto& a : n.addr.addresses) nodeAddressChanged(n, a, false);
    total_addresses_ -= n.addr.addresses.size();
    n.addr = AddressSet{};
  }

  // Interior: our advertised record follows own_refs_; floods one
  // incremental record with the net change.
  void advertiseOwn() {
    if (own_touched_.empty()) return;
    proto::AddressRecord rec;
    for (const auto& a : own_touched_) {
      const bool present = own_refs_.count(a) > 0;
      const bool advertised = own_advertised_.count(a) > 0;
      if (present && !advertised) {
        rec.add.push_back(a);
        own_advertised_.insert(a);
      } else if (!present && advertised) {
        rec.del.push_back(a);
        own_advertised_.erase(a);
      }
    }
    own_touched_.clear();
    if (rec.add.empty() && rec.del.empty()) return;
    rec.id = cfg.id;
    rec.instance = cfg.instance;
    rec.seq = ++own_addr_seq_;
    rec.full = false;
    rec.key = own_key_;
    rec.sig = ownAddressSignature();
    floodMau(fragment(rec), 0, false);
  }

  bool visibleTo(const Neighbor& child, const std::string& a) const {
    const auto it = providers_.find(a);
    const std::uint32_t count = it == providers_.end() ? 0 : it->second;
    return count > (child.addr.addresses.count(a) > 0 ? 1u : 0u);
  }

  // Interior: sends each edge child the change of its visible set.
  void updateVisible() {
    if (visible_touched_.empty()) return;
    for (auto& [nid, nb] : neighbors_) {
      if (!nb.established || nb.role != NeighborRole::kEdge) continue;
      proto::AddressRecord rec;
      for (const auto& a : visible_touched_) {
        const bool visible = visibleTo(nb, a);
        const bool told = nb.visible.count(a) > 0;
        if (visible && !told) {
          rec.add.push_back(a);
          nb.visible.insert(a);
        } else if (!visible && told) {
          rec.del.push_back(a);
          nb.visible.erase(a);
        }
      }
      if (rec.add.empty() && rec.del.empty()) continue;
      rec.id = cfg.id;
      rec.instance = cfg.instance;
      rec.seq = ++nb.visible_seq;
      rec.full = false;
      nb.out_mau.push_back(fragment(rec));
    }
    visible_touched_.clear();
  }

  // --- paths ----------------------------------------------------------------

  // Dijkstra over the two-way edges of the held records, ordered by
  // (distance, rank of the first hop's id among our neighbours), so that
  // ties go to the first hop with the smallest id. Returns whether any
  // router's table entry (reachable, next hop, cost) changed.
  bool computePaths() {
    const auto start = std::chrono::steady_clock::now();
    ++stats.path_computations;
    const std::size_t n = nodes_.size();
    Scratch& s = scratch_;
    s.dist.assign(n, kInfinity);
    s.rank.assign(n, kNone);
    s.parent.assign(n, kNone);
    s.first_hop.assign(n, kNone);
    s.settled.assign(n, false);

    // Our neighbours (two-way links of our own record), ranked by id.
    std::vector<Edge> firsts = adj_[kSelf];
    std::sort(firsts.begin(), firsts.end(),
              [&](const Edge& a, const Edge& b) { return nodes_[a.node].id < nodes_[b.node].id; });

    std::vector<HeapEntry>& heap = s.heap;  // a binary min-heap
    heap.clear();
    const auto push = [&](HeapEntry e) {
      heap.push_back(e);
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    };
    s.dist[kSelf] = 0;
    s.settled[kSelf] = true;
    for (std::uint32_t r = 0; r < firsts.size(); ++r) {
      const std::uint32_t v = firsts[r].node;
      if (!nodes_[v].adjacent) continue;
      s.dist[v] = firsts[r].cost;
      s.rank[v] = r;
      s.parent[v] = kSelf;
      s.first_hop[v] = v;
      push({firsts[r].cost, r, v});
    }
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
      const HeapEntry e = heap.back();
      heap.pop_back();
      if (s.settled[e.node] || e.dist != s.dist[e.node] || e.rank != s.rank[e.node]) continue;
      s.settled[e.node] = true;
      for (const Edge& edge : adj_[e.node]) {
        const std::uint32_t w = edge.node;
        if (s.settled[w]) continue;
        const std::uint64_t d = saturatingAdd(e.dist, edge.cost);
        if (d < s.dist[w] || (d == s.dist[w] && e.rank < s.rank[w])) {
          s.dist[w] = d;
          s.rank[w] = e.rank;
          s.parent[w] = e.node;
          s.first_hop[w] = s.first_hop[e.node];
          push({d, e.rank, w});
        }
      }
    }

    bool changed = false;
    for (std::uint32_t x = 1; x < n; ++x) {
      Route& route = routes_[x];
      const bool reachable = s.settled[x];
      if (!reachable && !route.reachable) continue;
      const NeighborId next_hop = reachable ? nodes_[s.first_hop[x]].adjacency : 0;
      if (reachable != route.reachable ||
          (reachable && (next_hop != route.next_hop || s.dist[x] != route.dist))) {
        changed = true;
      }
      route.reachable = reachable;
      route.dist = s.dist[x];
      route.rank = s.rank[x];
      route.parent = s.parent[x];
      route.first_hop = s.first_hop[x];
      route.next_hop = next_hop;
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    stats.last_path_computation_us = static_cast<std::uint64_t>(us.count());
    return changed;
  }

  static std::uint32_t pathCost(std::uint64_t dist) {
    return static_cast<std::uint32_t>(
        std::min<std::uint64_t>(dist, std::numeric_limits<std::uint32_t>::max()));
  }

  void updateTable(Millis now, bool compute) {
    bool changed = table_changed_;
    table_changed_ = false;
    if (graph_dirty_ && compute) {
      graph_dirty_ = false;
      computed_at_ = now;
      changed = computePaths() || changed;
      // An edge child whose id an interior router reachable by link state
      // also has: the id is not unique in the network.
      std::vector<NeighborId> clashes;
      for (const auto& [nid, nb] : neighbors_) {
        if (!nb.established || nb.role != NeighborRole::kEdge) continue;
        const std::uint32_t x = findNode(nb.peer_id);
        if (x != kNone && x != kSelf && routes_[x].reachable) clashes.push_back(nid);
      }
      for (const NeighborId nid : clashes) {
        dropNeighbor(nid, kDuplicateId,
                     fmt::format("edge router id '{}' is also an interior router's id",
                                 neighbors_.at(nid).peer_id));
        changed = true;
      }
    }
    if (!changed) return;

    // Leaving routers' addresses are reported removed before the new table,
    // entering routers' added after it.
    std::vector<Path> interior;
    interior.reserve(paths_.size() + 16);
    for (const std::uint32_t x : sortedNodes()) {
      Node& n = nodes_[x];
      const Route& r = routes_[x];
      if (n.in_table && !r.reachable) {
        for (const auto& a : n.addr.addresses) nodeAddressChanged(n, a, false);
        n.in_table = false;
      }
      if (r.reachable) interior.push_back(Path{n.id, r.next_hop, pathCost(r.dist)});
    }
    std::vector<Path> attached;  // neighbors_ is in NeighborId order
    for (const auto& [nid, nb] : neighbors_) {
      if (nb.established && nb.role != NeighborRole::kInterior) {
        attached.push_back(Path{nb.peer_id, nid, nb.link_cost});
      }
    }
    std::vector<Path> paths;
    if (attached.empty()) {
      paths = std::move(interior);
    } else {
      const auto byRouter = [](const Path& a, const Path& b) { return a.router < b.router; };
      std::sort(attached.begin(), attached.end(), byRouter);
      paths.reserve(interior.size() + attached.size());
      std::merge(std::make_move_iterator(interior.begin()), std::make_move_iterator(interior.end()),
                 std::make_move_iterator(attached.begin()), std::make_move_iterator(attached.end()),
                 std::back_inserter(paths), byRouter);
    }
    if (paths != paths_) {
      paths_ = std::move(paths);
      out.pathsChanged(paths_);
    }
    for (const std::uint32_t x : sortedNodes()) {
      Node& n = nodes_[x];
      if (routes_[x].reachable && !n.in_table) {
        n.in_table = true;
        for (const auto& a : n.addr.addresses) nodeAddressChanged(n, a, true);
      }
    }
    for (auto& [nid, nb] : neighbors_) {
      if (nb.established && nb.role != NeighborRole::kInterior && !nb.in_table) {
        nb.in_table = true;
        for (const auto& a : nb.addr.addresses) report(a, nb.peer_id, true);
      }
    }
    records_changed_ = true;
  }

  // A record of x was stored: if x is unreachable, it starts ageing (unless
  // it already is).
  void recordStored(std::uint32_t x) {
    Node& n = nodes_[x];
    if (routes_[x].reachable || n.unreachable_since) return;
    n.unreachable_since = now_;
    age_deadline_ = std::min(age_deadline_, now_ + cfg.unreachable_max_age_ms);
  }

  void updateAgeing(Millis now) {
    if (!records_changed_) return;
    records_changed_ = false;
    age_deadline_ = kNever;
    for (std::uint32_t x = 1; x < nodes_.size(); ++x) {
      Node& n = nodes_[x];
      if (!n.used || (!n.has_ls && !n.addr.held) || routes_[x].reachable) {
        n.unreachable_since.reset();
        continue;
      }
      if (!n.unreachable_since) n.unreachable_since = now;
      age_deadline_ = std::min(age_deadline_, *n.unreachable_since + cfg.unreachable_max_age_ms);
    }
  }

  void age(Millis now) {
    // Ageing goes by reachability: not while a computation is pending.
    if (now < age_deadline_ || graph_dirty_) return;
    std::vector<proto::LinkStateRecord> pending_ls;
    std::vector<proto::AddressRecord> pending_addr;
    for (std::uint32_t x = 1; x < nodes_.size(); ++x) {
      Node& n = nodes_[x];
      if (!n.used || routes_[x].reachable || !n.unreachable_since ||
          *n.unreachable_since + cfg.unreachable_max_age_ms > now) {
        continue;
      }
      // Not in the path table, so its addresses are not reported.
      total_addresses_ -= n.addr.addresses.size();
      n.addr = AddressSet{};
      if (n.has_ls) {
        n.has_ls = false;
        setLinks(x, {});
      }
      n.unreachable_since.reset();
      // The key binding goes with the records: records under another key
      // that were refused meanwhile can now be taken.
      if (n.pending_ls) pending_ls.push_back(std::move(*n.pending_ls));
      if (n.pending_addr) pending_addr.push_back(std::move(*n.pending_addr));
      n.pending_ls.reset();
      n.pending_addr.reset();
      maybeFree(x);
    }
    records_changed_ = true;
    for (const auto& rec : pending_ls) lsRecordReceived(nullptr, rec);
    for (const auto& rec : pending_addr) addressRecordReceived(nullptr, rec);
  }

  // The end of every public call. Path computations are paced like floods
  // (sendPending): at most one per millisecond; changes arriving later in
  // the same millisecond are computed one millisecond later, by whichever
  // call comes first (nextTick() asks for one). A burst of updates costs one
  // computation, not one each.
  void finish(Millis now) {
    const bool compute = computed_at_ != now;
    if ((graph_dirty_ && compute) || table_changed_) updateTable(now, compute);
    if (!cfg.edge) {
      advertiseOwn();
      updateVisible();
    }
    updateAgeing(now);
    sendPending(now);
  }

  // --- neighbours ---------------------------------------------------------------

  void ownLinksChanged() {
    Node& self = nodes_[kSelf];
    ++self.ls_seq;
    floodLs(kSelf, 0, false);
  }

  void setOwnLink(std::uint32_t x, std::uint32_t cost) {
    std::vector<Link> links = nodes_[kSelf].links;
    const auto it = std::lower_bound(links.begin(), links.end(), Link{x, 0});
    if (it != links.end() && it->node == x) {
      if (it->cost == cost) return;
      it->cost = cost;
    } else {
      links.insert(it, Link{x, cost});
    }
    setLinks(kSelf, std::move(links));
    ownLinksChanged();
  }

  void removeOwnLink(std::uint32_t x) {
    std::vector<Link> links = nodes_[kSelf].links;
    const auto it = std::lower_bound(links.begin(), links.end(), Link{x, 0});
    if (it == links.end() || it->node != x) return;
    links.erase(it);
    setLinks(kSelf, std::move(links));
    ownLinksChanged();
  }

  // The neighbour is gone (down, or dropped by us).
  void neighborGone(NeighborId nid) {
    const auto it = neighbors_.find(nid);
    if (it == neighbors_.end()) return;
    Neighbor nb = std::move(it->second);
    neighbors_.erase(it);
    if (!nb.established) return;
    switch (nb.role) {
      case NeighborRole::kInterior: {
        Node& n = nodes_[nb.node];
        n.adjacent = false;
        n.adjacency = 0;
        removeOwnLink(nb.node);
        maybeFree(nb.node);
        break;
      }
      case NeighborRole::kEdge:
        --edge_children_;
        for (const auto& a : nb.addr.addresses) {
          if (nb.in_table) report(a, nb.peer_id, false);
          ownRef(a, false);
          providerRef(a, false);
        }
        table_changed_ = true;
        break;
      case NeighborRole::kUplink:
        if (nb.in_table) {
          for (const auto& a : nb.addr.addresses) report(a, nb.peer_id, false);
        }
        table_changed_ = true;
        break;
    }
  }

  void dropNeighbor(NeighborId nid, const char* condition, std::string reason) {
    out.drop(nid, condition, std::move(reason));
    neighborGone(nid);
  }

  // --- received messages -----------------------------------------------------------

  void onHello(Neighbor& nb, const proto::Hello& h) {
    const proto::Mode expected =
        nb.role == NeighborRole::kEdge ? proto::Mode::kEdge : proto::Mode::kInterior;
    if (h.id != nb.peer_id) {
      dropNeighbor(nb.nid, kProtocolError,
                   fmt::format("hello from '{}' on the connection of '{}'", h.id, nb.peer_id));
      return;
    }
    if (h.mode != expected) {
      dropNeighbor(nb.nid, kProtocolError,
                   fmt::format("'{}' says it is an {} router, expected {}", h.id,
                               proto::modeName(h.mode), proto::modeName(expected)));
      return;
    }
    if (nb.established) {
      if (h.instance != nb.peer_instance) {
        dropNeighbor(nb.nid, kProtocolError,
                     fmt::format("'{}' changed its instance on a live connection", h.id));
        return;
      }
      if (h.key != nb.peer_key || h.sig != nb.peer_sig) {
        dropNeighbor(nb.nid, kProtocolError,
                     fmt::format("'{}' changed its key on a live connection", h.id));
        return;
      }
      if (h.cost != nb.their_cost) {
        nb.their_cost = h.cost;
        nb.link_cost = std::max(nb.our_cost, h.cost);
        if (nb.role == NeighborRole::kInterior) {
          setOwnLink(nb.node, nb.link_cost);
        } else {
          table_changed_ = true;
        }
      }
      return;
    }

    // First hello: the adjacency is established. The hello proves that the
    // peer holds the key it announces (signed over our id: not replayable
    // to another router).
    if (h.key.empty() || h.sig.empty() ||
        !verify(h.key, signing::helloInput(h.id, h.instance, cfg.id), h.sig)) {
      ++stats.bad_signatures;
      dropNeighbor(nb.nid, kProtocolError,
                   fmt::format("hello from '{}' {}", h.id,
                               h.key.empty() || h.sig.empty() ? "is not signed (no key and sig)"
                                                              : "has a bad signature"));
      return;
    }
    if (nb.role == NeighborRole::kInterior) {
      const std::uint32_t x = findNode(h.id);
      if (x != kNone && bound(nodes_[x]) && nodes_[x].key != h.key) {
        ++stats.id_conflicts;
        dropNeighbor(
            nb.nid, kDuplicateId,
            fmt::format("router id '{}' is already in the network with another key", h.id));
        return;
      }
    }
    if (nb.role != NeighborRole::kUplink) {
      const std::uint32_t x = findNode(h.id);
      if (x != kNone && x != kSelf && routes_[x].reachable && nodes_[x].has_ls &&
          (nb.role == NeighborRole::kEdge || nodes_[x].ls_instance != h.instance)) {
        dropNeighbor(nb.nid, kDuplicateId,
                     fmt::format("a router with id '{}' is already in the network", h.id));
        return;
      }
    }
    nb.established = true;
    nb.peer_instance = h.instance;
    nb.peer_key = h.key;
    nb.peer_sig = h.sig;
    nb.their_cost = h.cost;
    nb.link_cost = std::max(nb.our_cost, h.cost);
    switch (nb.role) {
      case NeighborRole::kInterior: {
        const std::uint32_t x = nodeFor(h.id);
        // Records from an earlier run of the peer (unreachable, or it would
        // have been refused above) are void: its new ones follow.
        if (nodes_[x].has_ls && nodes_[x].ls_instance < h.instance) {
          nodes_[x].has_ls = false;
          setLinks(x, {});
        }
        if (nodes_[x].addr.held && nodes_[x].addr.instance < h.instance) clearNodeAddresses(x);
        bindKey(nodes_[x], h.key);
        nodes_[x].adjacent = true;
        nodes_[x].adjacency = nb.nid;
        nb.node = x;
        setOwnLink(x, nb.link_cost);
        // Everything we hold, our own records included.
        for (std::uint32_t y = 0; y < nodes_.size(); ++y) {
          if (nodes_[y].used && nodes_[y].has_ls) nb.out_ls.push_back(y);
        }
        for (std::uint32_t y = 1; y < nodes_.size(); ++y) {
          const Node& n = nodes_[y];
          if (n.used && n.addr.held) nb.out_mau.push_back(heldFullRecord(y));
        }
        nb.out_mau.push_back(ownFullRecord());
        break;
      }
      case NeighborRole::kEdge: {
        ++edge_children_;
        for (const auto& [a, count] : providers_) nb.visible.insert(a);
        nb.visible_seq = 1;
        nb.out_mau.push_back(fragment(fullRecord(cfg.id, cfg.instance, 1, nb.visible)));
        table_changed_ = true;
        break;
      }
      case NeighborRole::kUplink:
        nb.out_mau.push_back(ownFullRecord());
        table_changed_ = true;
        break;
    }
  }

  // --- received records: verification, trust on first use, limits ------------

  bool verify(std::string_view key, std::string_view message, std::string_view sig) const {
    return cfg.verify ? cfg.verify(key, message, sig) : signing::verify(key, message, sig);
  }

  static bool hasRecords(const Node& n) { return n.has_ls || n.addr.held; }
  // Whether n's key binding is in force (see Node::key).
  static bool bound(const Node& n) { return !n.key.empty() && (hasRecords(n) || n.adjacent); }

  void bindKey(Node& n, const std::string& key) {
    if (n.key == key) return;
    n.key = key;
    n.conflict_logged = false;
  }

  // Routers whose records are held (not this one).
  std::size_t heldRouters() const {
    std::size_t count = 0;
    for (std::uint32_t x = 1; x < nodes_.size(); ++x) {
      count += nodes_[x].used && hasRecords(nodes_[x]) ? 1 : 0;
    }
    return count;
  }

  std::string from(const Neighbor* nb) const {
    return nb != nullptr ? fmt::format("neighbour '{}'", nb->peer_id)
                         : std::string("a held record");
  }

  // A record with a missing or bad signature: an honest neighbour verifies
  // every record before re-flooding it, so the one that sent this is hostile
  // or broken. Returns false: the neighbour is dropped (gone).
  bool badSignature(Neighbor* nb, const char* kind, const std::string& id, bool missing) {
    ++stats.bad_signatures;
    if (nb == nullptr) return true;
    dropNeighbor(nb->nid, kProtocolError,
                 fmt::format("{} record of router '{}' {}", kind, id,
                             missing ? "is not signed (no key and sig)" : "has a bad signature"));
    return false;
  }

  // A verified record for an id bound to another key: refused, counted and
  // logged once per id (until the binding changes).
  // Records of a router not held yet, with router.max_routers held already:
  // dropped, counted and logged.
  bool overRouterLimit(std::uint32_t x, const std::string& id, const Neighbor* nb) {
    if ((x != kNone && hasRecords(nodes_[x])) || heldRouters() < cfg.max_routers) return false;
    ++stats.router_limit_drops;
    limitReached(kRouterLimit, stats.router_limit_drops,
                 fmt::format("dropped the records of router '{}' from {}: router.max_routers "
                             "({}) routers are known",
                             id, from(nb), cfg.max_routers));
    return true;
  }

  void conflict(std::uint32_t x, const char* kind, const std::string& id, const Neighbor* nb) {
    ++stats.id_conflicts;
    bool& logged = x == kNone || x == kSelf ? self_conflict_logged_ : nodes_[x].conflict_logged;
    if (logged) return;
    logged = true;
    out.log(EngineOutput::Severity::kWarning,
            fmt::format("router id '{}' is already in the network with another key: refused a "
                        "{} record for it from {} (logged once per id)",
                        id, kind, from(nb)));
  }

  void limitReached(LimitKind kind, std::uint64_t count, std::string message) {
    if (now_ < next_limit_log_[kind]) return;
    next_limit_log_[kind] = now_ + kLimitLogInterval;
    out.log(EngineOutput::Severity::kWarning,
            fmt::format("{} ({} so far; logged at most every {} s)", message, count,
                        kLimitLogInterval / 1000));
  }

  void onLsu(Neighbor& nb, const proto::Lsu& m) {
    if (cfg.edge || nb.role != NeighborRole::kInterior) {
      ++stats.ignored_messages;
      return;
    }
    for (const auto& rec : m.records) {
      if (!lsRecordReceived(&nb, rec)) return;  // nb was dropped
    }
  }

  // One link-state record from nb (null: a pending record, see Node).
  // Returns false if nb was dropped.
  bool lsRecordReceived(Neighbor* nb, const proto::LinkStateRecord& rec) {
    if (rec.key.empty() || rec.sig.empty()) return badSignature(nb, "link-state", rec.id, true);
    const auto verified = [&] {
      return verify(rec.key,
                    signing::linkStateInput(rec.id, rec.instance, rec.seq, signedLinks(rec)),
                    rec.sig);
    };
    if (rec.id == cfg.id) {
      if (rec.key != own_key_) {
        conflict(kSelf, "link-state", rec.id, nb);
        return true;
      }
      if (!verified()) return badSignature(nb, "link-state", rec.id, false);
      Node& self = nodes_[kSelf];
      if (rec.instance == cfg.instance && rec.seq >= self.ls_seq) {
        // An echo of a record of ours we no longer have: go above it.
        self.ls_seq = rec.seq;
        ownLinksChanged();
      } else if (rec.instance > cfg.instance) {
        ++stats.duplicate_id_records;
      }
      return true;
    }
    std::uint32_t x = findNode(rec.id);
    if (x != kNone && nodes_[x].has_ls &&
        !newer(rec.instance, rec.seq, nodes_[x].ls_instance, nodes_[x].ls_seq)) {
      return true;
    }
    if (rec.links.size() > cfg.max_routers) {
      ++stats.router_limit_drops;
      limitReached(kRouterLimit, stats.router_limit_drops,
                   fmt::format("dropped a link-state record of router '{}' from {}: {} links, "
                               "more than router.max_routers ({})",
                               rec.id, from(nb), rec.links.size(), cfg.max_routers));
      return true;
    }
    if (!verified()) return badSignature(nb, "link-state", rec.id, false);
    if (x != kNone && bound(nodes_[x]) && nodes_[x].key != rec.key) {
      conflict(x, "link-state", rec.id, nb);
      Node& n = nodes_[x];
      if (!routes_[x].reachable &&
          (!n.pending_ls ||
           newer(rec.instance, rec.seq, n.pending_ls->instance, n.pending_ls->seq))) {
        n.pending_ls = rec;
      }
      return true;
    }
    if (overRouterLimit(x, rec.id, nb)) return true;
    if (x == kNone) x = nodeFor(rec.id);
    std::vector<Link> links;
    links.reserve(rec.links.size());
    for (const auto& [id, cost] : rec.links) {
      if (id == rec.id) continue;
      links.push_back(Link{nodeFor(id), cost});
    }
    std::sort(links.begin(), links.end());
    Node& n = nodes_[x];
    // A restarted router's addresses from its previous run are void.
    if (n.addr.held && n.addr.instance < rec.instance) clearNodeAddresses(x);
    bindKey(nodes_[x], rec.key);
    nodes_[x].has_ls = true;
    nodes_[x].ls_instance = rec.instance;
    nodes_[x].ls_seq = rec.seq;
    nodes_[x].ls_sig = rec.sig;
    setLinks(x, std::move(links));
    recordStored(x);
    floodLs(x, nb != nullptr ? nb->nid : 0, nb != nullptr);
    return true;
  }

  void onMauFromInterior(Neighbor& nb, const proto::Mau& m) {
    for (const auto& rec : m.updates) {
      if (!addressRecordReceived(&nb, rec)) return;  // nb was dropped
    }
  }

  // One address record from an interior neighbour nb (null: a pending
  // record). Returns false if nb was dropped.
  bool addressRecordReceived(Neighbor* nb, const proto::AddressRecord& rec) {
    if (rec.key.empty() || rec.sig.empty()) return badSignature(nb, "address", rec.id, true);
    if (rec.id == cfg.id) {
      if (rec.key != own_key_) {
        conflict(kSelf, "address", rec.id, nb);
        return true;
      }
      // A full record can be checked on its own; an incremental one only
      // against the set it applies to, which we no longer have. Either way
      // the worst it can do is make us re-advertise our own set.
      if (rec.full &&
          !verify(rec.key, signing::addressInput(rec.id, rec.instance, rec.seq, rec.exist),
                  rec.sig)) {
        return badSignature(nb, "address", rec.id, false);
      }
      if (rec.instance == cfg.instance && rec.seq >= own_addr_seq_) {
        own_addr_seq_ = rec.seq + 1;
        floodMau(ownFullRecord(), 0, false);
      } else if (rec.instance > cfg.instance) {
        ++stats.duplicate_id_records;
      }
      return true;
    }
    std::uint32_t x = findNode(rec.id);
    if (x != kNone && nodes_[x].has_ls && rec.instance < nodes_[x].ls_instance) return true;
    static const AddressSet kNothing;
    const AddressSet& held = x == kNone ? kNothing : nodes_[x].addr;
    const Apply status = classify(held, rec);
    if (status == Apply::kStale) return true;
    if (status == Apply::kGap) {
      if (nb != nullptr) nb->out_mar.insert(rec.id);
      return true;
    }
    const std::vector<const std::string*> result = resultingSet(held, rec);
    if (!verify(rec.key, addressInput(rec.id, rec.instance, rec.seq, result), rec.sig)) {
      return badSignature(nb, "address", rec.id, false);
    }
    if (x != kNone && bound(nodes_[x]) && nodes_[x].key != rec.key) {
      conflict(x, "address", rec.id, nb);
      Node& n = nodes_[x];
      if (rec.full && !routes_[x].reachable &&
          (!n.pending_addr ||
           newer(rec.instance, rec.seq, n.pending_addr->instance, n.pending_addr->seq))) {
        n.pending_addr = rec;
      }
      return true;
    }
    if (overRouterLimit(x, rec.id, nb)) return true;
    if (result.size() > cfg.max_addresses_per_router) {
      ++stats.router_address_limit_drops;
      limitReached(kRouterAddressLimit, stats.router_address_limit_drops,
                   fmt::format("dropped an address record of router '{}' from {}: {} addresses, "
                               "more than router.max_addresses_per_router ({})",
                               rec.id, from(nb), result.size(), cfg.max_addresses_per_router));
      return true;
    }
    if (total_addresses_ - held.addresses.size() + result.size() > cfg.max_addresses) {
      ++stats.address_limit_drops;
      limitReached(kAddressLimit, stats.address_limit_drops,
                   fmt::format("dropped an address record of router '{}' from {}: the network's "
                               "address table would exceed router.max_addresses ({})",
                               rec.id, from(nb), cfg.max_addresses));
      return true;
    }
    if (x == kNone) x = nodeFor(rec.id);
    Node& n = nodes_[x];
    total_addresses_ -= n.addr.addresses.size();
    applyRecord(n.addr, rec, [&](const std::string& a, bool p) { nodeAddressChanged(n, a, p); });
    total_addresses_ += n.addr.addresses.size();
    n.addr.sig = rec.sig;
    bindKey(n, rec.key);
    recordStored(x);
    floodMau(fragment(rec), nb != nullptr ? nb->nid : 0, nb != nullptr);
    return true;
  }

  void onMauFromEdge(Neighbor& nb, const proto::Mau& m) {
    for (const auto& rec : m.updates) {
      if (rec.id != nb.peer_id) {
        ++stats.ignored_messages;
        continue;
      }
      const Apply result = applyRecord(nb.addr, rec, [&](const std::string& a, bool p) {
        if (nb.in_table) report(a, nb.peer_id, p);
        ownRef(a, p);
        providerRef(a, p);
      });
      if (result == Apply::kGap) nb.out_mar.insert(rec.id);
    }
  }

  void onMauFromUplink(Neighbor& nb, const proto::Mau& m) {
    for (const auto& rec : m.updates) {
      if (rec.id != nb.peer_id) {
        ++stats.ignored_messages;
        continue;
      }
      const Apply result = applyRecord(nb.addr, rec, [&](const std::string& a, bool p) {
        if (nb.in_table) report(a, nb.peer_id, p);
      });
      if (result == Apply::kGap) nb.out_mar.insert(rec.id);
    }
  }

  void onMar(Neighbor& nb, const proto::Mar& m) {
    for (const auto& id : m.ids) {
      if (id == cfg.id) {
        if (nb.role == NeighborRole::kEdge) {
          nb.out_mau.push_back(
              fragment(fullRecord(cfg.id, cfg.instance, nb.visible_seq, nb.visible)));
        } else {
          nb.out_mau.push_back(ownFullRecord());
        }
        continue;
      }
      if (nb.role != NeighborRole::kInterior) continue;
      const std::uint32_t x = findNode(id);
      if (x == kNone || !nodes_[x].addr.held) continue;
      nb.out_mau.push_back(heldFullRecord(x));
    }
  }

  // --- update rate ------------------------------------------------------------

  std::uint64_t messageCost(const proto::Message& msg) const {
    std::uint64_t cost = 1;
    if (const auto* lsu = std::get_if<proto::Lsu>(&msg)) {
      cost = lsu->records.size();
    } else if (const auto* mau = std::get_if<proto::Mau>(&msg)) {
      cost = mau->updates.size();
    }
    // A message larger than the burst goes when the bucket is full.
    return std::clamp<std::uint64_t>(cost, 1, cfg.max_update_burst_per_neighbor);
  }

  void refill(Neighbor& nb, Millis now) {
    if (now > nb.refilled_at) {
      nb.tokens =
          std::min<double>(cfg.max_update_burst_per_neighbor,
                           nb.tokens + static_cast<double>(now - nb.refilled_at) *
                                           cfg.max_updates_per_neighbor_per_second / 1000.0);
    }
    nb.refilled_at = now;
  }

  // When the first waiting message of nb can go.
  Millis tokensDue(const Neighbor& nb) const {
    const double missing = static_cast<double>(nb.deferred.front().cost) - nb.tokens;
    if (missing <= 0) return nb.refilled_at;
    return nb.refilled_at + static_cast<Millis>(std::ceil(missing * 1000.0 /
                                                          cfg.max_updates_per_neighbor_per_second));
  }

  // A decoded message from nb: handled now if nb is within its update rate
  // and nothing of it waits, else queued (in order). Waiting never loses a
  // record (dropping one could leave a link-state record stale until its
  // router changes again); a neighbour whose waiting messages owe more than
  // a whole burst is dropped.
  void admit(Neighbor& nb, proto::Message msg, std::size_t bytes, Millis now) {
    const std::uint64_t cost = messageCost(msg);
    refill(nb, now);
    if (nb.deferred.empty() && nb.tokens >= static_cast<double>(cost)) {
      nb.tokens -= static_cast<double>(cost);
      onMessage(nb, msg);
      return;
    }
    ++stats.deferred_messages;
    nb.deferred_cost += cost;
    nb.deferred_bytes += bytes;
    nb.deferred.push_back(Neighbor::Waiting{std::move(msg), cost, bytes});
    if (nb.deferred_cost > cfg.max_update_burst_per_neighbor ||
        nb.deferred_bytes > kMaxDeferredBytes) {
      ++stats.rate_limit_drops;
      dropNeighbor(
          nb.nid, kResourceLimit,
          fmt::format("'{}' sent updates faster than router."
                      "max_updates_per_neighbor_per_second ({}) for too long ({} records "
                      "waiting)",
                      nb.peer_id, cfg.max_updates_per_neighbor_per_second, nb.deferred_cost));
      return;
    }
    limitReached(kRateLimit, stats.deferred_messages,
                 fmt::format("messages from neighbour '{}' wait: over router."
                             "max_updates_per_neighbor_per_second ({}, burst {})",
                             nb.peer_id, cfg.max_updates_per_neighbor_per_second,
                             cfg.max_update_burst_per_neighbor));
  }

  void drainDeferred(Millis now) {
    std::vector<NeighborId> waiting;
    for (const auto& [nid, nb] : neighbors_) {
      if (!nb.deferred.empty()) waiting.push_back(nid);
    }
    for (const NeighborId nid : waiting) {
      while (true) {
        const auto it = neighbors_.find(nid);
        if (it == neighbors_.end() || it->second.deferred.empty()) break;
        Neighbor& nb = it->second;
        refill(nb, now);
        Neighbor::Waiting& w = nb.deferred.front();
        if (nb.tokens < static_cast<double>(w.cost)) break;
        nb.tokens -= static_cast<double>(w.cost);
        nb.deferred_cost -= w.cost;
        nb.deferred_bytes -= w.bytes;
        const proto::Message msg = std::move(w.message);
        nb.deferred.pop_front();
        onMessage(nb, msg);  // may drop nb
      }
    }
  }

  void onMessage(Neighbor& nb, const proto::Message& msg) {
    if (const auto* h = std::get_if<proto::Hello>(&msg)) {
      onHello(nb, *h);
      return;
    }
    if (!nb.established) {
      ++stats.ignored_messages;  // before the first hello
      return;
    }
    if (const auto* lsu = std::get_if<proto::Lsu>(&msg)) {
      onLsu(nb, *lsu);
    } else if (const auto* mau = std::get_if<proto::Mau>(&msg)) {
      switch (nb.role) {
        case NeighborRole::kInterior:
          onMauFromInterior(nb, *mau);
          break;
        case NeighborRole::kEdge:
          onMauFromEdge(nb, *mau);
          break;
        case NeighborRole::kUplink:
          onMauFromUplink(nb, *mau);
          break;
      }
    } else if (const auto* mar = std::get_if<proto::Mar>(&msg)) {
      onMar(nb, *mar);
    }
  }

  // --- edge router: own record ----------------------------------------------------

  void flushEdge() {
    proto::AddressRecord rec;
    for (const auto& [a, present] : pending_local_) {
      if (present && local_.insert(a).second) {
        rec.add.push_back(a);
      } else if (!present && local_.erase(a) > 0) {
        rec.del.push_back(a);
      }
    }
    pending_local_.clear();
    if (rec.add.empty() && rec.del.empty()) return;
    own_advertised_ = local_;
    rec.id = cfg.id;
    rec.instance = cfg.instance;
    rec.seq = ++own_addr_seq_;
    rec.full = false;
    rec.key = own_key_;
    rec.sig = ownAddressSignature();
    const Fragment f = fragment(rec);
    for (auto& [nid, nb] : neighbors_) {
      if (nb.established && nb.role == NeighborRole::kUplink) nb.out_mau.push_back(f);
    }
  }

  void flushInterior() {
    for (const auto& [a, present] : pending_local_) {
      if (present && local_.insert(a).second) {
        ownRef(a, true);
        providerRef(a, true);
      } else if (!present && local_.erase(a) > 0) {
        ownRef(a, false);
        providerRef(a, false);
      }
    }
    pending_local_.clear();
  }
};

// --- Engine ----------------------------------------------------------------------

Engine::Engine(EngineConfig cfg, EngineOutput& out)
    : impl_(std::make_unique<Impl>(std::move(cfg), out)) {}

Engine::~Engine() = default;

std::optional<Engine::Refusal> Engine::neighborUp(NeighborId n, const std::string& peer_id,
                                                  NeighborRole role, std::uint32_t cost,
                                                  Millis now) {
  Impl& m = *impl_;
  m.now_ = now;
  if (m.neighbors_.count(n) > 0) {
    return Refusal{kProtocolError, fmt::format("neighbour {} is already up", n)};
  }
  if (!proto::validRouterId(peer_id)) {
    return Refusal{kProtocolError, "invalid router id"};
  }
  if (peer_id == m.cfg.id) {
    return Refusal{kDuplicateId, fmt::format("'{}' is this router's own id", peer_id)};
  }
  const bool role_ok = m.cfg.edge ? role == NeighborRole::kUplink : role != NeighborRole::kUplink;
  if (!role_ok) {
    return Refusal{kProtocolError, m.cfg.edge ? "an edge router only has uplinks"
                                              : "an interior router has no uplink"};
  }
  for (const auto& [nid, nb] : m.neighbors_) {
    if (nb.peer_id == peer_id) {
      return Refusal{kDuplicateId, fmt::format("router '{}' is already connected", peer_id)};
    }
    if (role == NeighborRole::kUplink) {
      return Refusal{kProtocolError,
                     fmt::format("already attached to '{}' (one uplink at a time)", nb.peer_id)};
    }
  }
  Impl::Neighbor& nb = m.neighbors_[n];
  nb.nid = n;
  nb.peer_id = peer_id;
  nb.role = role;
  nb.our_cost = std::max<std::uint32_t>(cost, 1);
  nb.last_heard = now;
  nb.tokens = m.cfg.max_update_burst_per_neighbor;
  nb.refilled_at = now;
  m.sendHello(nb, now);
  m.finish(now);
  return std::nullopt;
}

void Engine::neighborDown(NeighborId n, Millis now) {
  impl_->now_ = now;
  if (impl_->neighbors_.count(n) == 0) return;
  impl_->neighborGone(n);
  impl_->finish(now);
}

void Engine::receive(NeighborId from, std::string_view message, Millis now) {
  Impl& m = *impl_;
  m.now_ = now;
  const auto it = m.neighbors_.find(from);
  if (it == m.neighbors_.end()) {
    ++m.stats.ignored_messages;
    return;
  }
  ++m.stats.messages_received;
  Impl::Neighbor& nb = it->second;
  proto::Decoded d = proto::decode(message);
  if (!d.ok()) {
    ++m.stats.malformed_messages;
    m.dropNeighbor(from, d.error.condition.c_str(), std::move(d.error.reason));
  } else {
    nb.last_heard = now;
    m.admit(nb, std::move(*d.message), message.size(), now);
    m.drainDeferred(now);
  }
  m.finish(now);
}

void Engine::tick(Millis now) {
  Impl& m = *impl_;
  m.now_ = now;
  std::vector<NeighborId> dead;
  for (auto& [nid, nb] : m.neighbors_) {
    if (now - nb.last_heard >= m.cfg.dead_interval_ms) {
      dead.push_back(nid);
    } else if (now >= nb.next_hello) {
      m.sendHello(nb, now);
    }
  }
  for (const NeighborId nid : dead) {
    m.dropNeighbor(nid, kNeighborDead,
                   fmt::format("nothing heard from '{}' for {} ms", m.neighbors_.at(nid).peer_id,
                               now - m.neighbors_.at(nid).last_heard));
  }
  m.drainDeferred(now);
  m.age(now);
  m.finish(now);
}

Millis Engine::nextTick() const {
  const Impl& m = *impl_;
  // Ageing goes by reachability: it waits for a pending computation.
  Millis next = m.age_deadline_;
  if (m.graph_dirty_ && m.computed_at_) next = std::max(next, *m.computed_at_ + 1);
  for (const auto& [nid, nb] : m.neighbors_) {
    next = std::min({next, nb.next_hello, nb.last_heard + m.cfg.dead_interval_ms});
    if (nb.pending() && nb.sent_at) next = std::min(next, *nb.sent_at + 1);
    if (!nb.deferred.empty()) next = std::min(next, m.tokensDue(nb));
  }
  if (m.graph_dirty_ && m.computed_at_) next = std::min(next, *m.computed_at_ + 1);
  return next;
}

void Engine::localAddress(const std::string& address, bool present) {
  // An address peers would refuse (and drop us for) is never advertised.
  if (!proto::validAddress(address)) return;
  impl_->pending_local_[address] = present;
}

void Engine::flush(Millis now) {
  Impl& m = *impl_;
  m.now_ = now;
  if (m.cfg.edge) {
    m.flushEdge();
  } else {
    m.flushInterior();
  }
  m.finish(now);
}

const std::string& Engine::id() const {
  return impl_->cfg.id;
}

std::vector<Path> Engine::paths() const {
  return impl_->paths_;
}

std::vector<std::string> Engine::neighbors() const {
  std::vector<std::string> ids;
  for (const auto& [nid, nb] : impl_->neighbors_) {
    if (nb.established) ids.push_back(nb.peer_id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::size_t Engine::knownAddresses() const {
  return impl_->total_addresses_;
}

bool Engine::hasRouter(const std::string& id) const {
  const Impl& m = *impl_;
  if (id == m.cfg.id) return true;
  for (const auto& [nid, nb] : m.neighbors_) {
    if (nb.peer_id == id) return true;
  }
  const std::uint32_t x = m.findNode(id);
  return x != kNone && Impl::hasRecords(m.nodes_[x]);
}

const std::string& Engine::publicKey() const {
  return impl_->own_key_;
}

std::size_t Engine::knownRouters() const {
  std::size_t count = 0;
  for (const auto& n : impl_->nodes_) count += n.used && n.has_ls ? 1 : 0;
  return count;
}

const EngineStats& Engine::stats() const {
  return impl_->stats;
}

}  // namespace vane::routing
