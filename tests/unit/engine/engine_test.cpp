// The routing engine in small simulated networks (simulator.hpp): paths
// against an independent reference, address propagation and repair, timers,
// duplicates, edge routers, ageing, hostile input.
#include "routing/engine.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "simulator.hpp"

namespace vane::routing {
namespace {

using sim::Network;
using sim::Reference;
using AddressSet = std::set<std::pair<std::string, std::string>>;

EngineConfig interior(const std::string& id, std::uint64_t instance = 1) {
  EngineConfig cfg;
  cfg.id = id;
  cfg.instance = instance;
  return cfg;
}

EngineConfig edge(const std::string& id) {
  EngineConfig cfg = interior(id);
  cfg.edge = true;
  return cfg;
}

// Checks the interior routers' paths to interior routers (edge routers are
// checked by the edge tests).
void expectPaths(Network& net) {
  Reference ref(net);
  for (std::size_t r = 0; r < net.size(); ++r) {
    if (!net.router(static_cast<int>(r)).alive() || net.router(static_cast<int>(r)).config().edge) {
      continue;
    }
    EXPECT_EQ(ref.check(static_cast<int>(r)), "");
  }
}

const Path* pathTo(sim::Router& r, const std::string& id) {
  for (const auto& p : r.reportedPaths()) {
    if (p.router == id) return &p;
  }
  return nullptr;
}

bool hasDrop(sim::Router& r, const std::string& condition) {
  for (const auto& d : r.drops()) {
    if (d.condition == condition) return true;
  }
  return false;
}

void addLocal(Network& net, int r, const std::string& address, bool present = true) {
  net.router(r).engine().localAddress(address, present);
  net.router(r).engine().flush(net.now());
}

class EngineTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (std::size_t r = 0; r < net_.size(); ++r) {
      EXPECT_EQ(net_.router(static_cast<int>(r)).addressErrors(), 0u)
          << net_.router(static_cast<int>(r)).id() << " reported an address inconsistently";
    }
  }
  int add(const std::string& id) { return net_.add(interior(id)); }

  Network net_;
};

TEST_F(EngineTest, LineOfThree) {
  const int a = add("A"), b = add("B"), c = add("C");
  net_.connect(a, b, 1, 5);  // link cost = max of both sides = 5
  net_.connect(b, c, 2, 1);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  ASSERT_NE(pathTo(net_.router(a), "C"), nullptr);
  EXPECT_EQ(pathTo(net_.router(a), "C")->cost, 7u);
  EXPECT_EQ(pathTo(net_.router(c), "A")->cost, 7u);
  EXPECT_EQ(net_.router(a).engine().neighbors(), std::vector<std::string>{"B"});
  EXPECT_EQ(net_.router(a).engine().knownRouters(), 3u);
  EXPECT_EQ(net_.router(a).engine().id(), "A");
}

TEST_F(EngineTest, Triangle) {
  const int a = add("A"), b = add("B"), c = add("C");
  net_.connect(a, b, 1, 1);
  net_.connect(b, c, 1, 1);
  net_.connect(a, c, 3, 1);  // the direct link costs more than going via B
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_EQ(pathTo(net_.router(a), "C")->cost, 2u);
  EXPECT_EQ(pathTo(net_.router(a), "C")->next_hop, net_.connection(0).na);
}

TEST_F(EngineTest, RingOfSixWithTies) {
  std::vector<int> r;
  for (const char* id : {"R1", "R2", "R3", "R4", "R5", "R6"}) r.push_back(add(id));
  const std::uint32_t costs[] = {1, 2, 1, 1, 2, 1};
  for (int i = 0; i < 6; ++i) net_.connect(r[i], r[(i + 1) % 6], costs[i], 1);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(net_.router(r[i]).reportedPaths().size(), 5u);
  // Equal cost both ways round from R1 to R4 (1+2+1 = 4 = 1+2+1): the tie
  // goes to the first hop with the smaller id (R2 over R6).
  const Path* p = pathTo(net_.router(r[0]), "R4");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->cost, 4u);
  EXPECT_EQ(p->next_hop, net_.connection(0).na);
}

