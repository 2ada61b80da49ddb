// The router side shared by the frames fuzz target and its corpus recorder:
// one event loop acting as both routing-core loop and worker loop, with
// limits far below the defaults so that inputs of a few KiB reach the
// multi-frame, flow-control and back-pressure paths. The corpus is recorded
// against the same settings the fuzzer runs with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "amqp/connection.hpp"
#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"
#include "routing/address_policy.hpp"
#include "routing/core.hpp"

namespace vane::fuzz {

inline amqp::ConnectionSettings fuzzSettings() {
  amqp::ConnectionSettings s;
  s.container_id = "vane-fuzz";
  s.max_frame_size = 4096;
  s.session_capacity = 32 * 1024;
  s.idle_timeout_ms = 16000;
  s.link_capacity = 8;
  s.inflight_limit = 8 * 1024;
  s.session_outgoing_limit = 4 * 1024;
  return s;
}

// Addresses starting "multicast" fan out, "closest" are closest, the rest
// balanced (the default).
inline std::shared_ptr<const routing::AddressPolicy> fuzzPolicy() {
  std::vector<config::AddressConfig> rules(2);
  rules[0].prefix = "multicast";
  rules[0].distribution = config::Distribution::kMulticast;
  rules[1].prefix = "closest";
  rules[1].distribution = config::Distribution::kClosest;
  return std::make_shared<const routing::AddressPolicy>(rules);
}

// What every connection of the one loop shares.
struct FuzzRouter {
  explicit FuzzRouter(const std::string& name) : loop(name) { core.setReplicas({{&loop, &table}}); }
  core::EventLoop loop;
  forwarding::ForwardingTable table;
  routing::RoutingCore core{loop, "fuzz-router", fuzzPolicy()};
  const amqp::ConnectionSettings settings = fuzzSettings();
  amqp::Stats stats;
  amqp::LoopContext ctx{loop, table, core, settings, stats};
};

}  // namespace vane::fuzz
