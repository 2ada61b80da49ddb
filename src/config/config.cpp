// YAML configuration parser. Every problem is reported as a ConfigError that
// names the file, the 1-based line and column, and the dotted field path.
// Internally the parser throws a private Failure type which parseString()
// converts into a ConfigError; no exception leaves this file.
#include "config/config.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>

#include "config/address_tokens.hpp"
#include "config/section.hpp"

namespace vane::config {

bool isValidName(std::string_view s) {
  return !s.empty() && s.size() <= kMaxNameLength &&
         std::all_of(s.begin(), s.end(), [](char c) { return isNameChar(c); });
}

const char* toString(RouterMode m) {
  switch (m) {
    case RouterMode::kInterior:
      return "interior";
    case RouterMode::kEdge:
      return "edge";
  }
  return "unknown";
}

const char* toString(ListenerRole r) {
  switch (r) {
    case ListenerRole::kNormal:
      return "normal";
    case ListenerRole::kInterRouter:
      return "inter-router";
    case ListenerRole::kEdge:
      return "edge";
  }
  return "unknown";
}

const char* toString(Distribution d) {
  switch (d) {
    case Distribution::kBalanced:
      return "balanced";
    case Distribution::kClosest:
      return "closest";
    case Distribution::kMulticast:
      return "multicast";
  }
  return "unknown";
}

std::string ConfigError::toString() const {
  std::string out = file.empty() ? std::string("<input>") : file;
  if (line > 0) {
    out += fmt::format(":{}", line);
    if (column > 0) out += fmt::format(":{}", column);
  }
  return out + ": " + detail();
}

std::string ConfigError::detail() const {
  if (field.empty()) return message;
  return fmt::format("field '{}': {}", field, message);
}

namespace {

// The fields of each entry kind, in the order messages list them.
constexpr std::string_view kListenerFields[] = {"name",
                                                "host",
                                                "port",
                                                "role",
                                                "cost",
                                                "tls_profile",
                                                "sasl_mechanisms",
                                                "users_file",
                                                "verify_router_id",
                                                "insecure",
                                                "max_connections",
                                                "handshake_timeout_ms",
                                                "idle_timeout_ms"};
constexpr std::string_view kConnectorFields[] = {"name", "host",        "port",       "role",
                                                 "cost", "tls_profile", "verify_host"};
constexpr std::string_view kTlsProfileFields[] = {"name", "ca", "certificate", "key",
                                                  "key_password_file"};
constexpr std::string_view kAddressFields[] = {"prefix", "pattern", "distribution"};

// 127.0.0.0/8, ::1 and "localhost": reachable from this machine only.
bool isLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  unsigned char v4[4];
  if (::inet_pton(AF_INET, host.c_str(), v4) == 1) return v4[0] == 127;
  unsigned char v6[16];
  if (::inet_pton(AF_INET6, host.c_str(), v6) == 1) {
    static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::memcmp(v6, kLoopback, 16) == 0;
  }
  return false;
}

// Thrown inside the parser only; caught in parseString().
struct Failure {
  ConfigError error;
};

const char* describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string joinField(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return fmt::format("{}.{}", path, key);
}

std::string joinNames(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

template <typename Enum>
struct EnumName {
  std::string_view name;
  Enum value;
};

}  // namespace

std::string displayValue(std::string_view value) {
  constexpr std::size_t kMaxShown = 64;
  std::string out;
  const std::size_t shown = value.size() > kMaxShown ? kMaxShown : value.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
    } else {
      out += static_cast<char>(c);
    }
  }
  if (shown < value.size()) out += "...";
  return out;
}

namespace detail {

// One key/value pair of a YAML mapping that passed the key checks.
struct Entry {
  std::string key;
  std::string field;  // full dotted path of this entry
  YAML::Node key_node;
  YAML::Node value;
};

// One entry of an added section being read (EntryReader).
struct EntryState {
  const Parser& parser;
  YAML::Node item;
  std::string path;
  int line = 0;
  std::vector<Entry> seen;  // its fields, once read
};

class Parser {
 public:
  // `entry`: one entry of a request body, whose references to other
  // entities (tls profiles) the router checks against what it has.
  explicit Parser(std::string file, bool entry = false) : file_(std::move(file)), entry_(entry) {}

  Config parseDocument(const YAML::Node& root) {
    Config cfg;
    cfg.source = file_;
    bool have_listeners = false;
    if (root.IsNull()) {
      cfg.listeners.push_back(defaultListener());
      return cfg;
    }
    if (!root.IsMap()) {
      fail(root, "", fmt::format("expected a mapping at the top level, got {}", describe(root)));
    }
    std::vector<std::string_view> sections = {"router", "listeners", "connectors", "addresses"};
    for (const SectionType* t : addedSections()) sections.push_back(t->key());
    sections.insert(sections.end(), {"management", "tls_profiles", "claims"});
    for (const Entry& e : entries(root, "", sections)) {
      if (e.key == "router") {
        parseRouter(e, cfg.router);
      } else if (e.key == "listeners") {
        have_listeners = true;
        parseListeners(e, cfg.listeners);
      } else if (e.key == "connectors") {
        parseConnectors(e, cfg.connectors);
      } else if (e.key == "management") {
        parseManagement(e, cfg.management);
      } else if (e.key == "tls_profiles") {
        parseTlsProfiles(e, cfg.tls_profiles);
      } else if (e.key == "claims") {
        parseClaims(e, cfg.claims);
      } else if (e.key == "addresses") {
        parseAddresses(e, cfg.addresses);
      } else {
        parseAdded(e, *findSection(e.key), cfg);
      }
    }
    if (!have_listeners) cfg.listeners.push_back(defaultListener());
    checkRoles(cfg);
    if (!entry_) checkTlsReferences(cfg);
    return cfg;
  }

  [[noreturn]] void failAt(const YAML::Mark& mark, std::string field, std::string message) const {
    Failure f;
    f.error.file = file_;
    if (!mark.is_null() && mark.line >= 0) {
      f.error.line = mark.line + 1;
      f.error.column = mark.column >= 0 ? mark.column + 1 : 0;
    }
    f.error.field = std::move(field);
    f.error.message = std::move(message);
    throw f;
  }

 private:
  friend class config::EntryReader;
  friend class config::FieldReader;
  friend class config::References;

  static ListenerConfig defaultListener() {
    ListenerConfig l;
    l.name = "amqp";
    return l;
  }

  [[noreturn]] void fail(const YAML::Node& node, std::string field, std::string message) const {
    failAt(node.Mark(), std::move(field), std::move(message));
  }

