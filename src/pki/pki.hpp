// Certificates and signatures for linking sites (OpenSSL): the site CA, the
// router's certificates, certificate requests and the signature that makes
// a token tamper-evident. Keys are EC P-256; everything is PEM text.
//
// Every function throws pki::Error with a sentence naming what failed.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vane::pki {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CertAndKey {
  std::string certificate;  // PEM
  std::string key;          // PEM, PKCS#8, unencrypted
};

// A new EC P-256 private key (PEM, PKCS#8).
std::string generateKey();

// A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign) and
// its key; subject CN = common_name.
CertAndKey makeCa(const std::string& common_name, std::chrono::seconds validity);

struct IssueOptions {
  std::string common_name;
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries (v4 or v6 text)
  bool server = true;                     // extendedKeyUsage serverAuth
  bool client = true;                     // extendedKeyUsage clientAuth
  std::chrono::seconds validity{std::chrono::hours(24 * 365 * 5)};
};

// A certificate for `public_key_pem` (a PEM public key, a PEM private key,
// or a PEM certificate request, whose signature is checked) signed by `ca`.
// Serial numbers are random (128 bit).
std::string issueCertificate(const CertAndKey& ca, const std::string& subject_key_or_csr_pem,
                             const IssueOptions& options);

// A certificate request for `key_pem` with subject CN = common_name.
std::string makeCsr(const std::string& key_pem, const std::string& common_name);

// The subject CN of a certificate request, after checking its signature.
std::string csrCommonName(const std::string& csr_pem);

struct CertInfo {
  std::string subject_cn;
  std::string issuer_cn;
  std::int64_t not_after = 0;  // Unix seconds
  std::string fingerprint;     // SHA-256 of the DER, hex with colons
};
CertInfo describe(const std::string& cert_pem);

// True when `cert_pem` verifies against `ca_pem` (signature and validity).
bool signedBy(const std::string& cert_pem, const std::string& ca_pem);

// ECDSA-SHA256 signature of `data` with `key_pem`, base64.
std::string sign(const std::string& key_pem, std::string_view data);
// True when `signature_b64` is a valid signature of `data` by the public key
// of `cert_pem`. False (not an exception) for a bad or malformed signature.
bool verify(const std::string& cert_pem, std::string_view data, std::string_view signature_b64);

// `bytes` random bytes from OpenSSL's CSPRNG, base64url without padding.
std::string randomToken(std::size_t bytes = 32);
// SHA-256 of data, lower-case hex.
std::string sha256Hex(std::string_view data);
// Constant-time comparison of equal-length strings (false if lengths differ).
bool equalConstantTime(std::string_view a, std::string_view b);

std::string base64Encode(std::string_view data);
// Throws Error on malformed input.
std::string base64Decode(std::string_view text);

}  // namespace vane::pki
