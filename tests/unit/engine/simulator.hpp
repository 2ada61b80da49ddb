// A network of routing engines in one process, on a simulated clock: the
// connections between them are in-memory FIFO queues (one per direction)
// with a fixed latency. Used by the engine tests and bench/routing_bench.cpp.
//
// Deterministic: no threads, no wall clock. Events happen in order of
// simulated time: messages in order of (delivery time, send order), then
// each engine's tick() at the time its nextTick() asked for.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "routing/engine.hpp"
#include "routing/signing.hpp"

namespace vane::routing::sim {

struct DropRecord {
  NeighborId neighbor;
  std::string condition;
  std::string reason;
};

class Network;

// One router: its engine and everything the engine told its owner.
class Router : public EngineOutput {
 public:
  Router(Network& net, int index, EngineConfig cfg);

  void send(NeighborId to, std::string message) override;
  void drop(NeighborId n, std::string condition, std::string reason) override;
  void pathsChanged(const std::vector<Path>& paths) override {
    paths_ = paths;
    ++paths_changes_;
  }
  void remoteAddress(const std::string& address, const std::string& router, bool present) override {
    const auto key = std::make_pair(address, router);
    if (present) {
      if (!addresses_.insert(key).second) ++address_errors_;
    } else if (addresses_.erase(key) == 0) {
      ++address_errors_;
    }
    // Addresses are only reported for routers in the path table (sorted).
    const auto it =
        std::lower_bound(paths_.begin(), paths_.end(), router,
                         [](const Path& p, const std::string& r) { return p.router < r; });
    if (it == paths_.end() || it->router != router) ++address_errors_;
    ++address_events_;
  }

  Engine& engine() { return *engine_; }
  const std::string& id() const { return cfg_.id; }
  const EngineConfig& config() const { return cfg_; }
  bool alive() const { return engine_ != nullptr; }
  const std::vector<Path>& reportedPaths() const { return paths_; }
  // (address, router) pairs reported present.
  const std::set<std::pair<std::string, std::string>>& addresses() const { return addresses_; }
  std::size_t addressErrors() const { return address_errors_; }
  std::size_t addressEvents() const { return address_events_; }
  std::size_t pathsChanges() const { return paths_changes_; }
  const std::vector<DropRecord>& drops() const { return drops_; }

  // A new engine (same id and key), as if the process restarted; all
  // reported state is forgotten.
  void restart(std::uint64_t instance) {
    cfg_.instance = instance;
    engine_ = std::make_unique<Engine>(cfg_, *this);
    paths_.clear();
    addresses_.clear();
  }
  void kill() { engine_.reset(); }

 private:
  Network& net_;
  int index_;
  EngineConfig cfg_;
  std::unique_ptr<Engine> engine_;
  std::vector<Path> paths_;
  std::set<std::pair<std::string, std::string>> addresses_;
  std::size_t address_errors_ = 0;
  std::size_t address_events_ = 0;
  std::size_t paths_changes_ = 0;
  std::vector<DropRecord> drops_;
};

class Network {
 public:
  struct Options {
    Millis latency_ms = 1;
  };

  struct Message {
    int conn;
    int to_side;  // 0: a receives, 1: b receives
    std::string bytes;
  };

  struct Connection {
    int a, b;           // router indices
    NeighborId na, nb;  // the connection's id on a and on b
    std::uint32_t cost_a, cost_b;
    bool open = true;
    bool up_a = false, up_b = false;   // neighborUp accepted on that side
    bool blocked[2] = {false, false};  // messages to that side vanish
  };

  Network() : Network(Options{}) {}
  explicit Network(Options options) : options_(options) {}

  int add(EngineConfig cfg) {
    routers_.push_back(
        std::make_unique<Router>(*this, static_cast<int>(routers_.size()), std::move(cfg)));
    return static_cast<int>(routers_.size()) - 1;
  }

  // Signature checks, shared by all routers: each distinct (key, message,
  // signature) is verified once (a network of hundreds of engines in one
  // process would otherwise spend minutes verifying the same records).
  bool verify(std::string_view key, std::string_view message, std::string_view sig) {
    std::string k;
    k.reserve(key.size() + message.size() + sig.size());
    k.append(key).append(sig).append(message);
    ++verify_calls_;
    const auto it = verified_.find(k);
    if (it != verified_.end()) return it->second;
    ++verifications_;
    const bool ok = signing::verify(key, message, sig);
    verified_.emplace(std::move(k), ok);
    return ok;
  }
  std::uint64_t verifications() const { return verifications_; }  // distinct
  std::uint64_t verifyCalls() const { return verify_calls_; }     // by all routers