  // Where to report a problem with an entry's value. The mark of an empty
  // (null) value points past the key, often onto the next line, so problems
  // with missing values are reported at the key instead.
  static YAML::Mark valueMark(const Entry& e) {
    return e.value.IsNull() ? e.key_node.Mark() : e.value.Mark();
  }

  [[noreturn]] void failValue(const Entry& e, std::string message) const {
    failAt(valueMark(e), e.field, std::move(message));
  }

  // Returns the entries of `map` in file order after checking that every key
  // is a known field name and that no key is repeated.
  std::vector<Entry> entries(const YAML::Node& map, const std::string& path,
                             std::initializer_list<std::string_view> allowed) const {
    return entries(map, path, std::span<const std::string_view>(allowed.begin(), allowed.size()));
  }

  std::vector<Entry> entries(const YAML::Node& map, const std::string& path,
                             std::span<const std::string_view> allowed) const {
    std::vector<Entry> out;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) {
        fail(key, path, fmt::format("expected a field name, got {}", describe(key)));
      }
      const std::string& name = key.Scalar();
      bool known = false;
      for (std::string_view a : allowed) known = known || a == name;
      if (!known) {
        fail(key, joinField(path, name),
             fmt::format("unknown field '{}' (expected one of: {})", displayValue(name),
                         joinNames(allowed)));
      }
      for (const Entry& prev : out) {
        if (prev.key == name) {
          fail(key, prev.field,
               fmt::format("duplicate field '{}' (first given at line {})", name,
                           prev.key_node.Mark().line + 1));
        }
      }
      out.push_back(Entry{name, joinField(path, name), key, it->second});
    }
    return out;
  }

  // Checks a section that must be a mapping; an empty (null) section is
  // allowed and returns false.
  bool expectMapOrNull(const Entry& e) const {
    if (e.value.IsNull()) return false;
    if (!e.value.IsMap())
      failValue(e, fmt::format("expected a mapping, got {}", describe(e.value)));
    return true;
  }

  bool expectSequenceOrNull(const Entry& e) const {
    if (e.value.IsNull()) return false;
    if (!e.value.IsSequence()) {
      failValue(e, fmt::format("expected a sequence, got {}", describe(e.value)));
    }
    return true;
  }

  const std::string& scalar(const Entry& e, const char* what) const {
    if (e.value.IsNull()) failValue(e, fmt::format("missing value (expected {})", what));
    if (!e.value.IsScalar()) {
      failValue(e, fmt::format("expected {}, got {}", what, describe(e.value)));
    }
    return e.value.Scalar();
  }

  std::string nonEmptyString(const Entry& e) const {
    const std::string& s = scalar(e, "a string");
    if (s.empty()) failValue(e, "must not be empty");
    return s;
  }

  // A name: 1..64 characters of [A-Za-z0-9._-].
  std::string name(const Entry& e) const {
    std::string s = nonEmptyString(e);
    if (s.size() > kMaxNameLength) {
      failValue(e, fmt::format("'{}' is too long ({} characters, at most {})", displayValue(s),
                               s.size(), kMaxNameLength));
    }
    for (char c : s) {
      if (!isNameChar(c)) {
        failValue(e, fmt::format("invalid character '{}' in '{}' (allowed: letters, digits, '.', "
                                 "'_', '-')",
                                 displayValue(std::string_view(&c, 1)), displayValue(s)));
      }
    }
    return s;
  }

  // A decimal integer in [min, max]. `allowed` overrides the range text shown
  // in messages. Only plain decimal digits with an optional sign are
  // accepted; leading zeros are rejected (YAML 1.1 reads them as octal).
  std::uint64_t integer(const Entry& e, std::uint64_t min, std::uint64_t max,
                        std::string_view allowed = {}) const {
    const std::string& s = scalar(e, "an integer");
    const std::string range =
        allowed.empty() ? fmt::format("{}..{}", min, max) : std::string(allowed);
    std::size_t i = 0;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      negative = s[i] == '-';
      ++i;
    }
    if (i == s.size()) failValue(e, fmt::format("expected an integer, got '{}'", displayValue(s)));
    for (std::size_t j = i; j < s.size(); ++j) {
      if (s[j] < '0' || s[j] > '9') {
        failValue(e, fmt::format("expected an integer, got '{}'", displayValue(s)));
      }
    }
    if (s[i] == '0' && s.size() - i > 1) {
      failValue(
          e, fmt::format("invalid integer '{}': leading zeros are not allowed", displayValue(s)));
    }
    std::uint64_t v = 0;
    bool overflow = false;
    for (std::size_t j = i; j < s.size(); ++j) {
      const auto digit = static_cast<std::uint64_t>(s[j] - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
        overflow = true;
        break;
      }
      v = v * 10 + digit;
    }
    if (overflow || (negative && v != 0) || v < min || v > max) {
      failValue(e, fmt::format("value {} is out of range (allowed: {})", displayValue(s), range));
    }
    return v;
  }

  template <typename Enum>
  Enum enumeration(const Entry& e, std::initializer_list<EnumName<Enum>> names) const {
    const std::string& s = scalar(e, "a string");
    std::string list;
    for (const auto& n : names) {
      if (n.name == s) return n.value;
      if (!list.empty()) list += ", ";
      list += n.name;
    }
    failValue(e, fmt::format("invalid value '{}' (expected one of: {})", displayValue(s), list));
  }

  bool boolean(const Entry& e) const {
    const std::string& s = scalar(e, "true or false");
    if (s == "true") return true;
    if (s == "false") return false;
    failValue(e, fmt::format("expected true or false, got '{}'", displayValue(s)));
  }

  // listeners[].sasl_mechanisms: a non-empty list of known mechanisms.
  std::vector<std::string> mechanisms(const Entry& e) const {
    if (!e.value.IsSequence() || e.value.size() == 0) {
      failValue(e, "expected a non-empty list of SASL mechanisms (ANONYMOUS, PLAIN, EXTERNAL)");
    }
    std::vector<std::string> out;
    for (const auto& item : e.value) {
      if (!item.IsScalar()) fail(item, e.field, "expected a mechanism name");
      const std::string& m = item.Scalar();
      if (m != "ANONYMOUS" && m != "PLAIN" && m != "EXTERNAL") {
        fail(item, e.field,
             fmt::format("unknown SASL mechanism '{}' (expected one of: ANONYMOUS, PLAIN, "
                         "EXTERNAL)",
                         displayValue(m)));
      }
      if (std::find(out.begin(), out.end(), m) != out.end())
        fail(item, e.field, fmt::format("mechanism '{}' is listed twice", m));
      out.push_back(m);
    }
    return out;
  }

  // An AMQP idle timeout: 0 (none) or 1000..3600000 ms.
  std::uint32_t idleTimeout(const Entry& e) const {
    const auto v = integer(e, 0, 3600000, "0 or 1000..3600000");
    if (v != 0 && v < 1000) {
      failValue(e, fmt::format("value {} is out of range (allowed: 0 or 1000..3600000)", v));
    }
    return static_cast<std::uint32_t>(v);
  }

  // The bounds an HTTP endpoint puts on its clients (management, claims);
  // true if `e` is one of them.
  bool httpLimit(const Entry& e, HttpLimitsConfig& l) const {
    if (e.key == "max_connections") {
      l.max_connections = static_cast<std::uint32_t>(integer(e, 1, 100000));
    } else if (e.key == "max_connections_per_source") {
      l.max_connections_per_source = static_cast<std::uint32_t>(integer(e, 1, 100000));
    } else if (e.key == "header_timeout_ms") {
      l.header_timeout_ms = static_cast<std::uint32_t>(integer(e, 100, 600000));
    } else if (e.key == "idle_timeout_ms") {
      l.idle_timeout_ms = static_cast<std::uint32_t>(integer(e, 100, 3600000));
    } else {
      return false;
    }
    return true;
  }

  void parseRouter(const Entry& section, RouterConfig& r) const {
    if (!expectMapOrNull(section)) return;
    const Entry* frame_entry = nullptr;
    const Entry* session_entry = nullptr;
    const auto list = entries(section.value, section.field,
                              {"id",
                               "mode",
                               "workers",
                               "link_capacity",
                               "max_message_inflight_bytes",
                               "max_frame_size",
                               "session_capacity",
                               "idle_timeout_ms",
                               "max_connections",
                               "hello_interval_ms",
                               "dead_interval_ms",
                               "stream_window_bytes",
                               "max_unsettled_per_link",
                               "max_sessions_per_connection",
                               "max_links_per_connection",
                               "max_receivers_per_connection",
                               "max_dynamic_addresses_per_connection",
                               "max_unsettled_per_connection",
                               "max_auth_failures_per_source",
                               "auth_failure_window_ms",
                               "max_stream_links",
                               "key_file",
                               "max_routers",
                               "max_addresses",
                               "max_addresses_per_router",
                               "max_updates_per_neighbor_per_second",
                               "max_update_burst_per_neighbor"});
    const Entry* hello_entry = nullptr;
    const Entry* dead_entry = nullptr;
    for (const Entry& e : list) {
      if (e.key == "id") {
        r.id = name(e);
      } else if (e.key == "mode") {
        r.mode = enumeration<RouterMode>(
            e, {{"interior", RouterMode::kInterior}, {"edge", RouterMode::kEdge}});
      } else if (e.key == "workers") {
        r.workers = static_cast<int>(integer(e, 1, 256));
      } else if (e.key == "link_capacity") {
        r.link_capacity = static_cast<int>(integer(e, 1, 100000));
      } else if (e.key == "max_message_inflight_bytes") {
        r.max_message_inflight_bytes = static_cast<std::uint32_t>(integer(e, 16384, 1u << 30));
      } else if (e.key == "max_frame_size") {
        r.max_frame_size = static_cast<std::uint32_t>(integer(e, 512, 4194304));
        frame_entry = &e;
      } else if (e.key == "session_capacity") {
        r.session_capacity = static_cast<std::uint32_t>(integer(e, 512, 1u << 30));
        session_entry = &e;
      } else if (e.key == "idle_timeout_ms") {
        r.idle_timeout_ms = idleTimeout(e);
      } else if (e.key == "max_connections") {
        r.max_connections = static_cast<std::uint32_t>(integer(e, 0, 1000000));
      } else if (e.key == "hello_interval_ms") {
        r.hello_interval_ms = static_cast<std::uint32_t>(integer(e, 10, 600000));
        hello_entry = &e;
      } else if (e.key == "dead_interval_ms") {
        r.dead_interval_ms = static_cast<std::uint32_t>(integer(e, 30, 3600000));
        dead_entry = &e;
      } else if (e.key == "stream_window_bytes") {
        r.stream_window_bytes = static_cast<std::uint32_t>(integer(e, 65536, 1 << 30));
      } else if (e.key == "max_unsettled_per_link") {
        r.max_unsettled_per_link = static_cast<std::uint32_t>(integer(e, 1, 1000000));
      } else if (e.key == "max_stream_links") {
        r.max_stream_links = static_cast<std::uint32_t>(integer(e, 1, 16000));
      } else if (e.key == "max_sessions_per_connection") {
        r.max_sessions_per_connection = static_cast<std::uint32_t>(integer(e, 1, 1024));
      } else if (e.key == "max_links_per_connection") {
        r.max_links_per_connection = static_cast<std::uint32_t>(integer(e, 1, 1000000));
      } else if (e.key == "max_receivers_per_connection") {
        r.max_receivers_per_connection = static_cast<std::uint32_t>(integer(e, 1, 1000000));
      } else if (e.key == "max_dynamic_addresses_per_connection") {
        r.max_dynamic_addresses_per_connection = static_cast<std::uint32_t>(integer(e, 0, 1000000));
      } else if (e.key == "max_unsettled_per_connection") {
        r.max_unsettled_per_connection = static_cast<std::uint32_t>(integer(e, 1, 100000000));
      } else if (e.key == "max_auth_failures_per_source") {
        r.max_auth_failures_per_source = static_cast<std::uint32_t>(integer(e, 0, 1000000));
      } else if (e.key == "auth_failure_window_ms") {
        r.auth_failure_window_ms = static_cast<std::uint32_t>(integer(e, 1000, 86400000));
      } else if (e.key == "key_file") {
        r.key_file = nonEmptyString(e);
      } else if (e.key == "max_routers") {
        r.max_routers = static_cast<std::uint32_t>(integer(e, 1, 1000000));
      } else if (e.key == "max_addresses") {
        r.max_addresses = static_cast<std::uint32_t>(integer(e, 1, 100000000));
      } else if (e.key == "max_addresses_per_router") {
        r.max_addresses_per_router = static_cast<std::uint32_t>(integer(e, 1, 100000000));
      } else if (e.key == "max_updates_per_neighbor_per_second") {
        r.max_updates_per_neighbor_per_second = static_cast<std::uint32_t>(integer(e, 1, 10000000));
      } else if (e.key == "max_update_burst_per_neighbor") {
        r.max_update_burst_per_neighbor = static_cast<std::uint32_t>(integer(e, 1, 100000000));
      }
    }
    if (r.dead_interval_ms < 2 * r.hello_interval_ms) {
      const Entry* at = dead_entry != nullptr ? dead_entry : hello_entry;
      failValue(*at, fmt::format("dead_interval_ms ({}) must be at least twice hello_interval_ms "
                                 "({}), or one lost hello drops a neighbour",
                                 r.dead_interval_ms, r.hello_interval_ms));
    }
    if (r.session_capacity < r.max_frame_size) {
      if (session_entry != nullptr) {
        failValue(*session_entry,
                  fmt::format("value {} is smaller than max_frame_size ({}); it must be at least "
                              "one frame",
                              r.session_capacity, r.max_frame_size));
      }
      // Only max_frame_size was given and it exceeds the default window.
      if (frame_entry == nullptr) {
        fail(section.value, section.field, "session_capacity is smaller than max_frame_size");
      }
      failValue(*frame_entry,
                fmt::format("value {} is larger than session_capacity ({}, the default); set "
                            "router.session_capacity to at least {}",
                            r.max_frame_size, r.session_capacity, r.max_frame_size));
    }
  }

  // A sequence of mappings, one T per entry, each with a required `name`
  // unique within the sequence. `parse(item, path, T&)` reads the entry's
  // fields (T::line is set) and returns its `name` entry, or nothing.
  template <typename T, typename Parse>
  void parseNamedList(const Entry& section, std::string_view key, std::string_view what,
                      std::vector<T>& out, Parse&& parse) const {
    if (!expectSequenceOrNull(section)) return;
    std::size_t index = 0;
    for (auto it = section.value.begin(); it != section.value.end(); ++it, ++index) {
      const YAML::Node item = *it;
      const std::string path = fmt::format("{}[{}]", key, index);
      if (!item.IsMap())
        fail(item, path, fmt::format("expected a mapping, got {}", describe(item)));
      T c;
      c.line = item.Mark().line + 1;
      const std::optional<Entry> name_entry = parse(item, path, c);
      if (!name_entry) fail(item, joinField(path, "name"), "missing required field 'name'");
      for (std::size_t j = 0; j < out.size(); ++j) {
        if (out[j].name == c.name) {
          failValue(*name_entry, fmt::format("duplicate {} name '{}' (already used by {}[{}] at "
                                             "line {})",
                                             what, c.name, key, j, out[j].line));
        }
      }
      out.push_back(std::move(c));
    }
  }

  void parseListeners(const Entry& section, std::vector<ListenerConfig>& out) const {
    parseNamedList(
        section, "listeners", "listener", out,
        [this](const YAML::Node& item, const std::string& path, ListenerConfig& l) {
          std::optional<Entry> name_entry;
          const Entry* sasl = nullptr;
          std::optional<Entry> sasl_entry;
          std::optional<Entry> verify_entry;
          std::optional<Entry> insecure_entry;
          for (const Entry& e : entries(item, path, kListenerFields)) {
            if (e.key == "max_connections") {
              l.max_connections = static_cast<std::uint32_t>(integer(e, 0, 1000000));
            } else if (e.key == "handshake_timeout_ms") {
              l.handshake_timeout_ms = static_cast<std::uint32_t>(integer(e, 100, 600000));
            } else if (e.key == "idle_timeout_ms") {
              l.idle_timeout_ms = idleTimeout(e);
            } else if (e.key == "insecure") {
              l.insecure = boolean(e);
              insecure_entry = e;
            } else if (e.key == "verify_router_id") {
              l.verify_router_id = boolean(e);
              if (l.verify_router_id) verify_entry = e;
            } else if (e.key == "tls_profile") {
              l.tls_profile = name(e);
            } else if (e.key == "sasl_mechanisms") {
              l.sasl_mechanisms = mechanisms(e);
              sasl_entry = e;
            } else if (e.key == "users_file") {
              l.users_file = nonEmptyString(e);
            } else if (e.key == "name") {
              l.name = name(e);
              name_entry = e;
            } else if (e.key == "host") {
              l.host = nonEmptyString(e);
            } else if (e.key == "port") {
              l.port = static_cast<std::uint16_t>(integer(e, 0, 65535));
            } else if (e.key == "role") {
              l.role = enumeration<ListenerRole>(e, {{"normal", ListenerRole::kNormal},
                                                     {"inter-router", ListenerRole::kInterRouter},
                                                     {"edge", ListenerRole::kEdge}});
            } else if (e.key == "cost") {
              l.cost = static_cast<std::uint32_t>(integer(e, 1, 1000000));
            }
          }
          if (sasl_entry) sasl = &*sasl_entry;
          checkListenerSecurity(item, path, l, sasl);
          if (verify_entry && (l.role == ListenerRole::kNormal || l.tls_profile.empty())) {
            failValue(*verify_entry,
                      "verify_router_id needs a router listener (inter-router or edge) with a "
                      "tls_profile");
          }
          if (insecure_entry && l.role == ListenerRole::kNormal) {
            failValue(*insecure_entry,
                      "insecure applies to router listeners (inter-router, edge); a normal "
                      "listener's security is its tls_profile and sasl_mechanisms");
          }
          if (insecure_entry && l.insecure && !l.tls_profile.empty()) {
            failValue(*insecure_entry,
                      "insecure: true and a tls_profile contradict each other: drop one");
          }
          if (l.role != ListenerRole::kNormal && l.tls_profile.empty() && !l.insecure &&
              name_entry) {
            fail(item, joinField(path, "tls_profile"),
                 fmt::format("an {} listener without TLS takes any peer that connects for a "
                             "router: set tls_profile (a profile with a ca, which verifies "
                             "the peers' certificates), or insecure: true for a test on "
                             "loopback",
                             l.role == ListenerRole::kEdge ? "edge" : "inter-router"));
          }
          return name_entry;
        });
  }

  void parseConnectors(const Entry& section, std::vector<ConnectorConfig>& out) const {
    parseNamedList(
        section, "connectors", "connector", out,
        [this](const YAML::Node& item, const std::string& path, ConnectorConfig& c) {
          std::optional<Entry> name_entry;
          bool have_port = false;
          for (const Entry& e : entries(item, path, kConnectorFields)) {
            if (e.key == "tls_profile") {
              c.tls_profile = name(e);
            } else if (e.key == "verify_host") {
              c.verify_host = boolean(e);
            } else if (e.key == "name") {
              c.name = name(e);
              name_entry = e;
            } else if (e.key == "host") {
              c.host = nonEmptyString(e);
            } else if (e.key == "port") {
              c.port = static_cast<std::uint16_t>(integer(e, 1, 65535));
              have_port = true;
            } else if (e.key == "role") {
              c.role = enumeration<ListenerRole>(
                  e, {{"inter-router", ListenerRole::kInterRouter}, {"edge", ListenerRole::kEdge}});
            } else if (e.key == "cost") {
              c.cost = static_cast<std::uint32_t>(integer(e, 1, 1000000));
            }
          }
          if (name_entry && !have_port) {
            fail(item, joinField(path, "port"), "missing required field 'port'");
          }
          return name_entry;
        });
  }

  void parseTlsProfiles(const Entry& section, std::vector<TlsProfileConfig>& out) const {
    parseNamedList(section, "tls_profiles", "tls profile", out,
                   [this](const YAML::Node& item, const std::string& path, TlsProfileConfig& t) {
                     std::optional<Entry> name_entry;
                     for (const Entry& e : entries(item, path, kTlsProfileFields)) {
                       if (e.key == "name") {
                         t.name = name(e);
                         name_entry = e;
                       } else if (e.key == "ca") {
                         t.ca = nonEmptyString(e);
                       } else if (e.key == "certificate") {
                         t.certificate = nonEmptyString(e);
                       } else if (e.key == "key") {
                         t.key = nonEmptyString(e);
                       } else if (e.key == "key_password_file") {
                         t.key_password_file = nonEmptyString(e);
                       }
                     }
                     if (!name_entry) return name_entry;
                     if (t.certificate.empty()) {
                       fail(item, joinField(path, "certificate"),
                            "missing required field 'certificate'");
                     }
                     if (t.key.empty())
                       fail(item, joinField(path, "key"), "missing required field 'key'");
                     return name_entry;
                   });
  }

  // What a listener's TLS and SASL settings need of each other.
  void checkListenerSecurity(const YAML::Node& item, const std::string& path,
                             const ListenerConfig& l, const Entry* sasl) const {
    auto has = [&l](const char* m) {
      return std::find(l.sasl_mechanisms.begin(), l.sasl_mechanisms.end(), m) !=
             l.sasl_mechanisms.end();
    };
    if (sasl != nullptr && l.role != ListenerRole::kNormal) {
      failValue(*sasl,
                "sasl_mechanisms applies to normal (client) listeners; router links authenticate "
                "with certificates (tls_profile)");
    }
    const YAML::Mark at = sasl != nullptr ? valueMark(*sasl) : item.Mark();
    const std::string field = joinField(path, "sasl_mechanisms");
    if (has("PLAIN") && l.users_file.empty()) {
      failAt(at, field, "PLAIN needs users_file (lines of name:password)");
    }
    if (has("PLAIN") && l.tls_profile.empty()) {
      failAt(at, field,
             "PLAIN would send passwords in clear text: set tls_profile on this listener");
    }
    if (has("EXTERNAL") && l.tls_profile.empty()) {
      failAt(at, field, "EXTERNAL takes the identity of a client certificate: set tls_profile");
    }
    if (!has("PLAIN") && !l.users_file.empty()) {
      fail(item, joinField(path, "users_file"), "users_file is used only with PLAIN");
    }
  }

  void parseClaims(const Entry& section, ClaimsConfig& c) const {
    c.enabled = true;
    c.line = section.key_node.Mark().line + 1;
    if (!section.value.IsMap()) {
      fail(section.value, section.field,
           fmt::format("expected a mapping, got {}", describe(section.value)));
    }
    bool have_port = false;
    for (const Entry& e :
         entries(section.value, section.field,
                 {"host", "port", "tls_profile", "ca_certificate", "ca_key", "state_file",
                  "advertise_host", "max_connections", "max_connections_per_source",
                  "header_timeout_ms", "idle_timeout_ms"})) {
      if (httpLimit(e, c.limits)) {
      } else if (e.key == "host") {
        c.host = nonEmptyString(e);
      } else if (e.key == "port") {
        c.port = static_cast<std::uint16_t>(integer(e, 0, 65535));
        have_port = true;
      } else if (e.key == "tls_profile") {
        c.tls_profile = name(e);
      } else if (e.key == "ca_certificate") {
        c.ca_certificate = nonEmptyString(e);
      } else if (e.key == "ca_key") {
        c.ca_key = nonEmptyString(e);
      } else if (e.key == "state_file") {
        c.state_file = nonEmptyString(e);
      } else if (e.key == "advertise_host") {
        c.advertise_host = nonEmptyString(e);
      }
    }
    auto require = [&](bool ok, const char* f) {
      if (!ok)
        fail(section.value, section.field + "." + f, fmt::format("missing required field '{}'", f));
    };
    require(have_port, "port");
    require(!c.tls_profile.empty(), "tls_profile");
    require(!c.ca_certificate.empty(), "ca_certificate");
    require(!c.ca_key.empty(), "ca_key");
    require(!c.state_file.empty(), "state_file");
    require(!c.advertise_host.empty(), "advertise_host");
  }

  // Names of TLS profiles used elsewhere must exist.
  void checkTlsReferences(const Config& cfg) const {
    auto find = [&cfg](const std::string& name) -> const TlsProfileConfig* {
      for (const auto& t : cfg.tls_profiles) {
        if (t.name == name) return &t;
      }
      return nullptr;
    };
    auto missing = [](const std::string& name) {
      return fmt::format("no tls profile named '{}' (define it under tls_profiles)", name);
    };
    const auto& m = cfg.management;
    if (!m.tls_profile.empty() && find(m.tls_profile) == nullptr)
      failAt(lineMark(m.tls_line), "management.tls_profile", missing(m.tls_profile));
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
      const auto& l = cfg.listeners[i];
      if (l.tls_profile.empty()) continue;
      const std::string field = fmt::format("listeners[{}].tls_profile", i);
      const TlsProfileConfig* t = find(l.tls_profile);
      if (t == nullptr) failAt(lineMark(l.line), field, missing(l.tls_profile));
      const bool external = std::find(l.sasl_mechanisms.begin(), l.sasl_mechanisms.end(),
                                      "EXTERNAL") != l.sasl_mechanisms.end();
      if (t->ca.empty() && (l.role != ListenerRole::kNormal || external)) {
        failAt(lineMark(l.line), field,
               fmt::format("tls profile '{}' has no 'ca': a {} needs it to verify client "
                           "certificates",
                           t->name, external ? "listener offering EXTERNAL" : "router listener"));
      }
    }
    for (std::size_t i = 0; i < cfg.connectors.size(); ++i) {
      const auto& c = cfg.connectors[i];
      if (c.tls_profile.empty()) continue;
      const std::string field = fmt::format("connectors[{}].tls_profile", i);
      const TlsProfileConfig* t = find(c.tls_profile);
      if (t == nullptr) failAt(lineMark(c.line), field, missing(c.tls_profile));
      if (t->ca.empty()) {
        failAt(lineMark(c.line), field,
               fmt::format("tls profile '{}' has no 'ca': a connector needs it to verify the "
                           "server's certificate",
                           t->name));
      }
    }
    const References refs(*this, cfg);
    for (const SectionType* t : addedSections()) t->check(cfg, refs);
    if (cfg.claims.enabled && find(cfg.claims.tls_profile) == nullptr)
      failAt(lineMark(cfg.claims.line), "claims.tls_profile", missing(cfg.claims.tls_profile));
  }

  void parseManagement(const Entry& section, ManagementConfig& m) const {
    m.enabled = true;
    m.line = section.key_node.Mark().line + 1;
    if (section.value.IsNull())
      fail(section.value, section.field + ".port", "missing required field 'port'");
    if (!section.value.IsMap()) {
      fail(section.value, section.field,
           fmt::format("expected a mapping, got {}", describe(section.value)));
    }
    bool have_port = false;
    for (const Entry& e :
         entries(section.value, section.field,
                 {"host", "port", "token", "tls_profile", "max_connections",
                  "max_connections_per_source", "header_timeout_ms", "idle_timeout_ms"})) {
      if (httpLimit(e, m.limits)) {
      } else if (e.key == "host") {
        m.host = nonEmptyString(e);
      } else if (e.key == "port") {
        m.port = static_cast<std::uint16_t>(integer(e, 0, 65535));
        have_port = true;
      } else if (e.key == "token") {
        m.token = nonEmptyString(e);
        if (m.token.size() < 16) failValue(e, "a token must be at least 16 characters long");
      } else if (e.key == "tls_profile") {
        m.tls_profile = name(e);
        m.tls_line = e.key_node.Mark().line + 1;
      }
    }
    if (!have_port) fail(section.value, section.field + ".port", "missing required field 'port'");
    if (m.token.empty() && !isLoopbackHost(m.host)) {
      fail(section.value, section.field + ".token",
           fmt::format("a management API on {} (not loopback) needs a token: anyone who can reach "
                       "it could change the router",
                       m.host));
    }
  }

  // A section another module added: a list of mappings, each read by `type`.
  void parseAdded(const Entry& section, const SectionType& type, Config& cfg) const {
    if (!expectSequenceOrNull(section)) return;
    std::size_t index = 0;
    for (auto it = section.value.begin(); it != section.value.end(); ++it, ++index) {
      const YAML::Node item = *it;
      EntryState state{
          *this, item, fmt::format("{}[{}]", section.key, index), item.Mark().line + 1, {}};
      if (!item.IsMap())
        fail(item, state.path, fmt::format("expected a mapping, got {}", describe(item)));
      type.parse(EntryReader(state), cfg);
    }
  }

  // The address an adaptor's listener or connector serves.
  std::string serviceAddress(const Entry& e) const {
    std::string a = nonEmptyString(e);
    if (a.size() > 1024) failValue(e, "an address is at most 1024 bytes long");
    if (a.rfind("_vane/", 0) == 0) {
      failValue(e, "addresses starting with '_vane/' are reserved for the router");
    }
    return a;
  }

  // Roles that do not fit the router's mode.
  void checkRoles(const Config& cfg) const {
    const bool edge = cfg.router.mode == RouterMode::kEdge;
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
      const auto& l = cfg.listeners[i];
      if (edge && l.role != ListenerRole::kNormal) {
        failAt(lineMark(l.line), fmt::format("listeners[{}].role", i),
               fmt::format("an edge router accepts only normal (client) listeners, not '{}'; "
                           "edge routers connect to interior routers with connectors",
                           toString(l.role)));
      }
    }
    for (std::size_t i = 0; i < cfg.connectors.size(); ++i) {
      const auto& c = cfg.connectors[i];
      if (edge && c.role != ListenerRole::kEdge) {
        failAt(lineMark(c.line), fmt::format("connectors[{}].role", i),
               "an edge router connects only with role 'edge'");
      }
      if (!edge && c.role == ListenerRole::kEdge) {
        failAt(lineMark(c.line), fmt::format("connectors[{}].role", i),
               "role 'edge' is for connectors of edge routers (router.mode: edge); interior "
               "routers connect to each other with role 'inter-router'");
      }
    }
  }

  static YAML::Mark lineMark(int line) {
    YAML::Mark m = YAML::Mark::null_mark();
    if (line > 0) {
      m.line = line - 1;
      m.column = 0;
      m.pos = 0;
    }
    return m;
  }

  void parseAddresses(const Entry& section, std::vector<AddressConfig>& out) const {
    if (!expectSequenceOrNull(section)) return;
    // Tokenised patterns of the rules accepted so far, parallel to `out`, so
    // that "a.b" and "a/b" are recognised as the same rule. Owned copies:
    // views into `out` would dangle when it reallocates.
    std::vector<std::vector<std::string>> tokens;
    std::size_t index = 0;
    for (auto it = section.value.begin(); it != section.value.end(); ++it, ++index) {
      const YAML::Node item = *it;
      const std::string path = fmt::format("addresses[{}]", index);
      if (!item.IsMap())
        fail(item, path, fmt::format("expected a mapping, got {}", describe(item)));
      AddressConfig a;
      a.line = item.Mark().line + 1;
      const Entry* prefix_entry = nullptr;
      const Entry* pattern_entry = nullptr;
      const auto list = entries(item, path, kAddressFields);
      for (const Entry& e : list) {
        if (e.key == "prefix" || e.key == "pattern") {
          if (prefix_entry != nullptr || pattern_entry != nullptr) {
            fail(e.key_node, e.field,
                 "'prefix' and 'pattern' are mutually exclusive (give exactly one)");
          }
          if (e.key == "prefix") {
            a.prefix = nonEmptyString(e);
            prefix_entry = &e;
          } else {
            a.pattern = nonEmptyString(e);
            pattern_entry = &e;
          }
        } else if (e.key == "distribution") {
          a.distribution = enumeration<Distribution>(e, {{"balanced", Distribution::kBalanced},
                                                         {"closest", Distribution::kClosest},
                                                         {"multicast", Distribution::kMulticast}});
        }
      }
      if (prefix_entry == nullptr && pattern_entry == nullptr) {
        fail(item, path, "missing required field: one of 'prefix' or 'pattern'");
      }
      out.push_back(std::move(a));
      const AddressConfig& added = out.back();
      std::vector<std::string>& toks = tokens.emplace_back();
      if (!added.pattern.empty()) {
        for (std::string_view t : splitAddressTokens(added.pattern)) toks.emplace_back(t);
      }
      for (std::size_t j = 0; j + 1 < out.size(); ++j) {
        const AddressConfig& prev = out[j];
        if (prefix_entry != nullptr && !prev.prefix.empty() && prev.prefix == added.prefix) {
          failValue(*prefix_entry, fmt::format("duplicate address prefix '{}' (already defined by "
                                               "addresses[{}] at line {})",
                                               displayValue(added.prefix), j, prev.line));
        }
        if (pattern_entry != nullptr && !prev.pattern.empty() && tokens[j] == tokens.back()) {
          failValue(
              *pattern_entry,
              fmt::format("duplicate address pattern '{}' (same as '{}' in addresses[{}] "
                          "at line {})",
                          displayValue(added.pattern), displayValue(prev.pattern), j, prev.line));
        }
      }
    }
  }

  std::string file_;
  bool entry_ = false;
};

}  // namespace detail

