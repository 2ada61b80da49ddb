#include "pki/pki.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace vane::pki {
namespace {

using namespace std::chrono_literals;

// The tests look inside certificates with OpenSSL directly, independently of
// the code under test.
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr parse(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                                &BIO_free);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_NE(cert, nullptr);
  return cert;
}

struct Sans {
  std::vector<std::string> dns;
  std::vector<std::string> ips;  // raw bytes
};

Sans sans(X509* cert) {
  Sans out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      out.dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                           ASN1_STRING_length(n->d.dNSName));
    } else if (n->type == GEN_IPADD) {
      out.ips.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.iPAddress)),
                           ASN1_STRING_length(n->d.iPAddress));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

// basicConstraints says CA:TRUE.
bool isCa(X509* cert) {
  return (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
}

bool critical(X509* cert, int nid) {
  int index = X509_get_ext_by_NID(cert, nid, -1);
  return index >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

class PkiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_ = new CertAndKey(makeCa("Site CA", 24h));
    other_ca_ = new CertAndKey(makeCa("Other CA", 24h));
  }
  static void TearDownTestSuite() {
    delete ca_;
    delete other_ca_;
  }

  static IssueOptions options(std::string cn) {
    IssueOptions o;
    o.common_name = std::move(cn);
    o.dns_names = {"router-a.example.com", "localhost"};
    o.ip_addresses = {"127.0.0.1", "::1"};
    o.validity = 1h;
    return o;
  }

  static CertAndKey* ca_;
  static CertAndKey* other_ca_;
};
CertAndKey* PkiTest::ca_ = nullptr;
CertAndKey* PkiTest::other_ca_ = nullptr;

TEST_F(PkiTest, GeneratedKeyIsPkcs8EcP256) {
  std::string key = generateKey();
  EXPECT_NE(key.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(key.data(), int(key.size())),
                                                &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  ASSERT_NE(pkey, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(pkey.get(), "EC"));
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(pkey.get(), group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_NE(generateKey(), key);
}

TEST_F(PkiTest, CaIsSelfSignedV3Ca) {
  X509Ptr cert = parse(ca_->certificate);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_TRUE(isCa(cert.get()));
  EXPECT_TRUE(critical(cert.get(), NID_basic_constraints));
  EXPECT_TRUE(critical(cert.get(), NID_key_usage));
  EXPECT_TRUE(X509_get_key_usage(cert.get()) & KU_KEY_CERT_SIGN);
  EXPECT_TRUE(signedBy(ca_->certificate, ca_->certificate));
  EXPECT_FALSE(signedBy(ca_->certificate, other_ca_->certificate));
  CertInfo info = describe(ca_->certificate);
  EXPECT_EQ(info.subject_cn, "Site CA");
  EXPECT_EQ(info.issuer_cn, "Site CA");
  EXPECT_NE(ca_->key.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
}

TEST_F(PkiTest, LeafFromPrivateKeyHasProfileAndSans) {
  std::string key = generateKey();
  std::string pem = issueCertificate(*ca_, key, options("router-a"));
  X509Ptr cert = parse(pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_FALSE(isCa(cert.get()));
  EXPECT_TRUE(critical(cert.get(), NID_basic_constraints));
  EXPECT_TRUE(critical(cert.get(), NID_key_usage));
  EXPECT_FALSE(critical(cert.get(), NID_ext_key_usage));
  uint32_t ku = X509_get_key_usage(cert.get());
  EXPECT_TRUE(ku & KU_DIGITAL_SIGNATURE);
  EXPECT_FALSE(ku & KU_KEY_CERT_SIGN);
  uint32_t eku = X509_get_extended_key_usage(cert.get());
  EXPECT_TRUE(eku & XKU_SSL_SERVER);
  EXPECT_TRUE(eku & XKU_SSL_CLIENT);
  EXPECT_NE(X509_get0_subject_key_id(cert.get()), nullptr);
  EXPECT_NE(X509_get0_authority_key_id(cert.get()), nullptr);
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
  EXPECT_GE(ASN1_STRING_length(serial), 8);             // random, not 1
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER);  // positive

  Sans s = sans(cert.get());
  EXPECT_EQ(s.dns, (std::vector<std::string>{"router-a.example.com", "localhost"}));
  ASSERT_EQ(s.ips.size(), 2u);
  EXPECT_EQ(s.ips[0], std::string("\x7f\x00\x00\x01", 4));
  EXPECT_EQ(s.ips[1], std::string(15, '\0') + '\x01');
  EXPECT_EQ(X509_check_host(cert.get(), "router-a.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.2", 0), 0);

  // The certificate holds the key it was issued for.
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(key.data(), int(key.size())),
                                                &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  EXPECT_EQ(X509_check_private_key(cert.get(), pkey.get()), 1);

  EXPECT_TRUE(signedBy(pem, ca_->certificate));
  EXPECT_FALSE(signedBy(pem, other_ca_->certificate));
  // Several CAs in one PEM: any of them will do.
  EXPECT_TRUE(signedBy(pem, other_ca_->certificate + ca_->certificate));
}

TEST_F(PkiTest, SerialsDiffer) {
  std::string key = generateKey();
  EXPECT_NE(describe(issueCertificate(*ca_, key, options("a"))).fingerprint,
            describe(issueCertificate(*ca_, key, options("a"))).fingerprint);
  X509Ptr a = parse(issueCertificate(*ca_, key, options("a")));
  X509Ptr b = parse(issueCertificate(*ca_, key, options("a")));
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a.get()), X509_get0_serialNumber(b.get())), 0);
}

