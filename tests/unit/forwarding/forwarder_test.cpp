#include "forwarding/forwarder.hpp"

#include <gtest/gtest.h>

#include <map>

namespace vane::forwarding {
namespace {

using config::Distribution;

class Recorder : public CreditListener {
 public:
  void onConsumersChanged(bool available) override { events.push_back(available); }
  std::vector<bool> events;
};

class ForwarderTest : public ::testing::Test {
 protected:
  std::shared_ptr<Consumer> consumer(std::uint64_t id) {
    return std::make_shared<Consumer>(id, loop_, std::weak_ptr<EgressSink>());
  }
  core::EventLoop loop_{"test"};
  ForwardingTable table_;
  std::vector<std::shared_ptr<Consumer>> out_;
};

TEST_F(ForwarderTest, BalancedPrefersFewestOutstanding) {
  auto a = consumer(1), b = consumer(2), c = consumer(3);
  table_.addConsumer("q", Distribution::kBalanced, a);
  table_.addConsumer("q", Distribution::kBalanced, b);
  table_.addConsumer("q", Distribution::kBalanced, c);
  a->outstanding = 5;
  b->outstanding = 1;
  c->outstanding = 3;
  auto* e = table_.find("q");
  ASSERT_NE(e, nullptr);
  for (int i = 0; i < 10; ++i) {
    forwarderFor(e->distribution)(*e, out_);
    ASSERT_EQ(out_.size(), 1u);
    EXPECT_EQ(out_[0]->id, 2u);
  }
}

TEST_F(ForwarderTest, BalancedSharesEquallyLoadedConsumers) {
  std::vector<std::shared_ptr<Consumer>> cs;
  for (std::uint64_t i = 1; i <= 3; ++i) {
    cs.push_back(consumer(i));
    table_.addConsumer("q", Distribution::kBalanced, cs.back());
  }
  auto* e = table_.find("q");
  std::map<std::uint64_t, int> hits;
  for (int i = 0; i < 300; ++i) {
    forwarderFor(e->distribution)(*e, out_);
    ASSERT_EQ(out_.size(), 1u);
    ++hits[out_[0]->id];
    // Each pick becomes outstanding and is settled at once.
  }
  EXPECT_EQ(hits.size(), 3u);
  for (auto& [id, n] : hits) EXPECT_EQ(n, 100) << "consumer " << id;
}

TEST_F(ForwarderTest, BalancedFollowsOutstandingAsItChanges) {
  auto a = consumer(1), b = consumer(2);
  table_.addConsumer("q", Distribution::kBalanced, a);
  table_.addConsumer("q", Distribution::kBalanced, b);
  auto* e = table_.find("q");
  // Simulate the router: each pick adds one outstanding; only b settles.
  int to_a = 0;
  for (int i = 0; i < 100; ++i) {
    forwarderFor(e->distribution)(*e, out_);
    out_[0]->outstanding++;
    if (out_[0] == a) ++to_a;
    b->outstanding = 0;
  }
  EXPECT_LE(to_a, 1);
}

TEST_F(ForwarderTest, ClosestRoundRobins) {
  for (std::uint64_t i = 1; i <= 4; ++i)
    table_.addConsumer("c", Distribution::kClosest, consumer(i));
  auto* e = table_.find("c");
  std::map<std::uint64_t, int> hits;
  for (int i = 0; i < 400; ++i) {
    forwarderFor(e->distribution)(*e, out_);
    ASSERT_EQ(out_.size(), 1u);
    ++hits[out_[0]->id];
  }
  for (auto& [id, n] : hits) EXPECT_EQ(n, 100);
}

TEST_F(ForwarderTest, MulticastReturnsEveryConsumer) {
  for (std::uint64_t i = 1; i <= 5; ++i)
    table_.addConsumer("m", Distribution::kMulticast, consumer(i));
  auto* e = table_.find("m");
  forwarderFor(e->distribution)(*e, out_);
  EXPECT_EQ(out_.size(), 5u);
  EXPECT_FALSE(isAnycast(Distribution::kMulticast));
  EXPECT_TRUE(isAnycast(Distribution::kBalanced));
  EXPECT_TRUE(isAnycast(Distribution::kClosest));
}

TEST_F(ForwarderTest, NoConsumersSelectsNothing) {
  Recorder r;
  table_.addListener("q", Distribution::kBalanced, &r);
  auto* e = table_.find("q");
  ASSERT_NE(e, nullptr);
  forwarderFor(e->distribution)(*e, out_);
  EXPECT_TRUE(out_.empty());
}

TEST_F(ForwarderTest, ListenersHearFirstAndLastConsumer) {
  Recorder r;
  table_.addListener("q", Distribution::kBalanced, &r);
  table_.addConsumer("q", Distribution::kBalanced, consumer(1));
  table_.addConsumer("q", Distribution::kBalanced, consumer(2));
  table_.removeConsumer("q", 1);
  table_.removeConsumer("q", 2);
  EXPECT_EQ(r.events, (std::vector<bool>{true, false}));
  table_.removeListener("q", &r);
  EXPECT_EQ(table_.find("q"), nullptr) << "unused entries are erased";
  EXPECT_EQ(table_.size(), 0u);
}

TEST_F(ForwarderTest, RemovingUnknownConsumerIsHarmless) {
  table_.removeConsumer("nope", 7);
  table_.addConsumer("q", Distribution::kBalanced, consumer(1));
  table_.removeConsumer("q", 99);
  ASSERT_NE(table_.find("q"), nullptr);
  EXPECT_EQ(table_.find("q")->consumers.size(), 1u);
}

TEST_F(ForwarderTest, TenThousandAddresses) {
  for (int i = 0; i < 10000; ++i) {
    table_.addConsumer("addr/" + std::to_string(i), Distribution::kBalanced, consumer(i + 1));
  }
  EXPECT_EQ(table_.size(), 10000u);
  for (int i = 0; i < 10000; ++i) table_.removeConsumer("addr/" + std::to_string(i), i + 1);
  EXPECT_EQ(table_.size(), 0u);
}

}  // namespace
}  // namespace vane::forwarding