namespace {

// Records where each YAML document starts and whether it has any content.
class DocumentScanner : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start;
    bool empty = true;
  };

  const std::vector<Document>& docs() const { return docs_; }
  std::size_t nonEmptyDocuments() const { return non_empty_; }

  void OnDocumentStart(const YAML::Mark& mark) override { docs_.push_back(Document{mark, true}); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { content(); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    content();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    content();
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    content();
  }
  void OnMapEnd() override {}

 private:
  void content() {
    if (!docs_.empty() && docs_.back().empty) {
      docs_.back().empty = false;
      ++non_empty_;
    }
  }

  std::vector<Document> docs_;
  std::size_t non_empty_ = 0;
};

}  // namespace

namespace {

ConfigResult parseText(const std::string& text, const std::string& name, bool entry);

bool isEntrySection(std::string_view section) {
  return section == "listeners" || section == "connectors" || section == "addresses" ||
         section == "tls_profiles" || findSection(section) != nullptr;
}

// Parses `item`, one YAML flow mapping on one line, as the only entry of
// `section`. Positions in an error refer to that made-up document: they are
// left out, and the field is named inside the entry.
ConfigResult parseOneEntry(const std::string& section, const std::string& item,
                           const std::string& name) {
  ConfigResult r = parseText(section + ":\n  - " + item + "\n", name, true);
  if (auto* e = std::get_if<ConfigError>(&r)) {
    const std::string prefix = section + "[0]";
    e->line = 0;
    e->column = 0;
    if (e->field.rfind(prefix, 0) == 0) {
      e->field = e->field.size() > prefix.size() ? e->field.substr(prefix.size() + 1) : "";
    }
  }
  return r;
}

std::vector<const SectionType*>& sectionRegistry() {
  static std::vector<const SectionType*> types;
  return types;
}

}  // namespace

