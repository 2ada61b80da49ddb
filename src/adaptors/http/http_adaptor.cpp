#include "adaptors/http/http_adaptor.hpp"

#include <fmt/format.h>

#include "adaptors/entities.hpp"
#include "adaptors/http/http_config.hpp"
#include "adaptors/http/http_flow.hpp"
#include "adaptors/section.hpp"

namespace vane::adaptors::http {

namespace {

extern const EntityKind kListenerKind;
extern const EntityKind kConnectorKind;

// What both http entities count beyond their flows (requests).
class WithHttpCounters {
 public:
  virtual ~WithHttpCounters() = default;
  const HttpCounters& http() const { return *http_; }

 protected:
  std::shared_ptr<HttpCounters> http_ = std::make_shared<HttpCounters>();
};

nlohmann::json httpJson(const HttpCounters& c) {
  auto v = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  return {{"responses",
           {{"1xx", v(c.responses[0])},
            {"2xx", v(c.responses[1])},
            {"3xx", v(c.responses[2])},
            {"4xx", v(c.responses[3])},
            {"5xx", v(c.responses[4])}}},
          {"bad_requests", v(c.bad_requests)},
          {"head_timeouts", v(c.head_timeouts)},
          {"not_implemented", v(c.not_implemented)},
          {"unavailable", v(c.unavailable)},
          {"bad_gateway", v(c.bad_gateway)},
          {"timeouts", v(c.timeouts)},
          {"stalls", v(c.stalls)},
          {"tls_failures", v(c.tls_failures)},
          {"tunnels", v(c.tunnels)},
          {"requests_active", v(c.requests_active)},
          {"connections_active", v(c.connections_active)},
          {"connections_opened", v(c.connections_opened)},
          {"connections_reused", v(c.connections_reused)}};
}

class HttpListener final : public ListenerEntity, public WithHttpCounters {
 public:
  HttpListener(Host& host, const HttpListenerConfig& c)
      : ListenerEntity(host, kListenerKind, c.name, config::toJson(c), c.host, c.port, c.address),
        cfg(c),
        host_(host),
        conns_(std::make_shared<ListenerConnections>(host.workerLoops())) {}
  const HttpListenerConfig cfg;

  // No more requests on the connections already open either: each worker
  // closes its idle ones, and the others once their exchange is answered.
  void stop() override {
    ListenerEntity::stop();
    for (std::size_t w = 0; w < host_.workerLoops(); ++w) {
      boost::asio::post(host_.flowTable(w).loop.context(),
                        [conns = conns_, w] { stopClientConnections(*conns, w); });
    }
  }

  std::string open() override {
    if (!cfg.tls_profile.empty() && !tls_) {
      if (std::string err = host_.tls(cfg.tls_profile, Host::TlsRole::kServer, tls_);
          !err.empty()) {
        return err;
      }
    }
    return ListenerEntity::open();
  }

  std::int64_t connectionsOpen() const override {
    return http_->connections_active.load(std::memory_order_relaxed);
  }
  nlohmann::json info() const override {
    auto j = ListenerEntity::info();
    auto& routes = j["routes"] = nlohmann::json::array();
    for (const auto& r : cfg.routes) {
      nlohmann::json route = {{"address", r.address}};
      if (!r.path_prefix.empty()) route["path_prefix"] = r.path_prefix;
      if (!r.host.empty()) route["host"] = r.host;
      routes.push_back(std::move(route));
    }
    j["max_header_bytes"] = cfg.max_header_bytes;
    j["head_timeout_ms"] = cfg.head_timeout_ms;
    j["response_timeout_ms"] = cfg.response_timeout_ms;
    j["tls_profile"] =
        cfg.tls_profile.empty() ? nlohmann::json(nullptr) : nlohmann::json(cfg.tls_profile);
    j["http"] = httpJson(*http_);
    return j;
  }

 protected:
  Host::Accept accepting() const override {
    auto settings = std::make_shared<const ListenerSettings>(ListenerSettings{
        .cfg = cfg, .flows = sharedCounters(), .http = http_, .tls = tls_, .conns = conns_});
    return [settings](FlowTable& flows, boost::asio::ip::tcp::socket s) {
      startClientConnection(flows, std::move(s), settings);
    };
  }

 private:
  Host& host_;
  Host::TlsContext tls_;  // empty: plain HTTP
  const std::shared_ptr<ListenerConnections> conns_;
};

class HttpConnector final : public ConnectorEntity, public WithHttpCounters {
 public:
  HttpConnector(Host& host, const HttpConnectorConfig& c)
      : ConnectorEntity(host, kConnectorKind, c.name, config::toJson(c), c.host, c.port, c.address),
        cfg(c),
        host_(host) {}
  const HttpConnectorConfig cfg;

  std::string open() override {
    if (!cfg.tls_profile.empty() && !tls_) {
      return host_.tls(cfg.tls_profile, Host::TlsRole::kClient, tls_);
    }
    return {};
  }

  nlohmann::json info() const override {
    auto j = ConnectorEntity::info();
    j["max_idle_connections"] = cfg.max_idle_connections;
    j["tls_profile"] =
        cfg.tls_profile.empty() ? nlohmann::json(nullptr) : nlohmann::json(cfg.tls_profile);
    j["http"] = httpJson(*http_);
    return j;
  }

 protected:
  std::shared_ptr<forwarding::EgressSink> makeSink(FlowTable& flows) override {
    return std::make_shared<ConnectorSink>(
        flows, std::make_shared<const ConnectorSettings>(ConnectorSettings{
                   .cfg = cfg, .flows = sharedCounters(), .http = http_, .tls = tls_}));
  }

