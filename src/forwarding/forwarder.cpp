#include "forwarding/forwarder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <random>

namespace vane::forwarding {

namespace traffic {
namespace {
constexpr unsigned kSlots = 64;
struct alignas(64) Slot {
  std::atomic<std::int64_t> bytes{0};
};
Slot slots[kSlots];
std::atomic<unsigned> next_slot{0};
}  // namespace

void add(std::int64_t n) {
  // Threads beyond kSlots share slots; the sum stays exact.
  thread_local Slot& mine = slots[next_slot.fetch_add(1, std::memory_order_relaxed) % kSlots];
  mine.bytes.fetch_add(n, std::memory_order_relaxed);
}

std::int64_t buffered() {
  std::int64_t sum = 0;
  for (const auto& s : slots) sum += s.bytes.load(std::memory_order_relaxed);
  return sum;
}
}  // namespace traffic

void FlowBudget::release(std::int64_t n) {
  traffic::add(-n);
  // seq_cst: see pauseIfFull.
  auto left = bytes.fetch_sub(n, std::memory_order_seq_cst) - n;
  if (left <= limit / 2 && paused.exchange(false, std::memory_order_seq_cst)) {
    ingress_loop.post([s = sink] {
      if (auto sink = s.lock()) sink->onResume();
    });
  }
}

void appendVia(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) {
  if (auto via = t->via.lock()) {
    via->append(t, std::move(chunk), last);
  } else {
    t->budget->release(static_cast<std::int64_t>(chunk->size()));
  }
}

void abortVia(const std::shared_ptr<Transfer>& t) {
  if (auto via = t->via.lock()) via->abort(t);
}

void postOutcome(const std::shared_ptr<Transfer>& t, const Outcome& outcome) {
  if (t->presettled || t->outcome_reported) return;
  t->outcome_reported = true;
  t->budget->ingress_loop.post([in = t->ingress, outcome] {
    if (auto sink = in->sink.lock()) sink->onOutcome(in, outcome);
  });
}

void postCopyDone(const std::shared_ptr<Transfer>& t) {
  if (t->slot_reported) return;
  t->slot_reported = true;
  t->budget->ingress_loop.post([in = t->ingress] {
    if (auto sink = in->sink.lock()) sink->onCopyDone(in);
  });
}

// Frees a copy that will not (or no longer) be sent: its buffered bytes leave
// the budget, its sender learns the outcome (released if the consumer never
// saw a byte, modified/delivery-failed otherwise), and its slot is returned.
void dropTransfer(const std::shared_ptr<Transfer>& t) {
  std::int64_t bytes = -static_cast<std::int64_t>(t->front_offset);
  for (auto& c : t->pending) bytes += static_cast<std::int64_t>(c->size());
  t->pending.clear();
  t->front_offset = 0;
  if (bytes > 0) t->budget->release(bytes);
  forwarding::uncount(*t);
  forwarding::postOutcome(t, t->started ? Outcome::modifiedFailed() : Outcome::released());
  forwarding::postCopyDone(t);
}

bool isAnycast(config::Distribution d) {
  return d != config::Distribution::kMulticast;
}

AddressEntry* ForwardingTable::find(std::string_view address) {
  checkThread();
  auto it = entries_.find(address);
  return it == entries_.end() ? nullptr : &it->second;
}

void ForwardingTable::notify(AddressEntry& e, bool was_available) {
  const bool now = e.available();
  if (now == was_available) return;
  // Copy: a listener may unregister itself from inside the callback.
  auto listeners = e.listeners;
  for (auto* l : listeners) l->onConsumersChanged(now);
}

void ForwardingTable::addConsumer(const std::string& address, config::Distribution d,
                                  std::shared_ptr<Consumer> consumer) {
  checkThread();
  auto [it, inserted] = entries_.try_emplace(address);
  if (inserted) it->second.distribution = d;
  auto& e = it->second;
  const bool was = e.available();
  e.consumers.push_back(std::move(consumer));
  notify(e, was);
}

void ForwardingTable::removeConsumer(const std::string& address, std::uint64_t consumer_id) {
  checkThread();
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  auto& c = it->second.consumers;
  auto pos = std::find_if(c.begin(), c.end(), [&](auto& p) { return p->id == consumer_id; });
  if (pos == c.end()) return;
  const bool was = it->second.available();
  c.erase(pos);
  notify(it->second, was);
  eraseIfUnused(it);
}

void ForwardingTable::addRemote(const std::string& address, config::Distribution d,
                                std::shared_ptr<RemoteDest> remote) {
  checkThread();
  auto [it, inserted] = entries_.try_emplace(address);
  if (inserted) it->second.distribution = d;
  auto& e = it->second;
  for (auto& r : e.remotes) {
    if (r->router == remote->router) return;
  }
  const bool was = e.available();
  e.remotes.push_back(std::move(remote));
  notify(e, was);
}

void ForwardingTable::removeRemote(const std::string& address, const std::string& router) {
  checkThread();
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  auto& v = it->second.remotes;
  auto pos = std::find_if(v.begin(), v.end(), [&](auto& p) { return p->router == router; });
  if (pos == v.end()) return;
  const bool was = it->second.available();
  v.erase(pos);
  notify(it->second, was);
  eraseIfUnused(it);
}

namespace {
template <typename T>
std::shared_ptr<std::atomic<std::int32_t>> counterOf(const std::shared_ptr<T>& owner) {
  return std::shared_ptr<std::atomic<std::int32_t>>(owner, &owner->outstanding);
}

RouteHeader headerFor(const RouteRequest& rq, std::uint32_t hops) {
  RouteHeader h;
  h.address = std::string(rq.address);
  h.hops = hops;
  h.origin = std::string(rq.origin);
  return h;
}
}  // namespace

namespace {
bool parseDecimal(std::string_view digits, std::uint64_t* v) {
  if (digits.empty() || digits.size() > 19) return false;
  std::uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *v = n;
  return true;
}

bool parseHex64(std::string_view digits, std::uint64_t* v) {
  if (digits.size() != 16) return false;
  std::uint64_t n = 0;
  for (char c : digits) {
    int d = 0;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    n = (n << 4) | static_cast<std::uint64_t>(d);
  }
  *v = n;
  return true;
}

// "/flow/<loop>/<id>/<32 hex>" -> loop, id, token.
bool parseFlow(std::string_view s, std::size_t* loop, std::uint64_t* flow, FlowToken* token) {
  constexpr std::string_view kFlow = "/flow/";
  if (s.substr(0, kFlow.size()) != kFlow) return false;
  s.remove_prefix(kFlow.size());
  const auto slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  const auto slash2 = s.find('/', slash + 1);
  if (slash2 == std::string_view::npos) return false;
  std::uint64_t l = 0;
  if (!parseDecimal(s.substr(0, slash), &l) ||
      !parseDecimal(s.substr(slash + 1, slash2 - slash - 1), flow)) {
    return false;
  }
  const std::string_view hex = s.substr(slash2 + 1);
  if (hex.size() != 32 || !parseHex64(hex.substr(0, 16), &token->hi) ||
      !parseHex64(hex.substr(16), &token->lo)) {
    return false;
  }
  *loop = static_cast<std::size_t>(l);
  return true;
}
}  // namespace

FlowToken FlowToken::random() {
  // getrandom (or the CPU's generator) through the standard library; one
  // device per thread.
  thread_local std::random_device device;
  auto word = [] {
    return (static_cast<std::uint64_t>(device()) << 32) | static_cast<std::uint64_t>(device());
  };
  FlowToken t;
  t.hi = word();
  t.lo = word();
  return t;
}

std::string flowAddress(std::string_view router, std::string_view uplink, std::size_t loop,
                        std::uint64_t flow, const FlowToken& token) {
  std::string a(kTempPrefix);
  if (uplink.empty()) {
    a.append(router);
  } else {
    a.append(uplink);
    a.append("/via/");
    a.append(router);
  }
  fmt::format_to(std::back_inserter(a), "/flow/{}/{}/{:016x}{:016x}", loop, flow, token.hi,
                 token.lo);
  return a;
}

std::string ForwardingTable::flowAddressHere(std::size_t loop, std::uint64_t flow,
                                             const FlowToken& token) const {
  checkThread();
  for (const auto& [id, hop] : paths_->hops) {
    if (hop.kind == NextHop::Kind::kUplink) return flowAddress(paths_->self, id, loop, flow, token);
  }
  return flowAddress(paths_->self, {}, loop, flow, token);
}

AddressCounters* ForwardingTable::counters(std::string_view address) {
  checkThread();
  if (address.substr(0, 6) == "_vane/") return nullptr;
  auto it = counters_.find(address);
  if (it != counters_.end()) return &it->second;
  if (counters_.size() >= kMaxCountedAddresses) address = {};
  return &counters_.try_emplace(std::string(address)).first->second;
}

RouteResult ForwardingTable::route(const RouteRequest& rq, std::vector<Target>& out) {
  checkThread();
  out.clear();
  const std::uint32_t hops = rq.header ? rq.header->hops + 1 : 0;
  if (hops > kMaxHops) return {RouteStatus::kHopLimit, false};
  const PathTable& paths = *paths_;
  const RouteHeader* in = rq.header;
  // In transit to another router: pass it along, whatever we know of the
  // address.
  if (in && rq.arrival != Arrival::kUplink && !in->dest.empty() && in->dest != paths.self) {
    return {routeTo(in->dest, rq, hops, out), false};
  }
  AddressEntry* e = find(rq.address);
  if (e != nullptr && e->available()) {
    if (isAnycast(e->distribution)) return {routeAnycast(*e, rq, hops, out), false};
    return {routeMulticast(*e, rq, hops, out), true};
  }
  // A multicast copy for other routers too still goes on to them.
  if (in && in->has_dests && rq.arrival == Arrival::kInterior) {
    AddressEntry none;
    none.distribution = config::Distribution::kMulticast;
    return {routeMulticast(none, rq, hops, out), true};
  }
  // A reply address of another router: towards that router. A flow's reply
  // address here: to that flow; through here to one of our edge routers: to
  // that edge router.
  if (rq.address.substr(0, kTempPrefix.size()) == kTempPrefix) {
    auto rest = rq.address.substr(kTempPrefix.size());
    auto router = rest.substr(0, rest.find('/'));
    auto tail = rest.substr(router.size());
    constexpr std::string_view kVia = "/via/";
    std::string_view edge;
    if (tail.substr(0, kVia.size()) == kVia) {
      tail.remove_prefix(kVia.size());
      edge = tail.substr(0, tail.find('/'));
      tail.remove_prefix(edge.size());
    }
    const bool mine = edge.empty() ? router == paths.self : edge == paths.self;
    if (mine) {
      std::size_t loop = 0;
      std::uint64_t flow = 0;
      FlowToken token;
      if (parseFlow(tail, &loop, &flow, &token) && loop < flow_consumers_.size()) {
        Target t;
        t.to = flow_consumers_[loop];
        t.flow = flow;
        t.flow_token = token;
        out.push_back(std::move(t));
        return {RouteStatus::kRouted, false};
      }
    } else if (router == paths.self && !edge.empty()) {
      const NextHop* nh = paths.find(edge);
      if (nh != nullptr && nh->kind == NextHop::Kind::kEdgeChild) {
        return {routeTo(edge, rq, hops, out), false};
      }
    } else if (!router.empty() && router != paths.self && router.size() < rest.size() &&
               rq.arrival != Arrival::kUplink) {
      return {routeTo(router, rq, hops, out), false};
    }
  }
  return {RouteStatus::kNoRoute, false};
}

RouteStatus ForwardingTable::routeTo(std::string_view router, const RouteRequest& rq,
                                     std::uint32_t hops, std::vector<Target>& out) {
  const NextHop* nh = paths_->find(router);
  if (nh == nullptr) {
    // An edge router knows only its uplink: everything else is beyond it.
    for (const auto& [id, hop] : paths_->hops) {
      if (hop.kind == NextHop::Kind::kUplink && hop.link) {
        Target t{hop.link, nullptr, true, headerFor(rq, hops)};
        t.header.dest = std::string(router);
        out.push_back(std::move(t));
        return RouteStatus::kRouted;
      }
    }
    return RouteStatus::kNoRoute;
  }
  Target t{nh->link, nullptr, true, headerFor(rq, hops)};
  if (nh->kind != NextHop::Kind::kUplink) t.header.dest = std::string(router);
  out.push_back(std::move(t));
  return RouteStatus::kRouted;
}

// Anycast (deliveries in transit to another router never get here). This
// router chooses among its local
// consumers and every router with consumers (except the one it came from),
// by the address's distribution, with each router's path cost counted:
// `closest` takes the lowest cost, `balanced` the lowest outstanding + cost.
// A delivery from our uplink, or one addressed to us, is not sent on to
// other interior routers (it was routed to us for our own consumers or
// edge routers).
RouteStatus ForwardingTable::routeAnycast(AddressEntry& e, const RouteRequest& rq,
                                          std::uint32_t hops, std::vector<Target>& out) {
  const PathTable& paths = *paths_;
  const RouteHeader* in = rq.header;
  const bool local_only = rq.arrival == Arrival::kUplink;
  const bool at_dest = in && !in->dest.empty();
  const bool closest = e.distribution == config::Distribution::kClosest;
  scratch_.clear();
  for (std::size_t i = 0; i < e.consumers.size(); ++i) {
    Candidate c;
    c.local = static_cast<std::int32_t>(i);
    c.score = closest ? 0 : e.consumers[i]->outstanding.load(std::memory_order_relaxed);
    scratch_.push_back(c);
  }
  if (!local_only) {
    for (std::size_t i = 0; i < e.remotes.size(); ++i) {
      const auto& r = e.remotes[i];
      if (r->router == rq.arrival_peer) continue;
      const NextHop* nh = paths.find(r->router);
      if (nh == nullptr) continue;
      if (at_dest && nh->kind == NextHop::Kind::kInterior) continue;
      Candidate c;
      c.remote = static_cast<std::int32_t>(i);
      c.hop = nh;
      c.score = static_cast<std::int64_t>(nh->cost) +
                (closest ? 0 : r->outstanding.load(std::memory_order_relaxed));
      scratch_.push_back(c);
    }
  }
  if (scratch_.empty()) return RouteStatus::kNoRoute;
  // Lowest score wins; ties take turns.
  std::int64_t low = scratch_[0].score;
  std::size_t ties = 0;
  for (const auto& c : scratch_) {
    if (c.score < low) {
      low = c.score;
      ties = 0;
    }
    if (c.score == low) ++ties;
  }
  std::size_t pick = e.next++ % ties;
  std::size_t best = 0;
  for (std::size_t i = 0; i < scratch_.size(); ++i) {
    if (scratch_[i].score == low && pick-- == 0) {
      best = i;
      break;
    }
  }
  const Candidate& c = scratch_[best];
  if (c.local >= 0) {
    const auto& consumer = e.consumers[static_cast<std::size_t>(c.local)];
    out.push_back(Target{consumer, counterOf(consumer), false, {}});
  } else {
    const auto& r = e.remotes[static_cast<std::size_t>(c.remote)];
    Target t{c.hop->link, counterOf(r), true, headerFor(rq, hops)};
    // Through an uplink the interior router decides; elsewhere the chosen
    // router is named so that transit routers just pass it along.
    if (c.hop->kind != NextHop::Kind::kUplink) t.header.dest = r->router;
    out.push_back(std::move(t));
  }
  scratch_.clear();
  return RouteStatus::kRouted;
}

// Multicast. Each router with consumers gets exactly one copy: the router
// that admits a delivery to the interior network computes the set of
// interior routers with consumers and partitions it among its next hops,
// sending each next hop one copy naming its part; every router on the way
// delivers to its own consumers (and edge routers) if it is in the set and
// partitions the rest again. A set is never duplicated, so neither is a copy,
// whatever the topology's cycles.
RouteStatus ForwardingTable::routeMulticast(AddressEntry& e, const RouteRequest& rq,
                                            std::uint32_t hops, std::vector<Target>& out) {
  const PathTable& paths = *paths_;
  const RouteHeader* in = rq.header;
  const bool local_only = rq.arrival == Arrival::kUplink;
  bool include_local = true;
  std::vector<std::string_view> rest;
  if (in && in->has_dests && rq.arrival == Arrival::kInterior) {
    include_local = false;
    for (const auto& d : in->dests) {
      if (d == paths.self) {
        include_local = true;
      } else {
        rest.push_back(d);
      }
    }
  } else if (!local_only) {
    for (const auto& r : e.remotes) {
      if (r->router == rq.arrival_peer) continue;
      const NextHop* nh = paths.find(r->router);
      if (nh && nh->kind == NextHop::Kind::kInterior) rest.push_back(r->router);
    }
  }
  if (include_local) {
    for (const auto& c : e.consumers) out.push_back(Target{c, nullptr, false, {}});
    if (!local_only) {
      for (const auto& r : e.remotes) {
        if (r->router == rq.arrival_peer) continue;
        const NextHop* nh = paths.find(r->router);
        if (nh == nullptr || nh->kind == NextHop::Kind::kInterior) continue;
        Target t{nh->link, nullptr, true, headerFor(rq, hops)};
        if (nh->kind == NextHop::Kind::kEdgeChild) {
          t.header.has_dests = true;
          t.header.dests.push_back(r->router);
        }
        out.push_back(std::move(t));
      }
    }
  }
  // Partition the rest by next hop: one copy per neighbour.
  const std::size_t first_group = out.size();
  for (auto d : rest) {
    const NextHop* nh = paths.find(d);
    if (nh == nullptr) continue;  // unreachable now: that part of the set is lost
    Target* group = nullptr;
    for (std::size_t i = first_group; i < out.size(); ++i) {
      if (out[i].to == nh->link) group = &out[i];
    }
    if (group == nullptr) {
      out.push_back(Target{nh->link, nullptr, true, headerFor(rq, hops)});
      group = &out.back();
      group->header.has_dests = true;
    }
    group->header.dests.emplace_back(d);
  }
  return out.empty() ? RouteStatus::kNoRoute : RouteStatus::kRouted;
}

AddressEntry& ForwardingTable::addListener(const std::string& address, config::Distribution d,
                                           CreditListener* l) {
  checkThread();
  auto [it, inserted] = entries_.try_emplace(address);
  if (inserted) it->second.distribution = d;
  it->second.listeners.push_back(l);
  return it->second;
}

void ForwardingTable::removeListener(const std::string& address, CreditListener* l) {
  checkThread();
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  auto& v = it->second.listeners;
  v.erase(std::remove(v.begin(), v.end(), l), v.end());
  eraseIfUnused(it);
}

void ForwardingTable::eraseIfUnused(
    std::unordered_map<std::string, AddressEntry, Hash, std::equal_to<>>::iterator it) {
  if (it->second.consumers.empty() && it->second.remotes.empty() && it->second.listeners.empty())
    entries_.erase(it);
}

}  // namespace vane::forwarding
