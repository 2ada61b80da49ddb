#include "server/router.hpp"

#include <algorithm>
#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "adaptors/registry.hpp"
#include "amqp/auth_throttle.hpp"
#include "amqp/sasl_server.hpp"
#include "config/section.hpp"
#include "core/log.hpp"
#include "management/api.hpp"
#include "management/claims.hpp"
#include "management/http_server.hpp"
#include "routing/address_policy.hpp"
#include "routing/signing.hpp"
#include "server/connector.hpp"
#include "server/listener.hpp"
#include "server/worker.hpp"

namespace vane::server {

// The key this router signs its routing records with (trust-model.md).
std::shared_ptr<const routing::signing::KeyPair> Router::identityKey(
    const config::RouterConfig& r) {
  if (r.key_file.empty()) {
    auto key = routing::signing::KeyPair::generate();
    VANE_LOG_INFO(
        "router {}: no router.key_file, so this run has a new identity key ({}); after a restart "
        "other routers take the new key only once this run's records have aged out of the network "
        "({} s after it became unreachable)",
        r.id, routing::signing::base64(key->publicKey()), 30);
    return key;
  }
  bool created = false;
  std::string err;
  auto key = routing::signing::KeyPair::loadOrCreate(r.key_file, created, err);
  if (!key) {
    if (init_error_.empty()) init_error_ = "router.key_file: " + err;
    return routing::signing::KeyPair::generate();
  }
  VANE_LOG_INFO("router {}: identity key {} ({} {})", r.id,
                routing::signing::base64(key->publicKey()), created ? "created" : "from",
                r.key_file);
  return key;
}

Router::Router(config::Config cfg) : cfg_(std::move(cfg)) {
  const auto& r = cfg_.router;
  // One for every PLAIN listener, shared by the workers.
  auth_throttle_ = std::make_shared<amqp::AuthThrottle>(
      r.max_auth_failures_per_source, std::chrono::milliseconds(r.auth_failure_window_ms));
  settings_.container_id = r.id;
  settings_.max_frame_size = r.max_frame_size;
  settings_.session_capacity = r.session_capacity;
  settings_.idle_timeout_ms = r.idle_timeout_ms;
  settings_.link_capacity = r.link_capacity;
  settings_.max_unsettled_per_link = r.max_unsettled_per_link;
  settings_.max_sessions_per_connection = r.max_sessions_per_connection;
  settings_.max_links_per_connection = r.max_links_per_connection;
  settings_.max_receivers_per_connection = r.max_receivers_per_connection;
  settings_.max_dynamic_addresses_per_connection = r.max_dynamic_addresses_per_connection;
  settings_.max_unsettled_per_connection = r.max_unsettled_per_connection;
  settings_.max_stream_links = r.max_stream_links;
  settings_.inflight_limit = static_cast<std::int64_t>(r.max_message_inflight_bytes);
  settings_.edge_mode = r.mode == config::RouterMode::kEdge;
  settings_.inter_router_link_capacity = std::max(1000, r.link_capacity);
  settings_.inter_router_inflight_limit = 4 * settings_.inflight_limit;
  settings_.stream_window = static_cast<std::int64_t>(r.stream_window_bytes);

  auto policy = std::make_shared<const routing::AddressPolicy>(cfg_.addresses);
  core_ = std::make_unique<routing::RoutingCore>(core_loop_, r.id, policy);
  std::vector<routing::RoutingCore::Replica> replicas;
  std::vector<Worker*> workers;
  for (int i = 0; i < r.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, *core_, settings_, stats_));
    replicas.push_back({&workers_.back()->loop(), &workers_.back()->table()});
    workers.push_back(workers_.back().get());
  }
  core_->setReplicas(std::move(replicas));
  // Every loop can hand a delivery for a flow address to the loop of its flow.
  std::vector<std::shared_ptr<forwarding::Consumer>> flow_consumers;
  for (auto& w : workers_) flow_consumers.push_back(w->flowConsumer());
  for (auto& w : workers_) w->table().setFlowConsumers(flow_consumers);
  routing::EngineConfig ecfg;
  ecfg.id = r.id;
  ecfg.edge = settings_.edge_mode;
  ecfg.hello_interval_ms = r.hello_interval_ms;
  ecfg.dead_interval_ms = r.dead_interval_ms;
  // A restarted router must outrank its earlier run: its start time.
  ecfg.instance =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  settings_.instance = ecfg.instance;
  ecfg.max_routers = r.max_routers;
  ecfg.max_addresses = r.max_addresses;
  ecfg.max_addresses_per_router = r.max_addresses_per_router;
  ecfg.max_updates_per_neighbor_per_second = r.max_updates_per_neighbor_per_second;
  ecfg.max_update_burst_per_neighbor = r.max_update_burst_per_neighbor;
  ecfg.key = identityKey(r);
  core_->enableNetwork(ecfg);
  auto addConnector = [this](std::vector<config::ConnectorConfig> candidates, std::size_t first) {
    std::string err;
    auto c = makeConnector(std::move(candidates), first, err);
    if (c) {
      connectors_.push_back(std::move(c));
    } else if (init_error_.empty()) {
      init_error_ = err;
    }
  };
  if (settings_.edge_mode) {
    if (!cfg_.connectors.empty()) addConnector(cfg_.connectors, 0);
  } else {
    std::size_t i = 0;
    for (const auto& c : cfg_.connectors) addConnector({c}, i++);
  }
  for (const auto& l : cfg_.listeners) listeners_.push_back(makeListener(l));
  for (const adaptors::EntityKind* kind : adaptors::kinds()) {
    for (const auto& [name, key] : kind->entries(cfg_))
      entities_.push_back(kind->make(*this, cfg_, name));
  }
}

