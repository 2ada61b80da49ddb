#include "management/api.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <fstream>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>

#include "adaptors/entities.hpp"
#include "adaptors/registry.hpp"
#include "amqp/auth_throttle.hpp"
#include "amqp/connection.hpp"
#include "config/config.hpp"
#include "forwarding/transfer.hpp"
#include "management/claims.hpp"
#include "management/http_server.hpp"
#include "management/json_response.hpp"
#include "management/router_control.hpp"
#include "routing/core.hpp"

#ifndef VANE_VERSION
#define VANE_VERSION "dev"
#endif

namespace vane::management {

namespace http = boost::beast::http;
using json = nlohmann::json;

namespace {

// Compares a secret without leaking through timing how much of it matched:
// the time depends only on the length of `expected`.
bool equalInConstantTime(std::string_view given, std::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

constexpr std::string_view kApi = "/api/v1/";

const char* roleName(routing::NeighborRole r) {
  switch (r) {
    case routing::NeighborRole::kInterior:
      return "interior";
    case routing::NeighborRole::kEdge:
      return "edge";
    case routing::NeighborRole::kUplink:
      return "uplink";
  }
  return "interior";
}

// Resident set size of this process, from /proc.
std::uint64_t rssBytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

json flowJson(const adaptors::FlowRecord& f) {
  json j = {{"id", std::to_string(f.loop) + "." + std::to_string(f.id)},
            {"adaptor", f.adaptor},
            {"side", f.client_side ? "listener" : "connector"},
            {"name", f.name},
            {"address", f.address},
            {"peer_router", f.peer_router},
            {"endpoint", f.endpoint},
            {"bytes_in", f.bytes_in},
            {"bytes_out", f.bytes_out},
            {"start_ms", f.start_ms},
            {"end_ms", f.end_ms == 0 ? json(nullptr) : json(f.end_ms)},
            {"state", f.outcome}};
  if (!f.method.empty()) {
    j["method"] = f.method;
    j["host"] = f.host;
    j["path"] = f.path;
    j["status"] = f.status == 0 ? json(nullptr) : json(f.status);
  }
  return j;
}

// Prometheus text exposition format, version 0.0.4.
class Metrics {
 public:
  void family(const std::string& name, const char* type, const std::string& help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  void sample(const std::string& name, double value,
              std::initializer_list<std::pair<const char*, std::string>> labels = {}) {
    out_ << name;
    if (labels.size() > 0) {
      out_ << '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out_ << ',';
        first = false;
        out_ << k << "=\"" << escape(v) << '"';
      }
      out_ << '}';
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, " %.17g\n", value);
    out_ << buf;
  }
  void sample(const std::string& name, double value,
              const std::vector<std::pair<const char*, std::string>>& labels) {
    out_ << name << '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ << ',';
      first = false;
      out_ << k << "=\"" << escape(v) << '"';
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "} %.17g\n", value);
    out_ << buf;
  }
  std::string str() const { return out_.str(); }

 private:
  static std::string escape(const std::string& v) {
    std::string o;
    for (char c : v) {
      if (c == '\\' || c == '"') {
        o.push_back('\\');
        o.push_back(c);
      } else if (c == '\n') {
        o += "\\n";
      } else {
        o.push_back(c);
      }
    }
    return o;
  }
  std::ostringstream out_;
};

// The entity kinds the API creates and deletes: the router's AMQP
// listeners and connectors, and every adaptor's kinds (adaptors/registry).
struct Kind {
  enum Amqp { kListener, kConnector } amqp = kListener;
  const adaptors::EntityKind* adaptor = nullptr;

  // The name in messages and the configuration section their bodies are
  // checked as.
  std::string name() const {
    if (adaptor) return std::string(adaptor->what);
    return amqp == kListener ? "listener" : "connector";
  }
  std::string section() const {
    if (adaptor) return std::string(adaptor->section);
    return amqp == kListener ? "listeners" : "connectors";
  }
};

class Api {
 public:
  Api(RouterControl& router, std::string token) : router_(router), token_(std::move(token)) {}

