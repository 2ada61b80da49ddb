// OpenSSL 3 behind the small pki interface. Every OpenSSL object is owned by
// a std::unique_ptr the moment it is created, so an exception anywhere frees
// everything made so far. Failures drain OpenSSL's (thread-local) error
// queue into the Error's message; paths that return false clear it, so a
// stale entry never ends up in a later, unrelated message.
#include "pki/pki.hpp"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <array>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vane::pki {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
// OPENSSL_free is a macro (it records file and line), so it cannot be a
// template argument.
struct OpensslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};

using AsnIntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using AsnOctetsPtr = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
using AsnIa5Ptr = std::unique_ptr<ASN1_IA5STRING, Deleter<ASN1_IA5STRING_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using Utf8Ptr = std::unique_ptr<unsigned char, OpensslFree>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;

constexpr long kBackdateSeconds = 5 * 60;  // tolerate clocks a little behind ours
constexpr std::size_t kSerialBytes = 16;
constexpr std::string_view kCsrMarker = "CERTIFICATE REQUEST-----";
constexpr std::string_view kPrivateKeyMarker = "PRIVATE KEY-----";
constexpr std::string_view kPublicKeyMarker = "PUBLIC KEY-----";

// The text of every entry in OpenSSL's error queue (emptying it).
std::string opensslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    if (!out.empty()) out += "; ";
    out += text.data();
  }
  return out;
}

[[noreturn]] void fail(const std::string& what) {
  std::string details = opensslErrors();
  throw Error(details.empty() ? what : what + " (" + details + ")");
}

template <typename T>
T* check(T* p, const char* what) {
  if (p == nullptr) fail(what);
  return p;
}

void check(int rc, const char* what) {
  if (rc <= 0) fail(what);
}

// Never prompt on the terminal for the passphrase of an encrypted key:
// keys here are unencrypted, and an encrypted one is an error.
int noPassphrase(char*, int, int, void*) {
  return -1;
}

BioPtr readBio(std::string_view text) {
  if (text.size() > static_cast<std::size_t>(INT_MAX)) throw Error("PEM text is too large.");
  return BioPtr(check(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())),
                      "Cannot allocate a memory BIO"));
}

BioPtr writeBio() {
  return BioPtr(check(BIO_new(BIO_s_mem()), "Cannot allocate a memory BIO"));
}

std::string bioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  if (size < 0 || (size > 0 && data == nullptr)) fail("Cannot read a memory BIO");
  return std::string(data, static_cast<std::size_t>(size));
}

PkeyPtr readPrivateKey(const std::string& pem) {
  BioPtr bio = readBio(pem);
  return PkeyPtr(check(PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr),
                       "The text is not a PEM private key"));
}

PkeyPtr readPublicKey(const std::string& pem) {
  BioPtr bio = readBio(pem);
  return PkeyPtr(check(PEM_read_bio_PUBKEY(bio.get(), nullptr, noPassphrase, nullptr),
                       "The text is not a PEM public key"));
}

X509Ptr readCertificate(const std::string& pem) {
  BioPtr bio = readBio(pem);
  return X509Ptr(check(PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr),
                       "The text is not a PEM certificate"));
}

// Every certificate in `pem` (at least one); text between them is ignored.
std::vector<X509Ptr> readCertificates(const std::string& pem) {
  BioPtr bio = readBio(pem);
  std::vector<X509Ptr> certs;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr));
    if (cert) {
      certs.push_back(std::move(cert));
      continue;
    }
    unsigned long last = ERR_peek_last_error();
    bool end_of_text =
        ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
    if (certs.empty() || !end_of_text) fail("The text is not a list of PEM certificates");
    ERR_clear_error();
    return certs;
  }
}

