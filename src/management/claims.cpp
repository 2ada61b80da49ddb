#include "management/claims.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "core/log.hpp"
#include "management/json_response.hpp"

namespace vane::management {

namespace http = boost::beast::http;
using json = nlohmann::json;

namespace {

std::int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string utc(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

bool readFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

}  // namespace

std::string joinHostPort(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Claims::Claims(config::ClaimsConfig cfg, std::string site,
               std::function<std::vector<std::string>()> links, std::uint16_t claim_port)
    : cfg_(std::move(cfg)),
      site_(std::move(site)),
      links_(std::move(links)),
      claim_port_(claim_port) {}

std::string Claims::load() {
  if (!readFile(cfg_.ca_certificate, ca_.certificate)) {
    return "claims: cannot read ca_certificate " + cfg_.ca_certificate;
  }
  if (!readFile(cfg_.ca_key, ca_.key)) return "claims: cannot read ca_key " + cfg_.ca_key;
  try {
    // The pair must work: sign something and verify it.
    if (!pki::verify(ca_.certificate, "vane", pki::sign(ca_.key, "vane"))) {
      return "claims: ca_key " + cfg_.ca_key + " does not belong to ca_certificate " +
             cfg_.ca_certificate;
    }
  } catch (const pki::Error& e) {
    return std::string("claims: ") + e.what();
  }
  std::string text;
  if (!readFile(cfg_.state_file, text)) return {};  // none yet
  try {
    const json state = json::parse(text);
    for (const auto& t : state.at("tokens")) {
      Token k;
      k.id = t.at("id").get<std::string>();
      k.secret_sha256 = t.at("secret_sha256").get<std::string>();
      k.created = t.value("created", std::int64_t{0});
      k.expires = t.at("expires").get<std::int64_t>();
      k.uses = t.at("uses").get<int>();
      k.used = t.at("used").get<int>();
      k.redeemed_by = t.value("redeemed_by", std::vector<std::string>{});
      tokens_.push_back(std::move(k));
    }
  } catch (const std::exception& e) {
    return "claims: state_file " + cfg_.state_file + " is not valid: " + e.what() +
           " (move it away to start with no tokens)";
  }
  return {};
}

std::string Claims::save() const {
  json a = json::array();
  for (const auto& t : tokens_) {
    a.push_back({{"id", t.id},
                 {"secret_sha256", t.secret_sha256},
                 {"created", t.created},
                 {"expires", t.expires},
                 {"uses", t.uses},
                 {"used", t.used},
                 {"redeemed_by", t.redeemed_by}});
  }
  const std::string text = dumpJson(json{{"tokens", a}}) + "\n";
  // Written aside and renamed: a crash leaves the old state or the new.
  const std::string tmp = cfg_.state_file + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot write " + tmp + ": " + std::strerror(errno);
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), cfg_.state_file.c_str()) != 0) {
    return "cannot write " + cfg_.state_file + ": " + std::strerror(errno);
  }
  return {};
}

json Claims::issue(std::int64_t expires_seconds, int uses, std::string& error) {
  if (expires_seconds < 1 || expires_seconds > kMaxExpiry) {
    error = "expires_seconds must be 1.." + std::to_string(kMaxExpiry);
    return nullptr;
  }
  if (uses < 1 || uses > kMaxUses) {
    error = "uses must be 1.." + std::to_string(kMaxUses);
    return nullptr;
  }
  const std::int64_t now = nowSeconds();
  // Tokens that ran out a day ago are forgotten.
  std::erase_if(tokens_, [now](const Token& t) { return t.expires + 86400 < now; });
  Token t;
  t.id = pki::randomToken(9);
  const std::string secret = pki::randomToken(32);
  t.secret_sha256 = pki::sha256Hex(secret);
  t.created = now;
  t.expires = now + expires_seconds;
  t.uses = uses;
  const auto links = links_();
  if (links.empty()) {
    error =
        "this router has no inter-router listener with a tls_profile for other sites to link to";
    return nullptr;
  }
  json token = {{"version", 1},
                {"site", site_},
                {"id", t.id},
                {"secret", secret},
                {"claim", joinHostPort(cfg_.advertise_host, claim_port_)},
                {"links", links},
                {"ca", ca_.certificate},
                {"expires", t.expires},
                {"uses", uses}};
  // json (not ordered_json) keeps keys sorted: the signed text is canonical.
  token["signature"] = pki::sign(ca_.key, token.dump());
  tokens_.push_back(std::move(t));
  if (std::string err = save(); !err.empty()) {
    tokens_.pop_back();
    error = err;
    return nullptr;
  }
  VANE_LOG_INFO("claims: token {} issued ({} use{}, expires {})", tokens_.back().id, uses,
                uses == 1 ? "" : "s", utc(tokens_.back().expires));
  return token;
}

json Claims::list() const {
  json a = json::array();
  for (const auto& t : tokens_) {
    a.push_back({{"id", t.id},
                 {"created", t.created},
                 {"expires", t.expires},
                 {"uses", t.uses},
                 {"used", t.used},
                 {"redeemed_by", t.redeemed_by}});
  }
  return a;
}

