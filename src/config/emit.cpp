// Entries written back as text: the YAML of vaned.yaml and the JSON of the
// management API's request bodies, with the keys and value syntax that
// config.cpp reads. Each entry kind lists its fields once, in fieldsOf();
// the round-trip tests (tests/unit/config/emit_test.cpp) check that list
// against the parser's.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace vane::config {

namespace {

// One field of an entry: a string (also the enumerations), an integer or a
// boolean.
struct Field {
  Field(const char* k, std::string v) : key(k), value(std::move(v)) {}
  Field(const char* k, std::uint64_t v) : key(k), value(v) {}
  Field(const char* k, bool v) : key(k), value(v) {}
  const char* key;
  std::variant<std::string, std::uint64_t, bool> value;
};
using Fields = std::vector<Field>;

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

std::string yamlOf(const Fields& fields) {
  YAML::Emitter out;
  out << YAML::Flow << YAML::BeginMap;
  for (const Field& f : fields) {
    out << YAML::Key << f.key << YAML::Value;
    // Strings as yaml-cpp sees fit: plain where that reads back as the same
    // string, quoted (and escaped) where not ("", "null", "a: b", "[x]").
    std::visit([&out](const auto& v) { out << v; }, f.value);
  }
  out << YAML::EndMap;
  return out.c_str();
}

std::string jsonOf(const Fields& fields) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const Field& f : fields) {
    std::visit([&j, &f](const auto& v) { j[f.key] = v; }, f.value);
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
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

}  // namespace vane::config