// A certificate request whose self-signature has been checked.
ReqPtr readCheckedCsr(const std::string& pem) {
  BioPtr bio = readBio(pem);
  ReqPtr req(check(PEM_read_bio_X509_REQ(bio.get(), nullptr, noPassphrase, nullptr),
                   "The text is not a PEM certificate request"));
  EVP_PKEY* key =
      check(X509_REQ_get0_pubkey(req.get()), "The certificate request has no usable public key");
  if (X509_REQ_verify(req.get(), key) != 1) {
    fail("The certificate request's signature does not verify");
  }
  return req;
}

std::string privateKeyPem(EVP_PKEY* key) {
  BioPtr bio = writeBio();
  check(PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
        "Cannot write the private key as PEM");
  return bioText(bio.get());
}

std::string certificatePem(X509* cert) {
  BioPtr bio = writeBio();
  check(PEM_write_bio_X509(bio.get(), cert), "Cannot write the certificate as PEM");
  return bioText(bio.get());
}

PkeyPtr newKey() {
  return PkeyPtr(
      check(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), "Cannot generate an EC P-256 key"));
}

// A name with the single entry CN = common_name.
void setCommonName(X509_NAME* name, const std::string& common_name) {
  if (common_name.empty()) throw Error("The common name is empty.");
  if (common_name.find('\0') != std::string::npos) {
    throw Error("The common name contains a NUL character.");
  }
  // Fails for names longer than the 64 characters X.520 allows a CN.
  check(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(common_name.data()),
                                   static_cast<int>(common_name.size()), -1, 0),
        ("Cannot use \"" + common_name + "\" as a common name").c_str());
}

// The CN of `name`, "" when it has none.
std::string commonName(const X509_NAME* name) {
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* raw = nullptr;
  int size = ASN1_STRING_to_UTF8(&raw, data);
  if (size < 0) fail("Cannot decode a common name");
  Utf8Ptr utf8(raw);
  return std::string(reinterpret_cast<const char*>(utf8.get()), static_cast<std::size_t>(size));
}

// A random, positive, non-zero 128-bit serial number (RFC 5280 4.1.2.2).
AsnIntegerPtr randomSerial() {
  std::array<unsigned char, kSerialBytes> bytes{};
  BignumPtr bn;
  do {
    check(RAND_bytes(bytes.data(), static_cast<int>(bytes.size())),
          "Cannot draw random bytes for a serial number");
    bn.reset(check(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr),
                   "Cannot make a serial number"));
  } while (BN_is_zero(bn.get()));
  return AsnIntegerPtr(check(BN_to_ASN1_INTEGER(bn.get(), nullptr), "Cannot make a serial number"));
}

// Adds an extension written in OpenSSL's configuration syntax (fixed text
// only: never user input, which could smuggle in more entries).
void addExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext) fail(std::string("Cannot make the ") + OBJ_nid2sn(nid) + " extension");
  check(X509_add_ext(cert, ext.get(), -1), "Cannot add an extension to the certificate");
}

GeneralNamePtr dnsName(const std::string& name) {
  bool valid = !name.empty() && name.size() <= 253;
  for (char c : name) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.' || c == '_' || c == '*';
    valid = valid && allowed;
  }
  if (!valid) throw Error("\"" + name + "\" is not a valid DNS name for a certificate.");
  AsnIa5Ptr text(check(ASN1_IA5STRING_new(), "Cannot allocate a DNS name"));
  check(ASN1_STRING_set(text.get(), name.data(), static_cast<int>(name.size())),
        "Cannot set a DNS name");
  GeneralNamePtr general(check(GENERAL_NAME_new(), "Cannot allocate a subjectAltName entry"));
  GENERAL_NAME_set0_value(general.get(), GEN_DNS, text.release());
  return general;
}