TEST_F(EngineTest, DiamondReroutesWhenARouterDies) {
  const int a = add("A"), b = add("B"), c = add("C"), d = add("D");
  net_.connect(a, b, 1, 1);  // 0
  net_.connect(b, d, 1, 1);  // 1
  net_.connect(a, c, 5, 5);  // 2
  net_.connect(c, d, 5, 5);  // 3
  ASSERT_TRUE(net_.runUntilQuiet());
  addLocal(net_, b, "b/queue");
  addLocal(net_, d, "d/queue");
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_EQ(pathTo(net_.router(a), "D")->next_hop, net_.connection(0).na);
  for (int r : {a, c, d}) {
    EXPECT_EQ(net_.router(r).addresses().count({"b/queue", "B"}), 1u) << r;
  }
  EXPECT_EQ(net_.router(a).addresses().count({"d/queue", "D"}), 1u);

  net_.kill(b);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_EQ(pathTo(net_.router(a), "D")->next_hop, net_.connection(2).na);
  EXPECT_EQ(pathTo(net_.router(a), "D")->cost, 10u);
  EXPECT_EQ(pathTo(net_.router(a), "B"), nullptr);
  for (int r : {a, c, d}) {
    EXPECT_EQ(net_.router(r).addresses().count({"b/queue", "B"}), 0u) << r;
  }
  EXPECT_EQ(net_.router(a).addresses(), (AddressSet{{"d/queue", "D"}}));
}

TEST_F(EngineTest, AddressesComeAndGo) {
  std::vector<int> r;
  for (const char* id : {"A", "B", "C", "D"}) r.push_back(add(id));
  for (int i = 0; i < 4; ++i) net_.connect(r[i], r[(i + 1) % 4]);
  ASSERT_TRUE(net_.runUntilQuiet());

  addLocal(net_, r[0], "q1");
  ASSERT_TRUE(net_.runUntilQuiet());
  for (int i = 1; i < 4; ++i) EXPECT_EQ(net_.router(r[i]).addresses(), (AddressSet{{"q1", "A"}}));
  EXPECT_TRUE(net_.router(r[0]).addresses().empty());  // our own are not reported

  // Only net changes are advertised.
  const auto sent = net_.sent();
  net_.router(r[2]).engine().localAddress("tmp", true);
  net_.router(r[2]).engine().localAddress("tmp", false);
  net_.router(r[2]).engine().flush(net_.now());
  EXPECT_EQ(net_.sent(), sent);
  // Invalid addresses are never advertised.
  addLocal(net_, r[2], std::string(5000, 'x'));
  EXPECT_EQ(net_.sent(), sent);

  addLocal(net_, r[0], "q1", false);
  addLocal(net_, r[2], "q2");
  ASSERT_TRUE(net_.runUntilQuiet());
  for (int i : {0, 1, 3}) EXPECT_EQ(net_.router(r[i]).addresses(), (AddressSet{{"q2", "C"}}));
  EXPECT_TRUE(net_.router(r[2]).addresses().empty());
}

TEST_F(EngineTest, LostIncrementalIsRepairedWithMar) {
  const int a = add("A"), b = add("B"), c = add("C");
  net_.connect(a, b);
  net_.connect(b, c);
  ASSERT_TRUE(net_.runUntilQuiet());

  // The update from A to B is lost: B and C miss seq 2.
  net_.loseNext(0, b, "\"mau\"");
  addLocal(net_, a, "first");
  ASSERT_TRUE(net_.runUntilQuiet());
  ASSERT_EQ(net_.lost(), 1u);
  EXPECT_TRUE(net_.router(c).addresses().empty());

  // The next one (seq 3) shows B the gap: it asks A (mar) for the full record.
  addLocal(net_, a, "second");
  ASSERT_TRUE(net_.runUntilQuiet());
  const AddressSet want{{"first", "A"}, {"second", "A"}};
  EXPECT_EQ(net_.router(b).addresses(), want);
  EXPECT_EQ(net_.router(c).addresses(), want);
}

