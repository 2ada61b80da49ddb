// Router identity keys and record signatures (docs/design/trust-model.md).
//
// Every router has an Ed25519 key pair. It signs the link-state and address
// records it originates, and its hellos; routers verify every record before
// they apply or re-flood it. What is signed is a canonical binary encoding
// of a record's content (signingInput below, specified in
// docs/design/router-protocol.md), never its JSON text, so a router that
// re-encodes a record it holds (re-flooding, answering `mar`) forwards the
// originator's signature unchanged.
//
// An address record is signed over the *resulting set* of addresses at its
// (instance, seq), not over its add/del lists: so the full record a relay
// builds from the incremental ones it applied carries the same signature as
// the incremental record that produced that set.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vane::routing::signing {

inline constexpr std::size_t kPublicKeyBytes = 32;
inline constexpr std::size_t kSignatureBytes = 64;

// An Ed25519 private key (and its public half). Immutable and thread-safe
// once made.
class KeyPair {
 public:
  ~KeyPair();
  KeyPair(const KeyPair&) = delete;
  KeyPair& operator=(const KeyPair&) = delete;

  // A new random key.
  static std::shared_ptr<const KeyPair> generate();
  // A PEM private key (PKCS#8). nullptr, with `error` set, if the text is no
  // Ed25519 private key.
  static std::shared_ptr<const KeyPair> fromPem(std::string_view pem, std::string& error);
  // Reads `path`, or if it does not exist creates it (mode 0600) with a new
  // key. `created` says which. nullptr with `error` on failure.
  static std::shared_ptr<const KeyPair> loadOrCreate(const std::string& path, bool& created,
                                                     std::string& error);

  std::string pem() const;                               // PKCS#8 PEM
  const std::string& publicKey() const { return pub_; }  // 32 raw bytes
  std::string sign(std::string_view message) const;      // 64 raw bytes

 private:
  explicit KeyPair(void* pkey);
  void* pkey_;  // EVP_PKEY*
  std::string pub_;
};

// Whether `signature` (64 raw bytes) is `key`'s (32 raw bytes) over
// `message`. False for keys or signatures of the wrong length.
bool verify(std::string_view key, std::string_view message, std::string_view signature);

// The bytes that are signed (see docs/design/router-protocol.md, Signatures).
// `links` sorted by id, without the record's own id; `addresses` sorted,
// without duplicates.
std::string linkStateInput(std::string_view id, std::uint64_t instance, std::uint64_t seq,
                           const std::vector<std::pair<std::string, std::uint32_t>>& links);
template <typename Range>
std::string addressInput(std::string_view id, std::uint64_t instance, std::uint64_t seq,
                         const Range& addresses);
std::string helloInput(std::string_view id, std::uint64_t instance, std::string_view to);

// Standard base64 with padding; decode is strict (no whitespace, canonical
// padding) and returns nullopt on anything else.
std::string base64(std::string_view bytes);
std::optional<std::string> unbase64(std::string_view text);

// SHA-256 over big-endian u32s and length-prefixed strings.
class SetHasher {
 public:
  SetHasher();
  ~SetHasher();
  SetHasher(const SetHasher&) = delete;
  SetHasher& operator=(const SetHasher&) = delete;
  void count(std::uint32_t n);      // a big-endian u32
  void add(std::string_view item);  // u32 length, then the bytes
  std::string finish();             // 32 bytes

 private:
  void flushBuffer();
  void* ctx_;  // EVP_MD_CTX*
  std::string buffer_;
};

std::string addressInputFromDigest(std::string_view id, std::uint64_t instance, std::uint64_t seq,
                                   std::string_view digest);

template <typename Range>
std::string addressInput(std::string_view id, std::uint64_t instance, std::uint64_t seq,
                         const Range& addresses) {
  SetHasher h;
  h.count(static_cast<std::uint32_t>(std::size(addresses)));
  for (const auto& a : addresses) h.add(a);
  return addressInputFromDigest(id, instance, seq, h.finish());
}

}  // namespace vane::routing::signing