// inet_pton rather than OpenSSL's a2i_IPADDRESS, which accepts trailing
// garbage after an IPv4 address ("10.0.0.1x").
GeneralNamePtr ipAddress(const std::string& text) {
  std::array<unsigned char, 16> bytes{};
  int size = 0;
  if (inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) {
    size = 4;
  } else if (inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1) {
    size = 16;
  } else {
    throw Error("\"" + text + "\" is not an IPv4 or IPv6 address.");
  }
  AsnOctetsPtr octets(check(ASN1_OCTET_STRING_new(), "Cannot allocate an IP address"));
  check(ASN1_OCTET_STRING_set(octets.get(), bytes.data(), size), "Cannot set an IP address");
  GeneralNamePtr general(check(GENERAL_NAME_new(), "Cannot allocate a subjectAltName entry"));
  GENERAL_NAME_set0_value(general.get(), GEN_IPADD, octets.release());
  return general;
}

// Built from GENERAL_NAMEs, not configuration text, so a name containing
// "," or ":" cannot turn into extra entries.
void addSubjectAltNames(X509* cert, const IssueOptions& options) {
  if (options.dns_names.empty() && options.ip_addresses.empty()) return;
  GeneralNamesPtr names(check(GENERAL_NAMES_new(), "Cannot allocate a subjectAltName"));
  auto push = [&](GeneralNamePtr name) {
    if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0) fail("Cannot add a subjectAltName");
    name.release();  // now owned by `names`
  };
  for (const std::string& dns : options.dns_names) push(dnsName(dns));
  for (const std::string& ip : options.ip_addresses) push(ipAddress(ip));
  check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
        "Cannot add the subjectAltName extension");
}

struct Profile {
  bool ca = false;
  bool server = false;
  bool client = false;
};

// A v3 certificate for `subject_key`, signed with `issuer_key`; `issuer` is
// null for a self-signed certificate.
X509Ptr buildCertificate(X509* issuer, EVP_PKEY* issuer_key, EVP_PKEY* subject_key,
                         const std::string& common_name, std::chrono::seconds validity,
                         const Profile& profile) {
  if (validity.count() <= 0) throw Error("The certificate validity must be positive.");
  if (validity.count() > LONG_MAX - kBackdateSeconds) {
    throw Error("The certificate validity is too long.");
  }
  X509Ptr cert(check(X509_new(), "Cannot allocate a certificate"));
  check(X509_set_version(cert.get(), X509_VERSION_3), "Cannot set the certificate version");
  AsnIntegerPtr serial = randomSerial();
  check(X509_set_serialNumber(cert.get(), serial.get()), "Cannot set the serial number");
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) != nullptr,
        "Cannot set notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity.count())) !=
            nullptr,
        "Cannot set notAfter");
  setCommonName(X509_get_subject_name(cert.get()), common_name);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)),
        "Cannot set the issuer name");
  check(X509_set_pubkey(cert.get(), subject_key), "Cannot set the certificate's public key");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
  if (profile.ca) {
    addExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    addExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    addExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    addExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    const char* usage = profile.server && profile.client ? "serverAuth,clientAuth"
                        : profile.server                 ? "serverAuth"
                                                         : "clientAuth";
    addExtension(cert.get(), &ctx, NID_ext_key_usage, usage);
  }
  // The subject key identifier first: for a self-signed certificate the
  // authority key identifier is copied from it.
  addExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  addExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  return cert;
}

void signCertificate(X509* cert, EVP_PKEY* key) {
  check(X509_sign(cert, key, EVP_sha256()), "Cannot sign the certificate");
}

// The subject's public key from a PEM private key, public key or (checked)
// certificate request.
PkeyPtr subjectKey(const std::string& pem) {
  if (pem.find(kCsrMarker) != std::string::npos) {
    ReqPtr req = readCheckedCsr(pem);
    return PkeyPtr(
        check(X509_REQ_get_pubkey(req.get()), "The certificate request has no usable public key"));
  }
  if (pem.find(kPrivateKeyMarker) != std::string::npos) return readPrivateKey(pem);
  if (pem.find(kPublicKeyMarker) != std::string::npos) return readPublicKey(pem);
  throw Error("The subject is not a PEM public key, private key or certificate request.");
}

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string generateKey() {
  PkeyPtr key = newKey();
  return privateKeyPem(key.get());
}