TEST_F(EngineTest, PartitionAndHeal) {
  std::vector<int> r;
  for (const char* id : {"A", "B", "C", "D"}) r.push_back(add(id));
  net_.connect(r[0], r[1]);
  const int bc = net_.connect(r[1], r[2]);
  net_.connect(r[2], r[3]);
  addLocal(net_, r[0], "a/1");
  addLocal(net_, r[3], "d/1");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(net_.router(r[0]).addresses(), (AddressSet{{"d/1", "D"}}));

  net_.disconnect(bc);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_TRUE(net_.router(r[0]).addresses().empty());
  EXPECT_EQ(net_.router(r[0]).reportedPaths().size(), 1u);

  // Changes on both sides while apart.
  addLocal(net_, r[0], "a/1", false);
  addLocal(net_, r[0], "a/2");
  addLocal(net_, r[3], "d/2");
  ASSERT_TRUE(net_.runUntilQuiet());

  net_.connect(r[1], r[2]);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_EQ(net_.router(r[0]).addresses(), (AddressSet{{"d/1", "D"}, {"d/2", "D"}}));
  EXPECT_EQ(net_.router(r[3]).addresses(), (AddressSet{{"a/2", "A"}}));
  EXPECT_EQ(net_.router(r[2]).addresses(), (AddressSet{{"a/2", "A"}, {"d/1", "D"}, {"d/2", "D"}}));
}

TEST_F(EngineTest, SilentNeighbourIsDeclaredDead) {
  const int a = add("A"), b = add("B");
  const int ab = net_.connect(a, b);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(net_.router(a).reportedPaths().size(), 1u);

  // Hellos keep a quiet adjacency alive.
  net_.advance(10000);
  EXPECT_TRUE(net_.router(a).drops().empty());
  EXPECT_EQ(net_.router(a).reportedPaths().size(), 1u);

  // The last hello got through less than 1000 ms ago: dead between 2000 and
  // 3000 ms from now.
  net_.block(ab, /*to_a=*/true);
  const Millis blocked_at = net_.now();
  net_.advance(1900);
  EXPECT_TRUE(net_.router(a).drops().empty());
  net_.advance(1200);
  ASSERT_EQ(net_.router(a).drops().size(), 1u);
  EXPECT_EQ(net_.router(a).drops()[0].condition, "vane:neighbor-dead");
  EXPECT_LE(net_.now() - blocked_at, 3100);
  EXPECT_TRUE(net_.router(a).reportedPaths().empty());
  EXPECT_TRUE(net_.router(b).reportedPaths().empty());  // B saw the connection close
  EXPECT_TRUE(net_.router(a).engine().neighbors().empty());
}

TEST_F(EngineTest, NeighbourThatNeverSpeaksIsDeclaredDead) {
  const int a = add("A"), b = add("B");
  const int ab = net_.connect(a, b);
  net_.block(ab, true);
  net_.advance(3100);
  EXPECT_TRUE(hasDrop(net_.router(a), "vane:neighbor-dead"));
}

TEST_F(EngineTest, DuplicateIdsAreRefused) {
  const int a = add("A"), b = add("B");
  net_.connect(a, b);
  ASSERT_TRUE(net_.runUntilQuiet());
  Engine& ea = net_.router(a).engine();

  auto refusal = ea.neighborUp(9001, "A", NeighborRole::kInterior, 1, net_.now());
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->condition, "vane:duplicate-router-id");
  EXPECT_NE(refusal->reason.find('A'), std::string::npos);

  refusal = ea.neighborUp(9002, "B", NeighborRole::kInterior, 1, net_.now());
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->condition, "vane:duplicate-router-id");
  EXPECT_NE(refusal->reason.find('B'), std::string::npos);
  EXPECT_EQ(ea.neighbors(), std::vector<std::string>{"B"});
}