  Router& router(int i) { return *routers_[i]; }
  std::size_t size() const { return routers_.size(); }
  Millis now() const { return now_; }
  Connection& connection(int c) { return conns_[c]; }
  std::size_t connectionCount() const { return conns_.size(); }
  std::uint64_t delivered() const { return delivered_; }
  std::uint64_t deliveredBytes() const { return delivered_bytes_; }
  std::size_t inFlight() const { return queue_.size(); }

  // Connects a and b (roles as seen from each side; costs configured on each
  // side). Returns the connection index; if a side refused, the connection
  // is closed at once and the refusal is returned in *refusal.
  int connect(int a, int b, std::uint32_t cost_a = 1, std::uint32_t cost_b = 1,
              NeighborRole role_a = NeighborRole::kInterior,
              NeighborRole role_b = NeighborRole::kInterior,
              std::optional<Engine::Refusal>* refusal = nullptr) {
    Connection c;
    c.a = a;
    c.b = b;
    c.na = next_neighbor_id_++;
    c.nb = next_neighbor_id_++;
    c.cost_a = cost_a;
    c.cost_b = cost_b;
    const int index = static_cast<int>(conns_.size());
    conns_.push_back(c);
    by_neighbor_[c.na] = {index, 0};
    by_neighbor_[c.nb] = {index, 1};
    auto ra = router(a).engine().neighborUp(c.na, router(b).id(), role_a, cost_a, now_);
    conns_[index].up_a = !ra;
    schedule(a);
    std::optional<Engine::Refusal> rb;
    if (!ra) {
      rb = router(b).engine().neighborUp(c.nb, router(a).id(), role_b, cost_b, now_);
      conns_[index].up_b = !rb;
      schedule(b);
    }
    if (ra || rb) {
      // The refusing side closes the connection; the other sees it go down.
      close(index);
      if (refusal != nullptr) *refusal = ra ? ra : rb;
    }
    processClosures();
    return index;
  }

  // The connection closes (both sides see it go down).
  void disconnect(int c) {
    close(c);
    processClosures();
  }

  // The router's process dies: its connections close.
  void kill(int r) {
    for (int c = 0; c < static_cast<int>(conns_.size()); ++c) {
      if (conns_[c].open && (conns_[c].a == r || conns_[c].b == r)) close(c);
    }
    router(r).kill();
    processClosures();
  }

  // Messages to side `to_a ? a : b` of connection c vanish while blocked.
  void block(int c, bool to_a, bool blocked = true) { conns_[c].blocked[to_a ? 0 : 1] = blocked; }

  // The next message to router `to` on connection c that contains `needle`
  // is lost.
  void loseNext(int c, int to, const std::string& needle) { lose_.push_back({c, to, needle}); }
  std::size_t lost() const { return lost_; }

  // Delivers messages and ticks engines until no message is in flight and
  // no engine has anything due within the next few milliseconds (hellos
  // are not worth waiting for), or `limit` ms of simulated time have passed.
  // Returns whether it got quiet.
  bool runUntilQuiet(Millis limit = 600000) {
    constexpr Millis kQuiet = 5;
    const Millis end = now_ + limit;
    scheduleAll();
    processClosures();
    while (true) {
      const Millis next = std::min(nextMessage(), nextTimer());
      if (queue_.empty() && next > now_ + kQuiet) return true;
      if (next > end) {
        run(end);
        return false;
      }
      run(next);
    }
  }

  // Runs for `ms` of simulated time.
  void advance(Millis ms) { advanceTo(now_ + ms); }

  void advanceTo(Millis t) {
    scheduleAll();
    run(t);
  }

  // After every call into router r's engine: when it wants its next tick.
  void schedule(int r) {
    if (scheduled_.size() < routers_.size()) scheduled_.resize(routers_.size(), kNever);
    if (!router(r).alive()) return;
    const Millis when = std::max(router(r).engine().nextTick(), now_);
    if (when < scheduled_[r]) {
      scheduled_[r] = when;
      timers_.push({when, r});
    }
  }

  // For calls the simulator did not make (the tests' own).
  void scheduleAll() {
    for (int r = 0; r < static_cast<int>(routers_.size()); ++r) schedule(r);
  }

 private:
  void run(Millis t) {
    processClosures();
    while (true) {
      const Millis next_msg = nextMessage();
      const Millis next = std::min(next_msg, nextTimer());
      if (next > t) break;
      now_ = next;
      if (next_msg == now_) {
        // Everything arriving at this instant, then the timers.
        while (!queue_.empty() && queue_.begin()->first.first == now_) {
          auto node = queue_.extract(queue_.begin());
          deliver(node.mapped());
        }
      } else {
        const int r = timers_.top().second;  // nextTimer(): a current entry
        timers_.pop();
        scheduled_[r] = kNever;
        if (router(r).alive()) {
          if (router(r).engine().nextTick() <= now_) router(r).engine().tick(now_);
          schedule(r);
        }
      }
      processClosures();
    }
    now_ = t;
  }

