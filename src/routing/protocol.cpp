#include "routing/protocol.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "routing/signing.hpp"

namespace vane::routing::protocol {

namespace {

using nlohmann::json;

constexpr const char* kProtocolError = "vane:protocol-error";
constexpr const char* kVersionError = "vane:protocol-version";
constexpr std::uint64_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();

// Strings we encode come from peers (valid UTF-8, checked by the parser) or
// from our own configuration and clients; never throw on the latter.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string quote(std::string_view s) {
  return dump(json(s));
}

// Rejects inputs nested deeper than kMaxDepth before the parser builds
// anything, so memory and time stay linear in the input with a small factor.
bool depthOk(std::string_view bytes) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : bytes) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// --- decoding ------------------------------------------------------------------
//
// nlohmann's SAX interface feeds Collector, which keeps the fields this
// protocol knows (at any position, last one wins, like a JSON object) as raw
// values, skipping everything else; the checks come afterwards, in a fixed
// order, so that e.g. an unknown version is reported as such whatever else is
// wrong. No DOM is built: this runs for every control message.

struct Scalar {
  enum Kind : std::uint8_t { kAbsent, kUnsigned, kString, kOther };
  Kind kind = kAbsent;
  std::uint64_t u = 0;
  std::string s;
};

Scalar other() {
  Scalar v;
  v.kind = Scalar::kOther;
  return v;
}

Scalar unsignedScalar(std::uint64_t u) {
  Scalar v;
  v.kind = Scalar::kUnsigned;
  v.u = u;
  return v;
}

Scalar stringScalar(std::string s) {
  Scalar v;
  v.kind = Scalar::kString;
  v.s = std::move(s);
  return v;
}

struct StringList {
  enum Kind : std::uint8_t { kAbsent, kArray, kOther };
  Kind kind = kAbsent;
  std::vector<Scalar> items;
};

struct RawRecord {
  bool is_object = true;
  Scalar id, instance, seq, key, sig;
  // links: absent, an object (items), or something else
  StringList::Kind links_kind = StringList::kAbsent;
  std::vector<std::pair<std::string, Scalar>> links;
  StringList exist, add, del;
};

struct RecordList {
  StringList::Kind kind = StringList::kAbsent;
  std::vector<RawRecord> items;
};

struct RawMessage {
  bool is_object = true;
  Scalar v, type, id, instance, cost, mode, key, sig;
  RecordList records, updates;
  StringList ids;
};

class Collector {
 public:
  RawMessage msg;
  std::string error;  // from the parser

