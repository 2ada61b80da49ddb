// The routing protocol engine: neighbour liveness, link-state flooding,
// least-cost paths (Dijkstra) and the propagation of which routers have
// consumers for which addresses. docs/design/router-protocol.md specifies the
// messages it exchanges.
//
// The engine is pure logic: no sockets, no threads, no clock of its own.
// Time is passed in (`now`, milliseconds on any monotonic scale), messages
// arrive as bytes through receive(), and everything it wants done leaves
// through EngineOutput. So a test can run hundreds of engines in one process
// on a simulated clock.
//
// IMPORTANT: not thread-safe. The router runs one Engine on its core loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vane::routing {

namespace signing {
class KeyPair;
}

using Millis = std::int64_t;
// Chosen by the caller, one per connection to a neighbour; never reused.
using NeighborId = std::uint64_t;

enum class NeighborRole : std::uint8_t {
  kInterior,  // an inter-router link between two interior routers
  kEdge,      // (on an interior router) an edge router attached to us
  kUplink,    // (on an edge router) the interior router we are attached to
};

struct EngineConfig {
  std::string id;
  // Identifies this run of the router: a restarted router has a larger one
  // (the router uses its start time in microseconds). Link state and address
  // records compare (instance, seq).
  std::uint64_t instance = 1;
  bool edge = false;  // router.mode: edge
  Millis hello_interval_ms = 1000;
  Millis dead_interval_ms = 3000;
  // Records of routers that are no longer reachable are kept this long (so
  // that a burst of updates in any order can still complete the graph), then
  // dropped. Their addresses stop being routable at once.
  Millis unreachable_max_age_ms = 30000;
  // This router's identity key: it signs the records and hellos it sends
  // (docs/design/trust-model.md). Null: a new key is generated.
  std::shared_ptr<const signing::KeyPair> key;
  // Verifies a signature (null: signing::verify). For simulations of many
  // engines in one process, which may share the work of verifying the same
  // record.
  std::function<bool(std::string_view key, std::string_view message, std::string_view sig)> verify;
  // Limits (docs/configuration.md). Routers with records held (this one not
  // counted): records about further routers are dropped. A link-state record
  // with more links than this is dropped too.
  std::size_t max_routers = 1000;
  // Addresses over all routers' address records, and in one router's: an
  // address record whose resulting set would exceed either is dropped whole
  // (a signed set cannot be applied in part).
  std::size_t max_addresses = 100000;
  std::size_t max_addresses_per_router = 50000;
  // Per neighbour: a token bucket of records (each link-state or address
  // record a token; a message without records one). Messages over the rate
  // wait, in order; a neighbour whose waiting messages owe more than the
  // burst is dropped with vane:resource-limit-exceeded.
  std::uint32_t max_updates_per_neighbor_per_second = 2000;
  std::uint32_t max_update_burst_per_neighbor = 20000;
};

// One entry of the path table: how to reach `router`.
struct Path {
  std::string router;
  NeighborId next_hop = 0;
  std::uint32_t cost = 0;  // total path cost
  bool operator==(const Path&) const = default;
};

// What the engine asks of its owner. Called synchronously from Engine
// methods; implementations must not call back into the engine.
class EngineOutput {
 public:
  virtual ~EngineOutput() = default;
  // Send one control message to a neighbour.
  virtual void send(NeighborId to, std::string message) = 0;
  // Drop the connection to a neighbour: silent too long, a duplicate router
  // id, or malformed control messages. `condition` is an AMQP error symbol
  // (e.g. "vane:duplicate-router-id"); `reason` is for humans. After this
  // the engine treats the neighbour as down (no neighborDown needed, though
  // one is harmless).
  virtual void drop(NeighborId n, std::string condition, std::string reason) = 0;
  // The complete path table changed: every reachable router (interior
  // routers; on an interior router also its attached edge routers; on an
  // edge router the interior router it is attached to), sorted by router id.
  // This router itself is not in it.
  virtual void pathsChanged(const std::vector<Path>& paths) = 0;
  // `router` now has (or no longer has) consumers for `address`, as far as
  // this router can use it. A router's addresses are only reported while the
  // router is in the path table; when it leaves, its addresses are reported
  // removed (before pathsChanged).
  virtual void remoteAddress(const std::string& address, const std::string& router,
                             bool present) = 0;
  // Something an operator should see: refused records and limits reached.
  // The engine rate-limits these itself (once per router id for an id
  // conflict, at most once per 10 s per limit).
  enum class Severity : std::uint8_t { kInfo, kWarning };
  virtual void log(Severity severity, const std::string& message) {
    (void)severity;
    (void)message;
  }
};