  void handle(const Request& req, const Respond& respond) {
    const auto raw = req.target();
    std::string_view target(raw.data(), raw.size());
    std::string_view query;
    if (auto q = target.find('?'); q != std::string_view::npos) {
      query = target.substr(q + 1);
      target = target.substr(0, q);
    }
    // HEAD is answered as GET (the server leaves the content out).
    const auto method = req.method() == http::verb::head ? http::verb::get : req.method();
    if (target == "/healthz" || target == "/readyz") {
      if (method != http::verb::get) return notAllowed(respond, "GET, HEAD");
      if (target == "/healthz") return respond(jsonReply(http::status::ok, {{"status", "ok"}}));
      return ready(respond);
    }
    if (!token_.empty()) {
      const std::string expected = "Bearer " + token_;
      const auto given = req[http::field::authorization];
      if (!equalInConstantTime(std::string_view(given.data(), given.size()), expected)) {
        Response res = jsonError(http::status::unauthorized, "a bearer token is required");
        res.set(http::field::www_authenticate, "Bearer");
        return respond(std::move(res));
      }
    }
    if (target == "/metrics") {
      if (method != http::verb::get) return notAllowed(respond, "GET, HEAD");
      router_.addressCounters(
          [this, respond](AddressCounterMap counters) { metrics(respond, counters); });
      return;
    }
    if (target.substr(0, kApi.size()) != kApi) return notFound(respond, target);
    std::string_view path = target.substr(kApi.size());
    std::string_view name;
    if (auto slash = path.find('/'); slash != std::string_view::npos) {
      name = path.substr(slash + 1);
      path = path.substr(0, slash);
      if (name.empty()) return notFound(respond, target);
    }
    if (path == "tokens") return tokens(method, name, req.body(), respond);
    if (path == "tls-profiles") {
      if (name.empty() && method == http::verb::get)
        return respond(jsonReply(http::status::ok, tlsProfilesJson()));
      if (name.empty() && method == http::verb::post) return createTlsProfile(req.body(), respond);
      if (!name.empty() && method == http::verb::delete_) {
        auto refused = router_.removeTlsProfile(std::string(name));
        if (refused.message.empty()) return respond(Response{http::status::no_content, 11});
        return respond(jsonError(
            refused.conflict ? http::status::conflict : http::status::not_found, refused.message));
      }
      return notAllowed(respond, name.empty() ? "GET, HEAD, POST" : "DELETE");
    }
    if (path == "address-rules" && name.empty()) {
      if (method == http::verb::get) return respond(jsonReply(http::status::ok, rulesJson()));
      if (method == http::verb::post) return createRule(req.body(), respond);
      if (method == http::verb::delete_) return removeRule(query, respond);
      return notAllowed(respond, "GET, HEAD, POST, DELETE");
    }
    static constexpr std::string_view kReadOnly[] = {"router",      "routers", "addresses",
                                                     "connections", "links",   "flows"};
    const bool read_only =
        std::find(std::begin(kReadOnly), std::end(kReadOnly), path) != std::end(kReadOnly);
    if (read_only && name.empty() && method != http::verb::get) {
      return notAllowed(respond, "GET, HEAD");
    }
    if (name.empty() && method == http::verb::get) {
      if (path == "router") return respond(jsonReply(http::status::ok, routerJson()));
      if (path == "routers") return respond(jsonReply(http::status::ok, routersJson()));
      if (path == "addresses") {
        router_.addressCounters([this, respond](AddressCounterMap counters) {
          respond(jsonReply(http::status::ok, addressesJson(counters)));
        });
        return;
      }
      if (path == "listeners") return respond(jsonReply(http::status::ok, listenersJson()));
      if (path == "connectors") return respond(jsonReply(http::status::ok, connectorsJson()));
      if (const auto* kind = adaptors::kindByPath(path))
        return respond(jsonReply(http::status::ok, entitiesJson(*kind)));
      if (path == "connections" || path == "links") {
        const bool links = path == "links";
        router_.connections([respond, links](std::vector<amqp::ConnectionInfo> all) {
          std::sort(all.begin(), all.end(),
                    [](const auto& a, const auto& b) { return a.opened_ms < b.opened_ms; });
          json a = json::array();
          for (const auto& c : all) {
            json ls = json::array();
            for (const auto& l : c.links) {
              json lj = {{"name", l.name},
                         {"direction", l.incoming ? "in" : "out"},
                         {"address", l.address},
                         {"credit", l.credit},
                         {"unsettled", l.unsettled}};
              if (links) {
                lj["connection"] = c.peer;
                a.push_back(std::move(lj));
              } else {
                ls.push_back(std::move(lj));
              }
            }
            if (!links) {
              a.push_back({{"peer", c.peer},
                           {"listener", c.listener},
                           {"role", c.role},
                           {"outgoing", c.outgoing},
                           {"container", c.container},
                           {"opened_ms", c.opened_ms},
                           {"tls", c.tls.empty() ? json(nullptr) : json(c.tls)},
                           {"tls_peer", c.tls_peer.empty() ? json(nullptr) : json(c.tls_peer)},
                           {"user", c.user.empty() ? json(nullptr) : json(c.user)},
                           {"links", std::move(ls)}});
            }
          }
          respond(jsonReply(http::status::ok, a));
        });
        return;
      }
      if (path == "flows") {
        router_.flows([respond](std::vector<adaptors::FlowRecord> records) {
          json a = json::array();
          for (const auto& f : records) a.push_back(flowJson(f));
          respond(jsonReply(http::status::ok, a));
        });
        return;
      }
    }
    const auto* adaptor_kind = adaptors::kindByPath(path);
    if (adaptor_kind || path == "listeners" || path == "connectors") {
      const Kind kind{path == "listeners" ? Kind::kListener : Kind::kConnector, adaptor_kind};
      if (name.empty() && method == http::verb::post) return create(kind, req.body(), respond);
      if (!name.empty() && method == http::verb::get) return getOne(kind, name, respond);
      if (!name.empty() && method == http::verb::delete_) return remove(kind, name, respond);
      return notAllowed(respond, name.empty() ? "GET, HEAD, POST" : "GET, HEAD, DELETE");
    }
    return notFound(respond, target);
  }