CertAndKey makeCa(const std::string& common_name, std::chrono::seconds validity) {
  PkeyPtr key = newKey();
  X509Ptr cert =
      buildCertificate(nullptr, key.get(), key.get(), common_name, validity, Profile{.ca = true});
  signCertificate(cert.get(), key.get());
  return CertAndKey{certificatePem(cert.get()), privateKeyPem(key.get())};
}

std::string issueCertificate(const CertAndKey& ca, const std::string& subject_key_or_csr_pem,
                             const IssueOptions& options) {
  if (!options.server && !options.client) {
    // No extendedKeyUsage at all would mean "any purpose": never the intent.
    throw Error("A certificate must be issued for server use, client use or both.");
  }
  X509Ptr ca_cert = readCertificate(ca.certificate);
  PkeyPtr ca_key = readPrivateKey(ca.key);
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    fail("The CA key does not belong to the CA certificate");
  }
  if (X509_check_ca(ca_cert.get()) == 0) throw Error("The CA certificate is not a CA.");
  PkeyPtr subject = subjectKey(subject_key_or_csr_pem);
  X509Ptr cert = buildCertificate(ca_cert.get(), ca_key.get(), subject.get(), options.common_name,
                                  options.validity,
                                  Profile{.server = options.server, .client = options.client});
  addSubjectAltNames(cert.get(), options);
  signCertificate(cert.get(), ca_key.get());
  return certificatePem(cert.get());
}

std::string makeCsr(const std::string& key_pem, const std::string& common_name) {
  PkeyPtr key = readPrivateKey(key_pem);
  ReqPtr req(check(X509_REQ_new(), "Cannot allocate a certificate request"));
  check(X509_REQ_set_version(req.get(), X509_REQ_VERSION_1),
        "Cannot set the certificate request version");
  setCommonName(X509_REQ_get_subject_name(req.get()), common_name);
  check(X509_REQ_set_pubkey(req.get(), key.get()), "Cannot set the certificate request's key");
  check(X509_REQ_sign(req.get(), key.get(), EVP_sha256()), "Cannot sign the certificate request");
  BioPtr bio = writeBio();
  check(PEM_write_bio_X509_REQ(bio.get(), req.get()),
        "Cannot write the certificate request as PEM");
  return bioText(bio.get());
}

std::string csrCommonName(const std::string& csr_pem) {
  ReqPtr req = readCheckedCsr(csr_pem);
  std::string cn = commonName(X509_REQ_get_subject_name(req.get()));
  if (cn.empty()) throw Error("The certificate request has no common name.");
  return cn;
}

CertInfo describe(const std::string& cert_pem) {
  X509Ptr cert = readCertificate(cert_pem);
  CertInfo info;
  info.subject_cn = commonName(X509_get_subject_name(cert.get()));
  info.issuer_cn = commonName(X509_get_issuer_name(cert.get()));

  std::tm tm{};
  check(ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm),
        "Cannot read the certificate's notAfter");
  info.not_after = static_cast<std::int64_t>(timegm(&tm));

  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_size = 0;
  check(X509_digest(cert.get(), EVP_sha256(), md.data(), &md_size),
        "Cannot compute the certificate fingerprint");
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned int i = 0; i < md_size; ++i) {
    if (i > 0) info.fingerprint += ':';
    info.fingerprint += kHex[md[i] >> 4];
    info.fingerprint += kHex[md[i] & 0xf];
  }
  return info;
}

