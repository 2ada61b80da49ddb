// Tokens: the file one site gives another so that it can link to it.
//
//   {"version":1, "site":"b", "id":"...", "secret":"...", "claim":"HOST:PORT",
//    "links":["HOST:PORT"], "ca":"-----BEGIN CERTIFICATE-----...",
//    "expires":UNIX_SECONDS, "uses":1, "signature":"BASE64"}
//
// `signature` is the site CA's ECDSA signature (pki::sign) of the canonical
// form: the object without "signature", keys sorted, compact
// (nlohmann::json::dump()). It makes the file tamper-evident: a holder can
// check that nothing was changed since the issuing site signed it, with the
// CA certificate the file carries; the claim (TLS to the claim port, trusting
// only that CA) then checks that the site answering is the one that issued it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/site.hpp"

namespace vane::cli {

struct Token {
  std::string site;
  std::string id;
  std::string secret;
  std::string claim_host;
  int claim_port = 0;
  std::vector<std::string> links;  // HOST:PORT
  std::string ca;                  // PEM
  std::int64_t expires = 0;        // Unix seconds
  std::int64_t uses = 0;
};

// Reads, parses and checks a token file: well-formed, signature valid,
// not expired (in that order); UserError with the sentence for each.
Token readToken(const std::string& file);
// The same checks on a token file's content; `file` names it in messages.
Token parseTokenText(const std::string& text, const std::string& file);

// The canonical text a token's signature covers.
std::string canonicalToken(const nlohmann::json& token);

// "15m", "1h", "7d", "30s", or plain seconds; -1 if malformed.
std::int64_t parseDuration(const std::string& text);

// Local time, "2024-05-01 14:03:12 CEST".
std::string localTime(std::int64_t unix_seconds);

struct IssueOptions {
  std::string expires = "15m";
  int uses = 1;
  std::string output;  // "" = SITE-token.json; "-" = stdout
};
int tokenIssue(const Options& options, const IssueOptions& issue);
int tokenList(const Options& options);

}  // namespace vane::cli