 private:
  static Response refusal(const Refusal& r) {
    return jsonError(r.conflict ? http::status::conflict : http::status::bad_request, r.message);
  }

  static void notFound(const Respond& respond, std::string_view target) {
    respond(jsonError(http::status::not_found, "no such resource: " + std::string(target)));
  }
  static void notAllowed(const Respond& respond, const char* allow) {
    Response res = jsonError(http::status::method_not_allowed,
                             std::string("method not allowed here (allowed: ") + allow + ")");
    res.set(http::field::allow, allow);
    respond(std::move(res));
  }

  void ready(const Respond& respond) {
    // Serving: started, and an edge router has its uplink.
    const auto view = router_.routing().view();
    const bool edge = router_.config().router.mode == config::RouterMode::kEdge;
    bool uplink = false;
    for (const auto& l : view.links) uplink |= l.role == routing::NeighborRole::kUplink && l.up;
    if (edge && !uplink) {
      return respond(
          jsonReply(http::status::service_unavailable,
                    {{"status", "not ready"}, {"reason", "no link to an interior router yet"}}));
    }
    respond(jsonReply(http::status::ok, {{"status", "ready"}}));
  }

  json routerJson() const {
    const auto& r = router_.config().router;
    return {{"id", r.id},
            {"mode", config::toString(r.mode)},
            {"version", VANE_VERSION},
            {"uptime_seconds", router_.uptimeSeconds()},
            {"workers", router_.workerCount()}};
  }

  json routersJson() const {
    const auto v = router_.routing().view();
    json routers = json::array();
    routers.push_back({{"id", router_.config().router.id},
                       {"self", true},
                       {"mode", config::toString(router_.config().router.mode)},
                       {"cost", 0},
                       {"next_hop", nullptr}});
    for (const auto& r : v.routes) {
      routers.push_back(
          {{"id", r.router}, {"self", false}, {"cost", r.cost}, {"next_hop", r.next_hop}});
    }
    json links = json::array();
    for (const auto& l : v.links) {
      links.push_back(
          {{"peer", l.peer}, {"role", roleName(l.role)}, {"cost", l.cost}, {"up", l.up}});
    }
    return {{"routers", routers}, {"links", links}};
  }

  static json deliveriesJson(const forwarding::AddressCounters& c) {
    return {{"in", c.in},
            {"out", c.out},
            {"accepted", c.accepted},
            {"released", c.released},
            {"rejected", c.rejected},
            {"modified", c.modified},
            {"no_route", c.no_route}};
  }

  json addressesJson(const AddressCounterMap& counters) const {
    const auto v = router_.routing().view();
    json a = json::array();
    constexpr std::string_view kTemp = "_vane/temp/";
    for (const auto& e : v.addresses) {
      std::string_view address = e.address;
      if (address.substr(0, kTemp.size()) == kTemp) continue;  // replies: per client
      const adaptors::Adaptor* adaptor = adaptors::adaptorOf(address);
      if (adaptor) address.remove_prefix(adaptor->service_prefix.size());
      json entry = {{"address", std::string(address)},
                    {"kind", adaptor ? std::string(adaptor->name) : std::string("amqp")},
                    {"distribution", config::toString(e.distribution)},
                    {"local_consumers", e.local_consumers},
                    {"remote_routers", e.remote_routers}};
      if (!adaptor) {
        auto it = counters.find(e.address);
        entry["deliveries"] =
            deliveriesJson(it == counters.end() ? forwarding::AddressCounters{} : it->second);
      }
      a.push_back(std::move(entry));
    }
    return a;
  }

  json listenersJson() const {
    json a = json::array();
    for (const auto& l : router_.listeners()) {
      a.push_back(
          {{"name", l.name},
           {"host", l.host},
           {"port", l.port},
           {"role", l.kind},
           {"cost", l.cost},
           {"tls_profile", l.tls_profile.empty() ? json(nullptr) : json(l.tls_profile)},
           {"sasl_mechanisms", l.sasl_mechanisms},
           {"verify_router_id", l.verify_router_id},
           {"insecure", l.insecure},
           {"max_connections", l.max_connections},
           {"handshake_timeout_ms", l.handshake_timeout_ms},
           {"idle_timeout_ms", l.idle_timeout_ms ? json(*l.idle_timeout_ms)
                                                 : json(router_.config().router.idle_timeout_ms)},
           {"connections_active", l.counters->connections_active.load()},
           {"connections_refused", l.counters->connections_refused.load()},
           {"connections_opened", l.counters->connections_opened.load()},
           {"protocol_errors", l.counters->protocol_errors.load()},
           {"tls_failures", l.counters->tls_failures.load()},
           {"auth_failures", l.counters->auth_failures.load()}});
    }
    return a;
  }