std::string Router::tlsSource(const std::string& profile, TlsUse use,
                              std::shared_ptr<TlsSource>& out) {
  for (const auto& s : tls_sources_) {
    if (s->profile() == profile && s->use() == use) {
      out = s;
      return {};
    }
  }
  auto p = std::find_if(cfg_.tls_profiles.begin(), cfg_.tls_profiles.end(),
                        [&](const auto& t) { return t.name == profile; });
  if (p == cfg_.tls_profiles.end()) return "no tls profile named '" + profile + "'";
  std::shared_ptr<boost::asio::ssl::context> ctx;
  if (std::string err = makeTlsContext(*p, use, ctx); !err.empty()) return err;
  out = std::make_shared<TlsSource>(profile, use, std::move(ctx));
  tls_sources_.push_back(out);
  return {};
}

std::string Router::tls(const std::string& profile, TlsRole role, TlsContext& out) {
  std::shared_ptr<TlsSource> source;
  const TlsUse use = role == TlsRole::kServer ? TlsUse::kServerHttp : TlsUse::kClient;
  if (std::string err = tlsSource(profile, use, source); !err.empty()) return err;
  out = [source] { return source->current(); };
  return {};
}

std::string Router::listenerSecurity(const config::ListenerConfig& l,
                                     amqp::ConnectionOptions& options,
                                     std::shared_ptr<TlsSource>& tls) {
  const auto& mechs = l.sasl_mechanisms;
  auto has = [&mechs](const char* m) {
    return std::find(mechs.begin(), mechs.end(), m) != mechs.end();
  };
  if (!l.tls_profile.empty()) {
    const TlsUse use = l.role != config::ListenerRole::kNormal ? TlsUse::kServerRequireCert
                       : has("EXTERNAL")                       ? TlsUse::kServerRequestCert
                                                               : TlsUse::kServer;
    if (std::string err = tlsSource(l.tls_profile, use, tls); !err.empty()) return err;
  }
  if (l.role == config::ListenerRole::kNormal && !(mechs.size() == 1 && has("ANONYMOUS"))) {
    auto sasl = std::make_shared<amqp::SaslServerConfig>();
    sasl->anonymous = has("ANONYMOUS");
    sasl->plain = has("PLAIN");
    sasl->external = has("EXTERNAL");
    if (sasl->plain) {
      if (std::string err = amqp::loadUsersFile(l.users_file, sasl->users); !err.empty())
        return err;
      for (const auto& [name, password] : sasl->users) {
        if (!password.empty() && password[0] == '$') sasl->dummy_hash = password;
      }
      sasl->throttle = auth_throttle_;
      sasl->logins = std::make_shared<amqp::LoginCache>();
    }
    options.sasl = std::move(sasl);
  }
  return {};
}

std::unique_ptr<Listener> Router::makeListener(const config::ListenerConfig& l) {
  Listener::Endpoint ep{l.name, l.host, l.port, "listener",
                        std::string("role ") + config::toString(l.role) +
                            (l.tls_profile.empty() ? (l.insecure ? ", INSECURE" : "") : ", tls")};
  if (l.insecure && l.role != config::ListenerRole::kNormal) {
    VANE_LOG_WARN(
        "listener {} ({}:{}, role {}) is insecure: any peer that connects is taken for a router "
        "and its traffic crosses in clear; use it on loopback only, give it a tls_profile "
        "otherwise",
        l.name, l.host, l.port, config::toString(l.role));
  }
  amqp::ConnectionOptions options;
  options.name = l.name;
  options.role = l.role;
  options.cost = l.cost;
  options.verify_router_id = l.verify_router_id;
  options.counters = std::make_shared<amqp::ListenerCounters>();
  options.handshake_timeout = std::chrono::milliseconds(l.handshake_timeout_ms);
  options.idle_timeout_ms = l.idle_timeout_ms;
  std::shared_ptr<TlsSource> tls;
  if (std::string err = listenerSecurity(l, options, tls); !err.empty()) {
    if (init_error_.empty()) init_error_ = "listener " + l.name + ": " + err;
  }
  listener_counters_.push_back(options.counters);
  std::vector<Worker*> workers;
  for (auto& w : workers_) workers.push_back(w.get());
  return std::make_unique<Listener>(
      std::move(ep), core_loop_, std::move(workers),
      [this, counters = options.counters, max = l.max_connections]() -> const char* {
        if (const char* limit = admit()) return limit;
        if (max != 0 &&
            counters->connections_active.load(std::memory_order_relaxed) >= std::int64_t{max}) {
          counters->connections_refused.fetch_add(1, std::memory_order_relaxed);
          return "listeners.max_connections";
        }
        return nullptr;
      },
      [this] { stats_.connections_refused.fetch_add(1, std::memory_order_relaxed); },
      [options, tls](Worker& w, boost::asio::ip::tcp::socket s) {
        if (!tls) {
          w.adopt(std::move(s), options);
          return;
        }
        auto o = options;
        o.tls = tls->current();  // a reload's new certificate serves new connections
        w.adopt(std::move(s), std::move(o));
      });
}

