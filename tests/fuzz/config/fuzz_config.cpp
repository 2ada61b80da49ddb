// Fuzz target for the configuration parser (src/config/config.hpp): the
// YAML file vaned reads (config::parseString) and the entries the management
// API reads from request bodies (config::parseEntry).
//
// Input: a YAML configuration, parsed with parseString(); or, when the first
// line is "@SECTION" (e.g. "@listeners"), a request body for
// parseEntry(SECTION, rest of the input). '@' cannot start a YAML document,
// so no configuration file reads as the second form.
//
// Besides "no crash, no sanitizer report, no exception":
//  - an accepted configuration keeps every promise the router relies on:
//    names valid and unique within their section, numbers in range, the
//    cross-field rules (hello/dead intervals, frame size and session window,
//    roles and router mode, TLS and SASL, router listeners with TLS or
//    insecure, tls profile references), address
//    rules with exactly one of prefix and pattern and no duplicates;
//  - an accepted entry is exactly one entry of its section and nothing else
//    (the rest of the configuration is the built-in default), and its fields
//    are what the JSON body says: a string, integer, boolean or list field of
//    the body has the same value in the parsed entry (the JSON check and the
//    YAML parser read the body alike);
//  - an error names the file, carries a message and renders with toString();
//    an entry's error has no position and its field names the entry's key.
//
// VANE_FUZZ_TRACE=1 prints each input's outcome (accepted, or the error) on
// stderr, to see how far the inputs of a corpus get.
#include <arpa/inet.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "adaptors/sections.hpp"
#include "adaptors/tcp/tcp_config.hpp"
#include "config/address_tokens.hpp"
#include "config/config.hpp"