struct EngineStats {
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t malformed_messages = 0;
  std::uint64_t path_computations = 0;
  std::uint64_t last_path_computation_us = 0;
  // Well-formed messages the engine had no use for: anything but hello
  // before the first hello, messages that do not apply to the adjacency's
  // role, records about routers other than an edge peer itself.
  std::uint64_t ignored_messages = 0;
  // Records about this router's id from another instance with a larger
  // instance number: another router with the same id is in the network.
  std::uint64_t duplicate_id_records = 0;
  // Records and hellos with a missing or invalid signature (the neighbour
  // that sent one is dropped: an honest router verifies before re-flooding).
  std::uint64_t bad_signatures = 0;
  // Records and hellos for a router id that is bound to another key (trust
  // on first use): refused.
  std::uint64_t id_conflicts = 0;
  // Records dropped by the limits of EngineConfig.
  std::uint64_t router_limit_drops = 0;          // max_routers
  std::uint64_t address_limit_drops = 0;         // max_addresses
  std::uint64_t router_address_limit_drops = 0;  // max_addresses_per_router
  // Messages that waited for the neighbour's update rate, and neighbours
  // dropped for exceeding it for too long.
  std::uint64_t deferred_messages = 0;
  std::uint64_t rate_limit_drops = 0;
};

class Engine {
 public:
  Engine(EngineConfig cfg, EngineOutput& out);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A connection to a neighbour is ready to carry control messages.
  // `peer_id` is the id the peer gave when connecting; `cost` is the cost
  // configured on our side (the link's cost is the larger of both sides').
  // Returns a refusal (an AMQP error condition and a human reason) if the
  // neighbour must be refused, e.g. because `peer_id` is our own id or that
  // of a neighbour already up; the caller then closes the connection and no
  // neighborDown is needed.
  struct Refusal {
    std::string condition;
    std::string reason;
  };
  std::optional<Refusal> neighborUp(NeighborId n, const std::string& peer_id, NeighborRole role,
                                    std::uint32_t cost, Millis now);
  // The connection is gone. Unknown ids are ignored.
  void neighborDown(NeighborId n, Millis now);
  // A control message from a neighbour. Malformed input is counted and the
  // neighbour dropped (EngineOutput::drop); it never throws.
  void receive(NeighborId from, std::string_view message, Millis now);
  // Timers: hellos, dead neighbours, ageing. Call at least every
  // hello_interval_ms / 2; nextTick() says when something is due.
  // IMPORTANT: output and path computations are paced (at most one batch per
  // neighbour, and one computation, per millisecond); what a burst of calls
  // in the same millisecond leaves over is due one millisecond later. So
  // nextTick() can move earlier after any call: read it again after each.
  void tick(Millis now);
  Millis nextTick() const;

  // This router got its first local consumer for `address` (present) or
  // lost its last one. Changes are batched until flush().
  void localAddress(const std::string& address, bool present);
  // Advertises the batched local address changes.
  void flush(Millis now);

  // Introspection (tests, management).
  const std::string& id() const;
  std::vector<Path> paths() const;
  std::vector<std::string> neighbors() const;  // ids of neighbours that are up
  std::size_t knownRouters() const;            // link-state records held
  // Addresses over all address records held (this router's not counted).
  std::size_t knownAddresses() const;
  // Whether `id` is taken in the network as this router sees it: this
  // router, a neighbour, or a router whose records are held.
  bool hasRouter(const std::string& id) const;
  // This router's public key (32 raw bytes).
  const std::string& publicKey() const;
  const EngineStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vane::routing
