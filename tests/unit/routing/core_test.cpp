#include "routing/core.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <set>
#include <thread>

namespace vane::routing {
namespace {

using namespace std::chrono_literals;

// Runs `fn` on `loop` and waits for its result.
template <typename Fn>
auto onLoop(core::EventLoop& loop, Fn fn) {
  std::promise<decltype(fn())> p;
  loop.post([&] { p.set_value(fn()); });
  return p.get_future().get();
}

class RoutingCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<config::AddressConfig> rules(1);
    rules[0].prefix = "mc/";
    rules[0].distribution = config::Distribution::kMulticast;
    core_ = std::make_unique<RoutingCore>(core_loop_, "r1",
                                          std::make_shared<const AddressPolicy>(rules));
    core_->setReplicas({{&w1_, &t1_}, {&w2_, &t2_}});
    core_loop_.start();
    w1_.start();
    w2_.start();
  }
  void TearDown() override {
    core_loop_.join();
    w1_.join();
    w2_.join();
  }
  std::shared_ptr<forwarding::Consumer> consumer(core::EventLoop& loop) {
    return std::make_shared<forwarding::Consumer>(core_->nextConsumerId(), loop,
                                                  std::weak_ptr<forwarding::EgressSink>());
  }
  std::size_t consumersOn(core::EventLoop& loop, forwarding::ForwardingTable& t,
                          const std::string& a) {
    return onLoop(loop, [&] {
      auto* e = t.find(a);
      return e ? e->consumers.size() : std::size_t{0};
    });
  }

  core::EventLoop core_loop_{"core"}, w1_{"w1"}, w2_{"w2"};
  // Bound to their loops: in debug builds every use off its loop aborts.
  forwarding::ForwardingTable t1_{w1_}, t2_{w2_};
  std::unique_ptr<RoutingCore> core_;
};

TEST_F(RoutingCoreTest, ConsumerIsEverywhereBeforeDoneRuns) {
  std::promise<std::pair<std::size_t, std::size_t>> seen;
  auto c = consumer(w1_);
  core_->addConsumer("q", c, w1_, [&] {
    // Runs on w1: both replicas must already hold the consumer.
    std::size_t here = t1_.find("q") ? t1_.find("q")->consumers.size() : 0;
    std::size_t there = 0;
    std::promise<std::size_t> p;
    w2_.post([&] { p.set_value(t2_.find("q") ? t2_.find("q")->consumers.size() : 0); });
    there = p.get_future().get();
    seen.set_value({here, there});
  });
  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto [here, there] = f.get();
  EXPECT_EQ(here, 1u);
  EXPECT_EQ(there, 1u);
}

TEST_F(RoutingCoreTest, RemoveClearsEveryReplica) {
  auto c = consumer(w2_);
  std::promise<void> added;
  core_->addConsumer("mc/x", c, w2_, [&] { added.set_value(); });
  ASSERT_EQ(added.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(onLoop(w1_, [&] { return t1_.find("mc/x")->distribution; }),
            config::Distribution::kMulticast);
  core_->removeConsumer("mc/x", c->id);
  // Deltas are FIFO per loop: core -> w1/w2 after the removal was recorded.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline &&
         (consumersOn(w1_, t1_, "mc/x") != 0 || consumersOn(w2_, t2_, "mc/x") != 0)) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(consumersOn(w1_, t1_, "mc/x"), 0u);
  EXPECT_EQ(consumersOn(w2_, t2_, "mc/x"), 0u);
  EXPECT_EQ(onLoop(core_loop_, [&] { return core_->addressCount(); }), 0u);
}

TEST_F(RoutingCoreTest, NewAddressRulesReachEveryReplica) {
  auto c = consumer(w1_);
  std::promise<void> added;
  core_->addConsumer("x/1", c, w1_, [&] { added.set_value(); });
  ASSERT_EQ(added.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(onLoop(w2_, [&] { return t2_.find("x/1")->distribution; }),
            config::Distribution::kBalanced);
  std::vector<config::AddressConfig> rules(1);
  rules[0].prefix = "x/";
  rules[0].distribution = config::Distribution::kMulticast;
  // On the core loop, as the management API does; the replicas' reclassify
  // is posted before this returns, so it runs before the reads below.
  onLoop(core_loop_, [&] {
    core_->setPolicy(std::make_shared<const AddressPolicy>(rules));
    return 0;
  });
  EXPECT_EQ(core_->distributionFor("x/1"), config::Distribution::kMulticast);
  EXPECT_EQ(onLoop(w1_, [&] { return t1_.find("x/1")->distribution; }),
            config::Distribution::kMulticast);
  EXPECT_EQ(onLoop(w2_, [&] { return t2_.find("x/1")->distribution; }),
            config::Distribution::kMulticast);
}

TEST_F(RoutingCoreTest, DynamicAddressesAreUniqueAndNameTheRouter) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto a = core_->newDynamicAddress();
    EXPECT_NE(a.find("/r1/"), std::string::npos) << a;
    EXPECT_TRUE(seen.insert(a).second) << a;
  }
}

}  // namespace
}  // namespace vane::routing