TEST_F(EngineTest, SecondRouterWithAnExistingIdIsDropped) {
  const int a = add("A"), b = add("B"), c = add("C");
  net_.connect(a, b);
  net_.connect(b, c);
  ASSERT_TRUE(net_.runUntilQuiet());
  // Another "A" (another process: another instance) joins at C.
  const int a2 = net_.add(interior("A", 2));
  net_.connect(a2, c);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_TRUE(hasDrop(net_.router(c), "vane:duplicate-router-id"));
  EXPECT_TRUE(net_.router(a2).reportedPaths().empty());
  expectPaths(net_);
  EXPECT_EQ(pathTo(net_.router(c), "A")->next_hop, net_.connection(1).nb);
}

TEST_F(EngineTest, RestartedRouterRejoinsWithItsNewInstance) {
  const int a = add("A"), b = add("B"), c = add("C");
  net_.connect(a, b);
  net_.connect(b, c);
  addLocal(net_, c, "old");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(net_.router(a).addresses(), (AddressSet{{"old", "C"}}));

  net_.kill(c);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_TRUE(net_.router(a).addresses().empty());
  net_.router(c).restart(2);
  net_.connect(b, c);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_TRUE(net_.router(a).addresses().empty());  // the old run's record is void
  addLocal(net_, c, "new");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(net_.router(a).addresses(), (AddressSet{{"new", "C"}}));
  EXPECT_EQ(net_.router(a).engine().knownRouters(), 3u);
}

TEST_F(EngineTest, RestartWithTheSameInstanceOvertakesItsOldRecords) {
  const int a = add("A"), b = add("B"), c = add("C");
  net_.connect(a, b);
  net_.connect(a, c);
  addLocal(net_, a, "old");
  addLocal(net_, a, "old2");
  ASSERT_TRUE(net_.runUntilQuiet());
  net_.kill(a);
  ASSERT_TRUE(net_.runUntilQuiet());
  // Back at once with the same instance: B and C hold its records with
  // larger seqs; A must go above them (it hears them at synchronisation).
  net_.router(a).restart(1);
  addLocal(net_, a, "new");
  net_.connect(a, b);
  net_.connect(a, c);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_EQ(net_.router(b).addresses(), (AddressSet{{"new", "A"}}));
  EXPECT_EQ(net_.router(c).addresses(), (AddressSet{{"new", "A"}}));
  EXPECT_EQ(pathTo(net_.router(b), "C")->cost, 2u);
}

TEST_F(EngineTest, UnreachableRecordsAgeOut) {
  const int a = add("A"), b = add("B"), c = add("C");
  net_.connect(a, b);
  const int bc = net_.connect(b, c);
  addLocal(net_, c, "c/1");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(net_.router(a).engine().knownRouters(), 3u);

  net_.disconnect(bc);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_TRUE(net_.router(a).addresses().empty());  // at once
  EXPECT_EQ(net_.router(a).engine().knownRouters(), 3u);
  net_.advance(29000);
  EXPECT_EQ(net_.router(a).engine().knownRouters(), 3u);
  net_.advance(1100);
  EXPECT_EQ(net_.router(a).engine().knownRouters(), 2u);
  EXPECT_EQ(net_.router(b).engine().knownRouters(), 2u);
  EXPECT_EQ(net_.router(c).engine().knownRouters(), 1u);  // its own record never ages

  // After ageing, C rejoins from scratch.
  net_.connect(b, c);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
  EXPECT_EQ(net_.router(a).addresses(), (AddressSet{{"c/1", "C"}}));
}

