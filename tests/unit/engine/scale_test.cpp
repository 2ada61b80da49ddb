// 500 routers (a ring plus random chords, fixed seed) on the simulated clock:
// cold start, a router's death, its restart with a new instance.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "routing/engine.hpp"
#include "simulator.hpp"

namespace vane::routing {
namespace {

using sim::Network;
using sim::Reference;

std::string name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "R%03d", i);
  return buf;
}

struct Topology {
  struct Edge {
    int a, b;
    std::uint32_t cost_a, cost_b;
  };
  std::vector<Edge> edges;
};

// A ring plus `chords` random chords; costs 1..3 on each side (ties are
// common, so tie-breaking is exercised).
Topology ringWithChords(int n, int chords, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> node(0, n - 1);
  std::uniform_int_distribution<std::uint32_t> cost(1, 3);
  Topology t;
  std::set<std::pair<int, int>> seen;
  const auto add = [&](int a, int b) {
    if (a == b || !seen.insert({std::min(a, b), std::max(a, b)}).second) return false;
    t.edges.push_back({a, b, cost(rng), cost(rng)});
    return true;
  };
  for (int i = 0; i < n; ++i) add(i, (i + 1) % n);
  for (int added = 0; added < chords;) added += add(node(rng), node(rng)) ? 1 : 0;
  return t;
}

constexpr int kVictim = 123;

// Routers with a local address: every tenth, and the victim.
bool hasAddress(int i) {
  return i % 10 == 0 || i == kVictim;
}

// `addresses`: how many routers have an address (each sees all the others').
void expectConsistent(Network& net, std::size_t routers, std::size_t addresses) {
  Reference ref(net);
  std::vector<std::vector<std::uint64_t>> all(net.size());
  for (std::size_t r = 0; r < net.size(); ++r) {
    if (net.router(static_cast<int>(r)).alive()) all[r] = ref.distances(static_cast<int>(r));
  }
  int failures = 0;
  for (std::size_t r = 0; r < net.size() && failures < 5; ++r) {
    auto& router = net.router(static_cast<int>(r));
    if (!router.alive()) continue;
    const std::string problem = ref.check(static_cast<int>(r), &all);
    EXPECT_EQ(problem, "");
    EXPECT_EQ(router.reportedPaths().size(), routers - 1) << router.id();
    // Every other router's one address, reported against it.
    EXPECT_EQ(router.addresses().size(), addresses - (hasAddress(static_cast<int>(r)) ? 1 : 0))
        << router.id();
    EXPECT_EQ(router.addressErrors(), 0u) << router.id();
    if (!problem.empty() || router.reportedPaths().size() != routers - 1) ++failures;
  }
}

TEST(EngineScale, FiveHundredRouters) {
  constexpr int kRouters = 500;
  constexpr std::size_t kWithAddress = kRouters / 10 + 1;
  Network net;
  for (int i = 0; i < kRouters; ++i) {
    EngineConfig cfg;
    cfg.id = name(i);
    net.add(cfg);
    if (!hasAddress(i)) continue;
    net.router(i).engine().localAddress("addr/" + name(i), true);
    net.router(i).engine().flush(0);
  }
  // Average degree 2.8: flooding moves every record over every link, and
  // this must run quickly under sanitizers. bench/routing_bench.cpp uses
  // average degree 4.
  const Topology topo = ringWithChords(kRouters, 200, 42);
  for (const auto& e : topo.edges) net.connect(e.a, e.b, e.cost_a, e.cost_b);
  ASSERT_TRUE(net.runUntilQuiet());
  std::printf("cold start: %llu messages, %lld ms simulated\n",
              static_cast<unsigned long long>(net.delivered()), static_cast<long long>(net.now()));
  std::printf(
      "cold start: %llu signatures verified by the routers (%.1f per router), %llu distinct\n",
      static_cast<unsigned long long>(net.verifyCalls()),
      static_cast<double>(net.verifyCalls()) / kRouters,
      static_cast<unsigned long long>(net.verifications()));
  expectConsistent(net, kRouters, kWithAddress);
  // The default limits never bind in a network this size.
  for (int i = 0; i < kRouters; ++i) {
    const EngineStats& s = net.router(i).engine().stats();
    EXPECT_EQ(s.deferred_messages + s.router_limit_drops + s.address_limit_drops +
                  s.router_address_limit_drops + s.bad_signatures + s.id_conflicts,
              0u)
        << name(i);
  }
  for (int i = 0; i < kRouters; ++i) {
    EXPECT_EQ(net.router(i).engine().knownRouters(), static_cast<std::size_t>(kRouters));
  }

  // A router dies; everyone reroutes and forgets its address.
  net.kill(kVictim);
  ASSERT_TRUE(net.runUntilQuiet());
  expectConsistent(net, kRouters - 1, kWithAddress - 1);
  EXPECT_EQ(net.router(0).addresses().count({"addr/" + name(kVictim), name(kVictim)}), 0u);

  // It restarts (a larger instance) with a different address and rejoins.
  net.router(kVictim).restart(2);
  net.router(kVictim).engine().localAddress("addr/" + name(kVictim), true);
  net.router(kVictim).engine().flush(net.now());
  net.router(kVictim).engine().localAddress("addr/" + name(kVictim), false);
  net.router(kVictim).engine().localAddress("addr2/" + name(kVictim), true);
  net.router(kVictim).engine().flush(net.now());
  for (const auto& e : topo.edges) {
    if (e.a == kVictim || e.b == kVictim) net.connect(e.a, e.b, e.cost_a, e.cost_b);
  }
  ASSERT_TRUE(net.runUntilQuiet());
  expectConsistent(net, kRouters, kWithAddress);
  for (int i = 0; i < kRouters; ++i) {
    if (i == kVictim) continue;
    EXPECT_EQ(net.router(i).engine().knownRouters(), static_cast<std::size_t>(kRouters));
    const auto& seen = net.router(i).addresses();
    EXPECT_EQ(seen.count({"addr2/" + name(kVictim), name(kVictim)}), 1u) << i;
    EXPECT_EQ(seen.count({"addr/" + name(kVictim), name(kVictim)}), 0u) << i;
  }
  // One computation on the converged graph is fast (a generous bound: this
  // may run under sanitizers on a loaded machine).
  EXPECT_LT(net.router(0).engine().stats().last_path_computation_us, 50000u);
}

}  // namespace
}  // namespace vane::routing
