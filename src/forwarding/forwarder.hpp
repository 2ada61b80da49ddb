// The per-loop forwarding table.
//
// Each event loop holds its own ForwardingTable, a replica of the routing
// core's address table that the core updates by posting deltas. Forwarding a
// delivery reads only the local replica: no lock, no shared map.
// ForwardingTable::route makes every forwarding decision.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "core/event_loop.hpp"
#include "forwarding/transfer.hpp"

namespace vane::forwarding {

// An ingress link waiting for its address to have consumers (credit is
// withheld while there are none). Lives on the table's loop.
class CreditListener {
 public:
  virtual ~CreditListener() = default;
  virtual void onConsumersChanged(bool available) = 0;
};

struct AddressEntry {
  config::Distribution distribution = config::Distribution::kBalanced;
  std::vector<std::shared_ptr<Consumer>> consumers;  // local
  std::vector<std::shared_ptr<RemoteDest>> remotes;  // other routers with consumers
  std::vector<CreditListener*> listeners;
  std::uint32_t next = 0;  // round-robin position

  bool available() const { return !consumers.empty() || !remotes.empty(); }
};

// Deliveries through one loop for one address (loop-local, no atomics).
struct AddressCounters {
  std::uint64_t in = 0;        // arrived and routed (or dropped)
  std::uint64_t out = 0;       // copies forwarded
  std::uint64_t accepted = 0;  // outcomes returned to the sender
  std::uint64_t released = 0;
  std::uint64_t rejected = 0;
  std::uint64_t modified = 0;
  std::uint64_t no_route = 0;  // dropped: no consumer anywhere
};

// How this router reaches another router.
struct NextHop {
  enum class Kind : std::uint8_t {
    kInterior,   // an interior router, through the link-state path
    kEdgeChild,  // an edge router attached to this (interior) router
    kUplink,     // the interior router this edge router is attached to
  };
  // The data link to the first router on the path (a Consumer whose sink is
  // the inter-router link's egress).
  std::shared_ptr<Consumer> link;
  std::uint32_t cost = 0;  // path cost
  Kind kind = Kind::kInterior;
};

// An immutable snapshot of the routing core's path table, shared by every
// loop: each delivery's next hop is one hash lookup.
struct PathTable {
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::string self;  // this router's id
  std::unordered_map<std::string, NextHop, Hash, std::equal_to<>> hops;

  const NextHop* find(std::string_view router) const {
    auto it = hops.find(router);
    return it == hops.end() || !it->second.link ? nullptr : &it->second;
  }
};

// The routing part of a delivery crossing inter-router links (carried ahead
// of the message; see docs/design/router-protocol.md).
struct RouteHeader {
  std::string address;
  // Anycast: the router the delivery is for; empty = decide at the receiver.
  std::string dest;
  // Multicast: the routers whose consumers this copy is for (the sender
  // partitions its set among next hops, so every router is in one copy
  // only). has_dests false = decide at the receiver.
  bool has_dests = false;
  std::vector<std::string> dests;
  std::uint32_t hops = 0;  // routers crossed so far
  std::string origin;      // the router the delivery entered the network at
  // The delivery is pre-settled (at-most-once). Carried in the header
  // because a multi-frame transfer's settled flag is only reliable on its
  // last frame.
  bool presettled = false;
};

// Where a delivery came from, as far as routing cares.
enum class Arrival : std::uint8_t {
  kClient,     // an application link on this router
  kInterior,   // an inter-router link
  kEdgeChild,  // (interior) from one of our edge routers
  kUplink,     // (edge) from our interior router
};

struct RouteRequest {
  std::string_view address;
  const RouteHeader* header = nullptr;  // null for deliveries from clients
  Arrival arrival = Arrival::kClient;
  std::string_view arrival_peer;  // router id of the link's peer, if a router
  std::string_view origin;        // for the header of copies to other routers
};

// One copy to send.
struct Target {
  std::shared_ptr<Consumer> to;
  // Counter this copy adds to while unsettled (balanced); null = none.
  std::shared_ptr<std::atomic<std::int32_t>> load;
  bool remote = false;  // `header` is to be sent ahead of the message
  RouteHeader header;
  std::uint64_t flow = 0;  // a flow's reply address: Transfer::flow
  FlowToken flow_token{};  // and its token: Transfer::flow_token
};

enum class RouteStatus : std::uint8_t { kRouted, kNoRoute, kHopLimit };

struct RouteResult {
  RouteStatus status = RouteStatus::kNoRoute;
  bool multicast = false;
};

// Prefix of dynamic (reply) addresses: "_vane/temp/<router id>/...". A router
// that has no entry for such an address sends it towards the router named in
// it, so replies work before the address has spread through the network.
inline constexpr std::string_view kTempPrefix = "_vane/temp/";

// The reply address of one TCP flow (or any stream endpoint) on this router:
// "_vane/temp/<router>/flow/<loop index>/<flow id>/<token: 32 hex digits>".
// Deliveries for it go to the flow consumer of that loop, which hands them to
// the flow by id if the token is the flow's own (flow ids are sequential; the
// token is what makes the address unguessable). An edge router is known only
// to its own interior router, so its flows' addresses lead through that
// router: "_vane/temp/<uplink>/via/<edge>/flow/<loop>/<id>/<token>" (`uplink`
// empty: an interior router).
std::string flowAddress(std::string_view router, std::string_view uplink, std::size_t loop,
                        std::uint64_t flow, const FlowToken& token);

// Routers a delivery may cross before it is given up (a loop while routes
// reconverge).
inline constexpr std::uint32_t kMaxHops = 32;

// balanced and closest choose one destination; multicast, every one.
bool isAnycast(config::Distribution d);

// Lives on one event loop, a worker's: the routing core posts its deltas
// there, and the loop's connections and flows route through it. Every
// method runs on that loop, but for the wiring done before the loop runs
// (initPaths, setFlowConsumers); debug builds assert it. A table made
// without a loop (unit tests, fuzzers) is not checked.
class ForwardingTable {
 public:
  ForwardingTable() = default;
  explicit ForwardingTable(core::EventLoop& loop) : loop_(&loop) {}