TEST_F(EngineTest, MalformedInputDropsTheNeighbour) {
  const int a = add("A"), b = add("B");
  net_.connect(a, b);
  ASSERT_TRUE(net_.runUntilQuiet());
  const NeighborId nb = net_.connection(0).na;
  net_.router(a).engine().receive(nb, "{\"v\":1,\"type\":\"lsu\",\"records\":7}", net_.now());
  EXPECT_EQ(net_.router(a).engine().stats().malformed_messages, 1u);
  ASSERT_EQ(net_.router(a).drops().size(), 1u);
  EXPECT_EQ(net_.router(a).drops()[0].condition, "vane:protocol-error");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_TRUE(net_.router(a).reportedPaths().empty());
  EXPECT_TRUE(net_.router(b).reportedPaths().empty());

  const int c = add("C");
  net_.connect(a, c);
  ASSERT_TRUE(net_.runUntilQuiet());
  net_.router(a).engine().receive(net_.connection(1).na, "{\"v\":2,\"type\":\"hello\"}",
                                  net_.now());
  EXPECT_TRUE(hasDrop(net_.router(a), "vane:protocol-version"));
  // Unknown neighbours are ignored.
  net_.router(a).engine().receive(123456, "garbage", net_.now());
  EXPECT_EQ(net_.router(a).engine().stats().malformed_messages, 2u);
}

TEST_F(EngineTest, HelloMustMatchTheConnection) {
  const int a = add("A"), b = add("B");
  const int ab = net_.connect(a, b);
  net_.block(ab, true);  // A hears only what the test sends
  Engine& ea = net_.router(a).engine();
  const NeighborId n = net_.connection(ab).na;
  // Anything but hello before the first hello is ignored.
  ea.receive(n, R"({"v":1,"type":"mar","ids":["A"]})", net_.now());
  EXPECT_EQ(ea.stats().ignored_messages, 1u);
  EXPECT_TRUE(net_.router(a).drops().empty());
  ea.receive(n, R"({"v":1,"type":"hello","id":"Z","instance":1,"cost":1,"mode":"interior"})",
             net_.now());
  ASSERT_EQ(net_.router(a).drops().size(), 1u);
  EXPECT_EQ(net_.router(a).drops()[0].condition, "vane:protocol-error");

  const int c = add("C");
  const int ac = net_.connect(a, c);
  net_.block(ac, true);
  ea.receive(net_.connection(ac).na,
             R"({"v":1,"type":"hello","id":"C","instance":1,"cost":1,"mode":"edge"})", net_.now());
  EXPECT_EQ(net_.router(a).drops().size(), 2u);
}

TEST_F(EngineTest, NextTickIsWhenSomethingIsDue) {
  const int a = add("A");
  EXPECT_GT(net_.router(a).engine().nextTick(), net_.now() + 1000000);
  const int b = add("B");
  net_.connect(a, b);
  EXPECT_LE(net_.router(a).engine().nextTick(), net_.now() + 1000);
}

// --- edge routers ---------------------------------------------------------------

class EdgeTest : public EngineTest {
 protected:
  void SetUp() override {
    i1_ = add("I1");
    i2_ = add("I2");
    net_.connect(i1_, i2_);
    e1_ = net_.add(edge("E1"));
    e2_ = net_.add(edge("E2"));
    e3_ = net_.add(edge("E3"));
    e1_up_ = attach(e1_, i1_);
    attach(e2_, i2_);
    attach(e3_, i1_);
    ASSERT_TRUE(net_.runUntilQuiet());
  }

  int attach(int e, int i, std::uint32_t cost = 1) {
    return net_.connect(e, i, cost, 1, NeighborRole::kUplink, NeighborRole::kEdge);
  }

  const AddressSet& seen(int r) { return net_.router(r).addresses(); }

  int i1_, i2_, e1_, e2_, e3_, e1_up_;
};