 public:
  // --- used by Router ---------------------------------------------------------

  void enqueue(NeighborId from, std::string bytes) {
    const auto [c, side] = by_neighbor_.at(from);
    Connection& conn = conns_[c];
    if (!conn.open) return;
    const int to_side = 1 - side;
    queue_.emplace(std::make_pair(now_ + options_.latency_ms, seq_++),
                   Message{c, to_side, std::move(bytes)});
    ++sent_;
  }

  void dropped(NeighborId n) {
    const auto [c, side] = by_neighbor_.at(n);
    (void)side;
    pending_close_.push_back(c);
  }

  std::uint64_t sent() const { return sent_; }

 private:
  void close(int c) {
    Connection& conn = conns_[c];
    if (!conn.open) return;
    conn.open = false;
    // Both sides see it go down (a side that dropped or refused it ignores
    // the call, as allowed by the contract).
    if (conn.up_a) closures_.push_back({conn.a, conn.na});
    if (conn.up_b) closures_.push_back({conn.b, conn.nb});
  }

  void processClosures() {
    while (!pending_close_.empty() || !closures_.empty()) {
      for (const int c : std::exchange(pending_close_, {})) close(c);
      for (const auto& [r, n] : std::exchange(closures_, {})) {
        if (router(r).alive()) {
          router(r).engine().neighborDown(n, now_);
          schedule(r);
        }
      }
    }
  }

  void deliver(const Message& m) {
    const Connection& conn = conns_[m.conn];
    if (!conn.open || conn.blocked[m.to_side]) return;
    const int r = m.to_side == 0 ? conn.a : conn.b;
    const NeighborId n = m.to_side == 0 ? conn.na : conn.nb;
    if (!router(r).alive()) return;
    for (auto it = lose_.begin(); it != lose_.end(); ++it) {
      if (it->conn == m.conn && it->to == r && m.bytes.find(it->needle) != std::string::npos) {
        lose_.erase(it);
        ++lost_;
        return;
      }
    }
    ++delivered_;
    delivered_bytes_ += m.bytes.size();
    router(r).engine().receive(n, m.bytes, now_);
    schedule(r);
    processClosures();
  }

  Millis nextMessage() const { return queue_.empty() ? kNever : queue_.begin()->first.first; }
  Millis nextTimer() {
    // Skip entries that were superseded.
    while (!timers_.empty() && timers_.top().first != scheduled_[timers_.top().second]) {
      timers_.pop();
    }
    return timers_.empty() ? kNever : timers_.top().first;
  }

  static constexpr Millis kNever = std::numeric_limits<Millis>::max();
  struct Loss {
    int conn;
    int to;
    std::string needle;
  };

  Options options_;
  std::vector<std::unique_ptr<Router>> routers_;
  std::vector<Connection> conns_;
  std::map<NeighborId, std::pair<int, int>> by_neighbor_;
  std::map<std::pair<Millis, std::uint64_t>, Message> queue_;
  std::vector<int> pending_close_;
  std::vector<std::pair<int, NeighborId>> closures_;
  NeighborId next_neighbor_id_ = 100;
  std::uint64_t seq_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t delivered_ = 0;
  std::uint64_t delivered_bytes_ = 0;
  Millis now_ = 0;
  using Timer = std::pair<Millis, int>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::unordered_map<std::string, bool> verified_;
  std::uint64_t verifications_ = 0;
  std::uint64_t verify_calls_ = 0;
  std::vector<Millis> scheduled_;  // per router: its pending timer entry
  std::vector<Loss> lose_;
  std::size_t lost_ = 0;
};

inline Router::Router(Network& net, int index, EngineConfig cfg)
    : net_(net), index_(index), cfg_(std::move(cfg)) {
  // A persistent identity (router.key_file): a restart keeps the key.
  if (!cfg_.key) cfg_.key = signing::KeyPair::generate();
  if (!cfg_.verify) {
    Network* net = &net_;
    cfg_.verify = [net](std::string_view key, std::string_view message, std::string_view sig) {
      return net->verify(key, message, sig);
    };
  }
  engine_ = std::make_unique<Engine>(cfg_, *this);
}

inline void Router::send(NeighborId to, std::string message) {
  net_.enqueue(to, std::move(message));
}

inline void Router::drop(NeighborId n, std::string condition, std::string reason) {
  drops_.push_back({n, std::move(condition), std::move(reason)});
  net_.dropped(n);
}

// Least-cost distances over the open, established interior connections of
// the network, computed independently of the engine (for checking it).
class Reference {
 public:
  static constexpr std::uint64_t kUnreachable = std::numeric_limits<std::uint64_t>::max();

