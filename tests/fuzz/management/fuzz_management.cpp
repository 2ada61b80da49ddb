// Fuzz target for the management API's request handler
// (vane::management::makeApi, src/management/api.cpp): any method, target
// (path and query), headers and body, as HttpServer hands them over (see
// ../http_request.hpp for the input format; up to 16 requests an input, in
// order, against the same router). Leading option lines: "@edge" serves an
// edge router instead of an interior one; "@token" makes the API require
// "Authorization: Bearer fuzz-management-token".
//
// Each input gets a new vane::server::Router, made from a fixed
// configuration (listeners, a connector, tcp listener and connector, address
// rules, tls profiles whose files the harness writes to a temporary
// directory) and never started: no thread runs. The handler runs on the
// router's core loop, driven on the fuzzer's thread (EventLoop::poll), as
// HttpServer calls it there. The worker loops do not run, so the requests
// whose answer is gathered from the workers (GET /metrics,
// /api/v1/addresses, /connections, /links, /flows) are routed but get no
// answer; every other request is answered at once.
//
// The router is real, so a request that would reach outside the process is
// not passed on (it is skipped, as if never sent): a valid POST of a
// listener or tcp listener on anything but 127.0.0.1 port 0 (it binds, and
// resolves host names), or with a users_file that is not a bare file name;
// on an interior router a valid POST of a connector (it connects out); a
// valid POST of a tls profile naming anything but bare file names (read from
// the temporary directory). config::parseEntry decides "valid", as the API
// does; invalid bodies, and everything else, reach the handler. After the
// last request the harness closes the router's listeners on the core loop,
// as Router::stop() does for a started router, then destroys it.
//
// Besides "no crash, no sanitizer report, no exception out of the handler",
// every answer passes checkAnswer() (JSON in valid UTF-8 whatever bytes the
// request had, an error message with every refusal, Allow with 405), is
// JSON unless it is a 204, is given once, and respects the token: with
// "@token" a request without it gets 401 (with WWW-Authenticate) on every
// path but /healthz and /readyz, and no request gets 401 otherwise. A 201
// for a created entity carries its name.
#include <stdlib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "../http_request.hpp"
#include "adaptors/registry.hpp"
#include "adaptors/sections.hpp"
#include "adaptors/tcp/tcp_config.hpp"
#include "config/config.hpp"
#include "management/api.hpp"
#include "pki/pki.hpp"
#include "server/router.hpp"

namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using json = nlohmann::json;
using vane::management::Request;
using vane::management::Response;

constexpr const char* kTarget = "management";
constexpr std::string_view kToken = "fuzz-management-token";
constexpr std::size_t kMaxRequests = 16;

[[noreturn]] void fail(const char* what) {
  vane::fuzz::httpFail(kTarget, what);
}

// Files the configurations name, relative to the temporary directory.
constexpr const char* kInterior = R"(
router: {id: fuzz-router}
listeners:
  - {name: amqp, host: 127.0.0.1, port: 0}
  - {name: links, host: 127.0.0.1, port: 0, role: inter-router, tls_profile: fuzz}
connectors:
  - {name: peer, host: 127.0.0.1, port: 9, role: inter-router}
tcp_listeners:
  - {name: web-in, host: 127.0.0.1, port: 0, address: web}
tcp_connectors:
  - {name: web, host: 127.0.0.1, port: 9, address: web}
addresses:
  - {prefix: multicast/, distribution: multicast}
  - {pattern: "orders.*.eu", distribution: closest}
tls_profiles:
  - {name: fuzz, certificate: router.pem, key: router-key.pem, ca: ca.pem}
  - {name: spare, certificate: router.pem, key: router-key.pem}
)";
constexpr const char* kEdge = R"(
router: {id: fuzz-edge, mode: edge}
listeners:
  - {name: amqp, host: 127.0.0.1, port: 0}
connectors:
  - {name: uplink, host: 127.0.0.1, port: 9, role: edge}
tcp_connectors:
  - {name: web, host: 127.0.0.1, port: 9, address: web}