TEST_F(PkiTest, ExtendedKeyUsageFollowsOptions) {
  IssueOptions o = options("server-only");
  o.client = false;
  X509Ptr server = parse(issueCertificate(*ca_, generateKey(), o));
  EXPECT_EQ(X509_get_extended_key_usage(server.get()), uint32_t{XKU_SSL_SERVER});
  o.client = true;
  o.server = false;
  X509Ptr client = parse(issueCertificate(*ca_, generateKey(), o));
  EXPECT_EQ(X509_get_extended_key_usage(client.get()), uint32_t{XKU_SSL_CLIENT});
  o.client = false;
  EXPECT_THROW(issueCertificate(*ca_, generateKey(), o), Error);
}

TEST_F(PkiTest, NoSansMeansNoExtension) {
  IssueOptions o = options("plain");
  o.dns_names.clear();
  o.ip_addresses.clear();
  X509Ptr cert = parse(issueCertificate(*ca_, generateKey(), o));
  EXPECT_EQ(X509_get_ext_by_NID(cert.get(), NID_subject_alt_name, -1), -1);
}

TEST_F(PkiTest, InvalidSansAndNamesThrow) {
  std::string key = generateKey();
  for (std::string bad : {"300.1.1.1", "10.0.0.1x", "1.2.3", "::g", "", "host name"}) {
    IssueOptions o = options("x");
    o.ip_addresses = {bad};
    EXPECT_THROW(issueCertificate(*ca_, key, o), Error) << bad;
  }
  for (std::string bad : {"", "a b", "a,DNS:evil", "caf\xc3\xa9"}) {
    IssueOptions o = options("x");
    o.dns_names = {bad};
    EXPECT_THROW(issueCertificate(*ca_, key, o), Error) << bad;
  }
  EXPECT_THROW(issueCertificate(*ca_, key, options("")), Error);
  EXPECT_THROW(issueCertificate(*ca_, key, options(std::string(65, 'x'))), Error);
  EXPECT_THROW(makeCa("ca", 0s), Error);
}

TEST_F(PkiTest, LeafFromPublicKey) {
  std::string key = generateKey();
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(key.data(), int(key.size())),
                                               &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  ASSERT_EQ(PEM_write_bio_PUBKEY(out.get(), pkey.get()), 1);
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  std::string pub(data, size_t(size));
  ASSERT_NE(pub.find("BEGIN PUBLIC KEY"), std::string::npos);

  std::string pem = issueCertificate(*ca_, pub, options("from-pub"));
  X509Ptr cert = parse(pem);
  EXPECT_EQ(X509_check_private_key(cert.get(), pkey.get()), 1);
  EXPECT_TRUE(signedBy(pem, ca_->certificate));
}

TEST_F(PkiTest, LeafFromCsr) {
  std::string key = generateKey();
  std::string csr = makeCsr(key, "router-b");
  EXPECT_NE(csr.find("-----BEGIN CERTIFICATE REQUEST-----"), std::string::npos);
  EXPECT_EQ(csrCommonName(csr), "router-b");
  std::string pem = issueCertificate(*ca_, csr, options("router-b"));
  EXPECT_TRUE(signedBy(pem, ca_->certificate));
  EXPECT_EQ(describe(pem).subject_cn, "router-b");
  // Signed for the CSR's key, so the private key matches it.
  std::string data = "hello";
  EXPECT_TRUE(verify(pem, data, sign(key, data)));
}

// The DER inside a PEM block, and back.
std::string pemBody(const std::string& pem) {
  std::string b64;
  std::size_t pos = pem.find('\n') + 1;
  std::size_t end = pem.find("-----END");
  for (; pos < end; ++pos) {
    if (pem[pos] != '\n') b64 += pem[pos];
  }
  return base64Decode(b64);
}

std::string pemWrap(const std::string& der, const std::string& label) {
  std::string b64 = base64Encode(der);
  std::string out = "-----BEGIN " + label + "-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END " + label + "-----\n";
}

