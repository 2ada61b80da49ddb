// Sections that other modules add to the configuration schema: each adaptor
// adds its listener and connector lists (tcp_listeners, http_connectors, ...)
// from its own folder, so that a new adaptor needs no change here. An added
// section is a list of named entries of one struct type C; it is read with
// the same rules and messages as the built-in sections (EntryReader), written
// back with EntryWriter (the CLI's vaned.yaml, the management API's bodies),
// and kept in Config::sections.
//
//   const config::ListSection<TcpListenerConfig> kTcpListeners{
//       {.key = "tcp_listeners", .what = "tcp listener", .fields = kFields},
//       parseListener, writeListener};
//   config::addSection(kTcpListeners);            // before any parse
//   for (const auto& l : kTcpListeners.of(cfg)) ...
//
// C has `std::string name`, `int line` (set by the parser) and
// `static const ListSection<C>& section()`; an entry whose C names a TLS
// profile gives ListSection a function that returns it.
#pragma once

#include <any>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace vane::config {

namespace detail {
class Parser;
struct Entry;
struct EntryState;
}  // namespace detail

class FieldReader;

// One entry (a mapping) of an added section being read.
class EntryReader {
 public:
  // Its field path ("tcp_listeners[0]") and 1-based line.
  const std::string& path() const;
  int line() const;
  // Calls read(field) for every key of the entry in the order given, after
  // checking that each key is one of `allowed` and none is repeated.
  void read(std::span<const std::string_view> allowed,
            const std::function<void(const FieldReader&)>& read) const;
  // Fails with "missing required field 'K'" for the first of `keys` that
  // read() did not see ("name" is always checked first).
  void require(std::initializer_list<std::string_view> keys) const;
  // Fails naming field `key` of the entry ("" = the entry itself), at its
  // value if read() saw it, else at the entry.
  [[noreturn]] void fail(std::string_view key, std::string message) const;

 private:
  friend class detail::Parser;
  friend class FieldReader;
  explicit EntryReader(detail::EntryState& s) : s_(s) {}
  detail::EntryState& s_;
};

// One key: value of an entry, read with the file's rules; every reader
// fails with a message naming the field and its position.
class FieldReader {
 public:
  const std::string& key() const;
  std::string name() const;    // 1..64 characters of [A-Za-z0-9._-]
  std::string string() const;  // not empty
  std::uint64_t integer(std::uint64_t min, std::uint64_t max) const;
  bool boolean() const;
  // An address a listener or connector serves: at most 1024 bytes, not in
  // the router's reserved _vane/ namespace.
  std::string serviceAddress() const;
  // A sequence of mappings of at most `max` items (null = none; more fails
  // with "at most <max> <noun>"): calls read(item) for each, the item's path
  // being "<field>[i]".
  void items(std::size_t max, std::string_view noun,
             const std::function<void(const EntryReader&)>& read) const;
  [[noreturn]] void fail(std::string message) const;

 private:
  friend class detail::Parser;
  friend class EntryReader;
  FieldReader(const detail::Parser& p, const detail::Entry& e) : p_(p), e_(e) {}
  const detail::Parser& p_;
  const detail::Entry& e_;
};

// A value for a message: control and non-ASCII bytes escaped, long values
// shortened.
std::string displayValue(std::string_view value);

// One entry written as text: the fields in order, each a string, an
// integer, a boolean or a list of entries.
class EntryWriter {
 public:
  EntryWriter& add(const char* key, std::string value);
  EntryWriter& add(const char* key, std::uint64_t value);
  EntryWriter& add(const char* key, bool value);
  EntryWriter& add(const char* key, std::vector<EntryWriter> list);
  // Written only when not empty.
  EntryWriter& optional(const char* key, const std::string& value);
  EntryWriter& optional(const char* key, std::vector<EntryWriter> list);
  // A one-line YAML flow mapping; a JSON object (bytes that are not UTF-8
  // as U+FFFD).
  std::string yaml() const;
  std::string json() const;

 private:
  struct Field {
    const char* key;
    std::variant<std::string, std::uint64_t, bool, std::vector<EntryWriter>> value;
  };
  std::vector<Field> fields_;
  friend struct EntryEmit;
};

// Checks the names an entry gives of other entities once the whole file has
// been read (not for one entry of a request body: the router checks those
// against what it has).
class References {
 public:
  // Profile `name` must be defined under tls_profiles; with `needs_ca`
  // (why: "an http connector needs it to verify the server's certificate")
  // it must have a ca. `field` and `line` place the message.
  void tlsProfile(const std::string& field, int line, const std::string& name,
                  std::string_view needs_ca) const;

 private:
  friend class detail::Parser;
  References(const detail::Parser& p, const Config& cfg) : p_(p), cfg_(cfg) {}
  const detail::Parser& p_;
  const Config& cfg_;
};

