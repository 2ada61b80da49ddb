// ForwardingTable::route: the choice between local consumers and other
// routers, and the multicast partition that keeps copies unique.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "forwarding/forwarder.hpp"

namespace vane::forwarding {
namespace {

using config::Distribution;

class RouteTest : public ::testing::Test {
 protected:
  std::shared_ptr<Consumer> consumer(std::uint64_t id) {
    return std::make_shared<Consumer>(id, loop_, std::weak_ptr<EgressSink>());
  }
  // A neighbour's data link.
  std::shared_ptr<Consumer> link(const std::string& name) {
    auto& l = links_[name];
    if (!l) l = consumer(1000 + links_.size());
    return l;
  }
  void paths(const std::string& self,
             std::vector<std::tuple<std::string, std::string, std::uint32_t, NextHop::Kind>> hops) {
    auto t = std::make_shared<PathTable>();
    t->self = self;
    for (auto& [router, via, cost, kind] : hops) t->hops[router] = NextHop{link(via), cost, kind};
    table_.setPaths(t);
  }
  std::shared_ptr<RemoteDest> remote(const std::string& address, Distribution d,
                                     const std::string& router) {
    auto r = std::make_shared<RemoteDest>(router);
    table_.addRemote(address, d, r);
    return r;
  }
  RouteResult route(const std::string& address, const RouteHeader* h = nullptr,
                    Arrival arrival = Arrival::kClient, const std::string& peer = "") {
    RouteRequest rq;
    rq.address = address;
    rq.header = h;
    rq.arrival = arrival;
    rq.arrival_peer = peer;
    rq.origin = "self";
    return table_.route(rq, out_);
  }
  std::string via(const Target& t) {
    for (auto& [name, l] : links_)
      if (l == t.to) return name;
    return "local";
  }

