// Site linking: tokens and the claims endpoint.
//
// A token (issued through the management API) names this site, where to
// claim and where to link, carries the site CA's certificate, a one-time
// secret and an expiry, and is signed with the CA's key so that any change
// to it shows. Another site redeems it at the claims endpoint (HTTPS, this
// router's certificate) with a certificate request; it gets back a client
// certificate signed by this site's CA, which the inter-router listener
// requires. The private key never leaves the redeeming site.
//
// Tokens are kept in `state_file` (only a hash of each secret), so that a
// restart neither revives a used token nor forgets an unused one.
//
// IMPORTANT: everything runs on the router's core loop.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "management/http_server.hpp"
#include "pki/pki.hpp"

namespace vane::management {

class Claims {
 public:
  // `links()` gives the host:port of each inter-router listener, for tokens.
  Claims(config::ClaimsConfig cfg, std::string site,
         std::function<std::vector<std::string>()> links, std::uint16_t claim_port);

  // Reads the CA and the state file. Returns "" or what failed.
  std::string load();
  void setClaimPort(std::uint16_t port) { claim_port_ = port; }

  static constexpr std::int64_t kDefaultExpiry = 15 * 60;
  static constexpr std::int64_t kMaxExpiry = 30LL * 24 * 3600;
  static constexpr int kMaxUses = 1000;

  // A new token (the token file's content), or a sentence in `error`.
  nlohmann::json issue(std::int64_t expires_seconds, int uses, std::string& error);
  nlohmann::json list() const;
  enum class Revoked { kDone, kUnknown, kNotSaved };
  Revoked revoke(const std::string& id);

  // The claims endpoint: POST /claim.
  Handler handler();

  // Whether a router id is already taken in this router's network (called
  // on the core loop): a claim for such a site name is refused with 409.
  void setIdInUse(std::function<bool(const std::string&)> in_use) {
    id_in_use_ = std::move(in_use);
  }
  // Claims refused because the site name was a router id in the network.
  std::uint64_t idInUseRefusals() const { return id_in_use_refusals_; }

 private:
  struct Token {
    std::string id;
    std::string secret_sha256;
    std::int64_t created = 0;
    std::int64_t expires = 0;
    int uses = 1;
    int used = 0;
    std::vector<std::string> redeemed_by;
  };
  void claim(const Request& req, const Respond& respond);
  std::string save() const;

  config::ClaimsConfig cfg_;
  std::string site_;
  std::function<std::vector<std::string>()> links_;
  std::uint16_t claim_port_;
  pki::CertAndKey ca_;
  std::vector<Token> tokens_;
  std::function<bool(const std::string&)> id_in_use_;
  std::uint64_t id_in_use_refusals_ = 0;
};

// "host:port", with brackets around an IPv6 address.
std::string joinHostPort(const std::string& host, std::uint16_t port);

}  // namespace vane::management