  explicit Reference(Network& net) : net_(net), adj_(net.size()) {
    for (std::size_t i = 0; i < net.size(); ++i) {
      if (net.router(static_cast<int>(i)).alive()) {
        index_.emplace(net.router(static_cast<int>(i)).id(), static_cast<int>(i));
      }
    }
    for (std::size_t c = 0; c < net.connectionCount(); ++c) {
      const auto& conn = net.connection(static_cast<int>(c));
      if (!conn.open || !conn.up_a || !conn.up_b) continue;
      if (!net.router(conn.a).alive() || !net.router(conn.b).alive()) continue;
      if (net.router(conn.a).config().edge || net.router(conn.b).config().edge) continue;
      const std::uint64_t cost = std::max(conn.cost_a, conn.cost_b);
      adj_[conn.a].push_back({conn.b, cost, conn.na});
      adj_[conn.b].push_back({conn.a, cost, conn.nb});
    }
  }

  std::vector<std::uint64_t> distances(int from) const {
    std::vector<std::uint64_t> dist(adj_.size(), kUnreachable);
    using Item = std::pair<std::uint64_t, int>;
    std::priority_queue<Item, std::vector<Item>, std::greater<>> heap;
    dist[from] = 0;
    heap.push({0, from});
    while (!heap.empty()) {
      const auto [d, u] = heap.top();
      heap.pop();
      if (d != dist[u]) continue;
      for (const auto& e : adj_[u]) {
        if (d + e.cost < dist[e.to]) {
          dist[e.to] = d + e.cost;
          heap.push({dist[e.to], e.to});
        }
      }
    }
    return dist;
  }

  // Checks router r's reported (and introspected) path table against the
  // reference: same set of routers, least costs, and each next hop is the
  // neighbour with the smallest id among those on a least-cost path.
  // Returns a description of the first mismatch, or "".
  std::string check(int r, const std::vector<std::vector<std::uint64_t>>* all = nullptr) const {
    std::vector<std::uint64_t> own_dist;
    if (all == nullptr) own_dist = distances(r);
    const auto& dist = all != nullptr ? (*all)[r] : own_dist;
    Router& router = net_.router(r);
    const auto& paths = router.reportedPaths();
    if (paths != router.engine().paths()) return router.id() + ": paths() != reported";
    for (std::size_t i = 1; i < paths.size(); ++i) {
      if (!(paths[i - 1].router < paths[i].router)) {
        return router.id() + ": paths not sorted or with duplicates";
      }
    }
    // Distances from r's neighbours (in the order of adj_[r]).
    std::vector<std::vector<std::uint64_t>> own;
    std::vector<const std::vector<std::uint64_t>*> near;
    if (all == nullptr) {
      for (const auto& e : adj_[r]) own.push_back(distances(e.to));
      for (const auto& d : own) near.push_back(&d);
    } else {
      for (const auto& e : adj_[r]) near.push_back(&(*all)[e.to]);
    }
    std::size_t interior_paths = 0;
    for (const Path& p : paths) {
      const auto it = index_.find(p.router);
      if (it == index_.end()) return router.id() + ": path to unknown " + p.router;
      const int t = it->second;
      if (net_.router(t).config().edge) continue;  // checked by the edge tests
      ++interior_paths;
      if (t == r) return router.id() + ": path to itself";
      if (dist[t] == kUnreachable) return router.id() + ": path to unreachable " + p.router;
      if (p.cost != dist[t]) {
        return router.id() + ": cost to " + p.router + " " + std::to_string(p.cost) + ", want " +
               std::to_string(dist[t]);
      }
      // The best first hop: smallest id among neighbours on a least-cost path.
      const std::string* best = nullptr;
      NeighborId best_nid = 0;
      for (std::size_t i = 0; i < adj_[r].size(); ++i) {
        const auto& e = adj_[r][i];
        const auto& d2 = *near[i];
        if (d2[t] != kUnreachable && e.cost + d2[t] == dist[t]) {
          const std::string& id = net_.router(e.to).id();
          if (best == nullptr || id < *best) {
            best = &id;
            best_nid = e.nid;
          }
        }
      }
      if (p.next_hop != best_nid) {
        return router.id() + ": next hop to " + p.router + " is not via " +
               (best != nullptr ? *best : "?");
      }
    }
    std::size_t reachable = 0;
    for (std::size_t t = 0; t < dist.size(); ++t) {
      if (static_cast<int>(t) != r && dist[t] != kUnreachable) ++reachable;
    }
    if (reachable != interior_paths) {
      return router.id() + ": " + std::to_string(interior_paths) + " paths, want " +
             std::to_string(reachable);
    }
    return "";
  }

 private:
  struct Edge {
    int to;
    std::uint64_t cost;
    NeighborId nid;  // the connection's id on the near side
  };
  Network& net_;
  std::vector<std::vector<Edge>> adj_;
  std::map<std::string, int> index_;  // alive routers by id
};

}  // namespace vane::routing::sim