  bool null() { return scalar(other()); }
  bool boolean(bool) { return scalar(other()); }
  bool number_integer(json::number_integer_t) { return scalar(other()); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(unsignedScalar(v)); }
  bool number_float(json::number_float_t, const std::string&) { return scalar(other()); }
  bool string(std::string& s) { return scalar(stringScalar(std::move(s))); }
  bool binary(json::binary_t&) { return scalar(other()); }
  bool key(std::string& k) {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) { return container(true); }
  bool start_array(std::size_t) { return container(false); }
  bool end_object() { return end(); }
  bool end_array() { return end(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    error = e.what();
    return false;
  }

 private:
  enum class Frame : std::uint8_t { kTop, kRecords, kRecord, kLinks, kStrings, kSkip };
  struct Level {
    Frame frame;
    void* target;  // RawMessage, RecordList, RawRecord, StringList
    std::size_t skip_depth = 0;
  };

  Scalar* topScalar() {
    RawMessage& m = msg;
    if (key_ == "v") return &m.v;
    if (key_ == "type") return &m.type;
    if (key_ == "id") return &m.id;
    if (key_ == "instance") return &m.instance;
    if (key_ == "cost") return &m.cost;
    if (key_ == "mode") return &m.mode;
    if (key_ == "key") return &m.key;
    if (key_ == "sig") return &m.sig;
    return nullptr;
  }
  RecordList* topRecords() {
    if (key_ == "records") return &msg.records;
    if (key_ == "updates") return &msg.updates;
    return nullptr;
  }
  static Scalar* recordScalar(RawRecord& r, const std::string& k) {
    if (k == "id") return &r.id;
    if (k == "instance") return &r.instance;
    if (k == "seq") return &r.seq;
    if (k == "key") return &r.key;
    if (k == "sig") return &r.sig;
    return nullptr;
  }
  static StringList* recordList(RawRecord& r, const std::string& k) {
    if (k == "exist") return &r.exist;
    if (k == "add") return &r.add;
    if (k == "del") return &r.del;
    return nullptr;
  }

  bool scalar(Scalar v) {
    if (stack_.empty()) {
      msg.is_object = false;
      return true;
    }
    Level& l = stack_.back();
    switch (l.frame) {
      case Frame::kTop:
        if (Scalar* dst = topScalar()) {
          *dst = std::move(v);
        } else if (RecordList* list = topRecords()) {
          *list = RecordList{StringList::kOther, {}};
        } else if (key_ == "ids") {
          msg.ids = StringList{StringList::kOther, {}};
        }
        break;
      case Frame::kRecord: {
        RawRecord& r = *static_cast<RawRecord*>(l.target);
        if (Scalar* dst = recordScalar(r, key_)) {
          *dst = std::move(v);
        } else if (StringList* list = recordList(r, key_)) {
          *list = StringList{StringList::kOther, {}};
        } else if (key_ == "links") {
          r.links_kind = StringList::kOther;
          r.links.clear();
        }
        break;
      }
      case Frame::kLinks:
        static_cast<RawRecord*>(l.target)->links.emplace_back(key_, std::move(v));
        break;
      case Frame::kRecords: {
        RawRecord bad;
        bad.is_object = false;
        static_cast<RecordList*>(l.target)->items.push_back(std::move(bad));
        break;
      }
      case Frame::kStrings:
        static_cast<StringList*>(l.target)->items.push_back(std::move(v));
        break;
      case Frame::kSkip:
        break;
    }
    return true;
  }

  void skip() { stack_.push_back(Level{Frame::kSkip, nullptr, 1}); }

  bool container(bool object) {
    if (stack_.empty()) {
      if (object) {
        stack_.push_back(Level{Frame::kTop, &msg});
      } else {
        msg.is_object = false;
        skip();
      }
      return true;
    }
    Level& l = stack_.back();
    switch (l.frame) {
      case Frame::kTop:
        if (RecordList* list = topRecords(); list != nullptr && !object) {
          *list = RecordList{StringList::kArray, {}};
          stack_.push_back(Level{Frame::kRecords, list});
          return true;
        }
        if (key_ == "ids" && !object) {
          msg.ids = StringList{StringList::kArray, {}};
          stack_.push_back(Level{Frame::kStrings, &msg.ids});
          return true;
        }
        scalar(other());  // a container where a value was expected
        break;
      case Frame::kRecord: {
        RawRecord& r = *static_cast<RawRecord*>(l.target);
        if (key_ == "links" && object) {
          r.links_kind = StringList::kArray;  // here: "an object, as expected"
          r.links.clear();
          stack_.push_back(Level{Frame::kLinks, &r});
          return true;
        }
        if (StringList* list = recordList(r, key_); list != nullptr && !object) {
          *list = StringList{StringList::kArray, {}};
          stack_.push_back(Level{Frame::kStrings, list});
          return true;
        }
        scalar(other());
        break;
      }
      case Frame::kRecords:
        if (object) {
          auto& items = static_cast<RecordList*>(l.target)->items;
          items.emplace_back();
          // The element stays put: nothing is added to this list while it
          // is being filled.
          stack_.push_back(Level{Frame::kRecord, &items.back()});
          return true;
        }
        scalar(other());
        break;
      case Frame::kLinks:
      case Frame::kStrings:
        scalar(other());
        break;
      case Frame::kSkip:
        ++l.skip_depth;
        return true;
    }
    skip();
    return true;
  }

  bool end() {
    if (stack_.empty()) return true;
    Level& l = stack_.back();
    if (l.frame == Frame::kSkip && --l.skip_depth > 0) return true;
    stack_.pop_back();
    return true;
  }

  std::vector<Level> stack_;
  std::string key_;
};

// Checks raw values, remembering the first problem found.
class Checker {
 public:
  const std::string& error() const { return error_; }