std::unique_ptr<Connector> Router::makeConnector(std::vector<config::ConnectorConfig> candidates,
                                                 std::size_t first_worker, std::string& error) {
  std::vector<Worker*> workers;
  for (auto& w : workers_) workers.push_back(w.get());
  auto c = std::make_unique<Connector>(candidates, core_loop_, std::move(workers), first_worker);
  for (const auto& cfg : candidates) {
    if (cfg.tls_profile.empty()) continue;
    std::shared_ptr<TlsSource> tls;
    if (std::string err = tlsSource(cfg.tls_profile, TlsUse::kClient, tls); !err.empty()) {
      error = "connector " + cfg.name + ": " + err;
      return nullptr;
    }
    c->setTls(cfg.name, std::move(tls));
  }
  return c;
}

Router::Refusal Router::addListener(const config::ListenerConfig& c) {
  VANE_ASSERT_THREAD(core_loop_);
  for (const auto& l : cfg_.listeners) {
    if (l.name == c.name) return {true, "a listener named '" + c.name + "' exists"};
  }
  if (cfg_.router.mode == config::RouterMode::kEdge && c.role != config::ListenerRole::kNormal) {
    return {false, "an edge router accepts only normal (client) listeners"};
  }
  init_error_.clear();
  config::Config tmp;
  tmp.listeners.push_back(c);
  config::resolvePaths(tmp, configDir());  // a relative users_file, as in the file
  auto l = makeListener(tmp.listeners.front());
  std::string err = init_error_;
  if (err.empty()) err = l->open();
  init_error_.clear();
  if (!err.empty()) {
    listener_counters_.pop_back();
    return {false, err};
  }
  l->startAccepting();
  listeners_.push_back(std::move(l));
  cfg_.listeners.push_back(tmp.listeners.front());
  return {};
}

bool Router::removeListener(const std::string& name) {
  VANE_ASSERT_THREAD(core_loop_);
  for (std::size_t i = 0; i < cfg_.listeners.size(); ++i) {
    if (cfg_.listeners[i].name != name) continue;
    listeners_[i]->close();
    VANE_LOG_INFO("listener {}: closed (connections already open continue)", name);
    // Destroyed after its cancelled accept has run.
    core_loop_.post([l = std::move(listeners_[i])] {});
    listeners_.erase(listeners_.begin() + static_cast<std::ptrdiff_t>(i));
    listener_counters_.erase(listener_counters_.begin() + static_cast<std::ptrdiff_t>(i));
    cfg_.listeners.erase(cfg_.listeners.begin() + static_cast<std::ptrdiff_t>(i));
    return true;
  }
  return false;
}

Router::Refusal Router::addConnector(const config::ConnectorConfig& c) {
  VANE_ASSERT_THREAD(core_loop_);
  if (cfg_.router.mode == config::RouterMode::kEdge) {
    return {false,
            "an edge router's connectors are an ordered list of alternatives: change them in the "
            "configuration file"};
  }
  for (const auto& e : cfg_.connectors) {
    if (e.name == c.name) return {true, "a connector named '" + c.name + "' exists"};
  }
  std::string err;
  auto connector = makeConnector({c}, cfg_.connectors.size(), err);
  if (!connector) return {false, err};
  connectors_.push_back(std::move(connector));
  connectors_.back()->start();
  cfg_.connectors.push_back(c);
  return {};
}

bool Router::removeConnector(const std::string& name) {
  VANE_ASSERT_THREAD(core_loop_);
  if (cfg_.router.mode == config::RouterMode::kEdge) return false;
  auto it = std::find_if(connectors_.begin(), connectors_.end(),
                         [&](const auto& c) { return c->name() == name; });
  if (it == connectors_.end()) return false;
  (*it)->stopAndClose();
  VANE_LOG_INFO("connector {}: removed; its link is closed", name);
  retired_connectors_.push_back(std::move(*it));
  connectors_.erase(it);
  std::erase_if(cfg_.connectors, [&](const auto& c) { return c.name == name; });
  return true;
}

