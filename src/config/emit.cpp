// Entries written back as text: the YAML of vaned.yaml and the JSON of the
// management API's request bodies, with the keys and value syntax that
// config.cpp reads. Each entry kind lists its fields once, as an EntryWriter
// (fieldsOf() here; the added sections' writers in their own modules); the
// round-trip tests (tests/unit/config/emit_test.cpp) check each list against
// the parser's.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "config/section.hpp"

namespace vane::config {

EntryWriter& EntryWriter::add(const char* key, std::string value) {
  fields_.push_back(Field{key, std::move(value)});
  return *this;
}
EntryWriter& EntryWriter::add(const char* key, std::uint64_t value) {
  fields_.push_back(Field{key, value});
  return *this;
}
EntryWriter& EntryWriter::add(const char* key, bool value) {
  fields_.push_back(Field{key, value});
  return *this;
}
EntryWriter& EntryWriter::add(const char* key, std::vector<EntryWriter> list) {
  fields_.push_back(Field{key, std::move(list)});
  return *this;
}
EntryWriter& EntryWriter::optional(const char* key, const std::string& value) {
  if (!value.empty()) add(key, value);
  return *this;
}
EntryWriter& EntryWriter::optional(const char* key, std::vector<EntryWriter> list) {
  if (!list.empty()) add(key, std::move(list));
  return *this;
}

struct EntryEmit {
  static void yaml(YAML::Emitter& out, const EntryWriter& entry) {
    out << YAML::Flow << YAML::BeginMap;
    for (const EntryWriter::Field& f : entry.fields_) {
      out << YAML::Key << f.key << YAML::Value;
      // Strings as yaml-cpp sees fit: plain where that reads back as the
      // same string, quoted (and escaped) where not ("", "null", "a: b").
      std::visit(
          [&out](const auto& v) {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<EntryWriter>>) {
              out << YAML::Flow << YAML::BeginSeq;
              for (const EntryWriter& item : v) yaml(out, item);
              out << YAML::EndSeq;
            } else {
              out << v;
            }
          },
          f.value);
    }
    out << YAML::EndMap;
  }

  static nlohmann::ordered_json json(const EntryWriter& entry) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (const EntryWriter::Field& f : entry.fields_) {
      std::visit(
          [&j, &f](const auto& v) {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<EntryWriter>>) {
              auto& list = j[f.key] = nlohmann::ordered_json::array();
              for (const EntryWriter& item : v) list.push_back(json(item));
            } else {
              j[f.key] = v;
            }
          },
          f.value);
    }
    return j;
  }
};

std::string EntryWriter::yaml() const {
  YAML::Emitter out;
  EntryEmit::yaml(out, *this);
  return out.c_str();
}

std::string EntryWriter::json() const {
  return EntryEmit::json(*this).dump(-1, ' ', false,
                                     nlohmann::ordered_json::error_handler_t::replace);
}

namespace {

EntryWriter fieldsOf(const ConnectorConfig& c) {
  EntryWriter f;
  f.add("name", c.name)
      .add("host", c.host)
      .add("port", std::uint64_t{c.port})
      .add("role", std::string(toString(c.role)))
      .add("cost", std::uint64_t{c.cost})
      .optional("tls_profile", c.tls_profile)
      .add("verify_host", c.verify_host);
  return f;
}

EntryWriter fieldsOf(const TlsProfileConfig& t) {
  EntryWriter f;
  f.add("name", t.name)
      .add("certificate", t.certificate)
      .add("key", t.key)
      .optional("ca", t.ca)
      .optional("key_password_file", t.key_password_file);
  return f;
}

}  // namespace

std::string toYaml(const ConnectorConfig& c) {
  return fieldsOf(c).yaml();
}
std::string toYaml(const TlsProfileConfig& t) {
  return fieldsOf(t).yaml();
}
std::string toJson(const ConnectorConfig& c) {
  return fieldsOf(c).json();
}
std::string toJson(const TlsProfileConfig& t) {
  return fieldsOf(t).json();
}

}  // namespace vane::config