TEST_F(EdgeTest, PathTables) {
  const auto& e1 = net_.router(e1_).reportedPaths();
  ASSERT_EQ(e1.size(), 1u);
  EXPECT_EQ(e1[0], (Path{"I1", net_.connection(e1_up_).na, 1}));
  std::vector<std::string> ids;
  for (const auto& p : net_.router(i1_).reportedPaths()) ids.push_back(p.router);
  EXPECT_EQ(ids, (std::vector<std::string>{"E1", "E3", "I2"}));
  EXPECT_EQ(net_.router(i2_).engine().knownRouters(), 2u);  // edges are not in link state
  EXPECT_EQ(net_.router(e1_).engine().knownRouters(), 0u);
}

TEST_F(EdgeTest, OneUplinkAtATime) {
  const auto refusal =
      net_.router(e1_).engine().neighborUp(9000, "I2", NeighborRole::kUplink, 1, net_.now());
  ASSERT_TRUE(refusal);
  EXPECT_EQ(net_.router(e1_).reportedPaths().size(), 1u);
  // Roles must fit the router's mode.
  EXPECT_TRUE(
      net_.router(e1_).engine().neighborUp(9001, "X", NeighborRole::kInterior, 1, net_.now()));
  EXPECT_TRUE(
      net_.router(i1_).engine().neighborUp(9002, "X", NeighborRole::kUplink, 1, net_.now()));
}

TEST_F(EdgeTest, EdgeAddressesAreTheInteriorsAddresses) {
  addLocal(net_, e1_, "e1/q");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(i1_), (AddressSet{{"e1/q", "E1"}}));
  EXPECT_EQ(seen(i2_), (AddressSet{{"e1/q", "I1"}}));
  EXPECT_EQ(seen(e2_), (AddressSet{{"e1/q", "I2"}}));
  EXPECT_EQ(seen(e3_), (AddressSet{{"e1/q", "I1"}}));
  EXPECT_TRUE(seen(e1_).empty());  // only E1 provides it

  addLocal(net_, i2_, "i2/q");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(e1_), (AddressSet{{"i2/q", "I1"}}));
  EXPECT_EQ(seen(e2_), (AddressSet{{"e1/q", "I2"}, {"i2/q", "I2"}}));

  // Shared by two edges of I1: each sees the other's.
  addLocal(net_, e1_, "shared");
  addLocal(net_, e3_, "shared");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(e1_).count({"shared", "I1"}), 1u);
  EXPECT_EQ(seen(e3_).count({"shared", "I1"}), 1u);
  EXPECT_EQ(seen(i2_).count({"shared", "I1"}), 1u);
  addLocal(net_, e3_, "shared", false);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(e1_).count({"shared", "I1"}), 0u);
  EXPECT_EQ(seen(e3_).count({"shared", "I1"}), 1u);
  EXPECT_EQ(seen(i2_).count({"shared", "I1"}), 1u);  // still E1's

  addLocal(net_, e1_, "e1/q", false);
  addLocal(net_, e1_, "shared", false);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(i1_), (AddressSet{{"i2/q", "I2"}}));
  EXPECT_EQ(seen(i2_), AddressSet{});
  EXPECT_EQ(seen(e2_), (AddressSet{{"i2/q", "I2"}}));
  EXPECT_EQ(seen(e3_), (AddressSet{{"i2/q", "I1"}}));
}

TEST_F(EdgeTest, AddressesAdvertisedBeforeAttachArrive) {
  const int e4 = net_.add(edge("E4"));
  addLocal(net_, e4, "early");
  attach(e4, i2_);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(i2_), (AddressSet{{"early", "E4"}}));
  EXPECT_EQ(seen(e1_), (AddressSet{{"early", "I1"}}));
}

