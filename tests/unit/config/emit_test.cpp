// The emitters (toYaml, toJson) against the parser: every entry kind the CLI
// writes goes struct -> text -> parser and must come back equal, with every
// field the parser reads for it; validate() gives the parser's errors.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "adaptors/http/http_config.hpp"
#include "adaptors/sections.hpp"
#include "adaptors/tcp/tcp_config.hpp"
#include "config/config.hpp"

// The schema these tests read has the adaptors' sections too.
[[maybe_unused]] static const bool kAdaptorSections = (vane::adaptors::addConfigSections(), true);

namespace vane::config {
namespace {

using adaptors::HttpConnectorConfig;
using adaptors::HttpListenerConfig;
using adaptors::HttpRouteConfig;
using adaptors::TcpConnectorConfig;
using adaptors::TcpListenerConfig;

// Every field set, none at its default, so that a field the emitter leaves
// out or writes wrong shows.
ConnectorConfig fullConnector() {
  ConnectorConfig c;
  c.name = "b";
  c.host = "b.example.org";
  c.port = 55671;
  c.role = ListenerRole::kInterRouter;  // the only role other than edge an interior router takes
  c.cost = 7;
  c.tls_profile = "link-b";
  c.verify_host = false;
  return c;
}

TlsProfileConfig fullProfile() {
  TlsProfileConfig t;
  t.name = "link-b";
  t.ca = "links/b/ca.pem";
  t.certificate = "links/b/cert.pem";
  t.key = "links/b/key.pem";
  t.key_password_file = "links/b/password";
  return t;
}

TcpConnectorConfig fullTcpConnector() {
  TcpConnectorConfig t;
  t.name = "echo";
  t.host = "10.1.2.3";
  t.port = 7;
  t.address = "svc/echo";
  return t;
}

TcpListenerConfig fullTcpListener() {
  TcpListenerConfig t;
  t.name = "echo";
  t.host = "0.0.0.0";
  t.port = 9007;
  t.address = "svc/echo";
  return t;
}

HttpListenerConfig fullHttpListener() {
  HttpListenerConfig h;
  h.name = "web";
  h.host = "0.0.0.0";
  h.port = 18080;
  h.address = "web";
  h.routes.push_back({.path_prefix = "/api/", .host = "", .address = "api"});
  h.routes.push_back({.path_prefix = "", .host = "admin.example.com", .address = "admin"});
  h.routes.push_back({.path_prefix = "/x", .host = "x.example", .address = "x"});
  h.max_header_bytes = 8192;
  h.response_timeout_ms = 1500;
  h.tls_profile = "edge";
  return h;
}

HttpConnectorConfig fullHttpConnector() {
  HttpConnectorConfig h;
  h.name = "web-1";
  h.host = "::1";
  h.port = 8080;
  h.address = "web";
  h.max_idle_connections = 4;
  h.tls_profile = "origin";
  return h;
}

// The entries of `section` in a parsed configuration.
const std::vector<ConnectorConfig>& entriesOf(const Config& c, const ConnectorConfig&) {
  return c.connectors;
}
const std::vector<TlsProfileConfig>& entriesOf(const Config& c, const TlsProfileConfig&) {
  return c.tls_profiles;
}
const std::vector<TcpConnectorConfig>& entriesOf(const Config& c, const TcpConnectorConfig&) {
  return adaptors::kTcpConnectors.of(c);
}
const std::vector<TcpListenerConfig>& entriesOf(const Config& c, const TcpListenerConfig&) {
  return adaptors::kTcpListeners.of(c);
}

const std::vector<HttpListenerConfig>& entriesOf(const Config& c, const HttpListenerConfig&) {
  return adaptors::kHttpListeners.of(c);
}
const std::vector<HttpConnectorConfig>& entriesOf(const Config& c, const HttpConnectorConfig&) {
  return adaptors::kHttpConnectors.of(c);
}
const char* sectionOf(const HttpListenerConfig&) {
  return "http_listeners";
}
const char* sectionOf(const HttpConnectorConfig&) {
  return "http_connectors";
}

const char* sectionOf(const ConnectorConfig&) {
  return "connectors";
}
const char* sectionOf(const TlsProfileConfig&) {
  return "tls_profiles";
}
const char* sectionOf(const TcpConnectorConfig&) {
  return "tcp_connectors";
}
const char* sectionOf(const TcpListenerConfig&) {
  return "tcp_listeners";
}

// toYaml() in a file, read back by the parser as vaned reads its file. The
// tls profile a connector names is defined too, as the file needs it.
template <typename T>
T throughFile(const T& entry) {
  std::string text = std::string(sectionOf(entry)) + ":\n  - " + toYaml(entry) + "\n";
  if constexpr (std::is_same_v<T, ConnectorConfig> || std::is_same_v<T, HttpListenerConfig> ||
                std::is_same_v<T, HttpConnectorConfig>) {
    if (!entry.tls_profile.empty()) {
      TlsProfileConfig p = fullProfile();
      p.name = entry.tls_profile;
      text += "tls_profiles:\n  - " + toYaml(p) + "\n";
    }
  }
  ConfigResult r = parseString(text, "emitted.yaml");
  if (const auto* e = std::get_if<ConfigError>(&r)) {
    ADD_FAILURE() << e->toString() << "\nfor:\n" << text;
    return {};
  }
  const auto& list = entriesOf(std::get<Config>(r), entry);
  EXPECT_EQ(list.size(), 1u) << text;
  if (list.empty()) return {};
  T back = list.front();
  EXPECT_EQ(back.line, 2) << text;
  back.line = entry.line;
  return back;
}

// toJson() as a management API request body (parseEntry).
template <typename T>
T throughApi(const T& entry) {
  const std::string body = toJson(entry);
  ConfigResult r = parseEntry(sectionOf(entry), body);
  if (const auto* e = std::get_if<ConfigError>(&r)) {
    ADD_FAILURE() << e->toString() << "\nfor: " << body;
    return {};
  }
  const auto& list = entriesOf(std::get<Config>(r), entry);
  EXPECT_EQ(list.size(), 1u) << body;
  if (list.empty()) return {};
  T back = list.front();
  back.line = entry.line;
  return back;
}

template <typename T>
void expectRoundTrip(const T& entry) {
  SCOPED_TRACE(toYaml(entry));
  EXPECT_TRUE(throughFile(entry) == entry) << "toYaml: " << toYaml(entry);
  EXPECT_TRUE(throughApi(entry) == entry) << "toJson: " << toJson(entry);
  const std::optional<ConfigError> error = validate(entry);
  EXPECT_FALSE(error.has_value()) << error->detail();
}

std::set<std::string> yamlKeys(const std::string& text) {
  std::set<std::string> keys;
  const YAML::Node node = YAML::Load(text);
  EXPECT_TRUE(node.IsMap()) << text;
  for (const auto& kv : node) keys.insert(kv.first.Scalar());
  return keys;
}

std::set<std::string> jsonKeys(const std::string& text) {
  std::set<std::string> keys;
  const auto j = nlohmann::json::parse(text);
  EXPECT_TRUE(j.is_object()) << text;
  for (const auto& [key, value] : j.items()) keys.insert(key);
  return keys;
}

std::set<std::string> parserFields(const std::string& section) {
  std::set<std::string> keys;
  for (std::string_view f : entryFields(section)) keys.emplace(f);
  return keys;
}

// A field the parser reads and the emitter does not write (or the other way
// round) fails here.
template <typename T>
void expectEveryField(const T& full) {
  SCOPED_TRACE(sectionOf(full));
  const std::set<std::string> fields = parserFields(sectionOf(full));
  EXPECT_FALSE(fields.empty());
  EXPECT_EQ(yamlKeys(toYaml(full)), fields);
  EXPECT_EQ(jsonKeys(toJson(full)), fields);
}

TEST(ConfigEmit, EveryFieldTheParserReadsIsWritten) {
  expectEveryField(fullConnector());
  expectEveryField(fullProfile());
  expectEveryField(fullTcpConnector());
  expectEveryField(fullTcpListener());
  expectEveryField(fullHttpListener());
  expectEveryField(fullHttpConnector());
}

TEST(ConfigEmit, RoundTripEveryEntryKind) {
  expectRoundTrip(fullConnector());
  expectRoundTrip(fullProfile());
  expectRoundTrip(fullTcpConnector());
  expectRoundTrip(fullTcpListener());
  expectRoundTrip(fullHttpListener());
  expectRoundTrip(fullHttpConnector());
}

TEST(ConfigEmit, HttpDefaults) {
  HttpListenerConfig h;
  h.name = "w";
  h.port = 80;
  h.address = "a";
  expectRoundTrip(h);
  EXPECT_EQ(toYaml(h),
            "{name: w, host: 127.0.0.1, port: 80, address: a, max_header_bytes: 65536, "
            "head_timeout_ms: 30000, response_timeout_ms: 60000}");
  HttpConnectorConfig c;
  c.name = "c";
  c.port = 8080;
  c.address = "a";
  expectRoundTrip(c);
  EXPECT_EQ(
      toJson(c),
      R"({"name":"c","host":"127.0.0.1","port":8080,"address":"a","max_idle_connections":256})");
}

template <typename T>
void expectInvalid(const T& entry, const std::string& field, const std::string& message);

TEST(ConfigEmit, HttpRoutesAreChecked) {
  HttpListenerConfig h = fullHttpListener();
  h.routes[0].path_prefix = "api";
  expectInvalid(h, "routes[0].path_prefix", "a path prefix starts with '/'");
  h = fullHttpListener();
  h.routes[1].address = "_vane/http/x";
  expectInvalid(h, "routes[1].address",
                "addresses starting with '_vane/' are reserved for the router");
  h = fullHttpListener();
  h.routes[2].path_prefix.clear();
  h.routes[2].host.clear();
  expectInvalid(h, "routes[2]", "a route needs path_prefix, host or both");
  h = fullHttpListener();
  h.max_header_bytes = 100;
  expectInvalid(h, "max_header_bytes", "value 100 is out of range (allowed: 1024..1048576)");
  h = fullHttpListener();
  h.address = "_vane/x";
  expectInvalid(h, "address", "addresses starting with '_vane/' are reserved for the router");
  // Host names are matched case-insensitively: stored lower-case.
  ConfigResult r = parseString(
      "http_listeners:\n  - {name: w, port: 1, address: a, routes: [{host: Admin.Example.COM, "
      "address: b}]}\n",
      "f.yaml");
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<ConfigError>(r).toString();
  EXPECT_EQ(adaptors::kHttpListeners.of(std::get<Config>(r)).at(0).routes.at(0).host,
            "admin.example.com");
  HttpConnectorConfig c = fullHttpConnector();
  c.port = 0;
  expectInvalid(c, "port", "value 0 is out of range (allowed: 1..65535)");
}

TEST(ConfigEmit, RoundTripDefaultsAndUnsetOptionals) {
  ConnectorConfig c;
  c.name = "c";
  c.port = 1;
  expectRoundTrip(c);
  EXPECT_EQ(toYaml(c),
            "{name: c, host: 127.0.0.1, port: 1, role: inter-router, cost: 1, verify_host: true}");

  TlsProfileConfig t;
  t.name = "site";
  t.certificate = "router.pem";
  t.key = "router-key.pem";
  expectRoundTrip(t);
  EXPECT_EQ(toYaml(t), "{name: site, certificate: router.pem, key: router-key.pem}");
  t.ca = "ca.pem";
  EXPECT_EQ(toYaml(t), "{name: site, certificate: router.pem, key: router-key.pem, ca: ca.pem}");

  TcpListenerConfig l;
  l.name = "any";
  l.port = 0;  // a free port
  l.address = "a";
  expectRoundTrip(l);
  EXPECT_EQ(toYaml(l), "{name: any, host: 127.0.0.1, port: 0, address: a}");

  TcpConnectorConfig k;
  k.name = "k";
  k.port = 65535;
  k.address = "a";
  expectRoundTrip(k);
  EXPECT_EQ(toJson(k), R"({"name":"k","host":"127.0.0.1","port":65535,"address":"a"})");
}

TEST(ConfigEmit, StringsThatYamlWouldReadOtherwiseAreQuoted) {
  const std::vector<std::string> awkward = {
      "null",  "~",    "true", "no",   "123", "0x1f",  "-",     "- a",   "a: b",
      "a #b",  "#a",   "{a}",  "[a]",  "a,b", "'a'",   "\"a\"", " lead", "trail ",
      "*star", "&anc", "!tag", "%pct", "@at", "`tick", "|",     ">",     "?",
      "a\\b",  "é✓",   "a\tb", "a\nb", ":",   "a:",    "---",   "...",   std::string(1024, 'x')};
  for (const std::string& s : awkward) {
    TcpConnectorConfig t = fullTcpConnector();
    t.address = s;
    t.host = s;
    expectRoundTrip(t);
    TlsProfileConfig p = fullProfile();
    p.certificate = s;
    p.key = s;
    p.ca = s;
    expectRoundTrip(p);
  }
  // Names and hosts of every character a name may have.
  ConnectorConfig c = fullConnector();
  c.name = "-.x_1";
  c.tls_profile = "1.0";
  c.host = "::1";
  expectRoundTrip(c);
}

TEST(ConfigEmit, OneLine) {
  TcpConnectorConfig t = fullTcpConnector();
  t.address = "line\nbreak";
  EXPECT_EQ(toYaml(t).find('\n'), std::string::npos) << toYaml(t);
  EXPECT_EQ(toJson(t).find('\n'), std::string::npos) << toJson(t);
}

// validate() gives the error vaned gives for the same entry, in its file
// (there with the entry's index and a position) and as a request body.
template <typename T>
void expectInvalid(const T& entry, const std::string& field, const std::string& message) {
  SCOPED_TRACE(toYaml(entry));
  const std::optional<ConfigError> e = validate(entry);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, field);
  EXPECT_EQ(e->message, message);
  EXPECT_EQ(e->line, 0);
  EXPECT_EQ(e->detail(), "field '" + field + "': " + message);

