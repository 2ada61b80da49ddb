// What the management API needs of a router: its configuration, its
// entities and their counters, and the changes it can make at run time.
// server::Router implements it; management depends on this interface only,
// never on the server module (which is above it). Every member runs on the
// router's core loop unless it says otherwise; the `done` callbacks of the
// gathering calls run there too.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "adaptors/adaptor.hpp"
#include "amqp/connection.hpp"
#include "config/config.hpp"
#include "forwarding/forwarder.hpp"

namespace vane::amqp {
class AuthThrottle;
}
namespace vane::routing {
class RoutingCore;
}

namespace vane::management {

struct HttpCounters;
class Claims;

struct ListenerInfo {
  std::string name;
  std::string host;
  std::uint16_t port = 0;  // bound
  std::string kind;        // role: normal, inter-router, edge
  std::uint32_t cost = 0;
  std::shared_ptr<const amqp::ListenerCounters> counters;
  std::string tls_profile;
  std::vector<std::string> sasl_mechanisms;
  bool verify_router_id = false;
  bool insecure = false;
  std::uint32_t max_connections = 0;
  std::uint32_t handshake_timeout_ms = 0;
  std::optional<std::uint32_t> idle_timeout_ms;
};

struct ConnectorInfo {
  config::ConnectorConfig cfg;
  bool connected = false;      // its link is up now
  std::uint64_t attempts = 0;  // connection attempts so far
  std::string last_error;      // why the last attempt failed ("" once up)
  std::shared_ptr<const amqp::ListenerCounters> counters;
};

// Why an entity was not added: `conflict` (the name or rule exists), or it is
// invalid here, or a port is in use. An empty message: done.
struct Refusal {
  bool conflict = false;
  std::string message;
};

using AddressCounterMap = std::map<std::string, forwarding::AddressCounters>;

class RouterControl {
 public:
  virtual ~RouterControl() = default;

  virtual const config::Config& config() const = 0;
  virtual amqp::Stats& stats() = 0;
  virtual const amqp::AuthThrottle& authThrottle() const = 0;
  virtual routing::RoutingCore& routing() = 0;
  virtual double uptimeSeconds() const = 0;             // any thread
  virtual std::uint64_t escapedExceptions() const = 0;  // any thread
  virtual int workerCount() const = 0;

  virtual std::vector<ListenerInfo> listeners() const = 0;
  virtual std::vector<ConnectorInfo> connectors() const = 0;
  // The entities of an adaptor kind (adaptors/registry.hpp), in the order
  // they were made. Valid until the next change on the core loop.
  virtual std::vector<const adaptors::Entity*> entities(const adaptors::EntityKind& kind) const = 0;
  // The HTTP endpoints that run ("management", "claims") and their counters.
  virtual std::vector<std::pair<std::string, const HttpCounters*>> httpEndpoints() const = 0;
  // Site linking (the `claims` section): null when not configured.
  virtual Claims* claims() = 0;

  virtual Refusal addListener(const config::ListenerConfig& c) = 0;
  virtual bool removeListener(const std::string& name) = 0;
  virtual Refusal addConnector(const config::ConnectorConfig& c) = 0;
  virtual bool removeConnector(const std::string& name) = 0;
  virtual Refusal addAddressRule(const config::AddressConfig& c) = 0;
  virtual bool removeAddressRule(const std::string& prefix, const std::string& pattern) = 0;
  virtual Refusal addTlsProfile(const config::TlsProfileConfig& c) = 0;
  virtual Refusal removeTlsProfile(const std::string& name) = 0;
  // Adds the only entry of `kind`'s section in `entry` (config::parseEntry).
  virtual Refusal addEntity(const adaptors::EntityKind& kind, const config::Config& entry) = 0;
  virtual bool removeEntity(const adaptors::EntityKind& kind, const std::string& name) = 0;

  // Gathered from every worker loop; `done` runs on the core loop.
  virtual void flows(std::function<void(std::vector<adaptors::FlowRecord>)> done) = 0;
  virtual void connections(std::function<void(std::vector<amqp::ConnectionInfo>)> done) = 0;
  virtual void addressCounters(std::function<void(AddressCounterMap)> done) = 0;
};

}  // namespace vane::management