namespace {
// The `addresses` section as YAML flow mappings, one rule a line.
std::string addressesYaml(const std::vector<config::AddressConfig>& rules) {
  std::string y = "addresses:\n";
  for (const auto& r : rules) {
    nlohmann::json j = {{"distribution", config::toString(r.distribution)}};
    if (!r.prefix.empty()) j["prefix"] = r.prefix;
    if (!r.pattern.empty()) j["pattern"] = r.pattern;
    y += "  - " + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return y;
}
}  // namespace

Router::Refusal Router::addAddressRule(const config::AddressConfig& c) {
  VANE_ASSERT_THREAD(core_loop_);
  auto rules = cfg_.addresses;
  rules.push_back(c);
  // Checked as a whole, by the file's parser (duplicates, e.g. "a.b" = "a/b").
  auto parsed = config::parseString(addressesYaml(rules), "request");
  if (auto* e = std::get_if<config::ConfigError>(&parsed)) {
    return {e->message.find("duplicate") != std::string::npos, e->message};
  }
  cfg_.addresses = std::get<config::Config>(parsed).addresses;
  core_->setPolicy(std::make_shared<const routing::AddressPolicy>(cfg_.addresses));
  VANE_LOG_INFO("address rule {}{} added: {}", c.prefix.empty() ? "pattern " : "prefix ",
                c.prefix.empty() ? c.pattern : c.prefix, config::toString(c.distribution));
  return {};
}

bool Router::removeAddressRule(const std::string& prefix, const std::string& pattern) {
  VANE_ASSERT_THREAD(core_loop_);
  const auto n = std::erase_if(cfg_.addresses, [&](const auto& r) {
    return prefix.empty() ? (!r.pattern.empty() && r.pattern == pattern)
                          : (!r.prefix.empty() && r.prefix == prefix);
  });
  if (n == 0) return false;
  core_->setPolicy(std::make_shared<const routing::AddressPolicy>(cfg_.addresses));
  VANE_LOG_INFO("address rule {}{} removed", prefix.empty() ? "pattern " : "prefix ",
                prefix.empty() ? pattern : prefix);
  return true;
}

Router::Refusal Router::addTlsProfile(const config::TlsProfileConfig& c) {
  VANE_ASSERT_THREAD(core_loop_);
  for (const auto& t : cfg_.tls_profiles) {
    if (t.name == c.name) return {true, "a tls profile named '" + c.name + "' exists"};
  }
  config::TlsProfileConfig p = c;
  config::Config tmp;
  tmp.tls_profiles.push_back(p);
  config::resolvePaths(tmp, configDir());
  p = tmp.tls_profiles.front();
  // Every file must load now, not when a connection first needs it.
  std::shared_ptr<boost::asio::ssl::context> ctx;
  if (std::string err = makeTlsContext(p, p.ca.empty() ? TlsUse::kServer : TlsUse::kClient, ctx);
      !err.empty()) {
    return {false, err};
  }
  cfg_.tls_profiles.push_back(p);
  VANE_LOG_INFO("tls profile {} added", p.name);
  return {};
}

Router::Refusal Router::removeTlsProfile(const std::string& name) {
  VANE_ASSERT_THREAD(core_loop_);
  auto it = std::find_if(cfg_.tls_profiles.begin(), cfg_.tls_profiles.end(),
                         [&](const auto& t) { return t.name == name; });
  if (it == cfg_.tls_profiles.end()) return {false, "tls profile '" + name + "' does not exist"};
  std::string user;
  for (const auto& l : cfg_.listeners) {
    if (l.tls_profile == name) user = "listener " + l.name;
  }
  for (const auto& c : cfg_.connectors) {
    if (c.tls_profile == name) user = "connector " + c.name;
  }
  for (const config::SectionType* t : config::addedSections()) {
    const std::string entry = t->tlsUser(cfg_, name);
    if (!entry.empty()) user = std::string(t->what()) + " " + entry;
  }
  if (cfg_.management.tls_profile == name) user = "the management API";
  if (cfg_.claims.enabled && cfg_.claims.tls_profile == name) user = "the claims endpoint";
  if (!user.empty()) return {true, "tls profile '" + name + "' is used by " + user};
  cfg_.tls_profiles.erase(it);
  std::erase_if(tls_sources_, [&](const auto& s) { return s->profile() == name; });
  VANE_LOG_INFO("tls profile {} removed", name);
  return {};
}

std::string Router::reloadTls(const std::vector<config::TlsProfileConfig>& profiles) {
  VANE_ASSERT_THREAD(core_loop_);
  // The profiles as they will be if their files load; a profile whose new
  // files fail keeps its old entry (and certificates).
  auto next = cfg_.tls_profiles;
  for (const auto& p : profiles) {
    auto it =
        std::find_if(next.begin(), next.end(), [&](const auto& t) { return t.name == p.name; });
    if (it != next.end()) *it = p;
  }
  std::string errors;
  std::vector<std::string> failed;
  std::vector<std::pair<std::shared_ptr<TlsSource>, std::shared_ptr<boost::asio::ssl::context>>>
      ready;
  for (const auto& s : tls_sources_) {
    auto p = std::find_if(next.begin(), next.end(),
                          [&](const auto& t) { return t.name == s->profile(); });
    if (p == next.end()) continue;
    std::shared_ptr<boost::asio::ssl::context> ctx;
    if (std::string err = makeTlsContext(*p, s->use(), ctx); !err.empty()) {
      VANE_LOG_ERROR("reload: {} (its connections keep the certificates loaded before)", err);
      errors += (errors.empty() ? "" : "; ") + err;
      failed.push_back(p->name);
      continue;
    }
    ready.emplace_back(s, std::move(ctx));
  }
  // All uses of a profile switch together, or none does.
  for (auto& [s, ctx] : ready) {
    if (std::find(failed.begin(), failed.end(), s->profile()) == failed.end())
      s->replace(std::move(ctx));
  }
  for (auto& p : next) {
    if (std::find(failed.begin(), failed.end(), p.name) != failed.end()) continue;
    auto it = std::find_if(cfg_.tls_profiles.begin(), cfg_.tls_profiles.end(),
                           [&](const auto& t) { return t.name == p.name; });
    if (it != cfg_.tls_profiles.end()) *it = p;
  }
  if (errors.empty())
    VANE_LOG_INFO("reload: tls certificates re-read ({} in use)", tls_sources_.size());
  return errors;
}

std::string Router::startClaims() {
  const auto& c = cfg_.claims;
  std::shared_ptr<TlsSource> source;
  if (std::string err = tlsSource(c.tls_profile, TlsUse::kServer, source); !err.empty())
    return "claims: " + err;
  // Tokens name the inter-router listeners as they are when issued.
  auto links = [this] {
    std::vector<std::string> out;
    for (const auto& l : listeners()) {
      // Only TLS listeners: the redeeming site links with a certificate.
      if (l.kind == std::string("inter-router") && !l.tls_profile.empty())
        out.push_back(management::joinHostPort(cfg_.claims.advertise_host, l.port));
    }
    return out;
  };
  claims_ = std::make_unique<management::Claims>(c, cfg_.router.id, links, c.port);
  // Runs on the core loop, like the claims handler.
  claims_->setIdInUse([this](const std::string& id) { return core_->routerIdInUse(id); });
  if (std::string err = claims_->load(); !err.empty()) return err;
  claims_server_ = std::make_unique<management::HttpServer>(
      core_loop_, claims_->handler(), [source] { return source->current(); }, "claims", c.limits);
  if (std::string err = claims_server_->open(c.host, c.port); !err.empty()) return "claims: " + err;
  claims_->setClaimPort(claims_server_->port());
  return {};
}

std::string Router::configDir() const {
  const auto slash = cfg_.source.rfind('/');
  if (cfg_.source.empty() || cfg_.source.front() == '<' || slash == std::string::npos) return ".";
  return slash == 0 ? "/" : cfg_.source.substr(0, slash);
}

std::uint64_t Router::escapedExceptions() const {
  std::uint64_t n = core_loop_.escapedExceptions();
  for (const auto& w : workers_) n += w->loop().escapedExceptions();
  return n;
}

double Router::uptimeSeconds() const {
  if (!started_) return 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
}

std::vector<std::pair<std::string, const management::HttpCounters*>> Router::httpEndpoints() const {
  VANE_ASSERT_THREAD(core_loop_);
  std::vector<std::pair<std::string, const management::HttpCounters*>> out;
  if (management_) out.emplace_back("management", &management_->counters());
  if (claims_server_) out.emplace_back("claims", &claims_server_->counters());
  return out;
}

std::vector<Router::ListenerInfo> Router::listeners() const {
  VANE_ASSERT_THREAD(core_loop_);
  std::vector<ListenerInfo> out;
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    const auto& c = cfg_.listeners[i];
    out.push_back({c.name, c.host, listeners_[i]->boundPort(), config::toString(c.role), c.cost,
                   listener_counters_[i], c.tls_profile, c.sasl_mechanisms, c.verify_router_id,
                   c.insecure, c.max_connections, c.handshake_timeout_ms, c.idle_timeout_ms});
  }
  return out;
}

