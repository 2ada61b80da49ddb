#include "server/tls.hpp"

#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

namespace vane::server {

namespace ssl = boost::asio::ssl;

namespace {

// ALPN for an HTTP/1.1 server: "http/1.1" if the client offers it, else no
// protocol (the client then speaks HTTP/1.1 anyway, or gives up).
int selectHttp1(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static constexpr unsigned char kHttp1[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == sizeof kHttp1 && std::memcmp(in + i + 1, kHttp1, n) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::string makeTlsContext(const config::TlsProfileConfig& p, TlsUse use,
                           std::shared_ptr<ssl::context>& out) {
  const bool client = use == TlsUse::kClient;
  auto ctx =
      std::make_shared<ssl::context>(client ? ssl::context::tls_client : ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::no_compression,
                   ec);
  // A peer that closes the TCP connection after the AMQP close without a TLS
  // close_notify has still said everything it meant to.
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  auto unreadable = [&p](const char* what, const std::string& file) {
    return "tls profile " + p.name + ": cannot read " + what + " file " + file + ": " +
           std::strerror(errno);
  };
  if (!p.key_password_file.empty()) {
    std::ifstream in(p.key_password_file);
    std::string password;
    if (!in || !std::getline(in, password)) {
      return "tls profile " + p.name + ": cannot read key_password_file " + p.key_password_file;
    }
    ctx->set_password_callback(
        [password](std::size_t, ssl::context::password_purpose) { return password; }, ec);
  }
  if (!p.certificate.empty()) {
    for (const auto& [what, file] : {std::pair{"certificate", &p.certificate}, {"key", &p.key}}) {
      if (!std::ifstream(*file)) return unreadable(what, *file);
    }
    ctx->use_certificate_chain_file(p.certificate, ec);
    if (ec) {
      return "tls profile " + p.name + ": cannot use certificate " + p.certificate + ": " +
             ec.message();
    }
    ctx->use_private_key_file(p.key, ssl::context::pem, ec);
    if (ec) return "tls profile " + p.name + ": cannot use key " + p.key + ": " + ec.message();
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
      return "tls profile " + p.name + ": key " + p.key + " does not match certificate " +
             p.certificate;
    }
  }
  const bool verify = use == TlsUse::kClient || use == TlsUse::kServerRequestCert ||
                      use == TlsUse::kServerRequireCert;
  if (verify) {
    if (p.ca.empty()) return "tls profile " + p.name + ": has no 'ca' to verify peers with";
    if (!std::ifstream(p.ca)) return unreadable("ca", p.ca);
    ctx->load_verify_file(p.ca, ec);
    if (ec) return "tls profile " + p.name + ": cannot use ca " + p.ca + ": " + ec.message();
    ssl::verify_mode mode = ssl::verify_peer;
    if (use == TlsUse::kServerRequireCert) mode |= ssl::verify_fail_if_no_peer_cert;
    ctx->set_verify_mode(mode, ec);
    if (!client) {
      // Which CAs a client may choose its certificate from.
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(p.ca.c_str());
      if (names != nullptr) SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
      // Session resumption across contexts needs an id; a fixed one per use.
      static constexpr unsigned char kSessionId[] = "vane";
      SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionId, sizeof kSessionId - 1);
    }
  } else {
    ctx->set_verify_mode(ssl::verify_none, ec);
  }
  if (use == TlsUse::kServerHttp)
    SSL_CTX_set_alpn_select_cb(ctx->native_handle(), selectHttp1, nullptr);
  out = std::move(ctx);
  return {};
}

}  // namespace vane::server