  static constexpr auto kInterior = NextHop::Kind::kInterior;
  static constexpr auto kEdge = NextHop::Kind::kEdgeChild;
  static constexpr auto kUplink = NextHop::Kind::kUplink;
  core::EventLoop loop_{"test"};
  ForwardingTable table_;
  std::map<std::string, std::shared_ptr<Consumer>> links_;
  std::vector<Target> out_;
};

TEST_F(RouteTest, NoConsumerNoRoute) {
  paths("A", {{"B", "B", 1, kInterior}});
  EXPECT_EQ(route("q").status, RouteStatus::kNoRoute);
}

TEST_F(RouteTest, AnycastToRemoteNamesTheRouter) {
  paths("A", {{"B", "B", 1, kInterior}, {"C", "B", 2, kInterior}});
  auto c = remote("q", Distribution::kBalanced, "C");
  auto r = route("q");
  ASSERT_EQ(r.status, RouteStatus::kRouted);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(via(out_[0]), "B");
  EXPECT_TRUE(out_[0].remote);
  EXPECT_EQ(out_[0].header.dest, "C");
  EXPECT_EQ(out_[0].header.address, "q");
  EXPECT_EQ(out_[0].header.hops, 0u);
  EXPECT_EQ(out_[0].header.origin, "self");
  ASSERT_TRUE(out_[0].load);
  EXPECT_EQ(out_[0].load.get(), &c->outstanding);
}

TEST_F(RouteTest, TransitFollowsTheHeader) {
  paths("B", {{"A", "A", 1, kInterior}, {"C", "C", 1, kInterior}});
  // B has a local consumer, but the delivery is for C: it goes on.
  table_.addConsumer("q", Distribution::kBalanced, consumer(1));
  RouteHeader h;
  h.address = "q";
  h.dest = "C";
  h.hops = 1;
  ASSERT_EQ(route("q", &h, Arrival::kInterior, "A").status, RouteStatus::kRouted);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(via(out_[0]), "C");
  EXPECT_EQ(out_[0].header.dest, "C");
  EXPECT_EQ(out_[0].header.hops, 2u);
  h.hops = kMaxHops;
  EXPECT_EQ(route("q", &h, Arrival::kInterior, "A").status, RouteStatus::kHopLimit);
  h.dest = "Z";  // unknown router
  h.hops = 1;
  EXPECT_EQ(route("q", &h, Arrival::kInterior, "A").status, RouteStatus::kNoRoute);
}

TEST_F(RouteTest, ClosestPrefersLocalThenLowestCost) {
  paths("A", {{"B", "B", 1, kInterior}, {"C", "B", 2, kInterior}, {"D", "D", 1, kInterior}});
  remote("near", Distribution::kClosest, "C");
  remote("near", Distribution::kClosest, "B");
  remote("near", Distribution::kClosest, "D");
  std::map<std::string, int> dests;
  for (int i = 0; i < 40; ++i) {
    route("near");
    ++dests[out_.at(0).header.dest];
  }
  EXPECT_EQ(dests.size(), 2u) << "B and D cost 1, C costs 2";
  EXPECT_EQ(dests["B"], 20);
  EXPECT_EQ(dests["D"], 20);
  table_.addConsumer("near", Distribution::kClosest, consumer(7));
  for (int i = 0; i < 10; ++i) {
    route("near");
    EXPECT_FALSE(out_.at(0).remote);
  }
}

TEST_F(RouteTest, BalancedWeighsOutstandingAndCost) {
  paths("A", {{"B", "B", 3, kInterior}});
  auto local = consumer(1);
  table_.addConsumer("w", Distribution::kBalanced, local);
  auto b = remote("w", Distribution::kBalanced, "B");
  // Local wins while its outstanding is below the remote's cost.
  local->outstanding = 2;
  route("w");
  EXPECT_FALSE(out_[0].remote);
  local->outstanding = 10;
  route("w");
  EXPECT_TRUE(out_[0].remote);
  b->outstanding = 20;
  route("w");
  EXPECT_FALSE(out_[0].remote);
}

TEST_F(RouteTest, AnycastNeverReturnsToTheEdgeItCameFrom) {
  paths("I", {{"E1", "E1", 1, kEdge}, {"E2", "E2", 1, kEdge}});
  remote("q", Distribution::kBalanced, "E1");
  auto r = route("q", nullptr, Arrival::kEdgeChild, "E1");
  EXPECT_EQ(r.status, RouteStatus::kNoRoute);
  remote("q", Distribution::kBalanced, "E2");
  RouteHeader h;
  h.address = "q";
  ASSERT_EQ(route("q", &h, Arrival::kEdgeChild, "E1").status, RouteStatus::kRouted);
  EXPECT_EQ(via(out_[0]), "E2");
  EXPECT_EQ(out_[0].header.dest, "E2");
}

TEST_F(RouteTest, AtDestinationOnlyLocalAndEdges) {
  paths("B", {{"C", "C", 1, kInterior}, {"E", "E", 1, kEdge}});
  remote("q", Distribution::kBalanced, "C");
  RouteHeader h;
  h.address = "q";
  h.dest = "B";
  EXPECT_EQ(route("q", &h, Arrival::kInterior, "A").status, RouteStatus::kNoRoute)
      << "a delivery for B must not wander on to C";
  remote("q", Distribution::kBalanced, "E");
  ASSERT_EQ(route("q", &h, Arrival::kInterior, "A").status, RouteStatus::kRouted);
  EXPECT_EQ(via(out_[0]), "E");
}

TEST_F(RouteTest, EdgeSendsUndecidedToItsUplink) {
  paths("E", {{"I", "I", 1, kUplink}});
  remote("q", Distribution::kBalanced, "I");
  ASSERT_EQ(route("q").status, RouteStatus::kRouted);
  EXPECT_EQ(via(out_[0]), "I");
  EXPECT_TRUE(out_[0].header.dest.empty());
  // From the uplink: local consumers only.
  RouteHeader h;
  h.address = "q";
  EXPECT_EQ(route("q", &h, Arrival::kUplink, "I").status, RouteStatus::kNoRoute);
}

TEST_F(RouteTest, MulticastPartitionsRoutersAmongNextHops) {
  // A reaches B, C via B; D, E via D.
  paths("A", {{"B", "B", 1, kInterior},
              {"C", "B", 2, kInterior},
              {"D", "D", 1, kInterior},
              {"E", "D", 2, kInterior},
              {"X", "X", 1, kEdge}});
  for (auto r : {"B", "C", "D", "E", "X"}) remote("mc", Distribution::kMulticast, r);
  table_.addConsumer("mc", Distribution::kMulticast, consumer(1));
  table_.addConsumer("mc", Distribution::kMulticast, consumer(2));
  auto r = route("mc");
  ASSERT_EQ(r.status, RouteStatus::kRouted);
  EXPECT_TRUE(r.multicast);
  std::map<std::string, std::vector<std::string>> sets;
  int local = 0;
  for (auto& t : out_) {
    EXPECT_FALSE(t.load) << "multicast copies are not counted";
    if (!t.remote) {
      ++local;
      continue;
    }
    ASSERT_TRUE(t.header.has_dests);
    ASSERT_EQ(sets.count(via(t)), 0u) << "one copy per next hop";
    sets[via(t)] = t.header.dests;
  }
  EXPECT_EQ(local, 2);
  EXPECT_EQ(sets["B"], (std::vector<std::string>{"B", "C"}));
  EXPECT_EQ(sets["D"], (std::vector<std::string>{"D", "E"}));
  EXPECT_EQ(sets["X"], (std::vector<std::string>{"X"}));
}

TEST_F(RouteTest, MulticastTransitDeliversAndSplitsItsPart) {
  paths("B", {{"A", "A", 1, kInterior}, {"C", "C", 1, kInterior}, {"E", "E", 1, kEdge}});
  remote("mc", Distribution::kMulticast, "E");
  table_.addConsumer("mc", Distribution::kMulticast, consumer(1));
  RouteHeader h;
  h.address = "mc";
  h.has_dests = true;
  h.dests = {"B", "C"};
  ASSERT_EQ(route("mc", &h, Arrival::kInterior, "A").status, RouteStatus::kRouted);
  std::multiset<std::string> got;
  for (auto& t : out_) got.insert(via(t));
  EXPECT_EQ(got, (std::multiset<std::string>{"local", "E", "C"}));
  // Not in the set: only pass the rest on, even without local knowledge.
  table_.removeConsumer("mc", 1);
  table_.removeRemote("mc", "E");
  h.dests = {"C"};
  ASSERT_EQ(route("mc", &h, Arrival::kInterior, "A").status, RouteStatus::kRouted);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(via(out_[0]), "C");
  EXPECT_EQ(out_[0].header.dests, std::vector<std::string>{"C"});
}

TEST_F(RouteTest, ReplyAddressRoutesTowardsItsRouter) {
  paths("A", {{"B", "B", 1, kInterior}, {"C", "B", 2, kInterior}});
  ASSERT_EQ(route("_vane/temp/C/0001.7").status, RouteStatus::kRouted);
  EXPECT_EQ(via(out_[0]), "B");
  EXPECT_EQ(out_[0].header.dest, "C");
  EXPECT_EQ(route("_vane/temp/Z/1").status, RouteStatus::kNoRoute);
  EXPECT_EQ(route("_vane/temp/A/1").status, RouteStatus::kNoRoute) << "our own: no consumer";
}

TEST_F(RouteTest, FlowAddressGoesToItsLoopsFlowConsumer) {
  paths("A", {{"B", "B", 1, kInterior}});
  auto f0 = consumer(1);
  auto f1 = consumer(2);
  table_.setFlowConsumers({f0, f1});
  const FlowToken token{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  EXPECT_EQ(flowAddress("A", "", 1, 42, token),
            "_vane/temp/A/flow/1/42/0123456789abcdeffedcba9876543210");
  ASSERT_EQ(route(flowAddress("A", "", 1, 42, token)).status, RouteStatus::kRouted);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].to, f1);
  EXPECT_EQ(out_[0].flow, 42u);
  EXPECT_EQ(out_[0].flow_token, token);
  EXPECT_FALSE(out_[0].remote);
  // Arriving from another router (the header names us) works the same.
  RouteHeader h;
  h.address = flowAddress("A", "", 0, 7, token);
  h.dest = "A";
  ASSERT_EQ(route(h.address, &h, Arrival::kInterior, "B").status, RouteStatus::kRouted);
  EXPECT_EQ(out_[0].to, f0);
  EXPECT_EQ(out_[0].flow, 7u);
}

TEST_F(RouteTest, FlowAddressWithoutAWholeTokenIsNotAFlow) {
  paths("A", {{"B", "B", 1, kInterior}});
  table_.setFlowConsumers({consumer(1)});
  for (const char* a :
       {"_vane/temp/A/flow/0/1", "_vane/temp/A/flow/0/1/", "_vane/temp/A/flow/0/1/0123456789abcdef",
        "_vane/temp/A/flow/0/1/0123456789abcdeffedcba987654321",
        "_vane/temp/A/flow/0/1/0123456789abcdeffedcba98765432100",
        "_vane/temp/A/flow/0/1/0123456789ABCDEFfedcba9876543210",
        "_vane/temp/A/flow/0/1/0123456789abcdefgedcba9876543210"}) {
    EXPECT_EQ(route(a).status, RouteStatus::kNoRoute) << a;
  }
}

TEST(FlowToken, RandomTokensDiffer) {
  const FlowToken a = FlowToken::random();
  const FlowToken b = FlowToken::random();
  EXPECT_FALSE(a == b);
  EXPECT_FALSE(a.hi == 0 && a.lo == 0);
}

TEST_F(RouteTest, FlowAddressOfAnotherRouterGoesTowardsIt) {
  paths("A", {{"B", "B", 1, kInterior}, {"C", "B", 2, kInterior}});
  table_.setFlowConsumers({consumer(1)});
  ASSERT_EQ(route(flowAddress("C", "", 0, 3, FlowToken::random())).status, RouteStatus::kRouted);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(via(out_[0]), "B");
  EXPECT_EQ(out_[0].header.dest, "C");
  EXPECT_EQ(out_[0].flow, 0u);
}

TEST_F(RouteTest, EdgeSendsOtherRoutersReplyAddressesToItsUplink) {
  paths("E", {{"A", "A", 1, kUplink}});
  table_.setFlowConsumers({consumer(1)});
  ASSERT_EQ(route(flowAddress("B", "", 0, 3, FlowToken::random())).status, RouteStatus::kRouted);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(via(out_[0]), "A");
  EXPECT_EQ(out_[0].header.dest, "B");
  ASSERT_EQ(route("_vane/temp/B/x.1").status, RouteStatus::kRouted);
  EXPECT_EQ(out_[0].header.dest, "B");
}

TEST_F(RouteTest, EdgeFlowAddressLeadsThroughItsUplink) {
  // On edge router E1 (uplink A): its flows' addresses name A and itself.
  paths("E1", {{"A", "A", 1, kUplink}});
  auto f0 = consumer(1);
  table_.setFlowConsumers({f0});
  const FlowToken token = FlowToken::random();
  const std::string a = table_.flowAddressHere(0, 9, token);
  EXPECT_EQ(a.substr(0, a.rfind('/')), "_vane/temp/A/via/E1/flow/0/9");
  // Back at E1, from its uplink: to the flow.
  RouteHeader h;
  h.address = a;
  ASSERT_EQ(route(a, &h, Arrival::kUplink, "A").status, RouteStatus::kRouted);
  EXPECT_EQ(out_[0].to, f0);
  EXPECT_EQ(out_[0].flow, 9u);

  // On A: to its edge child E1.
  paths("A", {{"B", "B", 1, kInterior}, {"E1", "E1", 1, kEdge}});
  h.dest = "A";
  ASSERT_EQ(route(a, &h, Arrival::kInterior, "B").status, RouteStatus::kRouted);
  EXPECT_EQ(via(out_[0]), "E1");
  // Elsewhere (B): towards A.
  paths("B", {{"A", "A", 1, kInterior}});
  ASSERT_EQ(route(a).status, RouteStatus::kRouted);
  EXPECT_EQ(via(out_[0]), "A");
  EXPECT_EQ(out_[0].header.dest, "A");
  // On A, an edge router that is not ours: nowhere.
  paths("A", {{"B", "B", 1, kInterior}});
  EXPECT_EQ(route(a, &h, Arrival::kInterior, "B").status, RouteStatus::kNoRoute);
}

TEST_F(RouteTest, MalformedFlowAddressHasNoRoute) {
  paths("A", {{"B", "B", 1, kInterior}});
  table_.setFlowConsumers({consumer(1)});
  for (const char* a : {"_vane/temp/A/flow/1/5", "_vane/temp/A/flow/0/", "_vane/temp/A/flow//5",
                        "_vane/temp/A/flow/x/5", "_vane/temp/A/flow/0/5x", "_vane/temp/A/flow/0",
                        "_vane/temp/A/flow/0/99999999999999999999"}) {
    EXPECT_EQ(route(a).status, RouteStatus::kNoRoute) << a;
  }
}

TEST_F(RouteTest, RemotesCountForCredit) {
  struct L : CreditListener {
    void onConsumersChanged(bool a) override { events.push_back(a); }
    std::vector<bool> events;
  } l;
  table_.addListener("q", Distribution::kBalanced, &l);
  remote("q", Distribution::kBalanced, "B");
  table_.addConsumer("q", Distribution::kBalanced, consumer(1));
  table_.removeRemote("q", "B");
  table_.removeConsumer("q", 1);
  EXPECT_EQ(l.events, (std::vector<bool>{true, false}));
  table_.removeListener("q", &l);
  EXPECT_EQ(table_.size(), 0u);
}

}  // namespace
}  // namespace vane::forwarding