namespace {

using namespace vane::config;
using vane::adaptors::TcpConnectorConfig;
using vane::adaptors::kTcpConnectors;
using vane::adaptors::TcpListenerConfig;
using vane::adaptors::kTcpListeners;
using json = nlohmann::json;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "config fuzz target: invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

bool tracing() {
  static const bool on = std::getenv("VANE_FUZZ_TRACE") != nullptr;
  return on;
}

void trace(const ConfigResult& r) {
  if (!tracing()) return;
  const auto* e = std::get_if<ConfigError>(&r);
  std::fprintf(stderr, "  %s\n", e == nullptr ? "accepted" : e->toString().c_str());
}

bool inRange(std::uint64_t v, std::uint64_t min, std::uint64_t max) {
  return v >= min && v <= max;
}

bool isLoopback(const std::string& host) {
  if (host == "localhost") return true;
  unsigned char v4[4];
  if (::inet_pton(AF_INET, host.c_str(), v4) == 1) return v4[0] == 127;
  unsigned char v6[16];
  static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return ::inet_pton(AF_INET6, host.c_str(), v6) == 1 && std::memcmp(v6, kLoopback, 16) == 0;
}

template <typename T>
void checkNames(const std::vector<T>& entries, const char* what) {
  std::set<std::string> names;
  for (const auto& e : entries) {
    if (!isValidName(e.name)) fail(what);
    if (!names.insert(e.name).second) fail(what);
  }
}

bool hasMechanism(const ListenerConfig& l, const char* m) {
  return std::find(l.sasl_mechanisms.begin(), l.sasl_mechanisms.end(), m) !=
         l.sasl_mechanisms.end();
}

const TlsProfileConfig* findProfile(const Config& c, const std::string& name) {
  for (const auto& t : c.tls_profiles) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// What parseString() and parseEntry() promise about an accepted configuration.
// `entry`: from parseEntry(), whose tls profile references are checked by the
// router instead.
void checkConfig(const Config& c, bool entry) {
  const RouterConfig& r = c.router;
  check(isValidName(r.id), "invalid router id");
  check(inRange(static_cast<std::uint64_t>(r.workers), 1, 256), "workers out of range");
  check(inRange(static_cast<std::uint64_t>(r.link_capacity), 1, 100000),
        "link_capacity out of range");
  check(inRange(r.max_message_inflight_bytes, 16384, 1u << 30),
        "max_message_inflight_bytes out of range");
  check(inRange(r.max_frame_size, 512, 4194304), "max_frame_size out of range");
  check(inRange(r.session_capacity, 512, 1u << 30), "session_capacity out of range");
  check(r.session_capacity >= r.max_frame_size, "session_capacity below max_frame_size");
  check(r.idle_timeout_ms == 0 || inRange(r.idle_timeout_ms, 1000, 3600000),
        "idle_timeout_ms out of range");
  check(r.max_connections <= 1000000, "max_connections out of range");
  check(inRange(r.hello_interval_ms, 10, 600000), "hello_interval_ms out of range");
  check(inRange(r.dead_interval_ms, 30, 3600000), "dead_interval_ms out of range");
  check(r.dead_interval_ms >= 2 * r.hello_interval_ms, "dead_interval_ms below 2 hellos");
  check(inRange(r.stream_window_bytes, 65536, 1u << 30), "stream_window_bytes out of range");
  check(inRange(r.max_unsettled_per_link, 1, 1000000), "max_unsettled_per_link out of range");
  const bool edge = r.mode == RouterMode::kEdge;

  checkNames(c.listeners, "listener names invalid or not unique");
  for (const auto& l : c.listeners) {
    check(!l.host.empty(), "listener with an empty host");
    check(inRange(l.cost, 1, 1000000), "listener cost out of range");
    check(!edge || l.role == ListenerRole::kNormal, "edge router with a router listener");
    check(l.tls_profile.empty() || isValidName(l.tls_profile), "invalid listener tls_profile");
    check(!l.sasl_mechanisms.empty(), "listener without SASL mechanisms");
    std::set<std::string> mechs;
    for (const auto& m : l.sasl_mechanisms) {
      check(m == "ANONYMOUS" || m == "PLAIN" || m == "EXTERNAL", "unknown SASL mechanism");
      check(mechs.insert(m).second, "SASL mechanism listed twice");
    }
    if (l.role != ListenerRole::kNormal) {
      check(l.sasl_mechanisms == std::vector<std::string>{"ANONYMOUS"},
            "SASL mechanisms on a router listener");
    }
    const bool plain = hasMechanism(l, "PLAIN");
    check(!plain || (!l.users_file.empty() && !l.tls_profile.empty()),
          "PLAIN without users_file or TLS");
    check(!hasMechanism(l, "EXTERNAL") || !l.tls_profile.empty(), "EXTERNAL without TLS");
    check(plain || l.users_file.empty(), "users_file without PLAIN");
    check(!l.verify_router_id || (l.role != ListenerRole::kNormal && !l.tls_profile.empty()),
          "verify_router_id on a listener that cannot check it");
    check(!l.insecure || (l.role != ListenerRole::kNormal && l.tls_profile.empty()),
          "insecure on a normal listener or with TLS");
    check(l.role == ListenerRole::kNormal || !l.tls_profile.empty() || l.insecure,
          "router listener without TLS that does not say insecure");
    if (!entry && !l.tls_profile.empty()) {
      const TlsProfileConfig* t = findProfile(c, l.tls_profile);
      check(t != nullptr, "listener names a missing tls profile");
      check(!t->ca.empty() || (l.role == ListenerRole::kNormal && !hasMechanism(l, "EXTERNAL")),
            "listener verifying client certificates with a profile without ca");
    }
  }

  checkNames(c.connectors, "connector names invalid or not unique");
  for (const auto& k : c.connectors) {
    check(!k.host.empty(), "connector with an empty host");
    check(k.port >= 1, "connector port 0");
    check(inRange(k.cost, 1, 1000000), "connector cost out of range");
    check(k.role == (edge ? ListenerRole::kEdge : ListenerRole::kInterRouter),
          "connector role does not fit the router mode");
    check(k.tls_profile.empty() || isValidName(k.tls_profile), "invalid connector tls_profile");
    if (!entry && !k.tls_profile.empty()) {
      const TlsProfileConfig* t = findProfile(c, k.tls_profile);
      check(t != nullptr, "connector names a missing tls profile");
      check(!t->ca.empty(), "connector with a profile without ca");
    }
  }

  auto checkAddress = [](const std::string& a) {
    check(!a.empty() && a.size() <= 1024, "tcp address empty or too long");
    check(a.rfind("_vane/", 0) != 0, "reserved tcp address accepted");
  };
  checkNames(kTcpListeners.of(c), "tcp listener names invalid or not unique");
  for (const auto& t : kTcpListeners.of(c)) {
    check(!t.host.empty(), "tcp listener with an empty host");
    checkAddress(t.address);
  }
  checkNames(kTcpConnectors.of(c), "tcp connector names invalid or not unique");
  for (const auto& t : kTcpConnectors.of(c)) {
    check(!t.host.empty(), "tcp connector with an empty host");
    check(t.port >= 1, "tcp connector port 0");
    checkAddress(t.address);
  }

  std::set<std::string> prefixes;
  std::set<std::vector<std::string>> patterns;
  for (const auto& a : c.addresses) {
    check(a.prefix.empty() != a.pattern.empty(),
          "address rule without exactly one of prefix, pattern");
    if (!a.prefix.empty()) check(prefixes.insert(a.prefix).second, "duplicate address prefix");
    if (!a.pattern.empty()) {
      std::vector<std::string> tokens;
      for (std::string_view t : vane::config::splitAddressTokens(a.pattern)) tokens.emplace_back(t);
      check(patterns.insert(tokens).second, "duplicate address pattern");
    }
  }

  checkNames(c.tls_profiles, "tls profile names invalid or not unique");
  for (const auto& t : c.tls_profiles) {
    check(!t.certificate.empty() && !t.key.empty(), "tls profile without certificate or key");
  }

  const ManagementConfig& m = c.management;
  if (m.enabled) {
    check(!m.host.empty(), "management with an empty host");
    check(m.token.empty() || m.token.size() >= 16, "short management token");
    check(!m.token.empty() || isLoopback(m.host), "management API off loopback without a token");
    check(m.tls_profile.empty() || isValidName(m.tls_profile), "invalid management tls_profile");
    if (!entry && !m.tls_profile.empty())
      check(findProfile(c, m.tls_profile) != nullptr, "management names a missing tls profile");
  } else {
    check(m.token.empty() && m.tls_profile.empty(), "management settings without the section");
  }

  const ClaimsConfig& k = c.claims;
  if (k.enabled) {
    check(isValidName(k.tls_profile), "claims without a valid tls_profile");
    check(!k.host.empty() && !k.ca_certificate.empty() && !k.ca_key.empty() &&
              !k.state_file.empty() && !k.advertise_host.empty(),
          "claims without a required field");
    if (!entry) check(findProfile(c, k.tls_profile) != nullptr, "claims names a missing profile");
  }
}

void checkError(const ConfigError& e, const std::string& file) {
  check(e.file == file, "error names another file");
  check(!e.message.empty(), "error without a message");
  check(e.line >= 0 && e.column >= 0, "negative error position");
  check(e.line > 0 || e.column == 0, "error column without a line");
  const std::string text = e.toString();
  check(text.find(e.message) != std::string::npos, "toString() leaves the message out");
}

// --- parseEntry: the entry against its JSON body --------------------------

enum class Type { kString, kInteger, kBool, kEnum, kList };
struct Field {
  const char* key;
  Type type;
};

// The parsed value of `key` as JSON, for the comparison with the body.
json valueOf(const ListenerConfig& l, std::string_view key) {
  if (key == "name") return l.name;
  if (key == "host") return l.host;
  if (key == "port") return l.port;
  if (key == "role") return toString(l.role);
  if (key == "cost") return l.cost;
  if (key == "tls_profile") return l.tls_profile;
  if (key == "sasl_mechanisms") return l.sasl_mechanisms;
  if (key == "users_file") return l.users_file;
  if (key == "verify_router_id") return l.verify_router_id;
  if (key == "insecure") return l.insecure;
  return nullptr;
}
json valueOf(const ConnectorConfig& c, std::string_view key) {
  if (key == "name") return c.name;
  if (key == "host") return c.host;
  if (key == "port") return c.port;
  if (key == "role") return toString(c.role);
  if (key == "cost") return c.cost;
  if (key == "tls_profile") return c.tls_profile;
  if (key == "verify_host") return c.verify_host;
  return nullptr;
}
template <typename Tcp>
json tcpValueOf(const Tcp& t, std::string_view key) {
  if (key == "name") return t.name;
  if (key == "host") return t.host;
  if (key == "port") return t.port;
  if (key == "address") return t.address;
  return nullptr;
}
json valueOf(const TcpListenerConfig& t, std::string_view key) {
  return tcpValueOf(t, key);
}
json valueOf(const TcpConnectorConfig& t, std::string_view key) {
  return tcpValueOf(t, key);
}
json valueOf(const AddressConfig& a, std::string_view key) {
  if (key == "prefix") return a.prefix;
  if (key == "pattern") return a.pattern;
  if (key == "distribution") return toString(a.distribution);
  return nullptr;
}
json valueOf(const TlsProfileConfig& t, std::string_view key) {
  if (key == "name") return t.name;
  if (key == "ca") return t.ca;
  if (key == "certificate") return t.certificate;
  if (key == "key") return t.key;
  if (key == "key_password_file") return t.key_password_file;
  return nullptr;
}

// Every key of the body must be a field of the entry (parseEntry refuses
// the others) and have the value the body gives it. Values the YAML reading
// converts (a number given as a string, "true" for a boolean) are skipped;
// a JSON null, array or object where a scalar belongs must have been refused.
template <typename T>
void checkEntry(const T& e, const json& body, std::initializer_list<Field> fields) {
  for (const auto& [key, value] : body.items()) {
    const Field* f = nullptr;
    for (const Field& candidate : fields) {
      if (key == candidate.key) f = &candidate;
    }
    if (f == nullptr) fail("entry accepted with an unknown field");
    const json parsed = valueOf(e, key);
    switch (f->type) {
      case Type::kString:
      case Type::kEnum:
        check(value.is_primitive() && !value.is_null(), "non-scalar accepted for a scalar field");
        if (value.is_string()) check(parsed == value, "string field differs from the JSON body");
        break;
      case Type::kInteger:
        check(value.is_primitive() && !value.is_null(), "non-scalar accepted for an integer field");
        check(!value.is_number_float() && !value.is_boolean(), "non-integer accepted");
        if (value.is_number_integer()) check(parsed == value, "integer differs from the JSON body");
        break;
      case Type::kBool:
        check(value.is_primitive() && !value.is_null(), "non-scalar accepted for a boolean");
        if (value.is_boolean()) check(parsed == value, "boolean differs from the JSON body");
        break;
      case Type::kList:
        check(value.is_array(), "non-list accepted for a list field");
        if (std::all_of(value.begin(), value.end(), [](const json& v) { return v.is_string(); }))
          check(parsed == value, "list differs from the JSON body");
        break;
    }
  }
}

template <typename T>
const T& only(const std::vector<T>& v) {
  if (v.size() != 1) fail("entry section without exactly one entry");
  return v.front();
}

void checkParsedEntry(const std::string& section, const Config& c, const std::string& text) {
  checkConfig(c, true);
  const Config d = defaultConfig();
  // Nothing but the entry: the router section and the other sections are the
  // built-in default.
  const RouterConfig& r = c.router;
  const RouterConfig& dr = d.router;
  check(r.id == dr.id && r.mode == dr.mode && r.workers == dr.workers &&
            r.link_capacity == dr.link_capacity && r.max_frame_size == dr.max_frame_size &&
            r.session_capacity == dr.session_capacity,
        "an entry changed the router section");
  check(!c.management.enabled && !c.claims.enabled, "an entry enabled a section");
  auto count = [&](const std::string& s, std::size_t n) { return s == section ? n == 1 : n == 0; };
  check(count("connectors", c.connectors.size()) && count("addresses", c.addresses.size()) &&
            count("tcp_listeners", kTcpListeners.of(c).size()) &&
            count("tcp_connectors", kTcpConnectors.of(c).size()) &&
            count("tls_profiles", c.tls_profiles.size()),
        "an entry reached another section");
  if (section != "listeners") {
    check(c.listeners.size() == 1 && c.listeners[0].name == "amqp", "an entry added a listener");
  }

  const json body = json::parse(text, nullptr, false);
  check(!body.is_discarded() && body.is_object(), "entry accepted from a body that is not JSON");
  if (section == "listeners") {
    checkEntry(only(c.listeners), body,
               {{"name", Type::kString},
                {"host", Type::kString},
                {"port", Type::kInteger},
                {"role", Type::kEnum},
                {"cost", Type::kInteger},
                {"tls_profile", Type::kString},
                {"sasl_mechanisms", Type::kList},
                {"users_file", Type::kString},
                {"verify_router_id", Type::kBool},
                {"insecure", Type::kBool}});
  } else if (section == "connectors") {
    checkEntry(only(c.connectors), body,
               {{"name", Type::kString},
                {"host", Type::kString},
                {"port", Type::kInteger},
                {"role", Type::kEnum},
                {"cost", Type::kInteger},
                {"tls_profile", Type::kString},
                {"verify_host", Type::kBool}});
  } else if (section == "tcp_listeners" || section == "tcp_connectors") {
    std::initializer_list<Field> fields = {{"name", Type::kString},
                                           {"host", Type::kString},
                                           {"port", Type::kInteger},
                                           {"address", Type::kString}};
    if (section == "tcp_listeners") {
      checkEntry(only(kTcpListeners.of(c)), body, fields);
    } else {
      checkEntry(only(kTcpConnectors.of(c)), body, fields);
    }
  } else if (section == "addresses") {
    checkEntry(
        only(c.addresses), body,
        {{"prefix", Type::kString}, {"pattern", Type::kString}, {"distribution", Type::kEnum}});
  } else if (section == "tls_profiles") {
    checkEntry(only(c.tls_profiles), body,
               {{"name", Type::kString},
                {"ca", Type::kString},
                {"certificate", Type::kString},
                {"key", Type::kString},
                {"key_password_file", Type::kString}});
  } else {
    fail("entry accepted for an unknown section");
  }
}

void runFile(const std::string& text) {
  const std::string name = "fuzz.yaml";
  ConfigResult r = parseString(text, name);
  trace(r);
  if (auto* e = std::get_if<ConfigError>(&r)) {
    checkError(*e, name);
    return;
  }
  Config& c = std::get<Config>(r);
  check(c.source == name, "configuration without its source");
  // Without a listeners section, the built-in listener ("listeners:" with
  // nothing, or [], is a router without AMQP listeners).
  if (text.find("listeners") == std::string::npos) {
    check(c.listeners.size() == 1 && c.listeners[0].name == "amqp" &&
              c.listeners[0].host == "127.0.0.1" && c.listeners[0].port == 5672,
          "no listeners section, and not the built-in listener");
  }
  checkConfig(c, false);
  // Relative file names move under the directory, absolute ones stay.
  const Config before = c;
  resolvePaths(c, "/etc/vane");
  for (std::size_t i = 0; i < c.tls_profiles.size(); ++i) {
    const std::string& was = before.tls_profiles[i].certificate;
    const std::string& now = c.tls_profiles[i].certificate;
    check(was.front() == '/' ? now == was : now == "/etc/vane/" + was, "resolvePaths");
  }
}

// An entry's error names a key of the body, a field of the entry (one that
// is missing), or nothing.
bool fieldOfEntry(const std::string& section, const std::string& text, const std::string& field) {
  if (field.empty()) return true;
  // The section's own fields, as the parser names them (a missing one).
  for (std::string_view f : entryFields(section)) {
    if (field == f) return true;
  }
  const json body = json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return false;
  for (const auto& item : body.items()) {
    const std::string& key = item.key();
    if (field == key || field.rfind(key + ".", 0) == 0) return true;
  }
  return false;
}

void runEntry(const std::string& section, const std::string& text) {
  ConfigResult r = parseEntry(section, text);
  trace(r);
  if (auto* e = std::get_if<ConfigError>(&r)) {
    checkError(*e, "request");
    check(e->line == 0 && e->column == 0, "entry error with a position in the rewritten text");
    check(fieldOfEntry(section, text, e->field), "entry error field not inside the entry");
    return;
  }
  checkParsedEntry(section, std::get<Config>(r), text);
}

}  // namespace

// The schema vaned reads: the adaptors' sections too.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  vane::adaptors::addConfigSections();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  try {
    if (!input.empty() && input[0] == '@') {
      const std::size_t eol = input.find('\n');
      const std::string section = input.substr(1, eol == std::string::npos ? eol : eol - 1);
      runEntry(section, eol == std::string::npos ? std::string() : input.substr(eol + 1));
    } else {
      runFile(input);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config fuzz target: exception: %s\n", e.what());
    fail("the parser threw");
  }
  return 0;
}