std::vector<Router::ConnectorInfo> Router::connectors() const {
  VANE_ASSERT_THREAD(core_loop_);
  std::vector<ConnectorInfo> out;
  for (const auto& c : connectors_) {
    for (const auto& cfg : c->candidates()) {
      out.push_back({cfg, c->connectedTo() == cfg.name, c->attempts(cfg.name), c->lastError(),
                     c->counters()});
    }
  }
  return out;
}

std::vector<const adaptors::Entity*> Router::entities(const adaptors::EntityKind& kind) const {
  VANE_ASSERT_THREAD(core_loop_);
  std::vector<const adaptors::Entity*> out;
  for (const auto& e : entities_) {
    if (&e->kind() == &kind) out.push_back(e.get());
  }
  return out;
}

void Router::storeEntities(const adaptors::EntityKind& kind) {
  kind.store(cfg_, entities(kind));
}

std::string Router::addEntityFrom(const adaptors::EntityKind& kind, const config::Config& cfg,
                                  const std::string& name) {
  VANE_ASSERT_THREAD(core_loop_);
  auto e = kind.make(*this, cfg, name);
  if (!e) return "no " + std::string(kind.what) + " named '" + name + "' in the entry";
  if (std::string err = e->open(); !err.empty()) return err;
  e->start();
  entities_.push_back(std::move(e));
  return {};
}