bool signedBy(const std::string& cert_pem, const std::string& ca_pem) {
  X509Ptr cert = readCertificate(cert_pem);
  std::vector<X509Ptr> cas = readCertificates(ca_pem);
  StorePtr store(check(X509_STORE_new(), "Cannot allocate a certificate store"));
  for (const X509Ptr& ca : cas) {
    check(X509_STORE_add_cert(store.get(), ca.get()), "Cannot add a CA certificate to the store");
  }
  // Every certificate in ca_pem is a trust anchor, also an intermediate one
  // given without its root.
  check(X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN),
        "Cannot set the verification flags");
  StoreCtxPtr ctx(check(X509_STORE_CTX_new(), "Cannot allocate a verification context"));
  check(X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr),
        "Cannot start certificate verification");
  bool ok = X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::string sign(const std::string& key_pem, std::string_view data) {
  PkeyPtr key = readPrivateKey(key_pem);
  MdCtxPtr ctx(check(EVP_MD_CTX_new(), "Cannot allocate a digest context"));
  check(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()),
        "Cannot start signing");
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t size = 0;
  check(EVP_DigestSign(ctx.get(), nullptr, &size, bytes, data.size()), "Cannot size the signature");
  std::string signature(size, '\0');
  check(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, bytes,
                       data.size()),
        "Cannot sign");
  signature.resize(size);  // ECDSA signatures vary in length
  return base64Encode(signature);
}

bool verify(const std::string& cert_pem, std::string_view data, std::string_view signature_b64) {
  X509Ptr cert = readCertificate(cert_pem);
  std::string signature;
  try {
    signature = base64Decode(signature_b64);
  } catch (const Error&) {
    return false;
  }
  if (signature.empty()) return false;
  EVP_PKEY* key = check(X509_get0_pubkey(cert.get()), "The certificate has no usable public key");
  MdCtxPtr ctx(check(EVP_MD_CTX_new(), "Cannot allocate a digest context"));
  check(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key),
        "Cannot start signature verification");
  bool ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1;
  ERR_clear_error();  // a malformed signature leaves decoding errors behind
  return ok;
}

std::string randomToken(std::size_t bytes) {
  if (bytes > static_cast<std::size_t>(INT_MAX)) throw Error("The token is too long.");
  std::string raw(bytes, '\0');
  check(RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)),
        "Cannot draw random bytes for a token");
  std::string token = base64Encode(raw);
  while (!token.empty() && token.back() == '=') token.pop_back();
  for (char& c : token) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return token;
}

std::string sha256Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int size = 0;
  check(EVP_Digest(data.data(), data.size(), md.data(), &size, EVP_sha256(), nullptr),
        "Cannot compute SHA-256");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

bool equalConstantTime(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// RFC 4648 section 4, with "=" padding.
std::string base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    auto group = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16 |
                 static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8 |
                 static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 2]));
    out += kBase64Alphabet[(group >> 18) & 63];
    out += kBase64Alphabet[(group >> 12) & 63];
    out += kBase64Alphabet[(group >> 6) & 63];
    out += kBase64Alphabet[group & 63];
  }
  std::size_t rest = data.size() - i;
  if (rest > 0) {
    std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    if (rest == 2) {
      group |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    }
    out += kBase64Alphabet[(group >> 18) & 63];
    out += kBase64Alphabet[(group >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(group >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict: padded to a multiple of 4, no whitespace, "=" only as the last one
// or two characters, and the unused bits before the padding zero, so every
// byte string has exactly one accepted encoding.
std::string base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) throw Error("Base64 text is not a multiple of 4 characters long.");
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    std::size_t digits = last ? 4 - padding : 4;
    std::uint32_t group = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      int value = j < digits ? base64Value(text[i + j]) : 0;
      if (value < 0) throw Error("Base64 text contains an invalid character.");
      group = group << 6 | static_cast<std::uint32_t>(value);
    }
    out += static_cast<char>((group >> 16) & 0xff);
    if (digits >= 3) out += static_cast<char>((group >> 8) & 0xff);
    if (digits == 4) out += static_cast<char>(group & 0xff);
    bool stray_bits =
        (digits == 2 && (group & 0xffff) != 0) || (digits == 3 && (group & 0xff) != 0);
    if (stray_bits) throw Error("Base64 text has non-zero bits in its padding.");
  }
  return out;
}

}  // namespace vane::pki
