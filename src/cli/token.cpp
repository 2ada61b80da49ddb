#include "cli/token.hpp"

#include <ctime>
#include <iostream>

#include "cli/errors.hpp"
#include "cli/table.hpp"
#include "pki/pki.hpp"

namespace vane::cli {

namespace {

using PlainJson = nlohmann::json;  // sorted keys: the canonical form

std::int64_t now() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

[[noreturn]] void notAToken(const std::string& file, const std::string& why) {
  throw UserError(file + " is not a Vane token (" + why +
                  "); ask the other site for a token file made with `vane token issue`");
}

std::string needString(const PlainJson& j, const char* key, const std::string& file) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get_ref<const std::string&>().empty()) {
    notAToken(file, std::string("no '") + key + "'");
  }
  return j[key].get<std::string>();
}

std::int64_t needInteger(const PlainJson& j, const char* key, const std::string& file) {
  if (!j.contains(key) || !j[key].is_number_integer()) {
    notAToken(file, std::string("no whole number '") + key + "'");
  }
  return j[key].get<std::int64_t>();
}

Token parseToken(const PlainJson& j, const std::string& file) {
  if (!j.is_object()) notAToken(file, "not a JSON object");
  if (!j.contains("version") || j["version"] != 1) notAToken(file, "no 'version' 1");
  Token t;
  t.site = needString(j, "site", file);
  t.id = needString(j, "id", file);
  t.secret = needString(j, "secret", file);
  t.ca = needString(j, "ca", file);
  needString(j, "signature", file);
  t.expires = needInteger(j, "expires", file);
  t.uses = needInteger(j, "uses", file);
  if (!splitHostPort(needString(j, "claim", file), t.claim_host, t.claim_port)) {
    notAToken(file, "'claim' is not HOST:PORT");
  }
  if (!j.contains("links") || !j["links"].is_array() || j["links"].empty()) {
    notAToken(file, "no 'links'");
  }
  for (const auto& link : j["links"]) {
    std::string host;
    int port = 0;
    if (!link.is_string() || !splitHostPort(link.get<std::string>(), host, port)) {
      notAToken(file, "an entry of 'links' is not HOST:PORT");
    }
    t.links.push_back(link.get<std::string>());
  }
  return t;
}

bool signatureValid(const PlainJson& j) {
  try {
    return pki::verify(j["ca"].get<std::string>(), canonicalToken(j),
                       j["signature"].get<std::string>());
  } catch (const pki::Error&) {
    return false;  // a CA that is not a certificate: altered too
  }
}

// The router's answer to POST /tokens, completed where it left fields out
// (and then signed here, with the site CA's key) or checked where it signed.
PlainJson completeToken(PlainJson answer, const Site& site) {
  if (!answer.is_object() || !answer.contains("id") || !answer.contains("secret")) {
    throw UserError("the router's answer to POST /api/v1/tokens is not a token; check that " +
                    std::string("vaned is as new as vane"));
  }
  if (!answer.contains("signature")) {
    const std::string& host = site.info.hosts.front();
    answer["version"] = 1;
    if (!answer.contains("site")) answer["site"] = site.info.name;
    if (!answer.contains("claim")) answer["claim"] = joinHostPort(host, site.info.claim_port);
    if (!answer.contains("links")) {
      answer["links"] = PlainJson::array({joinHostPort(host, site.info.link_port)});
    }
    if (!answer.contains("ca")) answer["ca"] = readFile(site.dir.file("ca.pem"));
    answer["signature"] = pki::sign(readFile(site.dir.file("ca-key.pem")), canonicalToken(answer));
  }
  if (!answer["ca"].is_string() || !answer["signature"].is_string() || !signatureValid(answer)) {
    throw UserError("the token site '" + site.info.name + "' issued does not verify against " +
                    "its own CA; check that ca.pem in " + site.dir.dir().string() +
                    " is the CA its router uses");
  }
  return answer;
}

// The file in the order people read it; the signature does not depend on it.
std::string tokenText(const PlainJson& t) {
  Json out = Json::object();
  for (const char* key :
       {"version", "site", "id", "secret", "claim", "links", "ca", "expires", "uses"}) {
    if (t.contains(key)) out[key] = t[key];
  }
  for (const auto& [key, value] : t.items()) {
    if (!out.contains(key) && key != "signature") out[key] = value;
  }
  out["signature"] = t["signature"];
  return out.dump(2) + "\n";
}

std::string usesText(std::int64_t n) {
  return std::to_string(n) + (n == 1 ? " use" : " uses");
}

}  // namespace

