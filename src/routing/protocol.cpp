#include "routing/protocol.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace vane::routing::protocol {

namespace {

using nlohmann::json;

constexpr const char* kProtocolError = "vane:protocol-error";
constexpr const char* kVersionError = "vane:protocol-version";
constexpr std::uint64_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();

// Strings we encode come from peers (valid UTF-8, checked by the parser) or
// from our own configuration and clients; never throw on the latter.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string quote(std::string_view s) { return dump(json(s)); }

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

// Reads typed fields, remembering the first problem found.
class Reader {
 public:
  const std::string& error() const { return error_; }

  bool fail(std::string what) {
    if (error_.empty()) error_ = std::move(what);
    return false;
  }

  const json* field(const json& obj, const char* name, std::string_view where) {
    const auto it = obj.find(name);
    if (it == obj.end()) {
      fail(fmt::format("{}: missing field '{}'", where, name));
      return nullptr;
    }
    return &*it;
  }

  bool unsignedValue(const json& v, std::uint64_t min, std::uint64_t max, std::uint64_t& out,
                     std::string_view where, std::string_view name) {
    if (!v.is_number_unsigned()) {
      return fail(fmt::format("{}: '{}' must be an integer in {}..{}", where, name, min, max));
    }
    const std::uint64_t n = v.get<std::uint64_t>();
    if (n < min || n > max) {
      return fail(fmt::format("{}: '{}' is {}, outside {}..{}", where, name, n, min, max));
    }
    out = n;
    return true;
  }

  bool unsignedField(const json& obj, const char* name, std::uint64_t min, std::uint64_t max,
                     std::uint64_t& out, std::string_view where) {
    const json* v = field(obj, name, where);
    return v != nullptr && unsignedValue(*v, min, max, out, where, name);
  }

  bool stringValue(const json& v, std::size_t max_bytes, std::string& out, std::string_view where,
                   std::string_view name) {
    if (!v.is_string()) return fail(fmt::format("{}: '{}' must be a string", where, name));
    const auto& s = v.get_ref<const std::string&>();
    if (s.empty() || s.size() > max_bytes) {
      return fail(
          fmt::format("{}: '{}' is {} bytes long, not 1..{}", where, name, s.size(), max_bytes));
    }
    out = s;
    return true;
  }

  bool stringField(const json& obj, const char* name, std::size_t max_bytes, std::string& out,
                   std::string_view where) {
    const json* v = field(obj, name, where);
    return v != nullptr && stringValue(*v, max_bytes, out, where, name);
  }