TEST_F(PkiTest, AlteredCsrIsRefused) {
  std::string csr = makeCsr(generateKey(), "router-b");
  // Same structure, another CN: it still parses, only the signature is off.
  std::string der = pemBody(csr);
  std::size_t at = der.find("router-b");
  ASSERT_NE(at, std::string::npos);
  der[at + 7] = 'x';
  std::string altered = pemWrap(der, "CERTIFICATE REQUEST");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(altered.data(), int(altered.size())), &BIO_free);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(
      PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr), &X509_REQ_free);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(pemWrap(pemBody(csr), "CERTIFICATE REQUEST"), csr);  // the helpers are faithful

  EXPECT_THROW(csrCommonName(altered), Error);
  EXPECT_THROW(issueCertificate(*ca_, altered, options("router-b")), Error);
  EXPECT_THROW(csrCommonName("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"), Error);
  EXPECT_THROW(issueCertificate(*ca_, "not pem", options("x")), Error);
}

TEST_F(PkiTest, MismatchedCaKeyIsRefused) {
  CertAndKey wrong{ca_->certificate, other_ca_->key};
  EXPECT_THROW(issueCertificate(wrong, generateKey(), options("x")), Error);
}

TEST_F(PkiTest, LeafCannotActAsCa) {
  std::string leaf_key = generateKey();
  CertAndKey leaf{issueCertificate(*ca_, leaf_key, options("leaf")), leaf_key};
  EXPECT_THROW(issueCertificate(leaf, generateKey(), options("x")), Error);
}

TEST_F(PkiTest, SelfSignedLookalikeIsNotSignedByCa) {
  // Same subject name as the CA, but its own key.
  CertAndKey fake = makeCa("Site CA", 24h);
  std::string pem = issueCertificate(fake, generateKey(), options("router-a"));
  EXPECT_EQ(describe(pem).issuer_cn, "Site CA");
  EXPECT_FALSE(signedBy(pem, ca_->certificate));
  EXPECT_FALSE(signedBy(fake.certificate, ca_->certificate));
  EXPECT_TRUE(signedBy(pem, fake.certificate));
}

TEST_F(PkiTest, SignedByThrowsOnlyForUnparsablePem) {
  std::string pem = issueCertificate(*ca_, generateKey(), options("x"));
  EXPECT_THROW(signedBy("garbage", ca_->certificate), Error);
  EXPECT_THROW(signedBy(pem, "garbage"), Error);
  EXPECT_THROW(signedBy(pem, ""), Error);
}

TEST_F(PkiTest, SignVerifyRoundTrip) {
  std::string leaf_key = generateKey();
  std::string cert = issueCertificate(*ca_, leaf_key, options("signer"));
  std::string data = "token: {\"site\":\"a\",\"expires\":1700000000}";
  std::string sig = sign(leaf_key, data);
  EXPECT_TRUE(verify(cert, data, sig));
  EXPECT_NO_THROW(base64Decode(sig));
  EXPECT_TRUE(verify(cert, "", sign(leaf_key, "")));

  std::string changed_data = data;
  changed_data[5] ^= 1;
  EXPECT_FALSE(verify(cert, changed_data, sig));

  std::string raw = base64Decode(sig);
  for (std::size_t i : {std::size_t{0}, raw.size() / 2, raw.size() - 1}) {
    std::string changed = raw;
    changed[i] ^= 0x01;
    EXPECT_FALSE(verify(cert, data, base64Encode(changed))) << i;
  }

  std::string other_key = generateKey();
  std::string other_cert = issueCertificate(*ca_, other_key, options("other"));
  EXPECT_FALSE(verify(other_cert, data, sig));
  EXPECT_TRUE(verify(other_cert, data, sign(other_key, data)));
}

TEST_F(PkiTest, MalformedSignatureIsFalse) {
  std::string leaf_key = generateKey();
  std::string cert = issueCertificate(*ca_, leaf_key, options("signer"));
  for (std::string bad : {"", "!!!!", "abc", "AAAA", "====", "c2lnbmF0dXJl"}) {
    EXPECT_FALSE(verify(cert, "data", bad)) << bad;
  }
  EXPECT_THROW(verify("garbage", "data", sign(leaf_key, "data")), Error);
  EXPECT_THROW(sign("garbage", "data"), Error);
  EXPECT_THROW(sign(cert, "data"), Error);  // a certificate is not a key
}

TEST(Base64Test, KnownVectors) {
  // RFC 4648 section 10.
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(base64Decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(base64Decode("+/8="), "\xfb\xff");
}

TEST(Base64Test, RoundTripsShortAndBinary) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t len = 0; len <= 5; ++len) {
    std::string data = all.substr(250, len);
    std::string text = base64Encode(data);
    EXPECT_EQ(text.size() % 4, 0u);
    EXPECT_EQ(base64Decode(text), data) << len;
  }
  EXPECT_EQ(base64Decode(base64Encode(all)), all);
  std::string zeros(7, '\0');
  EXPECT_EQ(base64Decode(base64Encode(zeros)), zeros);
}