  void tokens(http::verb method, std::string_view id, const std::string& body,
              const Respond& respond) {
    Claims* claims = router_.claims();
    if (claims == nullptr) {
      return respond(
          jsonError(http::status::conflict,
                    "this router issues no tokens: its configuration has no claims section"));
    }
    if (id.empty() && method == http::verb::get)
      return respond(jsonReply(http::status::ok, claims->list()));
    if (!id.empty() && method == http::verb::delete_) {
      switch (claims->revoke(std::string(id))) {
        case Claims::Revoked::kDone:
          return respond(Response{http::status::no_content, 11});
        case Claims::Revoked::kNotSaved:
          return respond(
              jsonError(http::status::internal_server_error,
                        "the router could not record the revocation; the token stays valid"));
        case Claims::Revoked::kUnknown:
          break;
      }
      return respond(
          jsonError(http::status::not_found, "token '" + std::string(id) + "' does not exist"));
    }
    if (!id.empty() || method != http::verb::post) {
      return notAllowed(respond, id.empty() ? "GET, HEAD, POST" : "DELETE");
    }
    std::int64_t expires = Claims::kDefaultExpiry;
    int uses = 1;
    try {
      const json b = body.empty() ? json::object() : json::parse(body);
      if (!b.is_object()) throw std::invalid_argument("not an object");
      for (const auto& [k, v] : b.items()) {
        if (k != "expires_seconds" && k != "uses")
          return respond(jsonError(http::status::bad_request, "unknown field '" + k + "'", k));
        if (!v.is_number_integer())
          return respond(jsonError(http::status::bad_request, k + " must be an integer", k));
      }
      expires = b.value("expires_seconds", expires);
      uses = b.value("uses", uses);
    } catch (const std::exception&) {
      return respond(
          jsonError(http::status::bad_request,
                    "the body must be a JSON object: {\"expires_seconds\": N, \"uses\": N}"));
    }
    std::string err;
    json token = claims->issue(expires, uses, err);
    if (token.is_null()) return respond(jsonError(http::status::bad_request, err));
    respond(jsonReply(http::status::created, token));
  }

  json tlsProfilesJson() const {
    json a = json::array();
    for (const auto& t : router_.config().tls_profiles) {
      a.push_back({{"name", t.name},
                   {"certificate", t.certificate},
                   {"key", t.key},
                   {"ca", t.ca.empty() ? json(nullptr) : json(t.ca)}});
    }
    return a;
  }

  void createTlsProfile(const std::string& body, const Respond& respond) {
    const auto parsed = config::parseEntry("tls_profiles", body);
    if (const auto* e = std::get_if<config::ConfigError>(&parsed)) {
      return respond(jsonError(http::status::bad_request, e->message, e->field));
    }
    const auto& p = std::get<config::Config>(parsed).tls_profiles.at(0);
    if (auto refused = router_.addTlsProfile(p); !refused.message.empty())
      return respond(refusal(refused));
    for (const auto& t : tlsProfilesJson()) {
      if (t.value("name", "") == p.name) return respond(jsonReply(http::status::created, t));
    }
  }

  json connectorsJson() const {
    json a = json::array();
    for (const auto& c : router_.connectors()) {
      a.push_back(
          {{"name", c.cfg.name},
           {"host", c.cfg.host},
           {"port", c.cfg.port},
           {"role", config::toString(c.cfg.role)},
           {"cost", c.cfg.cost},
           {"state", c.connected ? "connected" : "connecting"},
           {"attempts", c.attempts},
           {"tls_profile", c.cfg.tls_profile.empty() ? json(nullptr) : json(c.cfg.tls_profile)},
           {"verify_host", c.cfg.verify_host},
           {"last_error", c.last_error.empty() ? json(nullptr) : json(c.last_error)},
           {"tls_failures", c.counters ? c.counters->tls_failures.load() : 0}});
    }
    return a;
  }

  json entitiesJson(const adaptors::EntityKind& kind) const {
    json a = json::array();
    for (const auto* e : router_.entities(kind)) a.push_back(e->info());
    return a;
  }

  json rulesJson() const {
    json a = json::array();
    for (const auto& r : router_.config().addresses) a.push_back(ruleJson(r));
    return a;
  }

  static json ruleJson(const config::AddressConfig& r) {
    json j = {{"distribution", config::toString(r.distribution)}};
    if (!r.prefix.empty()) j["prefix"] = r.prefix;
    if (!r.pattern.empty()) j["pattern"] = r.pattern;
    return j;
  }

  void createRule(const std::string& body, const Respond& respond) {
    const auto parsed = config::parseEntry("addresses", body);
    if (const auto* e = std::get_if<config::ConfigError>(&parsed)) {
      return respond(jsonError(http::status::bad_request, e->message, e->field));
    }
    const auto& rule = std::get<config::Config>(parsed).addresses.at(0);
    if (auto refused = router_.addAddressRule(rule); !refused.message.empty()) {
      return respond(refusal(refused));
    }
    respond(jsonReply(http::status::created, ruleJson(rule)));
  }