 private:
  Host& host_;
  Host::TlsContext tls_;  // empty: plain HTTP
};

using ListenerOps = SectionOps<HttpListenerConfig, kHttpListeners, HttpListener>;
using ConnectorOps = SectionOps<HttpConnectorConfig, kHttpConnectors, HttpConnector>;

const EntityKind kListenerKind = ListenerOps::kind(&adaptor(), "http listener", "http_listeners",
                                                   "http-listeners", ListenerOps::Role::kListener);
const EntityKind kConnectorKind =
    ConnectorOps::kind(&adaptor(), "http connector", "http_connectors", "http-connectors",
                       ConnectorOps::Role::kConnector);

const WithHttpCounters* httpOf(const Entity* e) {
  return dynamic_cast<const WithHttpCounters*>(e);
}

// vane_http_responses_total{class}, _router_answers_total{status}, _requests_active,
// _connections_active, _request_duration_seconds (listeners), _server_connections_total{reused}.
void metrics(MetricWriter& out, const std::vector<const Entity*>& entities) {
  auto v = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  out.family("vane_http_responses_total", "counter",
             "Answers given (listeners) or received from the server (connectors), by status "
             "class.");
  for (const Entity* e : entities) {
    if (const auto* h = httpOf(e)) {
      for (std::size_t i = 0; i < h->http().responses.size(); ++i) {
        out.sample("vane_http_responses_total", *e, v(h->http().responses[i]),
                   {{"class", fmt::format("{}xx", i + 1)}});
      }
    }
  }
  out.family("vane_http_router_answers_total", "counter",
             "Answers the router made itself: 400 bad request, 408 head not in time, 501 "
             "method not known, 502 bad gateway, 503 no connector reachable, 504 no "
             "answer in time.");
  for (const Entity* e : entities) {
    if (const auto* h = httpOf(e)) {
      const auto& c = h->http();
      out.sample("vane_http_router_answers_total", *e, v(c.bad_requests), {{"status", "400"}});
      out.sample("vane_http_router_answers_total", *e, v(c.head_timeouts), {{"status", "408"}});
      out.sample("vane_http_router_answers_total", *e, v(c.not_implemented), {{"status", "501"}});
      out.sample("vane_http_router_answers_total", *e, v(c.bad_gateway), {{"status", "502"}});
      out.sample("vane_http_router_answers_total", *e, v(c.unavailable), {{"status", "503"}});
      out.sample("vane_http_router_answers_total", *e, v(c.timeouts), {{"status", "504"}});
    }
  }
  out.family("vane_http_tls_failures_total", "counter",
             "TLS handshakes that failed: with clients (listeners) or servers (connectors).");
  for (const Entity* e : entities) {
    if (const auto* h = httpOf(e)) {
      out.sample("vane_http_tls_failures_total", *e, v(h->http().tls_failures));
    }
  }
  out.family("vane_http_stalls_total", "counter",
             "Answers cut off (the client's connection reset) after response_timeout_ms "
             "without a byte moving.");
  for (const Entity* e : entities) {
    if (const auto* h = httpOf(e)) {
      out.sample("vane_http_stalls_total", *e, v(h->http().stalls));
    }
  }
  out.family("vane_http_tunnels_total", "counter",
             "Requests that switched to a byte stream: Upgrade answered 101 (WebSocket), "
             "CONNECT answered 2xx.");
  for (const Entity* e : entities) {
    if (const auto* h = httpOf(e)) {
      out.sample("vane_http_tunnels_total", *e, v(h->http().tunnels));
    }
  }
  out.family("vane_http_requests_active", "gauge", "Requests in progress.");
  for (const Entity* e : entities) {
    if (const auto* h = httpOf(e)) {
      out.sample("vane_http_requests_active", *e, v(h->http().requests_active));
    }
  }
  out.family("vane_http_connections_active", "gauge",
             "Open client connections of an http listener.");
  for (const Entity* e : entities) {
    if (e->kind().accepts) {
      if (const auto* h = httpOf(e)) {
        out.sample("vane_http_connections_active", *e, v(h->http().connections_active));
      }
    }
  }
  out.family("vane_http_server_connections_total", "counter",
             "Requests an http connector sent on a new server connection (reused=false) or a "
             "kept-alive one (reused=true).");
  for (const Entity* e : entities) {
    if (e->kind().accepts) continue;
    if (const auto* h = httpOf(e)) {
      out.sample("vane_http_server_connections_total", *e, v(h->http().connections_opened),
                 {{"reused", "false"}});
      out.sample("vane_http_server_connections_total", *e, v(h->http().connections_reused),
                 {{"reused", "true"}});
    }
  }
  out.family("vane_http_request_duration_seconds", "histogram",
             "From a request's head to the end of its answer, at the listener.");
  for (const Entity* e : entities) {
    if (!e->kind().accepts) continue;
    const auto* h = httpOf(e);
    if (!h) continue;
    const auto& c = h->http();
    double cumulative = 0;
    for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
      cumulative += v(c.duration_buckets[i]);
      out.sample("vane_http_request_duration_seconds_bucket", *e, cumulative,
                 {{"le", fmt::format("{}", kDurationBuckets[i])}});
    }
    out.sample("vane_http_request_duration_seconds_bucket", *e, v(c.duration_count),
               {{"le", "+Inf"}});
    out.sample("vane_http_request_duration_seconds_sum", *e, v(c.duration_sum_us) / 1e6);
    out.sample("vane_http_request_duration_seconds_count", *e, v(c.duration_count));
  }
}

}  // namespace

const Adaptor& adaptor() {
  static const Adaptor a{.name = "http",
                         .display = "HTTP",
                         .service_prefix = kServicePrefix,
                         .flow_noun = "requests",
                         .kinds = {&kListenerKind, &kConnectorKind},
                         .metrics = metrics};
  return a;
}

}  // namespace vane::adaptors::http
