// The messages routers exchange (docs/design/router-protocol.md) as C++
// value types, and their JSON encoding.
//
// decode() takes untrusted bytes: it never throws, bounds the work it does
// by the input size, checks every field's type and range, and names the
// first problem it finds. Fields it does not know are ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace vane::routing::protocol {

inline constexpr std::uint64_t kVersion = 1;
inline constexpr std::size_t kMaxMessageBytes = 16 * 1024 * 1024;
inline constexpr std::size_t kMaxIdBytes = 255;
inline constexpr std::size_t kMaxAddressBytes = 4096;
inline constexpr std::size_t kMaxLinks = 65535;  // per link-state record
// No valid message nests deeper than 4 (lsu > records > record > links).
inline constexpr std::size_t kMaxDepth = 8;
// Senders split batches of records into messages of about this size.
inline constexpr std::size_t kTargetMessageBytes = 1024 * 1024;

enum class Mode : std::uint8_t { kInterior, kEdge };

struct Hello {
  std::string id;
  std::uint64_t instance = 0;
  std::uint32_t cost = 1;  // >= 1
  Mode mode = Mode::kInterior;
  // The sender's public key (32 bytes) and its signature (64 bytes) over
  // signing::helloInput(id, instance, the receiver's id). Empty if absent.
  std::string key, sig;
  bool operator==(const Hello&) const = default;
};

// One interior router's adjacencies. `links` holds (neighbour id, cost) with
// distinct ids, sorted by id.
struct LinkStateRecord {
  std::string id;
  std::uint64_t instance = 0;
  std::uint64_t seq = 0;  // >= 1
  std::vector<std::pair<std::string, std::uint32_t>> links;
  // The originator's public key and signature (signing::linkStateInput);
  // empty if absent. Raw bytes; base64 on the wire.
  std::string key, sig;
  bool operator==(const LinkStateRecord&) const = default;
};

// A router's addresses: full (`exist`) or a change to the previous seq
// (`add`, then `del`). Address lists hold distinct addresses, sorted.
struct AddressRecord {
  std::string id;
  std::uint64_t instance = 0;
  std::uint64_t seq = 0;  // >= 1
  bool full = true;
  std::vector<std::string> exist;  // full only
  std::vector<std::string> add;    // incremental only
  std::vector<std::string> del;    // incremental only
  // The originator's public key and signature over the address set this
  // record results in (signing::addressInput); empty if absent.
  std::string key, sig;
  bool operator==(const AddressRecord&) const = default;
};

struct Lsu {
  std::vector<LinkStateRecord> records;
  bool operator==(const Lsu&) const = default;
};
struct Mau {
  std::vector<AddressRecord> updates;
  bool operator==(const Mau&) const = default;
};
struct Mar {
  std::vector<std::string> ids;  // distinct, sorted
  bool operator==(const Mar&) const = default;
};

using Message = std::variant<Hello, Lsu, Mau, Mar>;

struct DecodeError {
  // "vane:protocol-version" for an unknown major version, otherwise
  // "vane:protocol-error".
  std::string condition;
  std::string reason;
};

struct Decoded {
  std::optional<Message> message;  // set on success
  DecodeError error;               // set otherwise
  bool ok() const { return message.has_value(); }
};

// Never throws: a parse error, a wrong type or range, and even running out
// of memory come back as a DecodeError. Lists of addresses and ids are
// sorted and deduplicated.
Decoded decode(std::string_view bytes) noexcept;

// Encodes a whole message. Strings that are not valid UTF-8 (which decode()
// never produces) are encoded with U+FFFD replacements instead of throwing.
std::string encode(const Message& message);

// Records encoded on their own, to be encoded once and shared by the
// messages to several neighbours (see assemble()).
std::string encodeRecord(const LinkStateRecord& record);
std::string encodeRecord(const AddressRecord& record);
std::string encodeHello(const Hello& hello);
std::string encodeMar(const std::vector<std::string>& ids);

// Joins encoded records into "lsu" (`key` = "records") or "mau" (`key` =
// "updates") messages of about kTargetMessageBytes each, in order.
enum class Batch : std::uint8_t { kLsu, kMau };
std::vector<std::string> assemble(Batch kind, const std::vector<const std::string*>& records);

// 1..kMaxIdBytes bytes of valid UTF-8.
bool validRouterId(std::string_view id);
// 1..kMaxAddressBytes bytes of valid UTF-8.
bool validAddress(std::string_view address);

const char* modeName(Mode mode);

}  // namespace vane::routing::protocol
