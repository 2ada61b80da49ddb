// Entries written back as text: the YAML of vaned.yaml and the JSON of the
// management API's request bodies, with the keys and value syntax that
// config.cpp reads. Each entry kind lists its fields once, in fieldsOf();
// the round-trip tests (tests/unit/config/emit_test.cpp) check that list
// against the parser's.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace vane::config {

namespace {

// One field of an entry: a string (also the enumerations), an integer, a
// boolean or a list of mappings (http listener routes).
struct Field;
using Fields = std::vector<Field>;
struct Field {
  Field(const char* k, std::string v) : key(k), value(std::move(v)) {}
  Field(const char* k, std::uint64_t v) : key(k), value(v) {}
  Field(const char* k, bool v) : key(k), value(v) {}
  Field(const char* k, std::vector<Fields> v) : key(k), value(std::move(v)) {}
  const char* key;
  std::variant<std::string, std::uint64_t, bool, std::vector<Fields>> value;
};

// An optional string field: written only when set.
void optional(Fields& f, const char* key, const std::string& value) {
  if (!value.empty()) f.emplace_back(key, value);
}

Fields fieldsOf(const ConnectorConfig& c) {
  Fields f;
  f.emplace_back("name", c.name);
  f.emplace_back("host", c.host);
  f.emplace_back("port", std::uint64_t{c.port});
  f.emplace_back("role", std::string(toString(c.role)));
  f.emplace_back("cost", std::uint64_t{c.cost});
  optional(f, "tls_profile", c.tls_profile);
  f.emplace_back("verify_host", c.verify_host);
  return f;
}

Fields fieldsOf(const TlsProfileConfig& t) {
  Fields f;
  f.emplace_back("name", t.name);
  f.emplace_back("certificate", t.certificate);
  f.emplace_back("key", t.key);
  optional(f, "ca", t.ca);
  optional(f, "key_password_file", t.key_password_file);
  return f;
}

// tcp_connectors and tcp_listeners have the same fields.
template <typename T>
Fields tcpFields(const T& t) {
  Fields f;
  f.emplace_back("name", t.name);
  f.emplace_back("host", t.host);
  f.emplace_back("port", std::uint64_t{t.port});
  f.emplace_back("address", t.address);
  return f;
}

// An optional list field: written only when not empty.
void optional(Fields& f, const char* key, std::vector<Fields> value) {
  if (!value.empty()) f.emplace_back(key, std::move(value));
}

Fields fieldsOf(const HttpRouteConfig& r) {
  Fields f;
  optional(f, "path_prefix", r.path_prefix);
  optional(f, "host", r.host);
  f.emplace_back("address", r.address);
  return f;
}

Fields fieldsOf(const HttpListenerConfig& h) {
  Fields f;
  f.emplace_back("name", h.name);
  f.emplace_back("host", h.host);
  f.emplace_back("port", std::uint64_t{h.port});
  f.emplace_back("address", h.address);
  std::vector<Fields> routes;
  for (const auto& r : h.routes) routes.push_back(fieldsOf(r));
  optional(f, "routes", std::move(routes));
  f.emplace_back("max_header_bytes", std::uint64_t{h.max_header_bytes});
  f.emplace_back("head_timeout_ms", std::uint64_t{h.head_timeout_ms});
  f.emplace_back("response_timeout_ms", std::uint64_t{h.response_timeout_ms});
  optional(f, "tls_profile", h.tls_profile);
  return f;
}

Fields fieldsOf(const HttpConnectorConfig& h) {
  Fields f;
  f.emplace_back("name", h.name);
  f.emplace_back("host", h.host);
  f.emplace_back("port", std::uint64_t{h.port});
  f.emplace_back("address", h.address);
  f.emplace_back("max_idle_connections", std::uint64_t{h.max_idle_connections});
  optional(f, "tls_profile", h.tls_profile);
  return f;
}

void emitYaml(YAML::Emitter& out, const Fields& fields) {
  out << YAML::Flow << YAML::BeginMap;
  for (const Field& f : fields) {
    out << YAML::Key << f.key << YAML::Value;
    // Strings as yaml-cpp sees fit: plain where that reads back as the same
    // string, quoted (and escaped) where not ("", "null", "a: b", "[x]").
    std::visit(
        [&out](const auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<Fields>>) {
            out << YAML::Flow << YAML::BeginSeq;
            for (const Fields& item : v) emitYaml(out, item);
            out << YAML::EndSeq;
          } else {
            out << v;
          }
        },
        f.value);
  }
  out << YAML::EndMap;
}

std::string yamlOf(const Fields& fields) {
  YAML::Emitter out;
  emitYaml(out, fields);
  return out.c_str();
}

nlohmann::ordered_json jsonValue(const Fields& fields) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const Field& f : fields) {
    std::visit(
        [&j, &f](const auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<Fields>>) {
            auto& list = j[f.key] = nlohmann::ordered_json::array();
            for (const Fields& item : v) list.push_back(jsonValue(item));
          } else {
            j[f.key] = v;
          }
        },
        f.value);
  }
  return j;
}

std::string jsonOf(const Fields& fields) {
  return jsonValue(fields).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

std::string toYaml(const ConnectorConfig& c) {
  return yamlOf(fieldsOf(c));
}
std::string toYaml(const TlsProfileConfig& t) {
  return yamlOf(fieldsOf(t));
}
std::string toYaml(const TcpConnectorConfig& t) {
  return yamlOf(tcpFields(t));
}
std::string toYaml(const TcpListenerConfig& t) {
  return yamlOf(tcpFields(t));
}

std::string toYaml(const HttpConnectorConfig& h) {
  return yamlOf(fieldsOf(h));
}
std::string toYaml(const HttpListenerConfig& h) {
  return yamlOf(fieldsOf(h));
}

std::string toJson(const ConnectorConfig& c) {
  return jsonOf(fieldsOf(c));
}
std::string toJson(const TlsProfileConfig& t) {
  return jsonOf(fieldsOf(t));
}
std::string toJson(const TcpConnectorConfig& t) {
  return jsonOf(tcpFields(t));
}
std::string toJson(const TcpListenerConfig& t) {
  return jsonOf(tcpFields(t));
}
std::string toJson(const HttpConnectorConfig& h) {
  return jsonOf(fieldsOf(h));
}
std::string toJson(const HttpListenerConfig& h) {
  return jsonOf(fieldsOf(h));
}

}  // namespace vane::config
