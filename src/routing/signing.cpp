#include "routing/signing.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace vane::routing::signing {

namespace {

EVP_PKEY* pkey(void* p) {
  return static_cast<EVP_PKEY*>(p);
}

void putU32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void putU64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void putString(std::string& out, std::string_view s) {
  putU32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

std::string header(const char* tag, std::string_view id, std::uint64_t instance,
                   std::uint64_t seq) {
  std::string out = tag;
  out += '\0';
  putString(out, id);
  putU64(out, instance);
  putU64(out, seq);
  return out;
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

// --- keys ---------------------------------------------------------------------

KeyPair::KeyPair(void* p) : pkey_(p) {
  unsigned char raw[kPublicKeyBytes];
  std::size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(pkey(pkey_), raw, &len) != 1 || len != sizeof raw) {
    EVP_PKEY_free(pkey(pkey_));
    throw std::runtime_error("cannot read an Ed25519 public key");
  }
  pub_.assign(reinterpret_cast<const char*>(raw), len);
}

KeyPair::~KeyPair() {
  EVP_PKEY_free(pkey(pkey_));
}

std::shared_ptr<const KeyPair> KeyPair::generate() {
  EVP_PKEY* p = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (p == nullptr) throw std::runtime_error("cannot generate an Ed25519 key");
  return std::shared_ptr<const KeyPair>(new KeyPair(p));
}

std::shared_ptr<const KeyPair> KeyPair::fromPem(std::string_view pem, std::string& error) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) {
    error = "out of memory";
    return nullptr;
  }
  EVP_PKEY* p = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (p == nullptr) {
    error = "not a PEM private key";
    return nullptr;
  }
  if (EVP_PKEY_get_id(p) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(p);
    error = "not an Ed25519 key";
    return nullptr;
  }
  return std::shared_ptr<const KeyPair>(new KeyPair(p));
}

std::shared_ptr<const KeyPair> KeyPair::loadOrCreate(const std::string& path, bool& created,
                                                     std::string& error) {
  created = false;
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::ostringstream s;
    s << in.rdbuf();
    auto key = fromPem(s.str(), error);
    if (!key) error = path + ": " + error;
    return key;
  }
  if (errno != ENOENT) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  auto key = generate();
  const std::string text = key->pem();
  // O_EXCL: never overwrite a key another process just wrote.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    error = "cannot write " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  created = true;
  return key;
}

std::string KeyPair::pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio, pkey(pkey_), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    throw std::runtime_error("cannot encode the key");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return out;
}

std::string KeyPair::sign(std::string_view message) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[kSignatureBytes];
  std::size_t len = sizeof sig;
  const bool ok =
      ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pkey(pkey_)) == 1 &&
      EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || len != sizeof sig) throw std::runtime_error("Ed25519 signing failed");
  return std::string(reinterpret_cast<const char*>(sig), len);
}

bool verify(std::string_view key, std::string_view message, std::string_view signature) {
  if (key.size() != kPublicKeyBytes || signature.size() != kSignatureBytes) return false;
  EVP_PKEY* p = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  if (p == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, p) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(p);
  return ok;
}

// --- what is signed -------------------------------------------------------------

SetHasher::SetHasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr ||
      EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    throw std::runtime_error("SHA-256 unavailable");
  }
  buffer_.reserve(8192);
}

SetHasher::~SetHasher() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void SetHasher::flushBuffer() {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), buffer_.data(), buffer_.size());
  buffer_.clear();
}

void SetHasher::count(std::uint32_t n) {
  putU32(buffer_, n);
  if (buffer_.size() >= 8192) flushBuffer();
}

void SetHasher::add(std::string_view item) {
  putString(buffer_, item);
  if (buffer_.size() >= 8192) flushBuffer();
}

std::string SetHasher::finish() {
  flushBuffer();
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string linkStateInput(std::string_view id, std::uint64_t instance, std::uint64_t seq,
                           const std::vector<std::pair<std::string, std::uint32_t>>& links) {
  SetHasher h;
  h.count(static_cast<std::uint32_t>(links.size()));
  for (const auto& [peer, c] : links) {
    h.add(peer);
    h.count(c);
  }
  std::string out = header("vane-ls-v1", id, instance, seq);
  out += h.finish();
  return out;
}

std::string addressInputFromDigest(std::string_view id, std::uint64_t instance, std::uint64_t seq,
                                   std::string_view digest) {
  std::string out = header("vane-addr-v1", id, instance, seq);
  out.append(digest);
  return out;
}

std::string helloInput(std::string_view id, std::uint64_t instance, std::string_view to) {
  std::string out = "vane-hello-v1";
  out += '\0';
  putString(out, id);
  putU64(out, instance);
  putString(out, to);
  return out;
}

// --- base64 ---------------------------------------------------------------------

std::string base64(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (bytes.size() - i == 1) {
    const std::uint32_t v = b(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (bytes.size() - i == 2) {
    const std::uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> unbase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0) : 0;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      int d = 0;
      if (k >= 4 - pad) {
        d = 0;
      } else {
        d = value(text[i + k]);
        if (d < 0) return std::nullopt;
      }
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    // Canonical: the bits under the padding are zero.
    if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0)) return std::nullopt;
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

}  // namespace vane::routing::signing