std::optional<ConfigError> validateEntry(const std::string& section, const std::string& yaml) {
  ConfigResult r = parseOneEntry(section, yaml, "");
  if (auto* e = std::get_if<ConfigError>(&r)) return std::move(*e);
  return std::nullopt;
}

void addSection(const SectionType& type) {
  if (findSection(type.key()) == nullptr) sectionRegistry().push_back(&type);
}

std::span<const SectionType* const> addedSections() {
  return sectionRegistry();
}

const SectionType* findSection(std::string_view key) {
  for (const SectionType* t : sectionRegistry()) {
    if (t->key() == key) return t;
  }
  return nullptr;
}

// ---- Reading added sections ----

const std::string& EntryReader::path() const {
  return s_.path;
}

int EntryReader::line() const {
  return s_.line;
}

void EntryReader::read(std::span<const std::string_view> allowed,
                       const std::function<void(const FieldReader&)>& read) const {
  s_.seen = s_.parser.entries(s_.item, s_.path, allowed);
  for (const detail::Entry& e : s_.seen) read(FieldReader(s_.parser, e));
}

void EntryReader::require(std::initializer_list<std::string_view> keys) const {
  auto seen = [this](std::string_view key) {
    return std::any_of(s_.seen.begin(), s_.seen.end(),
                       [key](const detail::Entry& e) { return e.key == key; });
  };
  if (!seen("name")) fail("name", "missing required field 'name'");
  for (std::string_view key : keys) {
    if (!seen(key)) fail(key, fmt::format("missing required field '{}'", key));
  }
}