Claims::Revoked Claims::revoke(const std::string& id) {
  auto it =
      std::find_if(tokens_.begin(), tokens_.end(), [&](const Token& t) { return t.id == id; });
  if (it == tokens_.end()) return Revoked::kUnknown;
  const Token kept = *it;
  tokens_.erase(it);
  // Saved first: a revoked token must not come back after a restart.
  if (std::string err = save(); !err.empty()) {
    tokens_.push_back(kept);
    VANE_LOG_ERROR("claims: cannot revoke token {}: {}", id, err);
    return Revoked::kNotSaved;
  }
  VANE_LOG_INFO("claims: token {} revoked", id);
  return Revoked::kDone;
}

Handler Claims::handler() {
  return [this](const Request& req, Respond respond) { claim(req, respond); };
}

void Claims::claim(const Request& req, const Respond& respond) {
  const auto target = req.target();
  if (std::string_view(target.data(), target.size()) != "/claim") {
    return respond(jsonError(http::status::not_found, "no such resource (POST /claim)"));
  }
  if (req.method() != http::verb::post) {
    auto res = jsonError(http::status::method_not_allowed, "use POST");
    res.set(http::field::allow, "POST");
    return respond(std::move(res));
  }
  json body;
  std::string id, secret, site, csr;
  try {
    body = json::parse(req.body());
    id = body.at("id").get<std::string>();
    secret = body.at("secret").get<std::string>();
    site = body.at("site").get<std::string>();
    csr = body.at("csr").get<std::string>();
  } catch (const std::exception&) {
    return respond(jsonError(http::status::bad_request,
                             "expected a JSON object with id, secret, site and csr"));
  }
  auto it =
      std::find_if(tokens_.begin(), tokens_.end(), [&](const Token& t) { return t.id == id; });
  const std::string hash = pki::sha256Hex(secret);
  if (it == tokens_.end() || !pki::equalConstantTime(hash, it->secret_sha256)) {
    VANE_LOG_WARN("claims: refused a claim from site '{}': unknown token or wrong secret",
                  config::isValidName(site) ? site : "?");
    return respond(jsonError(http::status::forbidden, "the token is not valid for site '" + site_ +
                                                          "' (unknown, revoked or altered)"));
  }
  if (nowSeconds() >= it->expires) {
    VANE_LOG_WARN("claims: refused token {} from site '{}': expired", id,
                  config::isValidName(site) ? site : "?");
    return respond(jsonError(http::status::forbidden, "the token expired at " + utc(it->expires)));
  }
  if (it->used >= it->uses) {
    VANE_LOG_WARN("claims: refused token {} from site '{}': used up", id,
                  config::isValidName(site) ? site : "?");
    return respond(jsonError(http::status::forbidden, "the token has already been used (" +
                                                          std::to_string(it->used) + " of " +
                                                          std::to_string(it->uses) +
                                                          (it->uses == 1 ? " use)" : " uses)")));
  }
  if (!config::isValidName(site)) {
    return respond(jsonError(http::status::bad_request,
                             "site names are 1-64 letters, digits, '.', '_' or '-'"));
  }
  if (site == site_) {
    return respond(jsonError(http::status::bad_request,
                             "a site cannot link to itself (both are named '" + site + "')"));
  }
  // The site name becomes the linked router's id (its certificate names it,
  // and verify_router_id holds it to that): one already in the network
  // would let the new site impersonate that router.
  if (id_in_use_ && id_in_use_(site)) {
    ++id_in_use_refusals_;
    VANE_LOG_WARN(
        "claims: refused token {} from site '{}': that name is already a router id in "
        "the network",
        id, site);
    return respond(jsonError(http::status::conflict,
                             "the site name '" + site +
                                 "' is already a router id in this network; choose another "
                                 "name for the new site"));
  }
  if (csr.find("-----BEGIN CERTIFICATE REQUEST-----") == std::string::npos) {
    return respond(
        jsonError(http::status::bad_request,
                  "csr must be a PEM certificate request (the key stays with its site)"));
  }
  std::string certificate;
  try {
    pki::IssueOptions o;
    o.common_name = site;
    o.server = false;
    o.client = true;
    o.validity = std::chrono::hours(24 * 365 * 2);
    certificate = pki::issueCertificate(ca_, csr, o);
  } catch (const pki::Error& e) {
    return respond(jsonError(http::status::bad_request,
                             std::string("the certificate request is not valid: ") + e.what()));
  }
  ++it->used;
  it->redeemed_by.push_back(site);
  if (std::string err = save(); !err.empty()) {
    --it->used;
    it->redeemed_by.pop_back();
    VANE_LOG_ERROR("claims: {}", err);
    return respond(jsonError(http::status::internal_server_error,
                             "the site could not record the claim; try again"));
  }
  VANE_LOG_INFO("claims: token {} redeemed by site '{}' ({} of {} use{})", id, site, it->used,
                it->uses, it->uses == 1 ? "" : "s");
  respond(jsonReply(http::status::ok,
                    {{"certificate", certificate}, {"ca", ca_.certificate}, {"site", site_}}));
}

}  // namespace vane::management
