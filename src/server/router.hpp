// The router process wiring: the routing core loop, the I/O workers and the
// listeners, with orderly start and shutdown.
//
// Threads: the constructor, start(), reload(), stop() and the destructor run
// on the thread that owns the Router (vaned's main thread); everything else,
// the management API's calls (RouterControl) included, on the core loop,
// which owns cfg_ and the entities (asserted in debug builds).
// docs/design/lifecycle.md describes the order of start, reload and stop.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "adaptors/adaptor.hpp"
#include "amqp/connection.hpp"
#include "config/config.hpp"
#include "core/event_loop.hpp"
#include "management/router_control.hpp"
#include "routing/core.hpp"
#include "server/tls.hpp"

namespace vane::management {
class HttpServer;
class Claims;
struct HttpCounters;
}  // namespace vane::management
namespace vane::amqp {
class AuthThrottle;
}

namespace vane::server {

class Worker;
class Listener;
class Connector;

class Router final : public management::RouterControl, private adaptors::Host {
 public:
  using ListenerInfo = management::ListenerInfo;
  using ConnectorInfo = management::ConnectorInfo;
  using Refusal = management::Refusal;
  using AddressCounterMap = management::AddressCounterMap;

  explicit Router(config::Config cfg);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Binds every listener and starts the threads. Returns "" on success, or
  // a message saying what failed (nothing is left running then). Main
  // thread.
  std::string start();

  // Closes the listeners, sends every connection an AMQP close
  // (amqp:connection:forced), waits up to `grace` for the peers, then stops
  // every thread. Idempotent. Main thread (never the core loop).
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

  // Applies a new configuration to a running router: the adaptors' entities
  // (tcp_listeners, tcp_connectors) are added, removed or replaced (by
  // name); flows already open keep running. Other sections need a restart: each difference is
  // logged. Returns "" or what failed (e.g. a port in use); what could be
  // applied is applied. Call from one thread at a time, after start() and
  // before stop(), from any thread but the core loop: it runs there and waits.
  std::string reload(const config::Config& next);

  // Core loop (cfg_ changes there).
  const config::Config& config() const override {
    VANE_ASSERT_THREAD(core_loop_);
    return cfg_;
  }
  amqp::Stats& stats() override { return stats_; }
  // PLAIN authentication failures per source (router.max_auth_failures_per_source).
  const amqp::AuthThrottle& authThrottle() const override { return *auth_throttle_; }
  routing::RoutingCore& routing() override { return *core_; }

  // -- Management: all on the core loop, unless said otherwise. -----------
  core::EventLoop& coreLoop() override { return core_loop_; }
  // Seconds since start() (any thread).
  double uptimeSeconds() const override;
  // Exceptions that escaped a handler on the core loop or a worker loop.
  std::uint64_t escapedExceptions() const override;
  int workerCount() const override { return static_cast<int>(workers_.size()); }
  std::vector<ListenerInfo> listeners() const override;
  // The HTTP endpoints that run ("management", "claims") and their counters.
  std::vector<std::pair<std::string, const management::HttpCounters*>> httpEndpoints()
      const override;
  std::vector<ConnectorInfo> connectors() const override;
  std::vector<const adaptors::Entity*> entities(const adaptors::EntityKind& kind) const override;
  // Adds an entity at run time: an empty message when done, else why not
  // (`conflict`: the name or rule exists; otherwise invalid here, or a port
  // in use). Removes one by name (false: no such entity). Open flows stay.
  Refusal addListener(const config::ListenerConfig& c) override;
  bool removeListener(const std::string& name) override;
  // Interior routers only (an edge router's connectors are one ordered list
  // of alternatives: change it in the file). Removing one closes its link.
  Refusal addConnector(const config::ConnectorConfig& c) override;
  bool removeConnector(const std::string& name) override;
  // Address rules (the `addresses` section): added or removed at run time,
  // checked together with the others as in a file (a rule equal to an
  // existing one is refused). Remove by prefix, or by pattern.
  Refusal addAddressRule(const config::AddressConfig& c) override;
  bool removeAddressRule(const std::string& prefix, const std::string& pattern) override;
  // Site linking (the `claims` section): null when not configured. Core loop.
  management::Claims* claims() override { return claims_.get(); }
  // TLS profiles: added once their files load; removed when nothing uses them.
  Refusal addTlsProfile(const config::TlsProfileConfig& c) override;
  // Removing one in use is a conflict; message "" = removed.
  Refusal removeTlsProfile(const std::string& name) override;
  // The body of reload(), on the core loop.
  std::string reloadOnCore(const config::Config& next);
  // Re-reads the files of every profile in use (and of `profiles`, which
  // replace those of the same name): new connections get the new
  // certificates, open ones keep theirs. Returns "" or what failed (that
  // profile keeps its old certificates). Core loop.
  std::string reloadTls(const std::vector<config::TlsProfileConfig>& profiles);
  // Adaptor entities (tcp listeners and connectors, ...), by kind and name.
  Refusal addEntity(const adaptors::EntityKind& kind, const config::Config& entry) override;
  bool removeEntity(const adaptors::EntityKind& kind, const std::string& name) override;
  // Adaptor flows of every worker (open, then recently ended); `done` runs
  // on the core loop. Callable from the core loop.
  void flows(std::function<void(std::vector<adaptors::FlowRecord>)> done) override;
  // AMQP connections of every worker; `done` runs on the core loop.
  void connections(std::function<void(std::vector<amqp::ConnectionInfo>)> done) override;
  // Delivery counters per address, summed over the workers; `done` runs on
  // the core loop. Callable from the core loop.
  void addressCounters(std::function<void(AddressCounterMap)> done) override;