void EntryReader::fail(std::string_view key, std::string message) const {
  for (const detail::Entry& e : s_.seen) {
    if (e.key == key) s_.parser.failValue(e, std::move(message));
  }
  s_.parser.fail(s_.item, key.empty() ? s_.path : joinField(s_.path, key), std::move(message));
}

const std::string& FieldReader::key() const {
  return e_.key;
}
std::string FieldReader::name() const {
  return p_.name(e_);
}
std::string FieldReader::string() const {
  return p_.nonEmptyString(e_);
}
std::uint64_t FieldReader::integer(std::uint64_t min, std::uint64_t max) const {
  return p_.integer(e_, min, max);
}
bool FieldReader::boolean() const {
  return p_.boolean(e_);
}
std::string FieldReader::serviceAddress() const {
  return p_.serviceAddress(e_);
}

void FieldReader::items(std::size_t max, std::string_view noun,
                        const std::function<void(const EntryReader&)>& read) const {
  if (!p_.expectSequenceOrNull(e_)) return;
  if (e_.value.size() > max) p_.failValue(e_, fmt::format("at most {} {}", max, noun));
  std::size_t index = 0;
  for (auto it = e_.value.begin(); it != e_.value.end(); ++it, ++index) {
    const YAML::Node item = *it;
    detail::EntryState state{
        p_, item, fmt::format("{}[{}]", e_.field, index), item.Mark().line + 1, {}};
    if (!item.IsMap())
      p_.fail(item, state.path, fmt::format("expected a mapping, got {}", describe(item)));
    read(EntryReader(state));
  }
}