  AddressEntry* find(std::string_view address);

  // Delta application (from the routing core).
  void addConsumer(const std::string& address, config::Distribution d,
                   std::shared_ptr<Consumer> consumer);
  void removeConsumer(const std::string& address, std::uint64_t consumer_id);
  void addRemote(const std::string& address, config::Distribution d,
                 std::shared_ptr<RemoteDest> remote);
  void removeRemote(const std::string& address, const std::string& router);
  void setPaths(std::shared_ptr<const PathTable> paths) {
    checkThread();
    paths_ = std::move(paths);
  }
  // The address rules changed: every entry takes the distribution `lookup`
  // gives its address (listeners are told if availability changes; it does
  // not).
  void reclassify(const std::function<config::Distribution(std::string_view)>& lookup) {
    checkThread();
    for (auto& [address, e] : entries_) e.distribution = lookup(address);
  }
  // Wiring, before the table's loop runs: the first path table, and one
  // consumer per loop that takes the deliveries for flow addresses.
  void initPaths(std::shared_ptr<const PathTable> paths) { paths_ = std::move(paths); }
  void setFlowConsumers(std::vector<std::shared_ptr<Consumer>> c) {
    flow_consumers_ = std::move(c);
  }
  const PathTable* paths() const {
    checkThread();
    return paths_.get();
  }
  // The reply address of flow `flow` of loop `loop` here (see flowAddress),
  // through the current uplink on an edge router.
  std::string flowAddressHere(std::size_t loop, std::uint64_t flow, const FlowToken& token) const;

  // Chooses where one delivery goes: local consumers and/or copies for
  // other routers (with the header to send them). `out` is cleared first.
  RouteResult route(const RouteRequest& rq, std::vector<Target>& out);

  // Ingress links bound to an address register to learn when consumers come
  // and go. `d` is used if the entry does not exist yet.
  AddressEntry& addListener(const std::string& address, config::Distribution d, CreditListener* l);
  void removeListener(const std::string& address, CreditListener* l);

  std::size_t size() const {
    checkThread();
    return entries_.size();
  }

 private:
  // Debug builds: aborts unless on the table's loop (when it has one).
  void checkThread() const {
#ifndef NDEBUG
    if (loop_ != nullptr) VANE_ASSERT_THREAD(*loop_);
#endif
  }

  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

 public:
  using CounterMap = std::unordered_map<std::string, AddressCounters, Hash, std::equal_to<>>;
  // At most this many addresses are counted one by one; the rest together
  // under "" (reply addresses and the router's own "_vane/" addresses are
  // not counted).
  static constexpr std::size_t kMaxCountedAddresses = 10000;
  // The counters of `address` (stable pointer), or null if it is not counted.
  AddressCounters* counters(std::string_view address);
  const CounterMap& allCounters() const {
    checkThread();
    return counters_;
  }

 private:
  void eraseIfUnused(
      std::unordered_map<std::string, AddressEntry, Hash, std::equal_to<>>::iterator it);
  void notify(AddressEntry& e, bool was_available);
  RouteStatus routeTo(std::string_view router, const RouteRequest& rq, std::uint32_t hops,
                      std::vector<Target>& out);
  RouteStatus routeAnycast(AddressEntry& e, const RouteRequest& rq, std::uint32_t hops,
                           std::vector<Target>& out);
  RouteStatus routeMulticast(AddressEntry& e, const RouteRequest& rq, std::uint32_t hops,
                             std::vector<Target>& out);

  core::EventLoop* const loop_ = nullptr;
  std::unordered_map<std::string, AddressEntry, Hash, std::equal_to<>> entries_;
  std::shared_ptr<const PathTable> paths_ = std::make_shared<const PathTable>();
  std::vector<std::shared_ptr<Consumer>> flow_consumers_;
  CounterMap counters_;
  struct Candidate {
    std::int32_t local = -1;   // index in consumers
    std::int32_t remote = -1;  // index in remotes
    const NextHop* hop = nullptr;
    std::int64_t score = 0;
  };
  std::vector<Candidate> scratch_;
};

}  // namespace vane::forwarding
