// Fuzz target for token files as the `vane` CLI reads them (`vane link
// create TOKEN-FILE`): vane::cli::parseTokenText(), the body of readToken()
// (src/cli/token.hpp).
//
// Input, by its first line:
//  - "@sign": the rest is JSON; when it is an object, the harness gives it
//    its own CA certificate as "ca" and signs it with that CA's key, as a
//    site does when it issues a token, and reads the result. So the checks
//    after the signature (expiry, and what the CLI then takes from the
//    token) are reached with any content;
//  - "@duration": the rest goes to parseDuration() (`--expires`);
//  - anything else is the token file's content as it is.
//
// Besides "no crash, no sanitizer report": a token that is refused is
// refused with a UserError (the sentence `vane` prints) that names the file,
// and a signed one ("@sign") never as altered; a token that is accepted has
// every field the CLI uses (site, id, secret, ca, a claim HOST:PORT with a
// port in 1..65535, at least one link HOST:PORT), the values of the file,
// and has not expired. parseDuration() gives -1 or the number of seconds.
//
// VANE_FUZZ_TRACE=1 prints each input's outcome on stderr.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "cli/errors.hpp"
#include "cli/site_dir.hpp"
#include "cli/token.hpp"
#include "pki/pki.hpp"

namespace {

using json = nlohmann::json;  // sorted keys, as the CLI signs and checks

constexpr const char* kFile = "fuzz-token.json";

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "token fuzz target: invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

const vane::pki::CertAndKey& ca() {
  static const vane::pki::CertAndKey c =
      vane::pki::makeCa("fuzz token CA", std::chrono::hours(24 * 365 * 10));
  return c;
}

void checkToken(const vane::cli::Token& t, const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  check(j.is_object(), "token accepted from text that is not a JSON object");
  check(j.value("version", json()) == 1, "token accepted without version 1");
  check(!t.site.empty() && !t.id.empty() && !t.secret.empty() && !t.ca.empty(),
        "token accepted with an empty field");
  check(j["site"] == t.site && j["id"] == t.id && j["secret"] == t.secret && j["ca"] == t.ca,
        "token fields differ from the file");
  // As the CLI reads them: a whole number past INT64_MAX wraps (an expiry
  // then reads as long past; uses is shown to nobody).
  check(j["expires"].get<std::int64_t>() == t.expires && j["uses"].get<std::int64_t>() == t.uses,
        "token numbers differ from the file");
  check(!t.claim_host.empty() && t.claim_port >= 1 && t.claim_port <= 65535,
        "token accepted with a bad claim endpoint");
  std::string claim_host;
  int claim_port = 0;
  check(vane::cli::splitHostPort(j["claim"].get<std::string>(), claim_host, claim_port) &&
            claim_host == t.claim_host && claim_port == t.claim_port,
        "claim endpoint differs from the file");
  check(!t.links.empty() && j["links"].size() == t.links.size(), "token links differ");
  for (std::size_t i = 0; i < t.links.size(); ++i) {
    std::string host;
    int port = 0;
    check(j["links"][i] == t.links[i], "token link differs from the file");
    check(vane::cli::splitHostPort(t.links[i], host, port) && !host.empty(),
          "token link not HOST:PORT");
  }
  check(t.expires > static_cast<std::int64_t>(std::time(nullptr)), "expired token accepted");
  // The signed text leaves the signature out and is canonical: reading it
  // back gives it again.
  const std::string canonical = vane::cli::canonicalToken(j);
  const json again = json::parse(canonical, nullptr, false);
  check(again.is_object() && !again.contains("signature"), "canonical text with the signature");
  check(vane::cli::canonicalToken(again) == canonical, "canonical text not canonical");
}

void readToken(const std::string& text, bool signed_here) {
  try {
    const vane::cli::Token t = vane::cli::parseTokenText(text, kFile);
    if (std::getenv("VANE_FUZZ_TRACE") != nullptr) std::fprintf(stderr, "  accepted\n");
    checkToken(t, text);
  } catch (const vane::cli::UserError& e) {
    const std::string message = e.what();
    if (std::getenv("VANE_FUZZ_TRACE") != nullptr) std::fprintf(stderr, "  %s\n", e.what());
    check(message.find(kFile) != std::string::npos, "refusal that does not name the file");
    if (signed_here) {
      check(message.find("altered") == std::string::npos, "a correctly signed token refused");
    }
  }
}

void signAndRead(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  j["ca"] = ca().certificate;
  j.erase("signature");
  j["signature"] = vane::pki::sign(ca().key, vane::cli::canonicalToken(j));
  readToken(j.dump(2), true);
}

void duration(const std::string& text) {
  const std::int64_t d = vane::cli::parseDuration(text);
  if (std::getenv("VANE_FUZZ_TRACE") != nullptr)
    std::fprintf(stderr, "  %lld\n", static_cast<long long>(d));
  check(d >= -1, "negative duration");
  if (d < 0) return;
  check(!text.empty() && text[0] >= '0' && text[0] <= '9', "duration without digits");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  try {
    const std::size_t eol = input.find('\n');
    const std::string first = input.substr(0, eol);
    const std::string rest = eol == std::string::npos ? std::string() : input.substr(eol + 1);
    if (first == "@sign") {
      signAndRead(rest);
    } else if (first == "@duration") {
      duration(rest);
    } else {
      readToken(input, false);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "token fuzz target: exception: %s\n", e.what());
    fail("an exception other than UserError");
  }
  return 0;
}
