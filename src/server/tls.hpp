// TLS contexts (OpenSSL through Boost.Asio) built from the configuration's
// tls_profiles, for listeners, connectors, the management API and the claims
// endpoint.
//
// A TlsSource holds the current context of one use of one profile. New
// connections take the current context when they start; replacing it (a
// reload after certificates were renewed) leaves open connections alone.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <string>

#include "config/config.hpp"

namespace vane::server {

enum class TlsUse {
  kClient,             // verifies the server against the profile's ca
  kServer,             // no client certificate asked for
  kServerRequestCert,  // a client certificate is verified if the client sends one
  kServerRequireCert,  // a client certificate signed by the profile's ca is required
  kServerHttp,         // as kServer, and ALPN chooses http/1.1 when the client offers it
};

// Builds a context from the profile's files. Returns "" or a sentence naming
// the profile and the file that could not be used.
std::string makeTlsContext(const config::TlsProfileConfig& profile, TlsUse use,
                           std::shared_ptr<boost::asio::ssl::context>& out);

class TlsSource {
 public:
  TlsSource(std::string profile, TlsUse use, std::shared_ptr<boost::asio::ssl::context> ctx)
      : profile_(std::move(profile)), use_(use), ctx_(std::move(ctx)) {}

  // Any thread.
  std::shared_ptr<boost::asio::ssl::context> current() const {
    std::lock_guard lock(mu_);
    return ctx_;
  }
  void replace(std::shared_ptr<boost::asio::ssl::context> ctx) {
    std::lock_guard lock(mu_);
    ctx_ = std::move(ctx);
  }
  const std::string& profile() const { return profile_; }
  TlsUse use() const { return use_; }

 private:
  const std::string profile_;
  const TlsUse use_;
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;
};

}  // namespace vane::server
