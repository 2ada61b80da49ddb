#include "amqp/sasl_server.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <proton/sasl.h>
#include <proton/sasl_plugin.h>
#include <proton/transport.h>

#include <fstream>
#include <memory>

#include "amqp/sasl_plain.hpp"
#include "core/log.hpp"

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
bool isHash(const std::string& stored) {
  return !stored.empty() && stored[0] == '$';
}

bool passwordMatches(const std::string& stored, const std::string& given) {
  if (!isHash(stored)) return equalSecret(stored, given);
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_r(given.c_str(), stored.c_str(), data.get());
  return hash != nullptr && hash[0] != '*' && equalSecret(hash, stored);
}

// The LoginCache key of a user and a password: the name, a NUL and the
// password's SHA-256 (the password itself is not kept).
std::string loginKey(const std::string& user, const std::string& password) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(password.data(), password.size(), md, &n, EVP_sha256(), nullptr) != 1) return {};
  return user + '\0' + std::string(reinterpret_cast<const char*>(md), n);
}

}  // namespace

std::string sourceAddress(const std::string& peer) {
  const auto colon = peer.rfind(':');
  std::string a = colon == std::string::npos ? peer : peer.substr(0, colon);
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  static const std::string kMapped = "::ffff:";
  if (a.rfind(kMapped, 0) == 0 && a.find('.') != std::string::npos) a = a.substr(kMapped.size());
  return a;
}

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
                       const std::string& peer, Outcome outcome)
    : config_(std::move(config)),
      external_id_(std::move(external_id)),
      source_(sourceAddress(peer)),
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
    ok = checkPlain(response, user);
  }
  if (ok) {
    pnx_sasl_set_succeeded(t, user.c_str(), nullptr);
  } else {
    pnx_sasl_set_failed(t);
  }
  pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
  if (outcome_) outcome_(mechanism, user, ok);
}

bool SaslServer::checkPlain(const std::string& response, std::string& user) {
  const auto now = AuthThrottle::Clock::now();
  auto plain = parsePlainResponse(response);
  if (plain) user = plain->user;
  AuthThrottle* throttle = config_->throttle.get();
  if (throttle != nullptr) {
    // Refused like a wrong password, but without the check: a source that
    // guesses cannot make the router hash more than its quota per window.
    const auto verdict = throttle->check(source_, now);
    if (verdict.throttled) {
      if (verdict.first) {
        VANE_LOG_WARN(
            "authentication from {} throttled: {} failures within {} ms "
            "(router.max_auth_failures_per_source {}): refused without a check until the "
            "window ends",
            source_, verdict.failures, throttle->window().count(), throttle->maxFailures());
      }
      return false;
    }
  }
  bool ok = false;
  if (plain) {
    auto it = config_->users.find(user);
    const bool known = it != config_->users.end();
    LoginCache* logins = known && isHash(it->second) ? config_->logins.get() : nullptr;
    const std::string key = logins != nullptr ? loginKey(user, plain->password) : std::string();
    if (logins != nullptr && !key.empty() && logins->hit(key, it->second, now)) {
      // Checked a moment ago with this very password and entry.
      ok = true;
    } else {
      // An unknown name costs the same work as a known one.
      const std::string& expected =
          known ? it->second
                : (config_->dummy_hash.empty() ? std::string(plain->password.size() + 1, 'x')
                                               : config_->dummy_hash);
      ok = passwordMatches(expected, plain->password) && known;
      if (ok && logins != nullptr && !key.empty()) logins->add(key, it->second, now);
    }
    // A client may act for another identity only as itself.
    ok = ok && (plain->authzid.empty() || plain->authzid == user);
  }
  if (!ok && throttle != nullptr) throttle->failed(source_, now);
  return ok;
}

}  // namespace vane::amqp