std::string canonicalToken(const nlohmann::json& token) {
  PlainJson copy = token;
  copy.erase("signature");
  return copy.dump();
}

std::int64_t parseDuration(const std::string& text) {
  if (text.empty()) return -1;
  std::int64_t value = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (value > 100000000) return -1;
    value = value * 10 + (text[i] - '0');
  }
  if (i == 0) return -1;
  const std::string unit = text.substr(i);
  if (unit.empty() || unit == "s") return value;
  if (unit == "m") return value * 60;
  if (unit == "h") return value * 3600;
  if (unit == "d") return value * 86400;
  return -1;
}

std::string localTime(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
  return buf;
}

Token readToken(const std::string& file) {
  return parseTokenText(readFile(file), file);
}

Token parseTokenText(const std::string& text, const std::string& file) {
  const PlainJson j = PlainJson::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) notAToken(file, "not JSON");
  const Token t = parseToken(j, file);
  if (!signatureValid(j)) {
    throw UserError("token " + file + " has been altered since it was issued (its signature " +
                    "does not match); ask site '" + t.site + "' for a new token");
  }
  if (t.expires <= now()) {
    throw UserError("token " + file + " expired at " + localTime(t.expires) + "; ask site '" +
                    t.site + "' for a new one (`vane token issue`)");
  }
  return t;
}

int tokenIssue(const Options& options, const IssueOptions& issue) {
  const std::int64_t seconds = parseDuration(issue.expires);
  if (seconds <= 0) {
    throw UserError("--expires " + issue.expires +
                    " is not a duration; give one like 30s, 15m, 2h or 7d");
  }
  if (issue.uses < 1) {
    throw UserError("--uses " + std::to_string(issue.uses) +
                    " is not a number of uses; give 1 or more");
  }
  const Site site = openSite(options);
  const std::string output = issue.output.empty() ? site.info.name + "-token.json" : issue.output;
  std::error_code ec;
  if (output != "-" && fs::exists(output, ec)) {
    throw UserError(output + " already exists; give another file with -o FILE, or remove it");
  }
  const auto client = site.requireRunning();
  const Reply reply =
      apiCall(client, "POST", "tokens", Json{{"expires_seconds", seconds}, {"uses", issue.uses}},
              "site '" + site.info.name + "' cannot issue a token");
  const PlainJson token = completeToken(PlainJson::parse(reply.body.dump()), site);
  const std::string text = tokenText(token);
  if (output == "-") {
    std::cout << text;
    return 0;
  }
  writeFile(output, text, 0600);
  std::cout << "wrote " << output << ": a token to link to site '" << site.info.name
            << "', good for " << usesText(token.value("uses", issue.uses)) << " until "
            << localTime(token.value("expires", std::int64_t{0})) << "\n"
            << "on the other site, run: vane link create " << output << "\n"
            << "keep it secret: whoever holds it can link to this site until it is used up or "
               "expires\n";
  return 0;
}

int tokenList(const Options& options) {
  const Site site = openSite(options);
  const auto client = site.requireRunning();
  auto answer = client.get("tokens", ManagementClient::Expect::kArray);
  if (auto* f = std::get_if<Failure>(&answer)) {
    throw UserError("cannot list the tokens of site '" + site.info.name + "': " + f->message);
  }
  const Json& tokens = std::get<Json>(answer);
  if (options.json) {
    std::cout << tokens.dump(2) << "\n";
    return 0;
  }
  if (tokens.empty()) {
    std::cout << "No tokens issued.\n";
    return 0;
  }
  Table t({{"ID"}, {"EXPIRES"}, {"USED", Table::Align::kRight}, {"STATE"}, {"REDEEMED BY"}});
  for (const auto& tok : tokens) {
    const std::int64_t expires = tok.value("expires", std::int64_t{0});
    const std::int64_t uses = tok.value("uses", std::int64_t{0});
    const std::int64_t used = tok.value("used", std::int64_t{0});
    const std::string state = used >= uses ? "used up" : expires <= now() ? "expired" : "valid";
    std::string by;
    if (tok.contains("redeemed_by") && tok["redeemed_by"].is_array()) {
      for (const auto& s : tok["redeemed_by"]) {
        if (s.is_string()) by += (by.empty() ? "" : ", ") + s.get<std::string>();
      }
    }
    t.add({tok.value("id", "-"),
           localTime(expires),
           std::to_string(used) + " of " + std::to_string(uses),
           {state, state == "valid" ? Tone::kPlain : Tone::kBad},
           by.empty() ? "-" : by});
  }
  t.print(std::cout, options.style);
  return 0;
}

}  // namespace vane::cli