  // DELETE /api/v1/address-rules?prefix=P or ?pattern=P (percent-encoded).
  void removeRule(std::string_view query, const Respond& respond) {
    std::string prefix;
    std::string pattern;
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view kv = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      const auto eq = kv.find('=');
      if (eq == std::string_view::npos) continue;
      const std::optional<std::string> value = percentDecode(kv.substr(eq + 1));
      if (!value) return respond(jsonError(http::status::bad_request, "bad percent-encoding"));
      if (kv.substr(0, eq) == "prefix") prefix = *value;
      if (kv.substr(0, eq) == "pattern") pattern = *value;
    }
    if (prefix.empty() == pattern.empty()) {
      return respond(jsonError(http::status::bad_request,
                               "give exactly one of the query parameters prefix and pattern"));
    }
    if (!router_.removeAddressRule(prefix, pattern)) {
      const std::string what = prefix.empty() ? "pattern '" + pattern : "prefix '" + prefix;
      return respond(jsonError(http::status::not_found, "no address rule with " + what + "'"));
    }
    respond(Response{http::status::no_content, 11});
  }

  static std::optional<std::string> percentDecode(std::string_view in) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '+') {
        out.push_back(' ');
      } else if (in[i] != '%') {
        out.push_back(in[i]);
      } else {
        if (i + 2 >= in.size()) return std::nullopt;  // '%' needs two hex digits
        const int h = hex(in[i + 1]);
        const int l = hex(in[i + 2]);
        if (h < 0 || l < 0) return std::nullopt;
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
      }
    }
    return out;
  }

  // The entities of one kind, as the list endpoint shows them.
  json list(const Kind& kind) const {
    if (kind.adaptor) return entitiesJson(*kind.adaptor);
    return kind.amqp == Kind::kListener ? listenersJson() : connectorsJson();
  }

  void getOne(const Kind& kind, std::string_view name, const Respond& respond) const {
    for (const auto& e : list(kind)) {
      if (e.value("name", "") == name) return respond(jsonReply(http::status::ok, e));
    }
    respond(jsonError(http::status::not_found,
                      kind.name() + " '" + std::string(name) + "' does not exist"));
  }

  void create(const Kind& kind, const std::string& body, const Respond& respond) {
    const auto parsed = config::parseEntry(kind.section(), body);
    if (const auto* e = std::get_if<config::ConfigError>(&parsed)) {
      return respond(jsonError(http::status::bad_request, e->message, e->field));
    }
    const auto& cfg = std::get<config::Config>(parsed);
    Refusal refused;
    std::string name;
    if (kind.adaptor) {
      name = kind.adaptor->entries(cfg).at(0).first;
      refused = router_.addEntity(*kind.adaptor, cfg);
    } else if (kind.amqp == Kind::kListener) {
      name = cfg.listeners.at(0).name;
      refused = router_.addListener(cfg.listeners.at(0));
    } else {
      name = cfg.connectors.at(0).name;
      refused = router_.addConnector(cfg.connectors.at(0));
    }
    if (!refused.message.empty()) return respond(refusal(refused));
    getOne(kind, name, [respond](Response res) {
      res.result(http::status::created);
      respond(std::move(res));
    });
  }

  void remove(const Kind& kind, std::string_view name, const Respond& respond) {
    const std::string n(name);
    const bool removed = kind.adaptor                   ? router_.removeEntity(*kind.adaptor, n)
                         : kind.amqp == Kind::kListener ? router_.removeListener(n)
                                                        : router_.removeConnector(n);
    if (!removed) {
      return respond(
          jsonError(http::status::not_found, kind.name() + " '" + n + "' does not exist"));
    }
    respond(Response{http::status::no_content, 11});
  }

  // An adaptor's families (vane_tcp_...): one sample per listener and
  // connector in each; each family's samples stay together, as the format
  // requires.
  void adaptorMetrics(Metrics& m, const adaptors::Adaptor& a) const {
    std::vector<const adaptors::Entity*> all;
    for (const auto* kind : a.kinds) {
      const auto some = router_.entities(*kind);
      all.insert(all.end(), some.begin(), some.end());
    }
    auto v = [](const auto& x) { return static_cast<double>(x.load(std::memory_order_relaxed)); };
    const std::string prefix = "vane_" + std::string(a.name) + "_";
    auto sample = [&](const std::string& name, const adaptors::Entity& e, double value,
                      const char* direction = nullptr) {
      if (direction) {
        m.sample(name, value,
                 {{"kind", std::string(e.kind().role)},
                  {"name", e.name()},
                  {"address", e.address()},
                  {"direction", direction}});
      } else {
        m.sample(
            name, value,
            {{"kind", std::string(e.kind().role)}, {"name", e.name()}, {"address", e.address()}});
      }
    };
    using Field = const std::atomic<std::uint64_t> adaptors::FlowCounters::*;
    auto family = [&](const char* suffix, const char* type, const std::string& help, Field f) {
      const std::string name = prefix + suffix;
      m.family(name, type, help);
      for (const auto* e : all) sample(name, *e, v(e->counters().*f));
    };
    const std::string_view lower = a.name;
    const std::string_view upper = a.display;
    const std::string_view noun = a.flow_noun;
    family("flows_opened_total", "counter",
           fmt::format("{} {} begun, per {} listener or connector.", upper, noun, lower),
           &adaptors::FlowCounters::flows_opened);
    family("flows_failed_total", "counter",
           fmt::format("{} {} ended by a reset or failure.", upper, noun),
           &adaptors::FlowCounters::flows_failed);
    family("refused_total", "counter",
           fmt::format("{0} a {1} listener refused at once: no {1} connector reachable.",
                       noun == "connections" ? "Connections" : "Requests", lower),
           &adaptors::FlowCounters::refused);
    family("connect_failures_total", "counter",
           fmt::format("Server connections a {} connector could not make.", lower),
           &adaptors::FlowCounters::connect_failures);
    family("malformed_total", "counter",
           fmt::format("{} streams from another router refused as malformed (broken stream "
                       "framing{}): the flow was reset.",
                       upper, noun == "connections" ? "" : ", or a request that is not one"),
           &adaptors::FlowCounters::malformed);
    m.family(prefix + "flows_active", "gauge", fmt::format("Open {} {}.", upper, noun));
    for (const auto* e : all) sample(prefix + "flows_active", *e, v(e->counters().flows_active));
    m.family(prefix + "bytes_total", "counter",
             fmt::format("Bytes read from (in) and written to (out) the {} sockets.", upper));
    for (const auto* e : all) {
      sample(prefix + "bytes_total", *e, v(e->counters().bytes_in), "in");
      sample(prefix + "bytes_total", *e, v(e->counters().bytes_out), "out");
    }
    if (a.metrics) {
      struct Writer final : adaptors::MetricWriter {
        explicit Writer(Metrics& m) : m(m) {}
        void family(const std::string& name, const char* type, const std::string& help) override {
          m.family(name, type, help);
        }
        void sample(const std::string& name, const adaptors::Entity& e, double value,
                    const std::vector<std::pair<std::string, std::string>>& labels) override {
          std::vector<std::pair<const char*, std::string>> all = {
              {"kind", std::string(e.kind().role)}, {"name", e.name()}, {"address", e.address()}};
          for (const auto& [k, v] : labels) all.emplace_back(k.c_str(), v);
          m.sample(name, value, all);
        }
        Metrics& m;
      } writer(m);
      a.metrics(writer, all);
    }
  }

  void metrics(const Respond& respond, const AddressCounterMap& counters) const {
    Metrics m;
    const auto& r = router_.config().router;
    const auto& s = router_.stats();
    auto v = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
    m.family("vane_router_info", "gauge", "The router's identity (value 1).");
    m.sample("vane_router_info", 1,
             {{"id", r.id}, {"mode", config::toString(r.mode)}, {"version", VANE_VERSION}});
    m.family("vane_uptime_seconds", "gauge", "Seconds since the router started.");
    m.sample("vane_uptime_seconds", router_.uptimeSeconds());
    m.family("vane_memory_resident_bytes", "gauge", "Resident memory of the router process.");
    m.sample("vane_memory_resident_bytes", static_cast<double>(rssBytes()));
#ifdef __GLIBC__
    // What the allocator says: memory in live blocks (mapped ones included)
    // and freed memory it still holds. Resident memory that grows while
    // in-use stays flat is the allocator keeping freed memory, not a leak.
    const struct mallinfo2 mi = mallinfo2();
    m.family("vane_memory_heap_in_use_bytes", "gauge",
             "Memory in allocated blocks (malloc's arenas and mapped blocks).");
    m.sample("vane_memory_heap_in_use_bytes", static_cast<double>(mi.uordblks + mi.hblkhd));
    m.family("vane_memory_heap_free_bytes", "gauge",
             "Freed memory that malloc keeps in its arenas.");
    m.sample("vane_memory_heap_free_bytes", static_cast<double>(mi.fordblks));
#endif
    m.family("vane_traffic_buffered_bytes", "gauge",
             "Message and stream bytes the router holds between reading them and handing "
             "them on (a multicast delivery counts once per copy).");
    m.sample("vane_traffic_buffered_bytes", static_cast<double>(forwarding::traffic::buffered()));
    m.family("vane_connections_active", "gauge", "Open AMQP connections (clients and routers).");
    m.sample("vane_connections_active", v(s.connections_active));
    m.family("vane_connections_opened_total", "counter", "AMQP connections accepted or made.");
    m.sample("vane_connections_opened_total", v(s.connections_opened));
    m.family("vane_connections_refused_total", "counter",
             "Connections closed at once: over router.max_connections.");
    m.sample("vane_connections_refused_total", v(s.connections_refused));
    m.family("vane_protocol_errors_total", "counter", "Connections closed for a protocol error.");
    m.sample("vane_protocol_errors_total", v(s.protocol_errors));
    m.family("vane_reserved_address_refusals_total", "counter",
             "Client links and messages refused for an address under _vane/.");
    m.sample("vane_reserved_address_refusals_total", v(s.reserved_refused));
    m.family("vane_unsettled_limit_reached_total", "counter",
             "Times a consumer's link reached router.max_unsettled_per_link (sending paused).");
    m.sample("vane_unsettled_limit_reached_total", v(s.unsettled_limit_reached));
    m.family("vane_limit_hits_total", "counter",
             "Times a client connection reached a per-connection limit (a session or link "
             "refused with amqp:resource-limit-exceeded, or sending paused), by limit.");
    for (std::size_t i = 0; i < s.limit_hits.size(); ++i) {
      m.sample("vane_limit_hits_total", v(s.limit_hits[i]),
               {{"limit", amqp::limitField(static_cast<amqp::Limit>(i))}});
    }
    m.family("vane_stream_links_refused_total", "counter",
             "Router connections closed for opening more than router.max_stream_links stream "
             "links.");
    m.sample("vane_stream_links_refused_total", v(s.stream_links_refused));
    m.family("vane_handshake_timeouts_total", "counter",
             "Connections closed for not finishing TLS, SASL and the AMQP open within their "
             "listener's handshake_timeout_ms.");
    m.sample("vane_handshake_timeouts_total", v(s.handshake_timeouts));
    m.family("vane_auth_throttled_total", "counter",
             "PLAIN authentications refused without a password check: their source address "
             "failed router.max_auth_failures_per_source times within auth_failure_window_ms.");
    m.sample("vane_auth_throttled_total", static_cast<double>(router_.authThrottle().throttled()));
    m.family("vane_flow_token_mismatches_total", "counter",
             "Deliveries to a TCP flow's address with the wrong token (guessed or forged): "
             "dropped.");
    m.sample("vane_flow_token_mismatches_total", v(s.flow_token_mismatches));
    m.family("vane_loop_exceptions_total", "counter",
             "Exceptions that escaped a handler on an event loop (logged, the loop went on).");
    m.sample("vane_loop_exceptions_total", static_cast<double>(router_.escapedExceptions()));
    m.family("vane_deliveries_total", "counter", "Deliveries through the router, by event.");
    m.sample("vane_deliveries_total", v(s.deliveries_in), {{"event", "in"}});
    m.sample("vane_deliveries_total", v(s.deliveries_out), {{"event", "out"}});
    m.sample("vane_deliveries_total", v(s.deliveries_released), {{"event", "released"}});
    m.sample("vane_deliveries_total", v(s.deliveries_rejected), {{"event", "rejected"}});
    m.sample("vane_deliveries_total", v(s.deliveries_modified), {{"event", "modified"}});
    m.sample("vane_deliveries_total", v(s.deliveries_dropped_no_route), {{"event", "no_route"}});
    m.family("vane_address_deliveries_total", "counter",
             "Deliveries through the router per address (\"\" = addresses beyond the "
             "10000 counted one by one), by event.");
    for (const auto& [address, c] : counters) {
      const std::pair<const char*, std::uint64_t> events[] = {{"in", c.in},
                                                              {"out", c.out},
                                                              {"accepted", c.accepted},
                                                              {"released", c.released},
                                                              {"rejected", c.rejected},
                                                              {"modified", c.modified},
                                                              {"no_route", c.no_route}};
      for (const auto& [event, n] : events) {
        m.sample("vane_address_deliveries_total", static_cast<double>(n),
                 {{"address", address}, {"event", event}});
      }
    }
    m.family("vane_listener_protocol_errors_total", "counter",
             "Connections closed for a protocol error, per listener.");
    const auto listeners = router_.listeners();
    for (const auto& l : listeners) {
      m.sample("vane_listener_protocol_errors_total", v(l.counters->protocol_errors),
               {{"listener", l.name}});
    }
    m.family("vane_listener_connections_total", "counter", "Connections accepted, per listener.");
    for (const auto& l : listeners) {
      m.sample("vane_listener_connections_total", v(l.counters->connections_opened),
               {{"listener", l.name}});
    }
    const auto http = router_.httpEndpoints();
    m.family("vane_http_refusals_total", "counter",
             "Connections to the management API or the claims endpoint refused, by limit.");
    for (const auto& [name, c] : http) {
      m.sample("vane_http_refusals_total", v(c->refused_max_connections),
               {{"server", name}, {"limit", "max_connections"}});
      m.sample("vane_http_refusals_total", v(c->refused_per_source),
               {{"server", name}, {"limit", "max_connections_per_source"}});
    }
    m.family("vane_http_header_timeouts_total", "counter",
             "Clients of the management API or the claims endpoint closed for not sending the "
             "TLS handshake or a request header within header_timeout_ms.");
    for (const auto& [name, c] : http) {
      m.sample("vane_http_header_timeouts_total", v(c->header_timeouts), {{"server", name}});
    }
    m.family("vane_listener_connections_refused_total", "counter",
             "Connections refused over the listener's max_connections, per listener.");
    for (const auto& l : listeners) {
      m.sample("vane_listener_connections_refused_total", v(l.counters->connections_refused),
               {{"listener", l.name}});
    }
    m.family("vane_listener_connections_active", "gauge", "Open connections, per listener.");
    for (const auto& l : listeners) {
      m.sample("vane_listener_connections_active", v(l.counters->connections_active),
               {{"listener", l.name}});
    }
    m.family("vane_listener_tls_failures_total", "counter",
             "TLS handshakes that failed (e.g. an untrusted certificate), per listener.");
    for (const auto& l : listeners) {
      m.sample("vane_listener_tls_failures_total", v(l.counters->tls_failures),
               {{"listener", l.name}});
    }
    m.family("vane_listener_auth_failures_total", "counter",
             "SASL authentications refused, per listener.");
    for (const auto& l : listeners) {
      m.sample("vane_listener_auth_failures_total", v(l.counters->auth_failures),
               {{"listener", l.name}});
    }
    m.family("vane_connector_attempts_total", "counter",
             "Connection attempts of each router connector (reconnects included).");
    const auto connectors = router_.connectors();
    for (const auto& c : connectors) {
      m.sample("vane_connector_attempts_total", static_cast<double>(c.attempts),
               {{"connector", c.cfg.name}});
    }
    m.family("vane_connector_tls_failures_total", "counter",
             "TLS handshakes of a router connector that failed (e.g. an untrusted server).");
    for (const auto& c : connectors) {
      m.sample("vane_connector_tls_failures_total", c.counters ? v(c.counters->tls_failures) : 0.0,
               {{"connector", c.cfg.name}});
    }
    m.family("vane_connector_connected", "gauge", "1 while the connector's link is up.");
    for (const auto& c : connectors) {
      m.sample("vane_connector_connected", c.connected ? 1 : 0, {{"connector", c.cfg.name}});
    }
    const auto view = router_.routing().view();
    m.family("vane_routers_reachable", "gauge", "Other routers this router has a path to.");
    m.sample("vane_routers_reachable", static_cast<double>(view.routes.size()));
    m.family("vane_links_up", "gauge", "Links to neighbouring routers that are up.");
    double up = 0;
    for (const auto& l : view.links) up += l.up ? 1 : 0;
    m.sample("vane_links_up", up);
    // Routing records refused (docs/design/trust-model.md) and network limits.
    const routing::EngineStats none;
    const routing::EngineStats* es = router_.routing().engineStats();
    const routing::EngineStats& e = es != nullptr ? *es : none;
    auto n = [](std::uint64_t x) { return static_cast<double>(x); };
    m.family("vane_router_bad_signatures_total", "counter",
             "Routing records and hellos with a missing or bad signature (the neighbour that "
             "sent one is dropped).");
    m.sample("vane_router_bad_signatures_total", n(e.bad_signatures));
    m.family("vane_router_id_conflicts_total", "counter",
             "Routing records and hellos for a router id that is in the network with another "
             "key: refused.");
    m.sample("vane_router_id_conflicts_total", n(e.id_conflicts));
    m.family("vane_router_limit_drops_total", "counter",
             "Routing records dropped by a router network limit, by limit.");
    m.sample("vane_router_limit_drops_total", n(e.router_limit_drops), {{"limit", "max_routers"}});
    m.sample("vane_router_limit_drops_total", n(e.address_limit_drops),
             {{"limit", "max_addresses"}});
    m.sample("vane_router_limit_drops_total", n(e.router_address_limit_drops),
             {{"limit", "max_addresses_per_router"}});
    m.family("vane_router_updates_deferred_total", "counter",
             "Routing messages that waited for their neighbour's "
             "max_updates_per_neighbor_per_second.");
    m.sample("vane_router_updates_deferred_total", n(e.deferred_messages));
    m.family("vane_router_rate_limit_drops_total", "counter",
             "Neighbours dropped for sending updates over their rate for too long.");
    m.sample("vane_router_rate_limit_drops_total", n(e.rate_limit_drops));
    m.family("vane_claims_id_in_use_total", "counter",
             "Claims refused because the site name is already a router id in the network.");
    m.sample("vane_claims_id_in_use_total",
             n(router_.claims() != nullptr ? router_.claims()->idInUseRefusals() : 0));

    for (const adaptors::Adaptor* a : adaptors::all()) adaptorMetrics(m, *a);
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = m.str();
    respond(std::move(res));
  }

  RouterControl& router_;
  const std::string token_;
};

}  // namespace

Handler makeApi(RouterControl& router, std::string token) {
  auto api = std::make_shared<Api>(router, std::move(token));
  return [api](const Request& req, Respond respond) { api->handle(req, respond); };
}

}  // namespace vane::management