void FieldReader::fail(std::string message) const {
  p_.failValue(e_, std::move(message));
}

void References::tlsProfile(const std::string& field, int line, const std::string& name,
                            std::string_view needs_ca) const {
  auto it = std::find_if(cfg_.tls_profiles.begin(), cfg_.tls_profiles.end(),
                         [&name](const TlsProfileConfig& t) { return t.name == name; });
  const YAML::Mark at = detail::Parser::lineMark(line);
  if (it == cfg_.tls_profiles.end()) {
    p_.failAt(at, field,
              fmt::format("no tls profile named '{}' (define it under tls_profiles)", name));
  }
  if (!needs_ca.empty() && it->ca.empty())
    p_.failAt(at, field, fmt::format("tls profile '{}' has no 'ca': {}", name, needs_ca));
}

Config defaultConfig() {
  Config cfg;
  ListenerConfig l;
  l.name = "amqp";
  cfg.listeners.push_back(std::move(l));
  cfg.source = "<built-in>";
  return cfg;
}

ConfigResult parseEntry(const std::string& section, const std::string& text) {
  ConfigError err;
  err.file = "request";
  if (!isEntrySection(section)) {
    err.message = "unknown section '" + section + "'";
    return err;
  }
  // A strict JSON object, re-serialised on one line: nothing in the body can
  // reach outside its entry.
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double.
    err.message = std::string("the body is not valid JSON: ") + e.what();
    return err;
  }
  if (!body.is_object()) {
    err.message = "the body must be a JSON object";
    return err;
  }
  // The body itself (not a re-serialisation, which would hide a key given
  // twice) as a one-line YAML flow mapping: a valid JSON object is one, and
  // whitespace is the only place raw line breaks and tabs can appear in it.
  std::string flat = text;
  for (char& c : flat) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return parseOneEntry(section, flat, "request");
}