TEST(Base64Test, DecodeRejectsGarbage) {
  for (std::string bad : {"Zg=", "Zg", "Z===", "====", "Zg==Zg==", "Zm9v!", "Zm9v\n", "Zm 9v",
                          "Zh==", "Zm9=", "Zm-_", "=Zm9"}) {
    EXPECT_THROW(base64Decode(bad), Error) << bad;
  }
}

TEST(RandomTokenTest, LengthAlphabetUniqueness) {
  EXPECT_EQ(randomToken(0), "");
  EXPECT_EQ(randomToken(1).size(), 2u);
  EXPECT_EQ(randomToken(2).size(), 3u);
  EXPECT_EQ(randomToken(3).size(), 4u);
  EXPECT_EQ(randomToken().size(), 43u);  // 32 bytes
  std::set<std::string> seen;
  bool saw_url_chars = false;
  for (int i = 0; i < 200; ++i) {
    std::string t = randomToken(32);
    for (char c : t) {
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_';
      ASSERT_TRUE(ok) << t;
      saw_url_chars = saw_url_chars || c == '-' || c == '_';
    }
    EXPECT_TRUE(seen.insert(t).second);
  }
  EXPECT_TRUE(saw_url_chars);  // ~1 - (62/64)^8600: certain
}

TEST(DigestTest, Sha256KnownVectors) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(DigestTest, EqualConstantTime) {
  EXPECT_TRUE(equalConstantTime("", ""));
  EXPECT_TRUE(equalConstantTime("secret", "secret"));
  EXPECT_FALSE(equalConstantTime("secret", "secreT"));
  EXPECT_FALSE(equalConstantTime("secret", "secret2"));
  EXPECT_FALSE(equalConstantTime("", "a"));
  EXPECT_FALSE(equalConstantTime(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST_F(PkiTest, DescribeFields) {
  IssueOptions o = options("router-c");
  o.validity = 48h;
  std::int64_t now = std::time(nullptr);
  std::string pem = issueCertificate(*ca_, generateKey(), o);
  CertInfo info = describe(pem);
  EXPECT_EQ(info.subject_cn, "router-c");
  EXPECT_EQ(info.issuer_cn, "Site CA");
  EXPECT_LE(std::llabs(info.not_after - (now + 48 * 3600)), 1);

  // Fingerprint: 32 upper-case hex pairs joined by colons, and the SHA-256
  // of the DER.
  ASSERT_EQ(info.fingerprint.size(), 32u * 3 - 1);
  for (std::size_t i = 0; i < info.fingerprint.size(); ++i) {
    char c = info.fingerprint[i];
    if (i % 3 == 2) {
      EXPECT_EQ(c, ':');
    } else {
      EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')) << info.fingerprint;
    }
  }
  X509Ptr cert = parse(pem);
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert.get(), &der);
  ASSERT_GT(der_len, 0);
  std::string hex = sha256Hex(std::string(reinterpret_cast<char*>(der), std::size_t(der_len)));
  OPENSSL_free(der);
  std::string expected;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    if (i > 0) expected += ':';
    expected += static_cast<char>(std::toupper(hex[i]));
    expected += static_cast<char>(std::toupper(hex[i + 1]));
  }
  EXPECT_EQ(info.fingerprint, expected);

  // notBefore is backdated five minutes.
  std::tm tm{};
  ASSERT_EQ(ASN1_TIME_to_tm(X509_get0_notBefore(cert.get()), &tm), 1);
  EXPECT_LE(std::llabs(static_cast<std::int64_t>(timegm(&tm)) - (now - 300)), 1);
  EXPECT_THROW(describe("garbage"), Error);
}

TEST_F(PkiTest, ExpiredCertificateIsNotSignedBy) {
  std::string pem = issueCertificate(*ca_, generateKey(), options("expired"));
  ASSERT_TRUE(signedBy(pem, ca_->certificate));
  // Move the validity window into the past and re-sign with the CA key.
  X509Ptr cert = parse(pem);
  ASSERT_NE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -7200), nullptr);
  ASSERT_NE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), -3600), nullptr);
  std::unique_ptr<BIO, decltype(&BIO_free)> in(
      BIO_new_mem_buf(ca_->key.data(), int(ca_->key.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> ca_key(
      PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  ASSERT_GT(X509_sign(cert.get(), ca_key.get(), EVP_sha256()), 0);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  ASSERT_EQ(PEM_write_bio_X509(out.get(), cert.get()), 1);
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  std::string expired(data, std::size_t(size));
  EXPECT_FALSE(signedBy(expired, ca_->certificate));
}

}  // namespace
}  // namespace vane::pki