Router::Refusal Router::addEntity(const adaptors::EntityKind& kind, const config::Config& entry) {
  VANE_ASSERT_THREAD(core_loop_);
  const auto entries = kind.entries(entry);
  if (entries.size() != 1) return {false, "expected one " + std::string(kind.what)};
  const std::string& name = entries[0].first;
  for (const auto* e : entities(kind)) {
    if (e->name() == name) {
      return {true, "a " + std::string(kind.what) + " named '" + name + "' exists"};
    }
  }
  if (std::string err = addEntityFrom(kind, entry, name); !err.empty()) return {false, err};
  storeEntities(kind);
  return {};
}

bool Router::removeEntity(const adaptors::EntityKind& kind, const std::string& name) {
  VANE_ASSERT_THREAD(core_loop_);
  auto it = std::find_if(entities_.begin(), entities_.end(),
                         [&](const auto& e) { return &e->kind() == &kind && e->name() == name; });
  if (it == entities_.end()) return false;
  (*it)->stop();
  entities_.erase(it);
  storeEntities(kind);
  return true;
}

// Asks every worker for `part` (run on its loop), folds the parts into one
// `Result` with `fold` on the core loop, and calls `done` there once all
// have answered.
template <typename Result, typename Part, typename Fold>
void Router::gather(Part part, Fold fold, std::function<void(Result)> done) {
  VANE_ASSERT_THREAD(core_loop_);
  struct State {
    Result result{};
    std::size_t left = 0;
    std::function<void(Result)> done;
  };
  auto st = std::make_shared<State>();
  st->left = workers_.size();
  st->done = std::move(done);
  for (auto& w : workers_) {
    // The worker's closure hands its share of `st` on to the core loop's, so
    // the state (and `done`, which may own an HTTP session) always dies on
    // the core loop.
    w->loop().post([this, st, part, fold, w = w.get()]() mutable {
      core_loop_.post([st = std::move(st), fold, p = part(*w)]() mutable {
        fold(st->result, std::move(p));
        if (--st->left == 0) {
          auto finish = std::move(st->done);
          finish(std::move(st->result));
        }
      });
    });
  }
}

namespace {
template <typename T>
void append(std::vector<T>& to, std::vector<T> from) {
  std::move(from.begin(), from.end(), std::back_inserter(to));
}
}  // namespace

void Router::connections(std::function<void(std::vector<amqp::ConnectionInfo>)> done) {
  gather<std::vector<amqp::ConnectionInfo>>([](Worker& w) { return w.connectionInfos(); },
                                            append<amqp::ConnectionInfo>, std::move(done));
}

void Router::addressCounters(std::function<void(AddressCounterMap)> done) {
  gather<AddressCounterMap>(
      [](Worker& w) {
        const auto& c = w.table().allCounters();
        return std::vector<std::pair<std::string, forwarding::AddressCounters>>(c.begin(), c.end());
      },
      [](AddressCounterMap& sum,
         std::vector<std::pair<std::string, forwarding::AddressCounters>> part) {
        for (const auto& [address, c] : part) {
          auto& t = sum[address];
          t.in += c.in;
          t.out += c.out;
          t.accepted += c.accepted;
          t.released += c.released;
          t.rejected += c.rejected;
          t.modified += c.modified;
          t.no_route += c.no_route;
        }
      },
      std::move(done));
}

void Router::flows(std::function<void(std::vector<adaptors::FlowRecord>)> done) {
  gather<std::vector<adaptors::FlowRecord>>([](Worker& w) { return w.flows().records(); },
                                            append<adaptors::FlowRecord>, std::move(done));
}

// router.max_connections bounds AMQP connections and the connections
// accepted by adaptor listeners together. Core loop (where the acceptors run).
const char* Router::admit() const {
  VANE_ASSERT_THREAD(core_loop_);
  const std::uint32_t max = cfg_.router.max_connections;
  if (max == 0) return nullptr;
  std::int64_t n = stats_.connections_active.load(std::memory_order_relaxed);
  for (const auto& e : entities_) {
    if (e->kind().accepts) n += e->connectionsOpen();
  }
  return n < static_cast<std::int64_t>(max) ? nullptr : "router.max_connections";
}

adaptors::FlowTable& Router::flowTable(std::size_t worker) {
  return workers_.at(worker)->flows();
}

namespace {
// An adaptor listener's socket: a Listener that hands its sockets to the
// worker's flow table.
class AdaptorAcceptor final : public adaptors::Acceptor {
 public:
  explicit AdaptorAcceptor(std::unique_ptr<Listener> l) : l_(std::move(l)) {}
  std::string open() override { return l_->open(); }
  void start() override { l_->startAccepting(); }
  void close() override { l_->close(); }
  std::uint16_t port() const override { return l_->boundPort(); }

 private:
  std::unique_ptr<Listener> l_;
};
}  // namespace

std::unique_ptr<adaptors::Acceptor> Router::listen(ListenSpec spec, Accept accept) {
  std::vector<Worker*> workers;
  for (auto& w : workers_) workers.push_back(w.get());
  Listener::Endpoint ep{std::move(spec.name), std::move(spec.host), spec.port, std::move(spec.kind),
                        std::move(spec.detail)};
  return std::make_unique<AdaptorAcceptor>(std::make_unique<Listener>(
      std::move(ep), core_loop_, std::move(workers), [this] { return admit(); },
      [this] { stats_.connections_refused.fetch_add(1, std::memory_order_relaxed); },
      [accept = std::move(accept)](Worker& w, boost::asio::ip::tcp::socket s) {
        accept(w.flows(), std::move(s));
      }));
}