  const ConfigResult api = parseEntry(sectionOf(entry), toJson(entry));
  ASSERT_TRUE(std::holds_alternative<ConfigError>(api));
  EXPECT_EQ(std::get<ConfigError>(api).field, field);
  EXPECT_EQ(std::get<ConfigError>(api).message, message);

  const std::string section = sectionOf(entry);
  const ConfigResult file = parseString(section + ":\n  - " + toYaml(entry) + "\n", "f.yaml");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(file));
  EXPECT_EQ(std::get<ConfigError>(file).field, section + "[0]." + field);
  EXPECT_EQ(std::get<ConfigError>(file).message, message);
}

TEST(ConfigEmit, ValidateGivesTheParsersErrors) {
  TcpListenerConfig l = fullTcpListener();
  l.address = "_vane/x";
  expectInvalid(l, "address", "addresses starting with '_vane/' are reserved for the router");
  l.address = "";
  expectInvalid(l, "address", "must not be empty");
  l.address = std::string(1025, 'a');
  expectInvalid(l, "address", "an address is at most 1024 bytes long");
  l = fullTcpListener();
  l.name = "a/b";
  expectInvalid(l, "name",
                "invalid character '/' in 'a/b' (allowed: letters, digits, '.', '_', '-')");
  l.name = "";
  expectInvalid(l, "name", "must not be empty");
  l = fullTcpListener();
  l.host = "";
  expectInvalid(l, "host", "must not be empty");

  TcpConnectorConfig k = fullTcpConnector();
  k.port = 0;
  expectInvalid(k, "port", "value 0 is out of range (allowed: 1..65535)");

  ConnectorConfig c = fullConnector();
  c.name = std::string(65, 'n');
  expectInvalid(c, "name",
                "'" + std::string(64, 'n') + "...' is too long (65 characters, at most 64)");
  c = fullConnector();
  c.port = 0;
  expectInvalid(c, "port", "value 0 is out of range (allowed: 1..65535)");
  c = fullConnector();
  c.cost = 0;
  expectInvalid(c, "cost", "value 0 is out of range (allowed: 1..1000000)");
  c = fullConnector();
  c.role = ListenerRole::kNormal;
  expectInvalid(c, "role", "invalid value 'normal' (expected one of: inter-router, edge)");

  TlsProfileConfig p = fullProfile();
  p.certificate = "";
  expectInvalid(p, "certificate", "must not be empty");  // required: written when empty too
  p = fullProfile();
  p.name = "link-" + std::string(60, 'x');  // a link named for a router id of 60 characters
  expectInvalid(p, "name",
                "'" + p.name.substr(0, 64) + "...' is too long (65 characters, at most 64)");
}

TEST(ConfigEmit, ErrorDetail) {
  ConfigError e;
  e.file = "f.yaml";
  e.line = 3;
  e.column = 5;
  e.field = "port";
  e.message = "bad";
  EXPECT_EQ(e.detail(), "field 'port': bad");
  EXPECT_EQ(e.toString(), "f.yaml:3:5: field 'port': bad");
  e.field.clear();
  EXPECT_EQ(e.detail(), "bad");
}

TEST(ConfigEmit, EntryFields) {
  EXPECT_EQ(entryFields("tcp_listeners").size(), 4u);
  EXPECT_EQ(entryFields("connectors").size(), 7u);
  EXPECT_FALSE(entryFields("listeners").empty());
  EXPECT_FALSE(entryFields("addresses").empty());
  EXPECT_TRUE(entryFields("router").empty());
  EXPECT_TRUE(entryFields("nope").empty());
}

}  // namespace
}  // namespace vane::config
