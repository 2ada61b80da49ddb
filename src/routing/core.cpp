#include "routing/core.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

namespace vane::routing {

namespace {
std::uint32_t randomBootId() {
  std::random_device rd;
  return rd();
}
}  // namespace

RoutingCore::RoutingCore(core::EventLoop& loop, std::string router_id,
                         std::shared_ptr<const AddressPolicy> policy)
    : loop_(loop),
      router_id_(std::move(router_id)),
      policy_(std::move(policy)),
      boot_id_(randomBootId()) {}

std::string RoutingCore::newDynamicAddress() {
  return fmt::format("_vane/temp/{}/{:08x}.{}", router_id_, boot_id_,
                     next_dynamic_.fetch_add(1, std::memory_order_relaxed));
}

void RoutingCore::addConsumer(std::string address, std::shared_ptr<forwarding::Consumer> consumer,
                              core::EventLoop& reply_loop, std::function<void()> done) {
  loop_.post([this, address = std::move(address), consumer = std::move(consumer), &reply_loop,
              done = std::move(done)]() mutable {
    addresses_[address].push_back(consumer->id);
    const auto dist = policy_->lookup(address);
    auto remaining = std::make_shared<std::atomic<int>>(static_cast<int>(replicas_.size()));
    auto finish = std::make_shared<std::function<void()>>(std::move(done));
    for (auto& r : replicas_) {
      r.loop->post([table = r.table, address, dist, consumer, remaining, finish, &reply_loop] {
        table->addConsumer(address, dist, consumer);
        if (remaining->fetch_sub(1) == 1) reply_loop.post([finish] { (*finish)(); });
      });
    }
  });
}

void RoutingCore::removeConsumer(std::string address, std::uint64_t consumer_id) {
  loop_.post([this, address = std::move(address), consumer_id] {
    auto it = addresses_.find(address);
    if (it != addresses_.end()) {
      auto& v = it->second;
      v.erase(std::remove(v.begin(), v.end(), consumer_id), v.end());
      if (v.empty()) addresses_.erase(it);
    }
    for (auto& r : replicas_) {
      r.loop->post(
          [table = r.table, address, consumer_id] { table->removeConsumer(address, consumer_id); });
    }
  });
}

}  // namespace vane::routing
