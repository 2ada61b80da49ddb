#include "cli/links.hpp"

#include <cstdint>
#include <iostream>
#include <thread>

#include "cli/errors.hpp"
#include "cli/router_config.hpp"
#include "cli/token.hpp"
#include "pki/pki.hpp"

namespace vane::cli {

namespace {

using namespace std::chrono_literals;

std::string profileOf(const std::string& name) {
  return "link-" + name;
}

// The link's tls profile for vaned.yaml: paths relative to the site directory.
config::TlsProfileConfig profileEntry(const std::string& name) {
  const fs::path dir = fs::path("links") / name;
  config::TlsProfileConfig p;
  p.name = profileOf(name);
  p.certificate = (dir / "cert.pem").string();
  p.key = (dir / "key.pem").string();
  p.ca = (dir / "ca.pem").string();
  return p;
}

config::ConnectorConfig connectorEntry(const std::string& name, const std::string& host, int port,
                                       int cost) {
  config::ConnectorConfig c;
  c.name = name;
  c.host = host;
  c.port = static_cast<std::uint16_t>(port);  // 1..65535, checked by readToken
  c.role = config::ListenerRole::kInterRouter;
  c.cost = static_cast<std::uint32_t>(cost);  // 1..1000000, checked by the option
  c.tls_profile = profileOf(name);
  return c;
}

// UserError with vaned's reason if it would refuse the entry.
template <typename Entry>
void checkEntry(const Entry& entry, const std::string& name, const char* what) {
  const auto error = config::validate(entry);
  if (!error) return;
  std::string message = "cannot add link '" + name + "': " + what + error->detail();
  if (error->field == "name") message += "; give the link another name with --name";
  if (error->field == "host" || error->field == "port") message += " (from the token)";
  throw UserError(message);
}

void checkNewLink(const Site& site, const RouterConfig& config, const Token& token,
                  const config::ConnectorConfig& connector,
                  const config::TlsProfileConfig& profile) {
  const std::string& name = connector.name;
  if (token.site == site.info.name) {
    throw UserError("this token was issued by site '" + token.site +
                    "' itself; run `vane link create` on the site that should link to it");
  }
  checkEntry(connector, name, "");
  checkEntry(profile, name, "its tls profile: ");
  std::error_code ec;
  if (!config.find("connectors", name).IsNull() ||
      !config.find("tls_profiles", profileOf(name)).IsNull() ||
      fs::exists(site.dir.linkDir(name), ec)) {
    throw UserError("a link named '" + name + "' already exists; delete it first with `vane " +
                    "link delete " + name + "`, or give the new one another name with --name");
  }
}

struct Credentials {
  std::string key;
  std::string certificate;
  std::string ca;
};

// POST https://CLAIM/claim, trusting only the token's CA.
Credentials claim(const Token& token, const std::string& own_name) {
  Credentials c;
  c.key = pki::generateKey();
  const Json body = {{"id", token.id},
                     {"secret", token.secret},
                     {"site", own_name},
                     {"csr", pki::makeCsr(c.key, own_name)}};
  Url url;
  url.tls = true;
  url.host = token.claim_host;
  url.port = std::to_string(token.claim_port);
  url.ca_pem = token.ca;
  const std::string where = joinHostPort(token.claim_host, token.claim_port);
  url.text = "https://" + where;
  auto result = httpRequest(url, HttpRequest{"POST", "/claim", body.dump(), ""});
  const std::string again = "; ask site '" + token.site + "' for a new token";
  if (const auto* e = std::get_if<HttpError>(&result)) {
    if (e->kind == HttpError::Kind::kTls && e->untrusted) {
      throw UserError("the site at " + where + " did not prove it issued this token (its " +
                      "certificate is not signed by the token's CA); the token may come from " +
                      "another network");
    }
    if (e->kind == HttpError::Kind::kResolve || e->kind == HttpError::Kind::kUnreachable) {
      throw UserError("cannot reach site '" + token.site + "' at " + where +
                      " to redeem the token; check that it runs and that this machine can " +
                      "reach that address (firewall, --host of `vane site init`)");
    }
    throw UserError("redeeming the token at " + where + " failed (" + e->detail + "); check that " +
                    where + " is the claim port of site '" + token.site + "'");
  }
  const auto& res = std::get<HttpResponse>(result);
  const Json answer = Json::parse(res.body, nullptr, false);
  if (res.status != 200) {
    const std::string why =
        answer.is_object() && answer.contains("error") && answer["error"].is_string()
            ? answer["error"].get<std::string>()
            : "HTTP " + std::to_string(res.status);
    throw UserError("site '" + token.site + "' refused the token: " + why + again);
  }
  if (!answer.is_object() || !answer.contains("certificate") ||
      !answer["certificate"].is_string()) {
    throw UserError("site '" + token.site + "' answered the claim without a certificate; " +
                    "check that its vaned is as new as vane");
  }
  c.certificate = answer["certificate"].get<std::string>();
  c.ca = answer.contains("ca") && answer["ca"].is_string() ? answer["ca"].get<std::string>()
                                                           : token.ca;
  if (!pki::signedBy(c.certificate, token.ca)) {
    throw UserError("site '" + token.site + "' sent a certificate its CA did not sign" + again);
  }
  return c;
}

void writeCredentials(const Site& site, const std::string& name, const Credentials& c) {
  const fs::path dir = site.dir.linkDir(name);
  writeFile(dir / "key.pem", c.key, 0600);
  writeFile(dir / "cert.pem", c.certificate);
  writeFile(dir / "ca.pem", c.ca);
}

// The JSON bodies for the API: the entries of vaned.yaml, paths made absolute.
Json bodyOf(config::TlsProfileConfig profile, const Site& site) {
  for (std::string* file : {&profile.certificate, &profile.key, &profile.ca}) {
    *file = (site.dir.dir() / *file).string();
  }
  return Json::parse(config::toJson(profile));
}

Json bodyOf(const config::ConnectorConfig& connector) {
  return Json::parse(config::toJson(connector));
}

// The connector's state in the API ("" if not listed).
std::string connectorState(const ManagementClient& client, const std::string& name) {
  auto answer = client.get("connectors", ManagementClient::Expect::kArray);
  const auto* list = std::get_if<Json>(&answer);
  if (list == nullptr) return "";
  for (const auto& c : *list) {
    if (c.value("name", "") == name) return c.value("state", "");
  }
  return "";
}

bool waitConnected(const ManagementClient& client, const std::string& name) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (connectorState(client, name) == "connected") return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// Adds profile and connector to the running router; on failure takes back
// what it added.
void applyLink(const Site& site, const ManagementClient& client,
               const config::TlsProfileConfig& profile, const config::ConnectorConfig& connector,
               const std::string& name) {
  const std::string what = "cannot add the link to the running site '" + site.info.name + "'";
  apiCall(client, "POST", "tls-profiles", bodyOf(profile, site), what);
  try {
    apiCall(client, "POST", "connectors", bodyOf(connector), what);
  } catch (const UserError&) {
    client.send("DELETE", "tls-profiles/" + profileOf(name));
    throw;
  }
}

}  // namespace

int linkCreate(const Options& options, const LinkCreateOptions& create) {
  const Site site = openSite(options);
  const Token token = readToken(create.token_file);
  const std::string name = create.name.empty() ? token.site : create.name;
  std::string host;
  int port = 0;
  splitHostPort(token.links.front(), host, port);  // checked by readToken
  const config::TlsProfileConfig profile = profileEntry(name);
  const config::ConnectorConfig connector = connectorEntry(name, host, port, create.cost);
  RouterConfig config = RouterConfig::load(site.dir.config());
  checkNewLink(site, config, token, connector, profile);

  // The token is spent once claimed: from here on the link is kept in the
  // file even if the running router refuses it.
  const Credentials credentials = claim(token, site.info.name);
  writeCredentials(site, name, credentials);
  config.add(profile);
  config.add(connector);
  config.save(site.dir.config());
  if (site.running) {
    try {
      applyLink(site, site.client(), profile, connector, name);
    } catch (const UserError& e) {
      throw UserError(std::string(e.what()) + "; the link is saved in " +
                      site.dir.config().string() + " and starts with the router " +
                      "(`vane site stop`, then `vane site start`)");
    }
  }

  const std::string endpoint = joinHostPort(host, port);
  if (!site.running) {
    std::cout << "added link '" << name << "' to site '" << token.site << "' at " << endpoint
              << " (cost " << create.cost << ")" << site.whenStopped() << "\n";
    return 0;
  }
  if (waitConnected(site.client(), name)) {
    std::cout << "linked to site '" << token.site << "' at " << endpoint << " (cost " << create.cost
              << ")\n";
  } else {
    std::cout << "warning: the link to site '" << token.site << "' at " << endpoint
              << " is not connected after 10 s; it keeps trying - check that " << endpoint
              << " is reachable from here and see " << site.dir.logFile().string() << "\n";
  }
  return 0;
}

int linkList(const Options& options) {
  const Site site = openSite(options);
  const RouterConfig config = RouterConfig::load(site.dir.config());
  Json states = Json::array();
  if (site.running) {
    auto answer = site.client().get("connectors", ManagementClient::Expect::kArray);
    if (auto* list = std::get_if<Json>(&answer)) states = *list;
  }
  Json rows = Json::array();
  for (const auto& c : config.entries("connectors")) {
    const std::string name = field(c, "name");
    Json row = {{"name", name},
                {"endpoint", joinHostPort(field(c, "host"), std::atoi(field(c, "port").c_str()))},
                {"cost", field(c, "cost").empty() ? static_cast<int>(config::ConnectorConfig{}.cost)
                                                  : std::atoi(field(c, "cost").c_str())},
                {"state", site.running ? "unknown" : "not running"},
                {"certificate_expires", nullptr}};
    for (const auto& s : states) {
      if (s.value("name", "") == name) row["state"] = s.value("state", "unknown");
    }
    std::error_code ec;
    const fs::path cert = site.dir.linkDir(name) / "cert.pem";
    if (fs::exists(cert, ec)) {
      try {
        row["certificate_expires"] = pki::describe(readFile(cert)).not_after;
      } catch (const pki::Error&) {
      }
    }
    rows.push_back(row);
  }
  if (options.json) {
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  if (rows.empty()) {
    std::cout << "No links from site '" << site.info.name << "'; make one with `vane link create "
              << "TOKEN_FILE` (the other site runs `vane token issue`).\n";
    return 0;
  }
  Table t({{"NAME"}, {"ENDPOINT"}, {"COST", Table::Align::kRight}, {"STATE"}, {"CERT EXPIRES"}});
  for (const auto& r : rows) {
    const std::string state = r["state"].get<std::string>();
    const auto& exp = r["certificate_expires"];
    t.add({r["name"].get<std::string>(),
           r["endpoint"].get<std::string>(),
           std::to_string(r["cost"].get<int>()),
           {state, state == "connected" ? Tone::kPlain : Tone::kBad},
           exp.is_number() ? localTime(exp.get<std::int64_t>()) : "-"});
  }
  t.print(std::cout, options.style);
  return 0;
}

int linkDelete(const Options& options, const std::string& name) {
  if (!validName(name)) {
    throw UserError("there is no link named '" + name + "'; see the links with `vane link list`");
  }
  const Site site = openSite(options);
  RouterConfig config = RouterConfig::load(site.dir.config());
  std::error_code ec;
  if (config.find("connectors", name).IsNull() && !fs::exists(site.dir.linkDir(name), ec)) {
    throw UserError("there is no link named '" + name + "'; see the links with `vane link list`");
  }
  if (site.running) {
    const auto client = site.client();
    const std::string what = "cannot delete link '" + name + "' from the running site";
    apiCall(client, "DELETE", "connectors/" + name, nullptr, what, 404);
    apiCall(client, "DELETE", "tls-profiles/" + profileOf(name), nullptr, what, 404);
  }
  config.remove("connectors", name);
  config.remove("tls_profiles", profileOf(name));
  config.save(site.dir.config());
  fs::remove_all(site.dir.linkDir(name), ec);
  std::cout << "deleted link '" << name << "'" << site.whenStopped() << "\n";
  return 0;
}

}  // namespace vane::cli
