// ForwardingTable: the choice among local consumers that route() (what the
// router calls for every delivery) makes for each distribution, the entries
// and credit listeners, and the loop a table is bound to. Choices that
// involve other routers are in route_test.cpp.
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
  // A delivery from a client of this router (no other router known).
  RouteResult route(const std::string& address) {
    RouteRequest rq;
    rq.address = address;
    rq.origin = "self";
    return table_.route(rq, out_);
  }
  // The one consumer a delivery to `address` goes to.
  std::uint64_t pick(const std::string& address) {
    EXPECT_EQ(route(address).status, RouteStatus::kRouted);
    EXPECT_EQ(out_.size(), 1u);
    return out_.empty() ? 0 : out_[0].to->id;
  }
  core::EventLoop loop_{"test"};
  ForwardingTable table_;
  std::vector<Target> out_;
};

TEST_F(ForwarderTest, BalancedPrefersFewestOutstanding) {
  auto a = consumer(1), b = consumer(2), c = consumer(3);
  table_.addConsumer("q", Distribution::kBalanced, a);
  table_.addConsumer("q", Distribution::kBalanced, b);
  table_.addConsumer("q", Distribution::kBalanced, c);
  a->outstanding = 5;
  b->outstanding = 1;
  c->outstanding = 3;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(pick("q"), 2u);
}

TEST_F(ForwarderTest, BalancedSharesEquallyLoadedConsumers) {
  for (std::uint64_t i = 1; i <= 3; ++i)
    table_.addConsumer("q", Distribution::kBalanced, consumer(i));
  std::map<std::uint64_t, int> hits;
  // Each pick is settled at once: the loads stay equal.
  for (int i = 0; i < 300; ++i) ++hits[pick("q")];
  EXPECT_EQ(hits.size(), 3u);
  for (auto& [id, n] : hits) EXPECT_EQ(n, 100) << "consumer " << id;
}

TEST_F(ForwarderTest, BalancedFollowsOutstandingAsItChanges) {
  auto a = consumer(1), b = consumer(2);
  table_.addConsumer("q", Distribution::kBalanced, a);
  table_.addConsumer("q", Distribution::kBalanced, b);
  // As the router does: each copy adds one to the counter route() gave it;
  // only b settles.
  int to_a = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(route("q").status, RouteStatus::kRouted);
    ASSERT_TRUE(out_.at(0).load);
    out_[0].load->fetch_add(1);
    if (out_[0].to == a) ++to_a;
    b->outstanding = 0;
  }
  EXPECT_LE(to_a, 1);
}

TEST_F(ForwarderTest, ClosestRoundRobinsWhateverTheLoad) {
  std::vector<std::shared_ptr<Consumer>> cs;
  for (std::uint64_t i = 1; i <= 4; ++i) {
    cs.push_back(consumer(i));
    table_.addConsumer("c", Distribution::kClosest, cs.back());
  }
  cs[0]->outstanding = 50;  // closest does not look at it
  std::map<std::uint64_t, int> hits;
  for (int i = 0; i < 400; ++i) ++hits[pick("c")];
  EXPECT_EQ(hits.size(), 4u);
  for (auto& [id, n] : hits) EXPECT_EQ(n, 100) << "consumer " << id;
}

TEST_F(ForwarderTest, AnycastCopiesAreCountedMulticastCopiesAreNot) {
  auto a = consumer(1);
  table_.addConsumer("q", Distribution::kBalanced, a);
  table_.addConsumer("c", Distribution::kClosest, a);
  table_.addConsumer("m", Distribution::kMulticast, a);
  for (const char* address : {"q", "c"}) {
    ASSERT_EQ(route(address).status, RouteStatus::kRouted) << address;
    ASSERT_EQ(out_.size(), 1u);
    EXPECT_EQ(out_[0].load.get(), &a->outstanding) << address;
    EXPECT_FALSE(out_[0].remote);
  }
  ASSERT_EQ(route("m").status, RouteStatus::kRouted);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].load, nullptr);
}

TEST_F(ForwarderTest, MulticastReturnsEveryConsumer) {
  for (std::uint64_t i = 1; i <= 5; ++i)
    table_.addConsumer("m", Distribution::kMulticast, consumer(i));
  const auto r = route("m");
  EXPECT_EQ(r.status, RouteStatus::kRouted);
  EXPECT_TRUE(r.multicast);
  EXPECT_EQ(out_.size(), 5u);
  for (const auto& t : out_) EXPECT_FALSE(t.remote);
  EXPECT_FALSE(isAnycast(Distribution::kMulticast));
  EXPECT_TRUE(isAnycast(Distribution::kBalanced));
  EXPECT_TRUE(isAnycast(Distribution::kClosest));
}

TEST_F(ForwarderTest, NoConsumersSelectsNothing) {
  Recorder r;
  table_.addListener("q", Distribution::kBalanced, &r);
  ASSERT_NE(table_.find("q"), nullptr);
  EXPECT_EQ(route("q").status, RouteStatus::kNoRoute);
  EXPECT_TRUE(out_.empty());
  EXPECT_EQ(route("nowhere").status, RouteStatus::kNoRoute);
}

TEST_F(ForwarderTest, ReclassifiedAddressesRouteByTheirNewDistribution) {
  for (std::uint64_t i = 1; i <= 3; ++i)
    table_.addConsumer("x/1", Distribution::kBalanced, consumer(i));
  EXPECT_FALSE(route("x/1").multicast);
  EXPECT_EQ(out_.size(), 1u);
  table_.reclassify([](std::string_view a) {
    return a.substr(0, 2) == "x/" ? Distribution::kMulticast : Distribution::kBalanced;
  });
  EXPECT_EQ(table_.find("x/1")->distribution, Distribution::kMulticast);
  EXPECT_TRUE(route("x/1").multicast);
  EXPECT_EQ(out_.size(), 3u);
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

TEST(ForwardingTableThread, BoundTableRunsOnItsLoopOnly) {
  core::EventLoop loop("worker");
  ForwardingTable table(loop);
  std::size_t size = 1;
  loop.post([&] { size = table.size(); });
  loop.poll();
  EXPECT_EQ(size, 0u);
#ifdef NDEBUG
  GTEST_SKIP() << "thread checks are compiled out of release builds";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(table.size(), "called off its owning thread");
#endif
}

}  // namespace
}  // namespace vane::forwarding
