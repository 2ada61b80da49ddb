// The routing engine at scale, on the simulated network of the engine tests
// (tests/unit/engine/simulator.hpp: 1 ms per hop, ticks every 50 ms).
//
//   vane-routing-bench [ROUTERS...]      (default: 500 1000)
//
// For each size: a ring plus as many random chords as routers (average
// degree 4, costs 1..3, fixed seed), every router with one address. Prints
// one line per measurement:
//   routers=N cold_start_messages=... cold_start_sim_ms=... cold_start_wall_ms=...
//   routers=N recompute_median_us=... recompute_p99_us=... recompute_max_us=...
//     (over 50 link changes: the last computation of every router that
//     recomputed; 500 engines in one process, so mostly with cold caches)
//   routers=N kill_messages=... kill_sim_ms=...
// Wall times depend on the machine and on the build type: use a Release build.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "routing/engine.hpp"
#include "simulator.hpp"

namespace {

using namespace vane::routing;
using sim::Network;

struct Edge {
  int a, b;
  std::uint32_t cost_a, cost_b;
};

std::vector<Edge> topology(int n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> node(0, n - 1);
  std::uniform_int_distribution<std::uint32_t> cost(1, 3);
  std::vector<Edge> edges;
  std::set<std::pair<int, int>> seen;
  const auto add = [&](int a, int b) {
    if (a == b || !seen.insert({std::min(a, b), std::max(a, b)}).second) return false;
    edges.push_back({a, b, cost(rng), cost(rng)});
    return true;
  };
  for (int i = 0; i < n; ++i) add(i, (i + 1) % n);
  for (int added = 0; added < n;) added += add(node(rng), node(rng)) ? 1 : 0;
  return edges;
}

double wallMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

void run(int n) {
  Network net;
  for (int i = 0; i < n; ++i) {
    EngineConfig cfg;
    cfg.id = "R" + std::to_string(i);
    net.add(cfg);
    net.router(i).engine().localAddress("addr/" + cfg.id, true);
    net.router(i).engine().flush(0);
  }
  const auto edges = topology(n, 7);

  // Cold start: every link comes up at t=0.
  auto start = std::chrono::steady_clock::now();
  std::vector<int> conn(edges.size());
  for (std::size_t i = 0; i < edges.size(); ++i) {
    const Edge& e = edges[i];
    conn[i] = net.connect(e.a, e.b, e.cost_a, e.cost_b);
  }
  if (!net.runUntilQuiet()) std::printf("routers=%d error=no-convergence\n", n);
  std::size_t complete = 0;
  for (int i = 0; i < n; ++i) {
    complete += net.router(i).reportedPaths().size() == static_cast<std::size_t>(n - 1) &&
                net.router(i).addresses().size() == static_cast<std::size_t>(n - 1);
  }
  std::uint64_t total_computations = 0;
  for (int i = 0; i < n; ++i)
    total_computations += net.router(i).engine().stats().path_computations;
  std::printf(
      "routers=%d links=%zu cold_start_messages=%llu cold_start_bytes=%llu "
      "cold_start_sim_ms=%lld cold_start_wall_ms=%.0f path_computations=%llu "
      "converged_routers=%zu\n",
      n, edges.size(), static_cast<unsigned long long>(net.delivered()),
      static_cast<unsigned long long>(net.deliveredBytes()), static_cast<long long>(net.now()),
      wallMs(start), static_cast<unsigned long long>(total_computations), complete);
  std::fflush(stdout);

  // Link changes: a random link goes down, the network settles, it comes
  // back. Samples: the last path computation of every router that
  // recomputed for the change.
  std::mt19937 rng(11);
  std::vector<std::uint64_t> samples;
  std::vector<std::uint64_t> computations(n);
  std::size_t recomputing = 0;
  const auto snapshot = [&] {
    for (int i = 0; i < n; ++i) computations[i] = net.router(i).engine().stats().path_computations;
  };
  const auto collect = [&] {
    for (int i = 0; i < n; ++i) {
      const auto& s = net.router(i).engine().stats();
      if (s.path_computations != computations[i]) {
        samples.push_back(s.last_path_computation_us);
        ++recomputing;
      }
    }
  };
  constexpr int kChanges = 50;
  for (int change = 0; change < kChanges / 2; ++change) {
    const std::size_t i = std::uniform_int_distribution<std::size_t>(0, edges.size() - 1)(rng);
    snapshot();
    net.disconnect(conn[i]);
    net.runUntilQuiet();
    collect();
    snapshot();
    conn[i] = net.connect(edges[i].a, edges[i].b, edges[i].cost_a, edges[i].cost_b);
    net.runUntilQuiet();
    collect();
  }
  std::sort(samples.begin(), samples.end());
  if (!samples.empty()) {
    std::printf(
        "routers=%d link_changes=%d recompute_median_us=%llu recompute_p99_us=%llu "
        "recompute_max_us=%llu routers_recomputing_per_change=%.0f\n",
        n, kChanges, static_cast<unsigned long long>(samples[samples.size() / 2]),
        static_cast<unsigned long long>(samples[samples.size() * 99 / 100]),
        static_cast<unsigned long long>(samples.back()),
        static_cast<double>(recomputing) / kChanges);
  }

  // One router dies: messages until the network is quiet again.
  const auto before = net.delivered();
  const auto t0 = net.now();
  start = std::chrono::steady_clock::now();
  net.kill(n / 3);
  net.runUntilQuiet();
  std::printf("routers=%d kill_messages=%llu kill_sim_ms=%lld kill_wall_ms=%.0f\n", n,
              static_cast<unsigned long long>(net.delivered() - before),
              static_cast<long long>(net.now() - t0), wallMs(start));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoi(argv[i]));
  if (sizes.empty()) sizes = {500, 1000};
  for (const int n : sizes) {
    if (n < 3) {
      std::fprintf(stderr, "usage: vane-routing-bench [ROUTERS...] (each >= 3)\n");
      return 2;
    }
    run(n);
  }
  return 0;
}
