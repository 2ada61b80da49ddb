// The server side of SASL for client listeners, as a Proton SASL plugin
// (proton/sasl_plugin.h): ANONYMOUS, PLAIN (checked against a users file)
// and EXTERNAL (the identity of the client's TLS certificate). Proton's
// built-in implementation offers PLAIN only through Cyrus SASL, and knows
// nothing of a TLS layer that is not its own.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "amqp/auth_throttle.hpp"

struct pn_transport_t;

namespace vane::amqp {

// What one listener accepts.
struct SaslServerConfig {
  bool anonymous = true;
  bool plain = false;
  bool external = false;
  std::map<std::string, std::string> users;  // PLAIN: name -> password or crypt(3) hash
  // A hash from `users` that an unknown name is checked against, so that it
  // takes as long as a known one ("" if no password is hashed).
  std::string dummy_hash;
  // PLAIN: failed attempts per source address (router.max_auth_failures_per_source;
  // one for the whole router, shared by every worker), null for none.
  std::shared_ptr<AuthThrottle> throttle;
  // PLAIN: recent successful checks of crypt(3) hashes, so that a client
  // reconnecting in a loop does not cost a hash each time; null for none.
  std::shared_ptr<LoginCache> logins;
};

// Reads a users file: one "name:password" per line; empty lines and lines
// starting with '#' are skipped. Returns "" or "FILE:LINE: what is wrong".
std::string loadUsersFile(const std::string& path, std::map<std::string, std::string>& out);

// The address part of "address:port" (IPv4 or IPv6; an IPv4-mapped IPv6
// address as IPv4).
std::string sourceAddress(const std::string& peer);

// One connection's SASL state. Lives as long as the connection's transport.
class SaslServer {
 public:
  // `outcome(mechanism, user, ok)` is called once the client authenticated
  // (or failed to). `peer` is the client's "address:port" (its address is
  // the source that failed PLAIN attempts are counted for).
  using Outcome = std::function<void(const std::string&, const std::string&, bool)>;
  SaslServer(std::shared_ptr<const SaslServerConfig> config, std::string external_id,
             const std::string& peer, Outcome outcome);

  // Installs this as the transport's SASL implementation (server side).
  void install(pn_transport_t* transport);

  // What the plugin's entry points do.
  const char* mechanisms() const { return mechanisms_.c_str(); }
  void onInit(pn_transport_t* t, const std::string& mechanism, const std::string& response);

 private:
  // PLAIN: whether `response` holds a user and its password; sets `user`.
  bool checkPlain(const std::string& response, std::string& user);

  std::shared_ptr<const SaslServerConfig> config_;
  std::string external_id_;
  std::string source_;      // the peer's address, without the port
  std::string mechanisms_;  // space separated
  Outcome outcome_;
};

}  // namespace vane::amqp