// Destroyed after its cancelled accept has run.
void Router::retire(std::unique_ptr<adaptors::Acceptor> acceptor) {
  VANE_ASSERT_THREAD(core_loop_);
  core_loop_.post([a = std::move(acceptor)] {});
}

// A connector's consumers (one per worker) make its address reachable here
// and, through the routing protocol, everywhere.
void Router::publish(const std::string& address,
                     const std::vector<std::shared_ptr<forwarding::Consumer>>& consumers) {
  VANE_ASSERT_THREAD(core_loop_);
  for (std::size_t i = 0; i < consumers.size(); ++i) {
    core_->addConsumer(address, consumers[i], workers_.at(i)->loop(), [] {});
  }
}

void Router::unpublish(const std::string& address,
                       const std::vector<std::shared_ptr<forwarding::Consumer>>& consumers) {
  VANE_ASSERT_THREAD(core_loop_);
  for (const auto& consumer : consumers) core_->removeConsumer(address, consumer->id);
}

std::uint64_t Router::nextConsumerId() {
  return core_->nextConsumerId();
}

Router::~Router() {
  stop(std::chrono::milliseconds(0));
  // A worker runs its leftover handlers when it is destroyed, among them a
  // connector's connect or close callbacks: the connectors must outlive it.
  workers_.clear();
  connectors_.clear();
  retired_connectors_.clear();
  entities_.clear();
}

std::string Router::reload(const config::Config& next) {
  VANE_ASSERT_NOT_THREAD(core_loop_);  // it waits for the core loop
  if (!started_ || stopped_) return "the router is not running";
  // The whole reload runs on the core loop, which owns cfg_ and the entities
  // the management API changes: a SIGHUP never races an API call.
  std::promise<std::string> result;
  core_loop_.post([this, &next, &result] { result.set_value(reloadOnCore(next)); });
  return result.get_future().get();
}

std::string Router::reloadOnCore(const config::Config& next) {
  VANE_ASSERT_THREAD(core_loop_);
  // What a reload does not change.
  auto note = [](const char* what) {
    VANE_LOG_WARN("reload: {} changed; restart vaned to apply it", what);
  };
  // Listeners and connectors, entry by entry (TLS and SASL settings too).
  auto compare = [](const auto& now, const auto& wanted, const char* kind, auto same) {
    for (const auto& w : wanted) {
      auto it =
          std::find_if(now.begin(), now.end(), [&](const auto& n) { return n.name == w.name; });
      if (it == now.end() || !same(*it, w)) {
        VANE_LOG_WARN("reload: {} {} {}; restart vaned to apply it", kind, w.name,
                      it == now.end() ? "added" : "changed");
      }
    }
    for (const auto& n : now) {
      if (std::none_of(wanted.begin(), wanted.end(),
                       [&](const auto& w) { return w.name == n.name; }))
        VANE_LOG_WARN("reload: {} {} removed; restart vaned to apply it", kind, n.name);
    }
  };
  compare(cfg_.listeners, next.listeners, "listener",
          [](const config::ListenerConfig& a, const config::ListenerConfig& b) {
            return a.host == b.host && a.port == b.port && a.role == b.role && a.cost == b.cost &&
                   a.tls_profile == b.tls_profile && a.sasl_mechanisms == b.sasl_mechanisms &&
                   a.users_file == b.users_file && a.verify_router_id == b.verify_router_id &&
                   a.insecure == b.insecure && a.max_connections == b.max_connections &&
                   a.handshake_timeout_ms == b.handshake_timeout_ms &&
                   a.idle_timeout_ms == b.idle_timeout_ms;
          });
  compare(cfg_.connectors, next.connectors, "connector",
          [](const config::ConnectorConfig& a, const config::ConnectorConfig& b) {
            return a.host == b.host && a.port == b.port && a.role == b.role && a.cost == b.cost &&
                   a.tls_profile == b.tls_profile && a.verify_host == b.verify_host;
          });
  if (next.addresses.size() != cfg_.addresses.size()) note("addresses");
  {
    const auto& a = cfg_.management;
    const auto& b = next.management;
    if (a.enabled != b.enabled || a.host != b.host || a.port != b.port || a.token != b.token ||
        a.tls_profile != b.tls_profile || a.limits != b.limits) {
      note("management (host, port, token, tls_profile or its connection limits)");
    }
  }
  {
    const auto& a = cfg_.claims;
    const auto& b = next.claims;
    if (a.enabled != b.enabled || a.host != b.host || a.port != b.port ||
        a.tls_profile != b.tls_profile || a.ca_certificate != b.ca_certificate ||
        a.ca_key != b.ca_key || a.state_file != b.state_file ||
        a.advertise_host != b.advertise_host || a.limits != b.limits) {
      note("claims");
    }
  }
  if (next.router.max_auth_failures_per_source != cfg_.router.max_auth_failures_per_source ||
      next.router.auth_failure_window_ms != cfg_.router.auth_failure_window_ms) {
    note("router.max_auth_failures_per_source or auth_failure_window_ms");
  }
  if (next.router.id != cfg_.router.id || next.router.mode != cfg_.router.mode ||
      next.router.workers != cfg_.router.workers) {
    note("router");
  }
  std::string errors = reloadTls(next.tls_profiles);
  // Adaptor entities are matched by kind and name: those gone or changed
  // are stopped, then the new ones (including the changed) are made.
  for (const adaptors::EntityKind* kind : adaptors::kinds()) {
    const auto wanted = kind->entries(next);
    std::vector<std::unique_ptr<adaptors::Entity>> kept;
    for (auto& e : entities_) {
      const bool same =
          &e->kind() != kind || std::any_of(wanted.begin(), wanted.end(), [&](const auto& w) {
            return w.first == e->name() && w.second == e->key();
          });
      if (same) {
        kept.push_back(std::move(e));
      } else {
        e->stop();
      }
    }
    entities_ = std::move(kept);
    const auto have = entities(*kind);
    for (const auto& [name, key] : wanted) {
      if (std::any_of(have.begin(), have.end(), [&](const auto* e) { return e->name() == name; }))
        continue;
      if (std::string err = addEntityFrom(*kind, next, name); !err.empty()) {
        VANE_LOG_ERROR("reload: {} {}: {}", kind->what, name, err);
        errors +=
            (errors.empty() ? "" : "; ") + (std::string(kind->what) + " " + name + ": " + err);
      }
    }
    storeEntities(*kind);
  }
  return errors;
}

