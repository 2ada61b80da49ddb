// The routing core: the single owner of the router's routing state — the
// address table (local consumers and the routers elsewhere that have
// consumers), the routing protocol engine, and the neighbours' links.
//
// Workers report consumers (egress links) as they attach and detach, and
// inter-router connections as they come and go; the core records them, runs
// the protocol (routing::Engine) and publishes every change to each worker
// loop's ForwardingTable replica: address deltas, and an immutable PathTable
// snapshot whenever paths change. Forwarding reads only the replica, so no
// delivery ever waits on the core.
//
// IMPORTANT: everything below `private:` is touched only on the core loop.
// Public methods are thread-safe (they post to the core loop) unless marked
// otherwise; those marked "core loop only" assert it in debug builds.
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"
#include "routing/address_policy.hpp"
#include "routing/engine.hpp"

namespace vane::routing {

// A connection to a neighbouring router, as the core sees it. Implemented by
// the AMQP layer; every call happens on loop().
class NeighborLink {
 public:
  virtual ~NeighborLink() = default;
  virtual core::EventLoop& loop() = 0;
  // Sends one routing-protocol message (JSON text).
  virtual void sendControl(std::string message) = 0;
  // Closes the connection with an AMQP error.
  virtual void close(const std::string& condition, const std::string& reason) = 0;
};

struct NeighborInfo {
  NeighborId id = 0;
  std::string peer_id;              // the neighbour's router id
  std::uint64_t peer_instance = 0;  // its run (0: not announced)
  NeighborRole role = NeighborRole::kInterior;
  std::uint32_t cost = 1;  // our side's configured cost
  std::weak_ptr<NeighborLink> link;
  // The data link towards the neighbour, as a forwarding target.
  std::shared_ptr<forwarding::Consumer> data;
};

class RoutingCore : private EngineOutput {
 public:
  struct Replica {
    core::EventLoop* loop;
    forwarding::ForwardingTable* table;  // touched only on *loop
  };

  RoutingCore(core::EventLoop& loop, std::string router_id,
              std::shared_ptr<const AddressPolicy> policy);
  ~RoutingCore() override;

  // Set once, before the core loop and the replicas' loops run.
  void setReplicas(std::vector<Replica> replicas);
  // Takes part in the router network with this protocol configuration. Call
  // once before start(), from the thread that builds the router.
  void enableNetwork(const EngineConfig& cfg);
  // Starts the protocol timers (core loop must be running). Thread-safe.
  void start();
  // Stops the timers; call before the core loop stops. Thread-safe.
  void stop();

  const std::string& routerId() const { return router_id_; }

  // Replaces the address rules (run time changes): new lookups use them at
  // once, and every replica re-classifies the addresses it has. Core loop
  // only (the API's address rules run there).
  void setPolicy(std::shared_ptr<const AddressPolicy> policy);

  // The current policy: callable from any thread.
  config::Distribution distributionFor(std::string_view address) const {
    return policy_.load(std::memory_order_acquire)->lookup(address);
  }

  std::uint64_t nextConsumerId() { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  NeighborId nextNeighborId() { return next_neighbor_.fetch_add(1, std::memory_order_relaxed); }

  // A network-unique, unguessable address for a dynamic receiver:
  // "_vane/temp/<router>/<32 hex digits>". Thread-safe.
  std::string newDynamicAddress();

  // Adds a consumer; `done` is posted to `reply_loop` once every replica has
  // it, so a consumer is routable from every connection before its attach is
  // answered.
  void addConsumer(std::string address, std::shared_ptr<forwarding::Consumer> consumer,
                   core::EventLoop& reply_loop, std::function<void()> done);
  void removeConsumer(std::string address, std::uint64_t consumer_id);

  // Inter-router connections. neighborReady: the connection's control and
  // data links are up. neighborGone: the connection is closed (safe to call
  // for a neighbour that never became ready). controlReceived: a message
  // from the neighbour's control link.
  void neighborReady(NeighborInfo info);
  void neighborGone(NeighborId id);
  void controlReceived(NeighborId id, std::string message);

  // Core loop only: number of addresses with local consumers.
  std::size_t addressCount() const {
    VANE_ASSERT_THREAD(loop_);
    return local_.size();
  }

  // Snapshot for logs/management: thread-safe, answers via `done` on the
  // core loop.
  struct Summary {
    std::vector<Path> paths;
    std::vector<std::string> neighbors;
    std::size_t known_routers = 0;
    std::size_t remote_addresses = 0;
  };
  void summary(std::function<void(Summary)> done);

  // What management shows of the network, as this router sees it. Core
  // loop only.
  struct View {
    struct Route {
      std::string router;
      std::string next_hop;  // the neighbour's router id
      std::uint32_t cost = 0;
    };
    struct Link {
      std::string peer;
      NeighborRole role = NeighborRole::kInterior;
      std::uint32_t cost = 0;
      bool up = false;  // accepted by the routing protocol
    };
    struct Address {
      std::string address;
      config::Distribution distribution = config::Distribution::kBalanced;
      std::size_t local_consumers = 0;
      std::vector<std::string> remote_routers;  // sorted
    };
    std::vector<Route> routes;       // sorted by router
    std::vector<Link> links;         // sorted by peer
    std::vector<Address> addresses;  // sorted by address
  };
  View view() const;

  // Core loop only: the protocol engine's counters (null without a
  // network), and whether `id` is taken in the network as this router sees
  // it (this router, a neighbour, or a router whose records are held).
  const EngineStats* engineStats() const {
    VANE_ASSERT_THREAD(loop_);
    return engine_ ? &engine_->stats() : nullptr;
  }
  bool routerIdInUse(const std::string& id) const {
    VANE_ASSERT_THREAD(loop_);
    return id == router_id_ || (engine_ && engine_->hasRouter(id));
  }

 private:
  // EngineOutput (core loop)
  void send(NeighborId to, std::string message) override;
  void drop(NeighborId n, std::string condition, std::string reason) override;
  void pathsChanged(const std::vector<Path>& paths) override;
  void remoteAddress(const std::string& address, const std::string& router, bool present) override;
  void log(Severity severity, const std::string& message) override;

  Millis now() const;
  void scheduleTick();
  void scheduleFlush();
  void publishPaths();

  struct Neighbor {
    NeighborInfo info;
    bool up = false;  // accepted by the engine
  };
  struct RemoteKey {
    std::string address;
    std::string router;
    bool operator==(const RemoteKey&) const = default;
  };
  struct RemoteKeyHash {
    std::size_t operator()(const RemoteKey& k) const {
      return std::hash<std::string>{}(k.address) * 31 + std::hash<std::string>{}(k.router);
    }
  };

  core::EventLoop& loop_;
  const std::string router_id_;
  std::atomic<std::shared_ptr<const AddressPolicy>> policy_;
  std::vector<Replica> replicas_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<NeighborId> next_neighbor_{1};
  // address -> ids of local consumers
  std::unordered_map<std::string, std::vector<std::uint64_t>> local_;
  std::unordered_set<RemoteKey, RemoteKeyHash> remote_;
  std::unordered_map<NeighborId, Neighbor> neighbors_;
  std::vector<Path> paths_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  bool flush_pending_ = false;
  bool stopped_ = false;
};

}  // namespace vane::routing