  // An array of strings, returned sorted and without duplicates.
  bool stringList(const json& v, std::size_t max_bytes, std::vector<std::string>& out,
                  std::string_view where, std::string_view name) {
    if (!v.is_array()) return fail(fmt::format("{}: '{}' must be an array", where, name));
    out.clear();
    out.reserve(v.size());
    for (const json& item : v) {
      std::string s;
      if (!stringValue(item, max_bytes, s, where, fmt::format("{}[{}]", name, out.size()))) {
        return false;
      }
      out.push_back(std::move(s));
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return true;
  }

 private:
  std::string error_;
};

bool readHello(Reader& r, const json& j, Hello& h) {
  std::uint64_t cost = 0;
  std::string mode;
  if (!r.stringField(j, "id", kMaxIdBytes, h.id, "hello") ||
      !r.unsignedField(j, "instance", 0, kMaxU64, h.instance, "hello") ||
      !r.unsignedField(j, "cost", 1, kMaxU32, cost, "hello") ||
      !r.stringField(j, "mode", 16, mode, "hello")) {
    return false;
  }
  h.cost = static_cast<std::uint32_t>(cost);
  if (mode == "interior") {
    h.mode = Mode::kInterior;
  } else if (mode == "edge") {
    h.mode = Mode::kEdge;
  } else {
    return r.fail(fmt::format("hello: unknown mode '{}'", mode));
  }
  return true;
}

bool readLinkState(Reader& r, const json& j, LinkStateRecord& rec, std::string_view where) {
  if (!j.is_object()) return r.fail(fmt::format("{}: not an object", where));
  if (!r.stringField(j, "id", kMaxIdBytes, rec.id, where) ||
      !r.unsignedField(j, "instance", 0, kMaxU64, rec.instance, where) ||
      !r.unsignedField(j, "seq", 1, kMaxU64, rec.seq, where)) {
    return false;
  }
  const json* links = r.field(j, "links", where);
  if (links == nullptr) return false;
  if (!links->is_object()) return r.fail(fmt::format("{}: 'links' must be an object", where));
  if (links->size() > kMaxLinks) {
    return r.fail(fmt::format("{}: {} links, more than {}", where, links->size(), kMaxLinks));
  }
  rec.links.clear();
  rec.links.reserve(links->size());
  // Object keys come out sorted and distinct.
  for (const auto& [key, value] : links->items()) {
    if (key.empty() || key.size() > kMaxIdBytes) {
      return r.fail(fmt::format("{}: link id is {} bytes long, not 1..{}", where, key.size(),
                                kMaxIdBytes));
    }
    std::uint64_t cost = 0;
    if (!r.unsignedValue(value, 1, kMaxU32, cost, where, fmt::format("links.{}", key))) {
      return false;
    }
    rec.links.emplace_back(key, static_cast<std::uint32_t>(cost));
  }
  return true;
}

bool readAddressRecord(Reader& r, const json& j, AddressRecord& rec, std::string_view where) {
  if (!j.is_object()) return r.fail(fmt::format("{}: not an object", where));
  if (!r.stringField(j, "id", kMaxIdBytes, rec.id, where) ||
      !r.unsignedField(j, "instance", 0, kMaxU64, rec.instance, where) ||
      !r.unsignedField(j, "seq", 1, kMaxU64, rec.seq, where)) {
    return false;
  }
  const auto exist = j.find("exist");
  const auto add = j.find("add");
  const auto del = j.find("del");
  if (exist != j.end()) {
    if (add != j.end() || del != j.end()) {
      return r.fail(fmt::format("{}: 'exist' together with 'add' or 'del'", where));
    }
    rec.full = true;
    return r.stringList(*exist, kMaxAddressBytes, rec.exist, where, "exist");
  }
  if (add == j.end() && del == j.end()) {
    return r.fail(fmt::format("{}: none of 'exist', 'add', 'del'", where));
  }
  rec.full = false;
  if (add != j.end() && !r.stringList(*add, kMaxAddressBytes, rec.add, where, "add")) return false;
  if (del != j.end() && !r.stringList(*del, kMaxAddressBytes, rec.del, where, "del")) return false;
  return true;
}

template <typename T, typename ReadOne>
bool readList(Reader& r, const json& j, const char* name, std::string_view type,
              std::vector<T>& out, ReadOne read_one) {
  const json* list = r.field(j, name, type);
  if (list == nullptr) return false;
  if (!list->is_array()) return r.fail(fmt::format("{}: '{}' must be an array", type, name));
  out.clear();
  out.reserve(list->size());
  for (const json& item : *list) {
    T value;
    if (!read_one(item, value, fmt::format("{} {}[{}]", type, name, out.size()))) return false;
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
    return failure(kProtocolError,
                   fmt::format("message of {} bytes, more than {}", bytes.size(), kMaxMessageBytes));
  }
  if (!depthOk(bytes)) {
    return failure(kProtocolError, fmt::format("JSON nested deeper than {}", kMaxDepth));
  }
  json j;
  try {
    j = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    return failure(kProtocolError, fmt::format("not JSON: {}", e.what()));
  }
  if (!j.is_object()) return failure(kProtocolError, "message is not a JSON object");
  const auto v = j.find("v");
  if (v == j.end()) return failure(kProtocolError, "missing field 'v'");
  if (!v->is_number_unsigned()) return failure(kProtocolError, "'v' must be an integer");
  if (v->get<std::uint64_t>() != kVersion) {
    return failure(kVersionError, fmt::format("protocol version {} (this router speaks {})",
                                              v->get<std::uint64_t>(), kVersion));
  }
  const auto type = j.find("type");
  if (type == j.end()) return failure(kProtocolError, "missing field 'type'");
  if (!type->is_string()) return failure(kProtocolError, "'type' must be a string");
  const auto& name = type->get_ref<const std::string&>();

  Reader r;
  Decoded d;
  if (name == "hello") {
    Hello h;
    if (readHello(r, j, h)) d.message = std::move(h);
  } else if (name == "lsu") {
    Lsu m;
    if (readList(r, j, "records", "lsu", m.records,
                 [&](const json& item, LinkStateRecord& rec, const std::string& where) {
                   return readLinkState(r, item, rec, where);
                 })) {
      d.message = std::move(m);
    }
  } else if (name == "mau") {
    Mau m;
    if (readList(r, j, "updates", "mau", m.updates,
                 [&](const json& item, AddressRecord& rec, const std::string& where) {
                   return readAddressRecord(r, item, rec, where);
                 })) {
      d.message = std::move(m);
    }
  } else if (name == "mar") {
    Mar m;
    const json* ids = r.field(j, "ids", "mar");
    if (ids != nullptr && r.stringList(*ids, kMaxIdBytes, m.ids, "mar", "ids")) {
      d.message = std::move(m);
    }
  } else {
    // Printed with JSON escaping: the name is untrusted.
    return failure(kProtocolError, fmt::format("unknown message type {}", quote(name.substr(0, 64))));
  }
  if (!d.ok()) return failure(kProtocolError, r.error());
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

json stringArray(const std::vector<std::string>& list) {
  json a = json::array();
  for (const auto& s : list) a.push_back(s);
  return a;
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
  return fmt::format(R"({{"v":{},"type":"hello","id":{},"instance":{},"cost":{},"mode":"{}"}})",
                     kVersion, quote(h.id), h.instance, h.cost, modeName(h.mode));
}

std::string encodeMar(const std::vector<std::string>& ids) {
  return fmt::format(R"({{"v":{},"type":"mar","ids":{}}})", kVersion, dump(stringArray(ids)));
}

std::string encodeRecord(const LinkStateRecord& rec) {
  json links = json::object();
  for (const auto& [id, cost] : rec.links) links[id] = cost;
  return fmt::format(R"({{"id":{},"instance":{},"seq":{},"links":{}}})", quote(rec.id),
                     rec.instance, rec.seq, dump(links));
}

std::string encodeRecord(const AddressRecord& rec) {
  if (rec.full) {
    return fmt::format(R"({{"id":{},"instance":{},"seq":{},"exist":{}}})", quote(rec.id),
                       rec.instance, rec.seq, dump(stringArray(rec.exist)));
  }
  return fmt::format(R"({{"id":{},"instance":{},"seq":{},"add":{},"del":{}}})", quote(rec.id),
                     rec.instance, rec.seq, dump(stringArray(rec.add)), dump(stringArray(rec.del)));
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

const char* modeName(Mode mode) { return mode == Mode::kEdge ? "edge" : "interior"; }

}  // namespace vane::routing::protocol