std::string Router::start() {
  if (!init_error_.empty()) return init_error_;
  for (auto& l : listeners_) {
    std::string err = l->open();
    if (!err.empty()) return "listener " + l->name() + ": " + err;
  }
  for (auto& e : entities_) {
    std::string err = e->open();
    if (!err.empty()) return std::string(e->kind().what) + " " + e->name() + ": " + err;
  }
  if (cfg_.management.enabled) {
    management::HttpServer::TlsProvider tls;
    if (!cfg_.management.tls_profile.empty()) {
      std::shared_ptr<TlsSource> source;
      std::string err = tlsSource(cfg_.management.tls_profile, TlsUse::kServer, source);
      if (!err.empty()) return "management: " + err;
      tls = [source] { return source->current(); };
    }
    management_ = std::make_unique<management::HttpServer>(
        core_loop_, management::makeApi(*this, cfg_.management.token), std::move(tls), "management",
        cfg_.management.limits);
    std::string err = management_->open(cfg_.management.host, cfg_.management.port);
    if (!err.empty()) return "management: " + err;
  }
  if (cfg_.claims.enabled) {
    if (std::string err = startClaims(); !err.empty()) return err;
  }
  // Set before the threads start (which orders them for every loop): the
  // core loop reads both when answering the management API.
  started_at_ = std::chrono::steady_clock::now();
  started_ = true;
  for (auto& w : workers_) w->loop().start();
  core_loop_.start();
  core_->start();
  core_loop_.post([this] {
    for (auto& l : listeners_) l->startAccepting();
    for (auto& e : entities_) e->start();
    for (auto& c : connectors_) c->start();
    if (management_) management_->start();
    if (claims_server_) claims_server_->start();
  });
  VANE_LOG_INFO("router {} ready (mode {}, {} worker{})", cfg_.router.id,
                config::toString(cfg_.router.mode), workers_.size(),
                workers_.size() == 1 ? "" : "s");
  return {};
}

void Router::stop(std::chrono::milliseconds grace) {
  VANE_ASSERT_NOT_THREAD(core_loop_);  // it waits for the core loop and the workers
  if (stopped_) return;
  stopped_ = true;
  if (started_) {
    // Stop accepting first so no new connection slips in.
    std::promise<void> closed;
    core_loop_.post([this, &closed] {
      for (auto& l : listeners_) l->close();
      for (auto& e : entities_) e->shutdown();
      if (management_) management_->close();
      if (claims_server_) claims_server_->close();
      for (auto& c : connectors_) c->stop();
      for (auto& c : retired_connectors_) c->stop();
      closed.set_value();
    });
    core_->stop();
    closed.get_future().wait();
    for (auto& w : workers_) {
      w->loop().post(
          [w = w.get()] { w->closeAll("amqp:connection:forced", "router is shutting down"); });
    }
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (true) {
      std::size_t open = 0;
      for (auto& w : workers_) {
        std::promise<std::size_t> n;
        w->loop().post([w = w.get(), &n] { n.set_value(w->connectionCount()); });
        open += n.get_future().get();
      }
      if (open == 0 || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (auto& w : workers_) w->loop().stop();
  core_loop_.stop();
  for (auto& w : workers_) w->loop().join();
  core_loop_.join();
  // An accept that completed or was cancelled but not yet handled holds a
  // socket of a worker's io_context: run those handlers now, while the
  // workers live, then drop the acceptors.
  core_loop_.drainAfterJoin([] {});
  listeners_.clear();
  management_.reset();
  claims_server_.reset();
  VANE_LOG_INFO("router {} stopped", cfg_.router.id);
}

}  // namespace vane::server