addresses:
  - {prefix: multicast/, distribution: multicast}
tls_profiles:
  - {name: fuzz, certificate: router.pem, key: router-key.pem, ca: ca.pem}
)";

void writeFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) {
    std::fprintf(stderr, "management fuzz target: cannot write %s\n", path.c_str());
    std::abort();
  }
}

std::string_view pathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}

// A file name that resolves inside the configuration's directory (or none).
bool bareName(const std::string& file) {
  for (char c : file) {
    if (!vane::config::isNameChar(c)) return false;
  }
  return true;
}

class Harness {
 public:
  Harness() {
    std::string base = "/dev/shm";
    std::error_code ec;
    if (!fs::is_directory(base, ec)) base = fs::temp_directory_path().string();
    std::string pattern = base + "/vane-fuzz-management-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("management fuzz target: mkdtemp");
      std::abort();
    }
    dir_ = pattern;
    const auto ca = vane::pki::makeCa("fuzz CA", std::chrono::hours(24 * 365 * 10));
    const std::string key = vane::pki::generateKey();
    vane::pki::IssueOptions o;
    o.common_name = "fuzz-router";
    o.dns_names = {"localhost"};
    writeFile(dir_ / "ca.pem", ca.certificate);
    writeFile(dir_ / "router.pem", vane::pki::issueCertificate(ca, key, o));
    writeFile(dir_ / "router-key.pem", key);
    writeFile(dir_ / "users", "alice:secret\n# a comment\nbob:$6$salt$hash\n");
    interior_ = load(kInterior);
    edge_ = load(kEdge);
  }
  ~Harness() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void run(std::string_view input) {
    bool edge = false;
    bool token = false;
    for (;;) {
      if (input.substr(0, 6) == "@edge\n") {
        edge = true;
        input.remove_prefix(6);
      } else if (input.substr(0, 7) == "@token\n") {
        token = true;
        input.remove_prefix(7);
      } else {
        break;
      }
    }
    vane::server::Router router(edge ? edge_ : interior_);
    const vane::management::Handler api =
        vane::management::makeApi(router, token ? std::string(kToken) : std::string());
    for (std::string_view piece : vane::fuzz::splitRequests(input, kMaxRequests)) {
      const std::optional<Request> req = vane::fuzz::parseRequest(piece);
      if (!req) continue;
      if (!passOn(*req, edge, token)) {
        vane::fuzz::traceSkipped(*req);
        continue;
      }
      std::vector<Response> answers;
      router.coreLoop().post(
          [&api, &req, &answers] { api(*req, [&answers](Response r) { answers.push_back(r); }); });
      try {
        router.coreLoop().poll();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "management fuzz target: the handler threw: %s\n", e.what());
        fail("the handler threw");
      }
      vane::fuzz::traceAnswer(*req, answers.empty() ? nullptr : &answers.front());
      check(*req, answers, token);
    }
    closeListeners(router);
  }

 private:
  vane::config::Config load(const char* yaml) const {
    auto r = vane::config::parseString(yaml, (dir_ / "vaned.yaml").string());
    if (auto* e = std::get_if<vane::config::ConfigError>(&r)) {
      std::fprintf(stderr, "management fuzz target: %s\n", e->toString().c_str());
      std::abort();
    }
    auto cfg = std::get<vane::config::Config>(std::move(r));
    vane::config::resolvePaths(cfg, dir_.string());
    return cfg;
  }

  // What Router::stop() does for a started router before its loops go: a
  // listener the API opened has an accept pending on the core loop, holding
  // a socket of a worker's io_context, which must be cancelled and handled
  // while the workers live. (stop() closes listeners only when the router
  // was started, and the API runs only on a started router.)
  static void closeListeners(vane::server::Router& router) {
    router.coreLoop().post([&router] {
      for (const auto& l : router.listeners()) router.removeListener(l.name);
      for (const auto* kind : vane::adaptors::kinds()) {
        std::vector<std::string> names;
        for (const auto* e : router.entities(*kind)) names.push_back(e->name());
        for (const auto& n : names) router.removeEntity(*kind, n);
      }
    });
    router.coreLoop().poll();
  }

  static bool authorized(const Request& req, bool token) {
    if (!token) return true;
    const auto given = req[http::field::authorization];
    return std::string_view(given.data(), given.size()) == "Bearer " + std::string(kToken);
  }

  // False for the requests that would bind, resolve, connect or read files
  // outside the temporary directory (see the top of the file).
  static bool passOn(const Request& req, bool edge, bool token) {
    if (req.method() != http::verb::post || !authorized(req, token)) return true;
    const auto raw = req.target();
    const std::string_view path = pathOf(std::string_view(raw.data(), raw.size()));
    std::string section;
    if (path == "/api/v1/listeners") {
      section = "listeners";
    } else if (path == "/api/v1/tcp-listeners") {
      section = "tcp_listeners";
    } else if (path == "/api/v1/connectors") {
      section = "connectors";
    } else if (path == "/api/v1/tls-profiles") {
      section = "tls_profiles";
    } else {
      return true;
    }
    const auto parsed = vane::config::parseEntry(section, req.body());
    const auto* cfg = std::get_if<vane::config::Config>(&parsed);
    if (cfg == nullptr) return true;
    if (section == "listeners") {
      const auto& l = cfg->listeners.at(0);
      return l.host == "127.0.0.1" && l.port == 0 && bareName(l.users_file);
    }
    if (section == "tcp_listeners") {
      const auto& t = vane::adaptors::kTcpListeners.of(*cfg).at(0);
      return t.host == "127.0.0.1" && t.port == 0;
    }
    if (section == "connectors") return edge;  // refused: an edge router's list is fixed
    const auto& p = cfg->tls_profiles.at(0);
    return bareName(p.certificate) && bareName(p.key) && bareName(p.ca) &&
           bareName(p.key_password_file);
  }

  // The requests answered only after a round trip through the worker loops.
  static bool gathered(const Request& req) {
    if (req.method() != http::verb::get && req.method() != http::verb::head) return false;
    const auto raw = req.target();
    const std::string_view path = pathOf(std::string_view(raw.data(), raw.size()));
    return path == "/metrics" || path == "/api/v1/addresses" || path == "/api/v1/connections" ||
           path == "/api/v1/links" || path == "/api/v1/flows";
  }

  static void check(const Request& req, const std::vector<Response>& answers, bool token) {
    const auto raw = req.target();
    const std::string_view path = pathOf(std::string_view(raw.data(), raw.size()));
    const bool probe = path == "/healthz" || path == "/readyz";
    const bool allowed = probe || authorized(req, token);
    if (answers.size() > 1) fail("more than one answer");
    if (answers.empty()) {
      if (allowed && gathered(req)) return;
      fail("no answer");
    }
    const Response& res = answers.front();
    const json body = vane::fuzz::checkAnswer(kTarget, res);
    if (res.result() != http::status::no_content &&
        res[http::field::content_type] != "application/json") {
      fail("an answer that is not JSON");
    }
    if (!allowed) {
      if (res.result() != http::status::unauthorized) fail("answer without the token");
      if (res[http::field::www_authenticate] != "Bearer") fail("401 without WWW-Authenticate");
      return;
    }
    if (res.result() == http::status::unauthorized) fail("401 with the token, or without one set");
    if (res.result() == http::status::created && path != "/api/v1/address-rules" &&
        path != "/api/v1/tokens") {
      if (!body.is_object() || !body.contains("name") || !body["name"].is_string())
        fail("201 without the entity's name");
    }
  }

  fs::path dir_;
  vane::config::Config interior_;
  vane::config::Config edge_;
};

std::unique_ptr<Harness> harness;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  vane::fuzz::logIntoNullSink();
  vane::adaptors::addConfigSections();
  harness = std::make_unique<Harness>();
  // Removes the temporary directory when the run ends normally.
  std::atexit([] { harness.reset(); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  harness->run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