std::span<const std::string_view> entryFields(std::string_view section) {
  if (section == "listeners") return kListenerFields;
  if (section == "connectors") return kConnectorFields;
  if (section == "tls_profiles") return kTlsProfileFields;
  if (section == "addresses") return kAddressFields;
  if (const SectionType* t = findSection(section)) return t->fields();
  return {};
}

std::optional<ConfigError> validate(const ConnectorConfig& c) {
  return validateEntry("connectors", toYaml(c));
}
std::optional<ConfigError> validate(const TlsProfileConfig& t) {
  return validateEntry("tls_profiles", toYaml(t));
}

ConfigResult parseString(const std::string& text, const std::string& name) {
  return parseText(text, name, false);
}

namespace {
ConfigResult parseText(const std::string& text, const std::string& name, bool entry) {
  try {
    detail::Parser parser(name, entry);
    // First pass over the event stream: find where documents start and which
    // are empty, before building a node tree for the first one.
    std::istringstream in(text);
    YAML::Parser events(in);
    DocumentScanner scan;
    while (events.HandleNextDocument(scan)) {
      const auto& docs = scan.docs();
      // yaml-cpp 0.7 never consumes a stray top-level ',' (upstream issue
      // #1040) and would report the same empty document forever, allocating
      // as it goes: stop when a document starts where the previous one did.
      if (docs.size() >= 2 && docs[docs.size() - 1].start.pos == docs[docs.size() - 2].start.pos) {
        const YAML::Mark at = docs.back().start;
        const auto pos = static_cast<std::size_t>(at.pos);
        const bool printable = pos < text.size() && text[pos] > ' ' && text[pos] < 0x7f;
        parser.failAt(at, "",
                      printable ? fmt::format("unexpected '{}'", text[pos])
                                : std::string("unexpected token"));
      }
      if (scan.nonEmptyDocuments() > 1) break;
    }
    // Only the first document is read (YAML::LoadAll is unsafe, see above).
    // Trailing empty documents (e.g. a final "---") are harmless; content in
    // any document but the first is an error.
    const auto& docs = scan.docs();
    for (std::size_t i = 1; i < docs.size(); ++i) {
      if (!docs[i].empty) {
        parser.failAt(docs[i].start, "",
                      "multiple YAML documents are not supported; use a single document");
      }
    }
    return parser.parseDocument(YAML::Load(text));
  } catch (const Failure& f) {
    return f.error;
  } catch (const YAML::Exception& e) {
    ConfigError err;
    err.file = name;
    if (!e.mark.is_null() && e.mark.line >= 0) {
      err.line = e.mark.line + 1;
      err.column = e.mark.column >= 0 ? e.mark.column + 1 : 0;
    }
    err.message = e.msg;
    return err;
  } catch (const std::exception& e) {
    ConfigError err;
    err.file = name;
    err.message = fmt::format("internal error while parsing: {}", e.what());
    return err;
  } catch (...) {
    ConfigError err;
    err.file = name;
    err.message = "internal error while parsing";
    return err;
  }
}

}  // namespace