// What every added section is, whatever its entry type.
class SectionType {
 public:
  struct Description {
    std::string_view key;   // "tcp_listeners": the section, and parseEntry()'s name for it
    std::string_view what;  // "tcp listener", in messages
    std::span<const std::string_view> fields;  // the keys an entry may have, in message order
    // When entries name a TLS profile (ListSection's TlsProfile): why the
    // profile needs a ca ("an http connector needs it to verify the server's
    // certificate"), or "" when it need not have one.
    std::string_view needs_ca;
  };
  constexpr explicit SectionType(Description d) : d_(d) {}
  constexpr virtual ~SectionType() = default;
  SectionType(const SectionType&) = delete;
  SectionType& operator=(const SectionType&) = delete;

  std::string_view key() const { return d_.key; }
  std::string_view what() const { return d_.what; }
  std::span<const std::string_view> fields() const { return d_.fields; }

  // Reads one entry into the section's list in `cfg` (the parser has checked
  // that it is a mapping); an entry without a name, or with one the list
  // has, fails.
  virtual void parse(const EntryReader& in, Config& cfg) const = 0;
  // The checks of the entries' references (References).
  virtual void check(const Config& cfg, const References& refs) const = 0;
  // The name of an entry that uses TLS profile `profile`, or "".
  virtual std::string tlsUser(const Config& cfg, const std::string& profile) const = 0;

 protected:
  const Description d_;
};

// Adds `type` to the schema that every later parse uses (in the order
// added). `type` lives as long as the program (define it constinit: it is
// then whole before any code runs); adding the same key twice keeps the
// first. Not thread-safe: add sections at start, before parsing.
void addSection(const SectionType& type);
// The added sections, in the order added.
std::span<const SectionType* const> addedSections();
const SectionType* findSection(std::string_view key);

// The rules vaned applies to one entry of `section` (a built-in list section
// or an added one) given as a one-line YAML flow mapping: nothing, or the
// error its field names inside the entry ("port"), without position.
std::optional<ConfigError> validateEntry(const std::string& section, const std::string& yaml);

// An added section of entries of type C.
template <typename C>
class ListSection final : public SectionType {
 public:
  using Parse = void (*)(const EntryReader& in, C& entry);
  using Write = EntryWriter (*)(const C& entry);
  using TlsProfile = const std::string& (*)(const C& entry);
  constexpr ListSection(Description d, Parse parse, Write write, TlsProfile tls = nullptr)
      : SectionType(d), parse_(parse), write_(write), tls_(tls) {}

  // Its entries in `cfg` (an empty list if it has none).
  const std::vector<C>& of(const Config& cfg) const {
    static const std::vector<C> kNone;
    const std::any* a = cfg.sections.find(d_.key);
    return a == nullptr ? kNone : std::any_cast<const std::vector<C>&>(*a);
  }
  std::vector<C>& of(Config& cfg) const {
    std::any& a = cfg.sections.at(d_.key);
    if (!a.has_value()) a = std::vector<C>{};
    return std::any_cast<std::vector<C>&>(a);
  }

  // The entry as vaned.yaml has it, as the management API takes it, and
  // what vaned would say of it (the rules of parseEntry()).
  std::string yaml(const C& entry) const { return write_(entry).yaml(); }
  std::string json(const C& entry) const { return write_(entry).json(); }
  std::optional<ConfigError> validate(const C& entry) const {
    return validateEntry(std::string(d_.key), yaml(entry));
  }

  void parse(const EntryReader& in, Config& cfg) const override {
    C c;
    c.line = in.line();
    parse_(in, c);
    in.require({"name"});
    std::vector<C>& list = of(cfg);
    for (std::size_t j = 0; j < list.size(); ++j) {
      if (list[j].name == c.name) {
        in.fail("name", "duplicate " + std::string(d_.what) + " name '" + c.name +
                            "' (already used by " + std::string(d_.key) + "[" + std::to_string(j) +
                            "] at line " + std::to_string(list[j].line) + ")");
      }
    }
    list.push_back(std::move(c));
  }
  void check(const Config& cfg, const References& refs) const override {
    if (tls_ == nullptr) return;
    const std::vector<C>& list = of(cfg);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string& profile = tls_(list[i]);
      if (profile.empty()) continue;
      refs.tlsProfile(std::string(d_.key) + "[" + std::to_string(i) + "].tls_profile", list[i].line,
                      profile, d_.needs_ca);
    }
  }
  std::string tlsUser(const Config& cfg, const std::string& profile) const override {
    if (tls_ == nullptr) return {};
    for (const C& c : of(cfg)) {
      if (tls_(c) == profile) return c.name;
    }
    return {};
  }

 private:
  const Parse parse_;
  const Write write_;
  const TlsProfile tls_;
};

// The entry types of added sections name their section, as
// `static const ListSection<C>& section();`, so that the functions of the
// built-in entries work for theirs too.
template <typename C>
concept SectionEntry = requires {
  { C::section() } -> std::same_as<const ListSection<C>&>;
};
template <SectionEntry C>
std::string toYaml(const C& entry) {
  return C::section().yaml(entry);
}
template <SectionEntry C>
std::string toJson(const C& entry) {
  return C::section().json(entry);
}
template <SectionEntry C>
std::optional<ConfigError> validate(const C& entry) {
  return C::section().validate(entry);
}

}  // namespace vane::config
