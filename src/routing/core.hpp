// The routing core: the single owner of the router's address table.
//
// Workers report consumers (egress links) as they attach and detach; the core
// records them and publishes each change as a delta to every worker loop's
// ForwardingTable replica. Forwarding reads only the replica, so no delivery
// ever waits on the core. The router network adds remote consumers here.
//
// IMPORTANT: addresses_ is touched only on the core loop. Public methods are
// thread-safe (they post to the core loop) unless marked otherwise.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"
#include "routing/address_policy.hpp"

namespace vane::routing {

class RoutingCore {
 public:
  struct Replica {
    core::EventLoop* loop;
    forwarding::ForwardingTable* table;  // touched only on *loop
  };

  RoutingCore(core::EventLoop& loop, std::string router_id,
              std::shared_ptr<const AddressPolicy> policy);

  // Set once before any traffic.
  void setReplicas(std::vector<Replica> replicas) { replicas_ = std::move(replicas); }

  // Immutable policy: callable from any thread.
  config::Distribution distributionFor(std::string_view address) const {
    return policy_->lookup(address);
  }

  std::uint64_t nextConsumerId() { return next_id_.fetch_add(1, std::memory_order_relaxed); }

  // A network-unique address for a dynamic receiver. Thread-safe.
  std::string newDynamicAddress();

  // Adds a consumer; `done` is posted to `reply_loop` once every replica has
  // it, so a consumer is routable from every connection before its attach is
  // answered.
  void addConsumer(std::string address, std::shared_ptr<forwarding::Consumer> consumer,
                   core::EventLoop& reply_loop, std::function<void()> done);
  void removeConsumer(std::string address, std::uint64_t consumer_id);

  // Core loop only: number of addresses with consumers.
  std::size_t addressCount() const { return addresses_.size(); }

 private:
  core::EventLoop& loop_;
  const std::string router_id_;
  const std::shared_ptr<const AddressPolicy> policy_;
  std::vector<Replica> replicas_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::uint64_t> next_dynamic_{1};
  const std::uint32_t boot_id_;
  std::unordered_map<std::string, std::vector<std::uint64_t>> addresses_;
};

}  // namespace vane::routing