TEST_F(EdgeTest, Failover) {
  addLocal(net_, e1_, "e1/q");
  addLocal(net_, i2_, "i2/q");
  ASSERT_TRUE(net_.runUntilQuiet());
  ASSERT_EQ(seen(i2_).count({"e1/q", "I1"}), 1u);

  net_.disconnect(e1_up_);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_TRUE(seen(e1_).empty());
  EXPECT_TRUE(net_.router(e1_).reportedPaths().empty());
  EXPECT_TRUE(seen(i2_).empty());
  EXPECT_EQ(pathTo(net_.router(i1_), "E1"), nullptr);

  const int up = attach(e1_, i2_);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(net_.router(e1_).reportedPaths(),
            (std::vector<Path>{{"I2", net_.connection(up).na, 1}}));
  EXPECT_EQ(seen(e1_), (AddressSet{{"i2/q", "I2"}}));
  EXPECT_EQ(seen(i2_), (AddressSet{{"e1/q", "E1"}}));
  EXPECT_EQ(seen(i1_), (AddressSet{{"e1/q", "I2"}, {"i2/q", "I2"}}));
  EXPECT_EQ(seen(e3_), (AddressSet{{"e1/q", "I1"}, {"i2/q", "I1"}}));
}

TEST_F(EdgeTest, InteriorDeathRemovesEverythingFromItsEdges) {
  addLocal(net_, e2_, "e2/q");
  ASSERT_TRUE(net_.runUntilQuiet());
  ASSERT_EQ(seen(e1_), (AddressSet{{"e2/q", "I1"}}));
  net_.kill(i2_);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_TRUE(seen(e1_).empty());
  EXPECT_TRUE(seen(i1_).empty());
  EXPECT_TRUE(seen(e2_).empty());
  EXPECT_TRUE(net_.router(e2_).reportedPaths().empty());
}

TEST_F(EdgeTest, EdgeWithAnInteriorsIdIsRefused) {
  // Where the interior router with that id is a neighbour: at once.
  const int fake1 = net_.add(edge("I2"));
  std::optional<Engine::Refusal> refusal;
  net_.connect(fake1, i1_, 1, 1, NeighborRole::kUplink, NeighborRole::kEdge, &refusal);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->condition, "vane:duplicate-router-id");

  // Elsewhere in the network: at its first hello.
  const int i3 = add("I3");
  net_.connect(i3, i2_);
  ASSERT_TRUE(net_.runUntilQuiet());
  const int fake2 = net_.add(edge("I1"));
  attach(fake2, i3);
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_TRUE(hasDrop(net_.router(i3), "vane:duplicate-router-id"));
  EXPECT_TRUE(net_.router(fake2).reportedPaths().empty());
  EXPECT_EQ(pathTo(net_.router(i3), "I1")->cost, 2u);
  net_.kill(fake1);
  net_.kill(fake2);
  ASSERT_TRUE(net_.runUntilQuiet());
  expectPaths(net_);
}

TEST_F(EdgeTest, LostVisibleUpdateIsRepaired) {
  net_.loseNext(e1_up_, e1_, "\"mau\"");
  addLocal(net_, i1_, "one");
  ASSERT_TRUE(net_.runUntilQuiet());
  ASSERT_EQ(net_.lost(), 1u);
  EXPECT_TRUE(seen(e1_).empty());
  addLocal(net_, i1_, "two");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(e1_), (AddressSet{{"one", "I1"}, {"two", "I1"}}));

  net_.loseNext(e1_up_, i1_, "\"mau\"");
  addLocal(net_, e1_, "e/one");
  ASSERT_TRUE(net_.runUntilQuiet());
  ASSERT_EQ(net_.lost(), 2u);
  addLocal(net_, e1_, "e/two");
  ASSERT_TRUE(net_.runUntilQuiet());
  EXPECT_EQ(seen(i1_), (AddressSet{{"e/one", "E1"}, {"e/two", "E1"}}));
  EXPECT_EQ(seen(i2_),
            (AddressSet{{"e/one", "I1"}, {"e/two", "I1"}, {"one", "I1"}, {"two", "I1"}}));
}

}  // namespace
}  // namespace vane::routing