 private:
  std::shared_ptr<const routing::signing::KeyPair> identityKey(const config::RouterConfig& r);
  config::Config cfg_;
  amqp::ConnectionSettings settings_;
  amqp::Stats stats_;
  std::shared_ptr<amqp::AuthThrottle> auth_throttle_;
  core::EventLoop core_loop_{"core"};
  std::unique_ptr<routing::RoutingCore> core_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Connector>> connectors_;
  std::vector<std::shared_ptr<amqp::ListenerCounters>> listener_counters_;  // by listener
  // Removed at run time; kept until the workers are gone (their handlers may
  // still refer to them).
  std::vector<std::unique_ptr<Connector>> retired_connectors_;
  std::unique_ptr<Listener> makeListener(const config::ListenerConfig& l);
  std::unique_ptr<Connector> makeConnector(std::vector<config::ConnectorConfig> candidates,
                                           std::size_t first_worker, std::string& error);
  // The TLS and SASL a listener's connections get. Returns "" or why not.
  std::string listenerSecurity(const config::ListenerConfig& l, amqp::ConnectionOptions& options,
                               std::shared_ptr<TlsSource>& tls);
  // The context source for one use of a profile (shared by its users).
  std::string tlsSource(const std::string& profile, TlsUse use, std::shared_ptr<TlsSource>& out);
  std::vector<std::shared_ptr<TlsSource>> tls_sources_;
  std::string init_error_;
  std::string configDir() const;
  std::string startClaims();  // where relative file names in requests start  // what the
                              // constructor could not set up, for start()

  // nullptr, or the limit that refuses a new connection now.
  const char* admit() const;
  template <typename Result, typename Part, typename Fold>
  void gather(Part part, Fold fold, std::function<void(Result)> done);

  // adaptors::Host (core loop).
  std::size_t workerLoops() const override { return workers_.size(); }
  adaptors::FlowTable& flowTable(std::size_t worker) override;
  std::unique_ptr<adaptors::Acceptor> listen(ListenSpec spec, Accept accept) override;
  void retire(std::unique_ptr<adaptors::Acceptor> acceptor) override;
  void publish(const std::string& address,
               const std::vector<std::shared_ptr<forwarding::Consumer>>& consumers) override;
  void unpublish(const std::string& address,
                 const std::vector<std::shared_ptr<forwarding::Consumer>>& consumers) override;
  std::uint64_t nextConsumerId() override;
  std::string tls(const std::string& profile, TlsRole role, TlsContext& out) override;

  // The adaptors' listeners and connectors, every kind (core loop once
  // started), and cfg_'s sections of them brought in line after a change.
  std::vector<std::unique_ptr<adaptors::Entity>> entities_;
  void storeEntities(const adaptors::EntityKind& kind);
  // Makes, opens (listeners) and starts the entry `name` of `kind` in `cfg`:
  // "" or why not (nothing is kept then).
  std::string addEntityFrom(const adaptors::EntityKind& kind, const config::Config& cfg,
                            const std::string& name);

  std::unique_ptr<management::HttpServer> management_;
  std::unique_ptr<management::Claims> claims_;
  std::unique_ptr<management::HttpServer> claims_server_;
  std::chrono::steady_clock::time_point started_at_{};
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace vane::server
