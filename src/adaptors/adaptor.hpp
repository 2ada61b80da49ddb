// The adaptor layer: what every protocol adaptor (TCP now; HTTP, UDP next)
// is made of, and what the router gives it.
//
// An adaptor is a set of entity kinds (a listener kind and a connector kind,
// each a configuration section and a management API path). The router
// (server::Router) knows adaptors only through the registry
// (adaptors/registry.hpp) and these interfaces: it makes the entities of
// every kind from the configuration, starts, stops and reloads them by
// name, lists them for the management API and metrics, and implements Host
// for them. Its configuration sections are its own too (config/section.hpp,
// adaptors/sections.hpp). So adding an adaptor is adding its folder and one
// line each in registry.cpp and sections.cpp; the router, the AMQP
// connection, management and config stay as they are.
// docs/design/adaptors.md describes the layer.
//
// Threads: entities and Host's methods live on the router's core loop
// (asserted by the router in debug builds); an Accept runs on a worker loop,
// as do the flows and sinks an entity makes there.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adaptors/flow.hpp"
#include "config/config.hpp"
#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"

namespace vane::adaptors {

struct Adaptor;
struct EntityKind;

// A listening socket that the router opened for an adaptor's listener.
class Acceptor {
 public:
  virtual ~Acceptor() = default;
  // Binds and listens: "" or why not (a port in use). Before start().
  virtual std::string open() = 0;
  virtual void start() = 0;
  // Stops accepting. The host destroys the acceptor once its cancelled
  // accept has run.
  virtual void close() = 0;
  virtual std::uint16_t port() const = 0;  // bound, once open
};

// What the router gives adaptors. Core loop.
class Host {
 public:
  virtual ~Host() = default;
  virtual core::EventLoop& coreLoop() = 0;
  virtual std::size_t workerLoops() const = 0;
  // The flows of one worker loop, of every adaptor.
  virtual FlowTable& flowTable(std::size_t worker) = 0;

  struct ListenSpec {
    std::string name;
    std::string host;
    std::uint16_t port = 0;
    std::string kind;    // log prefix: "tcp listener"
    std::string detail;  // log suffix in parentheses: "address db"
  };
  // Runs on a worker's loop with a socket the acceptor took.
  using Accept = std::function<void(FlowTable&, boost::asio::ip::tcp::socket)>;
  // A listening socket whose connections are admitted under
  // router.max_connections (refusals counted and logged by the router) and
  // handed to the workers in turn.
  virtual std::unique_ptr<Acceptor> listen(ListenSpec spec, Accept accept) = 0;
  // Destroys `acceptor` (closed) once its pending handlers have run.
  virtual void retire(std::unique_ptr<Acceptor> acceptor) = 0;

  // Makes `address` reachable through `consumers` (one per worker, in
  // worker order) here and, through the routing protocol, everywhere; and
  // takes them away again.
  virtual void publish(const std::string& address,
                       const std::vector<std::shared_ptr<forwarding::Consumer>>& consumers) = 0;
  virtual void unpublish(const std::string& address,
                         const std::vector<std::shared_ptr<forwarding::Consumer>>& consumers) = 0;
  virtual std::uint64_t nextConsumerId() = 0;

  // TLS for an adaptor's listener (kServer: the profile's certificate, no
  // client certificate asked for, ALPN http/1.1 chosen when offered) or
  // connector (kClient: the server verified with the profile's ca, the
  // profile's certificate presented if asked). `out` gives the current
  // context (a reload that re-reads certificates replaces it for new
  // connections). Returns "" or why not.
  enum class TlsRole { kServer, kClient };
  using TlsContext = std::function<std::shared_ptr<boost::asio::ssl::context>()>;
  virtual std::string tls(const std::string& profile, TlsRole role, TlsContext& out) = 0;
};

// One configured listener or connector of an adaptor. Made by its kind from
// a configuration entry; the router calls open() (listeners bind) and
// start(), and stop() when the entry is removed or changed: flows already
// open run to their end.
class Entity {
 public:
  Entity(const EntityKind& kind, std::string name, std::string key)
      : kind_(kind), name_(std::move(name)), key_(std::move(key)) {}
  virtual ~Entity() = default;
  Entity(const Entity&) = delete;
  Entity& operator=(const Entity&) = delete;

  const EntityKind& kind() const { return kind_; }
  const std::string& name() const { return name_; }
  // The entry's canonical text: a reload keeps an entity whose key did not
  // change and replaces the others.
  const std::string& key() const { return key_; }

  virtual std::string open() { return {}; }
  virtual void start() = 0;
  virtual void stop() = 0;
  // Router shutdown: stop taking new connections (the router then closes
  // every flow).
  virtual void shutdown() {}

  // What the management API shows of it (GET <path>, GET <path>/<name>).
  virtual nlohmann::json info() const = 0;
  // Its service address (without the adaptor's prefix) and counters, for
  // the metrics.
  virtual const std::string& address() const = 0;
  virtual const FlowCounters& counters() const = 0;
  // Client connections it holds open (router.max_connections counts them
  // for kinds that accept): its open flows unless a flow is not a
  // connection (HTTP: a request).
  virtual std::int64_t connectionsOpen() const {
    return counters().flows_active.load(std::memory_order_relaxed);
  }

 private:
  const EntityKind& kind_;
  const std::string name_;
  const std::string key_;
};

// A kind of entity: one configuration section, one management API path.
struct EntityKind {
  const Adaptor* adaptor = nullptr;
  std::string_view what;     // in messages: "tcp listener"
  std::string_view section;  // configuration section: "tcp_listeners"
  std::string_view path;     // management API: "tcp-listeners" (/api/v1/tcp-listeners)
  std::string_view role;     // the `kind` label of its metrics: "listener" or "connector"
  // Its flows take connections on this router (router.max_connections
  // counts them).
  bool accepts = false;
  // The entries of this kind in `cfg`, as {name, key}.
  std::vector<std::pair<std::string, std::string>> (*entries)(const config::Config& cfg) = nullptr;
  // Makes the entity for the entry `name` of `cfg`.
  std::unique_ptr<Entity> (*make)(Host& host, const config::Config& cfg,
                                  const std::string& name) = nullptr;
  // Writes the entries of `entities` (all of this kind) as cfg's section.
  void (*store)(config::Config& cfg, const std::vector<const Entity*>& entities) = nullptr;
};

// Where an adaptor writes the metric families of its own (beyond the flow
// counters every adaptor has), in the Prometheus text format.
class MetricWriter {
 public:
  virtual ~MetricWriter() = default;
  virtual void family(const std::string& name, const char* type, const std::string& help) = 0;
  // The entity's kind, name and address are added as labels.
  virtual void sample(const std::string& name, const Entity& e, double value,
                      const std::vector<std::pair<std::string, std::string>>& labels = {}) = 0;
};

// One adaptor: its name (the `kind` of its addresses in /api/v1/addresses,
// its metrics' prefix vane_<name>_), the prefix of its service addresses
// and its kinds.
struct Adaptor {
  std::string_view name;                       // "tcp"
  std::string_view display;                    // "TCP", in texts
  std::string_view service_prefix;             // "_vane/tcp/"
  std::string_view flow_noun = "connections";  // what one flow is, in texts
  std::vector<const EntityKind*> kinds;
  // Writes its own metric families over `entities` (all of its kinds), or
  // nothing.
  void (*metrics)(MetricWriter& out, const std::vector<const Entity*>& entities) = nullptr;

  std::string serviceAddress(std::string_view address) const {
    std::string s(service_prefix);
    s.append(address);
    return s;
  }
};

}  // namespace vane::adaptors