ConfigResult loadFile(const std::string& path) {
  auto failure = [&path](int err) {
    ConfigError e;
    e.file = path;
    e.message = fmt::format("cannot read file: {}", std::strerror(err));
    return e;
  };
  std::string text;
  try {
    errno = 0;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return failure(errno != 0 ? errno : EIO);
    char buf[8192];
    for (;;) {
      const std::size_t n = std::fread(buf, 1, sizeof buf, f);
      text.append(buf, n);
      if (n < sizeof buf) break;
    }
    const bool read_error = std::ferror(f) != 0;
    const int saved = errno;
    std::fclose(f);
    if (read_error) return failure(saved != 0 ? saved : EIO);
  } catch (const std::exception& e) {
    ConfigError err;
    err.file = path;
    err.message = fmt::format("cannot read file: {}", e.what());
    return err;
  }
  ConfigResult r = parseString(text, path);
  if (auto* cfg = std::get_if<Config>(&r)) {
    const auto slash = path.rfind('/');
    resolvePaths(*cfg, slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash));
  }
  return r;
}

void resolvePaths(Config& cfg, const std::string& dir) {
  auto fix = [&dir](std::string& file) {
    if (file.empty() || file.front() == '/' || dir.empty() || dir == ".") return;
    file = dir + (dir.back() == '/' ? "" : "/") + file;
  };
  for (auto& t : cfg.tls_profiles) {
    fix(t.ca);
    fix(t.certificate);
    fix(t.key);
    fix(t.key_password_file);
  }
  fix(cfg.router.key_file);
  for (auto& l : cfg.listeners) fix(l.users_file);
  fix(cfg.claims.ca_certificate);
  fix(cfg.claims.ca_key);
  fix(cfg.claims.state_file);
}

}  // namespace vane::config
