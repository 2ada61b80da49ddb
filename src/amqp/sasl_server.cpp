#include "amqp/sasl_server.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <proton/sasl.h>
#include <proton/sasl_plugin.h>
#include <proton/transport.h>

#include <fstream>
#include <memory>

#include "amqp/sasl_plain.hpp"

namespace vane::amqp {

namespace {

SaslServer* self(pn_transport_t* t) {
  return static_cast<SaslServer*>(pnx_sasl_get_context(t));
}

// The plugin's entry points. The context is owned by the connection.
void implFree(pn_transport_t*) {}
const char* implListMechanisms(pn_transport_t* t) {
  return self(t)->mechanisms();
}
bool implInitServer(pn_transport_t* t) {
  pnx_sasl_set_desired_state(t, SASL_POSTED_MECHANISMS);
  return true;
}
bool implInitClient(pn_transport_t*) {
  return false;
}
void implPrepareWrite(pn_transport_t*) {}
void implProcessInit(pn_transport_t* t, const char* mechanism, const pn_bytes_t* recv) {
  self(t)->onInit(t, mechanism != nullptr ? mechanism : "",
                  recv != nullptr && recv->start != nullptr ? std::string(recv->start, recv->size)
                                                            : std::string());
}
// No mechanism here uses challenges: a response is a protocol error.
void implProcessResponse(pn_transport_t* t, const pn_bytes_t*) {
  pnx_sasl_set_failed(t);
  pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}
bool implProcessMechanisms(pn_transport_t*, const char*) {
  return false;
}
void implProcessChallenge(pn_transport_t*, const pn_bytes_t*) {}
void implProcessOutcome(pn_transport_t*, const pn_bytes_t*) {}
bool implCanEncrypt(pn_transport_t*) {
  return false;
}
ssize_t implMaxEncryptSize(pn_transport_t*) {
  return 0;
}
ssize_t implEncode(pn_transport_t*, pn_bytes_t, pn_bytes_t*) {
  return 0;
}
ssize_t implDecode(pn_transport_t*, pn_bytes_t, pn_bytes_t*) {
  return 0;
}

const pnx_sasl_implementation kImplementation = {implFree,
                                                 implListMechanisms,
                                                 implInitServer,
                                                 implInitClient,
                                                 implPrepareWrite,
                                                 implProcessInit,
                                                 implProcessResponse,
                                                 implProcessMechanisms,
                                                 implProcessChallenge,
                                                 implProcessOutcome,
                                                 implCanEncrypt,
                                                 implMaxEncryptSize,
                                                 implEncode,
                                                 implDecode};

bool equalSecret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A users file entry is the password itself, or a crypt(3) hash ("$6$...",
// "$y$...", as made by `openssl passwd -6` or mkpasswd).
bool passwordMatches(const std::string& stored, const std::string& given) {
  if (stored.empty() || stored[0] != '$') return equalSecret(stored, given);
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_r(given.c_str(), stored.c_str(), data.get());
  return hash != nullptr && hash[0] != '*' && equalSecret(hash, stored);
}

}  // namespace

std::string loadUsersFile(const std::string& path, std::map<std::string, std::string>& out) {
  std::ifstream in(path);
  if (!in) return path + ": cannot read the users file";
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      return path + ":" + std::to_string(n) + ": expected name:password";
    }
    const std::string name = line.substr(0, colon);
    if (out.count(name) != 0) {
      return path + ":" + std::to_string(n) + ": user '" + name + "' is listed twice";
    }
    out.emplace(name, line.substr(colon + 1));
  }
  return {};
}

SaslServer::SaslServer(std::shared_ptr<const SaslServerConfig> config, std::string external_id,
                       Outcome outcome)
    : config_(std::move(config)),
      external_id_(std::move(external_id)),
      outcome_(std::move(outcome)) {
  auto add = [this](const char* m) {
    mechanisms_ += (mechanisms_.empty() ? "" : " ") + std::string(m);
  };
  // Strongest first: clients pick the first they support.
  if (config_->external && !external_id_.empty()) add("EXTERNAL");
  if (config_->plain) add("PLAIN");
  if (config_->anonymous) add("ANONYMOUS");
}

void SaslServer::install(pn_transport_t* t) {
  pn_sasl_t* sasl = pn_sasl(t);  // creates the transport's SASL layer
  pnx_sasl_set_implementation(t, &kImplementation, this);
  pn_sasl_allowed_mechs(sasl, mechanisms_.c_str());
  // PLAIN is allowed only on TLS listeners (checked by the configuration);
  // Proton cannot see our TLS layer.
  pn_sasl_set_allow_insecure_mechs(sasl, true);
  // Without ANONYMOUS a client must authenticate (no bare AMQP header).
  pn_transport_require_auth(t, !config_->anonymous);
}

void SaslServer::onInit(pn_transport_t* t, const std::string& mechanism,
                        const std::string& response) {
  std::string user;
  bool ok = false;
  if (mechanism == "ANONYMOUS" && config_->anonymous) {
    user = "anonymous";
    ok = true;
  } else if (mechanism == "EXTERNAL" && config_->external && !external_id_.empty()) {
    // The client may name the identity it expects; it must be the
    // certificate's.
    user = external_id_;
    ok = response.empty() || response == external_id_;
  } else if (mechanism == "PLAIN" && config_->plain) {
    if (auto plain = parsePlainResponse(response)) {
      user = plain->user;
      auto it = config_->users.find(user);
      const bool known = it != config_->users.end();
      // An unknown name costs the same work as a known one.
      const std::string& expected =
          known ? it->second
                : (config_->dummy_hash.empty() ? std::string(plain->password.size() + 1, 'x')
                                               : config_->dummy_hash);
      ok = passwordMatches(expected, plain->password) && known;
      // A client may act for another identity only as itself.
      ok = ok && (plain->authzid.empty() || plain->authzid == user);
    }
  }
  if (ok) {
    pnx_sasl_set_succeeded(t, user.c_str(), nullptr);
  } else {
    pnx_sasl_set_failed(t);
  }
  pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
  if (outcome_) outcome_(mechanism, user, ok);
}

}  // namespace vane::amqp