  bool fail(std::string what) {
    if (error_.empty()) error_ = std::move(what);
    return false;
  }

  bool unsignedValue(const Scalar& v, std::uint64_t min, std::uint64_t max, std::uint64_t& out,
                     std::string_view where, std::string_view name) {
    if (v.kind == Scalar::kAbsent) return fail(fmt::format("{}: missing field '{}'", where, name));
    if (v.kind != Scalar::kUnsigned) {
      return fail(fmt::format("{}: '{}' must be an integer in {}..{}", where, name, min, max));
    }
    if (v.u < min || v.u > max) {
      return fail(fmt::format("{}: '{}' is {}, outside {}..{}", where, name, v.u, min, max));
    }
    out = v.u;
    return true;
  }

  bool stringValue(Scalar& v, std::size_t max_bytes, std::string& out, std::string_view where,
                   std::string_view name) {
    if (v.kind == Scalar::kAbsent) return fail(fmt::format("{}: missing field '{}'", where, name));
    if (v.kind != Scalar::kString)
      return fail(fmt::format("{}: '{}' must be a string", where, name));
    if (v.s.empty() || v.s.size() > max_bytes) {
      return fail(
          fmt::format("{}: '{}' is {} bytes long, not 1..{}", where, name, v.s.size(), max_bytes));
    }
    out = std::move(v.s);
    return true;
  }

