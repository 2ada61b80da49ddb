#include "forwarding/forwarder.hpp"

#include <algorithm>

namespace vane::forwarding {

void FlowBudget::release(std::int64_t n) {
  auto left = bytes.fetch_sub(n, std::memory_order_acq_rel) - n;
  if (left <= limit / 2 && paused.exchange(false, std::memory_order_acq_rel)) {
    ingress_loop.post([s = sink] {
      if (auto sink = s.lock()) sink->onResume();
    });
  }
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

namespace {

// balanced: the consumer with the fewest outstanding deliveries; ties are
// broken round-robin so equal consumers share the load.
void forwardBalanced(AddressEntry& e, std::vector<std::shared_ptr<Consumer>>& out) {
  out.clear();
  const auto n = e.consumers.size();
  if (n == 0) return;
  const std::size_t start = e.next++ % n;
  std::size_t best = start;
  auto best_load = e.consumers[start]->outstanding.load(std::memory_order_relaxed);
  for (std::size_t i = 1; i < n && best_load > 0; ++i) {
    std::size_t k = (start + i) % n;
    auto load = e.consumers[k]->outstanding.load(std::memory_order_relaxed);
    if (load < best_load) {
      best = k;
      best_load = load;
    }
  }
  out.push_back(e.consumers[best]);
}

// closest: every consumer of a single router is at the same (zero) cost, so
// round-robin among them.
void forwardClosest(AddressEntry& e, std::vector<std::shared_ptr<Consumer>>& out) {
  out.clear();
  if (e.consumers.empty()) return;
  out.push_back(e.consumers[e.next++ % e.consumers.size()]);
}

void forwardMulticast(AddressEntry& e, std::vector<std::shared_ptr<Consumer>>& out) {
  out.assign(e.consumers.begin(), e.consumers.end());
}

constexpr ForwardFn kForwarders[] = {
    forwardBalanced,   // Distribution::kBalanced
    forwardClosest,    // Distribution::kClosest
    forwardMulticast,  // Distribution::kMulticast
};

}  // namespace

ForwardFn forwarderFor(config::Distribution d) {
  return kForwarders[static_cast<int>(d)];
}

bool isAnycast(config::Distribution d) {
  return d != config::Distribution::kMulticast;
}

AddressEntry* ForwardingTable::find(std::string_view address) {
  auto it = entries_.find(address);
  return it == entries_.end() ? nullptr : &it->second;
}

void ForwardingTable::addConsumer(const std::string& address, config::Distribution d,
                                  std::shared_ptr<Consumer> consumer) {
  auto [it, inserted] = entries_.try_emplace(address);
  if (inserted) it->second.distribution = d;
  auto& e = it->second;
  e.consumers.push_back(std::move(consumer));
  if (e.consumers.size() == 1) {
    // Copy: a listener may unregister itself from inside the callback.
    auto listeners = e.listeners;
    for (auto* l : listeners) l->onConsumersChanged(true);
  }
}

void ForwardingTable::removeConsumer(const std::string& address, std::uint64_t consumer_id) {
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  auto& c = it->second.consumers;
  auto pos = std::find_if(c.begin(), c.end(), [&](auto& p) { return p->id == consumer_id; });
  if (pos == c.end()) return;
  c.erase(pos);
  if (c.empty()) {
    auto listeners = it->second.listeners;
    for (auto* l : listeners) l->onConsumersChanged(false);
  }
  eraseIfUnused(it);
}

AddressEntry& ForwardingTable::addListener(const std::string& address, config::Distribution d,
                                           CreditListener* l) {
  auto [it, inserted] = entries_.try_emplace(address);
  if (inserted) it->second.distribution = d;
  it->second.listeners.push_back(l);
  return it->second;
}

void ForwardingTable::removeListener(const std::string& address, CreditListener* l) {
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  auto& v = it->second.listeners;
  v.erase(std::remove(v.begin(), v.end(), l), v.end());
  eraseIfUnused(it);
}

void ForwardingTable::eraseIfUnused(
    std::unordered_map<std::string, AddressEntry, Hash, std::equal_to<>>::iterator it) {
  if (it->second.consumers.empty() && it->second.listeners.empty()) entries_.erase(it);
}

}  // namespace vane::forwarding