  // An array of strings, returned sorted and without duplicates.
  bool stringList(StringList& list, std::size_t max_bytes, std::vector<std::string>& out,
                  std::string_view where, std::string_view name) {
    if (list.kind == StringList::kAbsent) {
      return fail(fmt::format("{}: missing field '{}'", where, name));
    }
    if (list.kind != StringList::kArray) {
      return fail(fmt::format("{}: '{}' must be an array", where, name));
    }
    out.clear();
    out.reserve(list.items.size());
    for (Scalar& item : list.items) {
      if (item.kind != Scalar::kString || item.s.empty() || item.s.size() > max_bytes) {
        return fail(fmt::format("{}: '{}[{}]' must be a string of 1..{} bytes", where, name,
                                out.size(), max_bytes));
      }
      out.push_back(std::move(item.s));
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return true;
  }

  // An optional base64 field of exactly `bytes` bytes once decoded; absent
  // leaves `out` empty.
  bool binaryValue(const Scalar& v, std::size_t bytes, std::string& out, std::string_view where,
                   std::string_view name) {
    out.clear();
    if (v.kind == Scalar::kAbsent) return true;
    std::optional<std::string> raw;
    if (v.kind == Scalar::kString) raw = signing::unbase64(v.s);
    if (!raw || raw->size() != bytes) {
      return fail(fmt::format("{}: '{}' must be {} bytes in base64", where, name, bytes));
    }
    out = std::move(*raw);
    return true;
  }

  bool signature(const Scalar& key, const Scalar& sig, std::string& key_out, std::string& sig_out,
                 std::string_view where) {
    return binaryValue(key, signing::kPublicKeyBytes, key_out, where, "key") &&
           binaryValue(sig, signing::kSignatureBytes, sig_out, where, "sig");
  }

  bool recordHeader(RawRecord& r, std::string& id, std::uint64_t& instance, std::uint64_t& seq,
                    std::string_view where) {
    if (!r.is_object) return fail(fmt::format("{}: not an object", where));
    return stringValue(r.id, kMaxIdBytes, id, where, "id") &&
           unsignedValue(r.instance, 0, kMaxU64, instance, where, "instance") &&
           unsignedValue(r.seq, 1, kMaxU64, seq, where, "seq");
  }

 private:
  std::string error_;
};

bool readHello(Checker& c, RawMessage& m, Hello& h) {
  std::uint64_t cost = 0;
  std::string mode;
  if (!c.stringValue(m.id, kMaxIdBytes, h.id, "hello", "id") ||
      !c.unsignedValue(m.instance, 0, kMaxU64, h.instance, "hello", "instance") ||
      !c.unsignedValue(m.cost, 1, kMaxU32, cost, "hello", "cost") ||
      !c.stringValue(m.mode, 16, mode, "hello", "mode") ||
      !c.signature(m.key, m.sig, h.key, h.sig, "hello")) {
    return false;
  }
  h.cost = static_cast<std::uint32_t>(cost);
  if (mode == "interior") {
    h.mode = Mode::kInterior;
  } else if (mode == "edge") {
    h.mode = Mode::kEdge;
  } else {
    return c.fail(fmt::format("hello: unknown mode {}", quote(mode)));
  }
  return true;
}

bool readLinkState(Checker& c, RawRecord& r, LinkStateRecord& rec, std::string_view where) {
  if (!c.recordHeader(r, rec.id, rec.instance, rec.seq, where) ||
      !c.signature(r.key, r.sig, rec.key, rec.sig, where)) {
    return false;
  }
  if (r.links_kind == StringList::kAbsent) {
    return c.fail(fmt::format("{}: missing field 'links'", where));
  }
  if (r.links_kind != StringList::kArray) {
    return c.fail(fmt::format("{}: 'links' must be an object", where));
  }
  // Like a JSON object: sorted by id, the last of duplicate keys wins.
  std::stable_sort(r.links.begin(), r.links.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  rec.links.clear();
  rec.links.reserve(r.links.size());
  for (std::size_t i = 0; i < r.links.size(); ++i) {
    if (i + 1 < r.links.size() && r.links[i + 1].first == r.links[i].first) continue;
    auto& [key, value] = r.links[i];
    if (key.empty() || key.size() > kMaxIdBytes) {
      return c.fail(
          fmt::format("{}: link id is {} bytes long, not 1..{}", where, key.size(), kMaxIdBytes));
    }
    if (value.kind != Scalar::kUnsigned || value.u < 1 || value.u > kMaxU32) {
      return c.fail(fmt::format("{}: the cost of link {} must be an integer in 1..{}", where,
                                quote(key), kMaxU32));
    }
    rec.links.emplace_back(std::move(key), static_cast<std::uint32_t>(value.u));
  }
  if (rec.links.size() > kMaxLinks) {
    return c.fail(fmt::format("{}: {} links, more than {}", where, rec.links.size(), kMaxLinks));
  }
  return true;
}

bool readAddressRecord(Checker& c, RawRecord& r, AddressRecord& rec, std::string_view where) {
  if (!c.recordHeader(r, rec.id, rec.instance, rec.seq, where) ||
      !c.signature(r.key, r.sig, rec.key, rec.sig, where)) {
    return false;
  }
  const bool exist = r.exist.kind != StringList::kAbsent;
  const bool add = r.add.kind != StringList::kAbsent;
  const bool del = r.del.kind != StringList::kAbsent;
  if (exist) {
    if (add || del) return c.fail(fmt::format("{}: 'exist' together with 'add' or 'del'", where));
    rec.full = true;
    return c.stringList(r.exist, kMaxAddressBytes, rec.exist, where, "exist");
  }
  if (!add && !del) return c.fail(fmt::format("{}: none of 'exist', 'add', 'del'", where));
  rec.full = false;
  if (add && !c.stringList(r.add, kMaxAddressBytes, rec.add, where, "add")) return false;
  if (del && !c.stringList(r.del, kMaxAddressBytes, rec.del, where, "del")) return false;
  return true;
}

template <typename T, typename ReadOne>
bool readRecords(Checker& c, RecordList& list, const char* name, std::string_view type,
                 std::vector<T>& out, ReadOne read_one) {
  if (list.kind == StringList::kAbsent) {
    return c.fail(fmt::format("{}: missing field '{}'", type, name));
  }
  if (list.kind != StringList::kArray) {
    return c.fail(fmt::format("{}: '{}' must be an array", type, name));
  }
  out.clear();
  out.reserve(list.items.size());
  char where[64];
  for (RawRecord& item : list.items) {
    // Without allocating: this runs for every record.
    const auto end = fmt::format_to_n(where, sizeof where - 1, "{} {}[{}]", type, name, out.size());
    *end.out = '\0';
    T value;
    if (!read_one(c, item, value, std::string_view(where, end.out - where))) return false;
    out.push_back(std::move(value));
  }
  return true;
}

Decoded failure(const char* condition, std::string reason) {
  Decoded d;
  d.error.condition = condition;
  d.error.reason = std::move(reason);
  return d;
}

Decoded decodeUnchecked(std::string_view bytes) {
  if (bytes.size() > kMaxMessageBytes) {
    return failure(kProtocolError, fmt::format("message of {} bytes, more than {}", bytes.size(),
                                               kMaxMessageBytes));
  }
  if (!depthOk(bytes)) {
    return failure(kProtocolError, fmt::format("JSON nested deeper than {}", kMaxDepth));
  }
  Collector collector;
  if (!json::sax_parse(bytes.begin(), bytes.end(), &collector)) {
    return failure(kProtocolError, fmt::format("not JSON: {}", collector.error));
  }
  RawMessage& m = collector.msg;
  if (!m.is_object) return failure(kProtocolError, "message is not a JSON object");
  if (m.v.kind == Scalar::kAbsent) return failure(kProtocolError, "missing field 'v'");
  if (m.v.kind != Scalar::kUnsigned) return failure(kProtocolError, "'v' must be an integer");
  if (m.v.u != kVersion) {
    return failure(kVersionError,
                   fmt::format("protocol version {} (this router speaks {})", m.v.u, kVersion));
  }
  if (m.type.kind == Scalar::kAbsent) return failure(kProtocolError, "missing field 'type'");
  if (m.type.kind != Scalar::kString) return failure(kProtocolError, "'type' must be a string");
  const std::string& name = m.type.s;

  Checker c;
  Decoded d;
  if (name == "hello") {
    Hello h;
    if (readHello(c, m, h)) d.message = std::move(h);
  } else if (name == "lsu") {
    Lsu lsu;
    if (readRecords(c, m.records, "records", "lsu", lsu.records, readLinkState)) {
      d.message = std::move(lsu);
    }
  } else if (name == "mau") {
    Mau mau;
    if (readRecords(c, m.updates, "updates", "mau", mau.updates, readAddressRecord)) {
      d.message = std::move(mau);
    }
  } else if (name == "mar") {
    Mar mar;
    if (c.stringList(m.ids, kMaxIdBytes, mar.ids, "mar", "ids")) d.message = std::move(mar);
  } else {
    // Printed with JSON escaping: the name is untrusted.
    return failure(kProtocolError,
                   fmt::format("unknown message type {}", quote(name.substr(0, 64))));
  }
  if (!d.ok()) return failure(kProtocolError, c.error());
  return d;
}

bool validUtf8(std::string_view s) {
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned char c = byte(i);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      if ((byte(i + k) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Appends `s` as a JSON string. Valid UTF-8 is copied as is (JSON text is
// UTF-8); anything else goes through nlohmann, which substitutes U+FFFD.
void appendQuoted(std::string& out, std::string_view s) {
  if (!validUtf8(s)) {
    out += quote(s);
    return;
  }
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void appendList(std::string& out, const std::vector<std::string>& list) {
  out += '[';
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i > 0) out += ',';
    appendQuoted(out, list[i]);
  }
  out += ']';
}

void appendHeader(std::string& out, std::uint64_t instance, std::uint64_t seq) {
  out += R"(,"instance":)";
  out += std::to_string(instance);
  out += R"(,"seq":)";
  out += std::to_string(seq);
}

void appendSignature(std::string& out, const std::string& key, const std::string& sig) {
  if (!key.empty()) {
    out += R"(,"key":")";
    out += signing::base64(key);
    out += '"';
  }
  if (!sig.empty()) {
    out += R"(,"sig":")";
    out += signing::base64(sig);
    out += '"';
  }
}

}  // namespace

Decoded decode(std::string_view bytes) noexcept {
  try {
    return decodeUnchecked(bytes);
  } catch (const std::bad_alloc&) {
    return failure(kProtocolError, "out of memory decoding a message");
  } catch (const std::exception& e) {
    return failure(kProtocolError, fmt::format("undecodable: {}", e.what()));
  } catch (...) {
    return failure(kProtocolError, "undecodable");
  }
}

std::string encodeHello(const Hello& h) {
  std::string out = R"({"v":1,"type":"hello","id":)";
  appendQuoted(out, h.id);
  out += R"(,"instance":)";
  out += std::to_string(h.instance);
  out += R"(,"cost":)";
  out += std::to_string(h.cost);
  out += R"(,"mode":")";
  out += modeName(h.mode);
  out += '"';
  appendSignature(out, h.key, h.sig);
  out += '}';
  return out;
}

std::string encodeMar(const std::vector<std::string>& ids) {
  std::string out = R"({"v":1,"type":"mar","ids":)";
  appendList(out, ids);
  out += '}';
  return out;
}

std::string encodeRecord(const LinkStateRecord& rec) {
  std::string out = R"({"id":)";
  appendQuoted(out, rec.id);
  appendHeader(out, rec.instance, rec.seq);
  out += R"(,"links":{)";
  for (std::size_t i = 0; i < rec.links.size(); ++i) {
    if (i > 0) out += ',';
    appendQuoted(out, rec.links[i].first);
    out += ':';
    out += std::to_string(rec.links[i].second);
  }
  out += '}';
  appendSignature(out, rec.key, rec.sig);
  out += '}';
  return out;
}

std::string encodeRecord(const AddressRecord& rec) {
  std::string out = R"({"id":)";
  appendQuoted(out, rec.id);
  appendHeader(out, rec.instance, rec.seq);
  if (rec.full) {
    out += R"(,"exist":)";
    appendList(out, rec.exist);
  } else {
    out += R"(,"add":)";
    appendList(out, rec.add);
    out += R"(,"del":)";
    appendList(out, rec.del);
  }
  appendSignature(out, rec.key, rec.sig);
  out += '}';
  return out;
}

std::vector<std::string> assemble(Batch kind, const std::vector<const std::string*>& records) {
  const std::string head = kind == Batch::kLsu
                               ? fmt::format(R"({{"v":{},"type":"lsu","records":[)", kVersion)
                               : fmt::format(R"({{"v":{},"type":"mau","updates":[)", kVersion);
  std::vector<std::string> out;
  std::string msg;
  bool first = true;
  for (const std::string* rec : records) {
    if (!first && msg.size() + rec->size() + 2 > kTargetMessageBytes) {
      msg += "]}";
      out.push_back(std::move(msg));
      msg.clear();
      first = true;
    }
    if (first) {
      msg = head;
    } else {
      msg += ',';
    }
    msg += *rec;
    first = false;
  }
  if (!first) {
    msg += "]}";
    out.push_back(std::move(msg));
  }
  return out;
}

std::string encode(const Message& message) {
  struct Visitor {
    std::string operator()(const Hello& h) const { return encodeHello(h); }
    std::string operator()(const Mar& m) const { return encodeMar(m.ids); }
    std::string operator()(const Lsu& m) const {
      std::vector<std::string> encoded;
      encoded.reserve(m.records.size());
      for (const auto& rec : m.records) encoded.push_back(encodeRecord(rec));
      return join(Batch::kLsu, encoded);
    }
    std::string operator()(const Mau& m) const {
      std::vector<std::string> encoded;
      encoded.reserve(m.updates.size());
      for (const auto& rec : m.updates) encoded.push_back(encodeRecord(rec));
      return join(Batch::kMau, encoded);
    }
    // One message however large (assemble() would split it).
    static std::string join(Batch kind, const std::vector<std::string>& encoded) {
      std::string msg = kind == Batch::kLsu
                            ? fmt::format(R"({{"v":{},"type":"lsu","records":[)", kVersion)
                            : fmt::format(R"({{"v":{},"type":"mau","updates":[)", kVersion);
      for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (i > 0) msg += ',';
        msg += encoded[i];
      }
      msg += "]}";
      return msg;
    }
  };
  return std::visit(Visitor{}, message);
}

bool validRouterId(std::string_view id) {
  return !id.empty() && id.size() <= kMaxIdBytes && validUtf8(id);
}

bool validAddress(std::string_view address) {
  return !address.empty() && address.size() <= kMaxAddressBytes && validUtf8(address);
}

const char* modeName(Mode mode) {
  return mode == Mode::kEdge ? "edge" : "interior";
}

}  // namespace vane::routing::protocol
