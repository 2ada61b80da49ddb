// Fuzz target for the claims endpoint (src/management/claims.hpp): the requests
// another site sends to POST /claim, its body {id, secret, site, csr} above
// all, handed to the handler of a real vane::management::Claims as HttpServer
// hands them (see ../http_request.hpp for the input format).
//
// The Claims object is loaded once from files in a temporary directory: a
// site CA made at start-up and a state file with three tokens, "live"
// (secret "live-secret", one use left), "expired" ("expired-secret") and
// "used-up" ("used-up-secret"). The site is "fuzz-site". A claim that
// succeeds uses up "live"; the next input starts again from the first state.
//
// Besides "no crash, no sanitizer report, no exception out of the handler",
// every request gets exactly one answer, at once, that passes checkAnswer()
// (JSON in valid UTF-8, an error message with every refusal), with the
// status the documented order of checks gives (docs/management.md): 404 for
// another path, 405 for another method, 400 for a body that is not a JSON
// object with the four strings, 403 for an unknown token or wrong secret, an
// expired or used-up token, then 400 for a bad site name, the site's own
// name or a csr that is not a PEM request. A 200 only for the live token,
// with a certificate signed by the site CA for exactly the site named in the
// request (CN = site), whatever the request's subject says.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../http_request.hpp"
#include "config/config.hpp"
#include "management/claims.hpp"
#include "pki/pki.hpp"

namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using json = nlohmann::json;
using vane::management::Request;
using vane::management::Response;

constexpr const char* kTarget = "claims";
constexpr std::string_view kSite = "fuzz-site";
constexpr std::string_view kCaName = "fuzz-site CA";
constexpr std::size_t kMaxRequests = 8;

[[noreturn]] void fail(const char* what) {
  vane::fuzz::httpFail(kTarget, what);
}

struct TokenModel {
  std::string id;
  std::string secret;
  std::int64_t expires;
  int uses;
  int used;
};

// The tokens of the state file, as the harness expects the handler to see them.
std::vector<TokenModel> initialTokens() {
  return {{"live", "live-secret", 4102444800, 1, 0},  // 2100-01-01
          {"expired", "expired-secret", 1, 1, 0},
          {"used-up", "used-up-secret", 4102444800, 1, 1}};
}

void writeFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) {
    std::fprintf(stderr, "claims fuzz target: cannot write %s\n", path.c_str());
    std::abort();
  }
}

class Harness {
 public:
  Harness() {
    // tmpfs when there is one: a successful claim writes and syncs the state file.
    std::string base = "/dev/shm";
    std::error_code ec;
    if (!fs::is_directory(base, ec)) base = fs::temp_directory_path().string();
    std::string pattern = base + "/vane-fuzz-claims-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("claims fuzz target: mkdtemp");
      std::abort();
    }
    dir_ = pattern;
    ca_ = vane::pki::makeCa(std::string(kCaName), std::chrono::hours(24 * 365 * 10));
    writeFile(dir_ / "ca.pem", ca_.certificate);
    writeFile(dir_ / "ca-key.pem", ca_.key);
    json tokens = json::array();
    for (const auto& t : initialTokens()) {
      tokens.push_back({{"id", t.id},
                        {"secret_sha256", vane::pki::sha256Hex(t.secret)},
                        {"created", 0},
                        {"expires", t.expires},
                        {"uses", t.uses},
                        {"used", t.used},
                        {"redeemed_by", json::array()}});
    }
    state_ = json{{"tokens", tokens}}.dump() + "\n";
    cfg_.enabled = true;
    cfg_.host = "127.0.0.1";
    cfg_.tls_profile = "claims";
    cfg_.ca_certificate = (dir_ / "ca.pem").string();
    cfg_.ca_key = (dir_ / "ca-key.pem").string();
    cfg_.state_file = (dir_ / "state.json").string();
    cfg_.advertise_host = "claims.example.net";
    reset();
  }
  ~Harness() {
    claims_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A Claims in the first state (again).
  void reset() {
    writeFile(cfg_.state_file, state_);
    claims_ = std::make_unique<vane::management::Claims>(
        cfg_, std::string(kSite),
        [] { return std::vector<std::string>{"claims.example.net:55671"}; }, 55672);
    if (std::string err = claims_->load(); !err.empty()) {
      std::fprintf(stderr, "claims fuzz target: %s\n", err.c_str());
      std::abort();
    }
    tokens_ = initialTokens();
    dirty_ = false;
  }

  void run(std::string_view input) {
    if (dirty_) reset();
    const vane::management::Handler handler = claims_->handler();
    for (std::string_view piece : vane::fuzz::splitRequests(input, kMaxRequests)) {
      const std::optional<Request> req = vane::fuzz::parseRequest(piece);
      if (!req) continue;
      std::optional<Response> answer;
      int answers = 0;
      try {
        handler(*req, [&](Response res) {
          ++answers;
          answer = std::move(res);
        });
      } catch (const std::exception& e) {
        std::fprintf(stderr, "claims fuzz target: the handler threw: %s\n", e.what());
        fail("the handler threw");
      }
      vane::fuzz::traceAnswer(*req, answer ? &*answer : nullptr);
      if (answers != 1) fail("not exactly one answer");
      check(*req, *answer);
    }
  }

 private:
  static bool validSite(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
    return true;
  }

  void expect(const Response& res, http::status status, const char* what) const {
    if (res.result() != status) {
      std::fprintf(stderr, "claims fuzz target: status %u, expected %u (%s)\n", res.result_int(),
                   static_cast<unsigned>(status), what);
      fail("unexpected status");
    }
  }

  void check(const Request& req, const Response& res) {
    const json body = vane::fuzz::checkAnswer(kTarget, res);
    if (res[http::field::content_type] != "application/json") fail("answer that is not JSON");
    if (req.target() != "/claim") return expect(res, http::status::not_found, "another path");
    if (req.method() != http::verb::post) {
      expect(res, http::status::method_not_allowed, "another method");
      if (res[http::field::allow] != "POST") fail("405 without Allow: POST");
      return;
    }
    const json claim = json::parse(req.body(), nullptr, false);
    auto text = [&claim](const char* key) -> const std::string* {
      if (!claim.is_object()) return nullptr;
      const auto it = claim.find(key);
      if (it == claim.end() || !it->is_string()) return nullptr;
      return &it->get_ref<const std::string&>();
    };
    const std::string* id = text("id");
    const std::string* secret = text("secret");
    const std::string* site = text("site");
    const std::string* csr = text("csr");
    if (id == nullptr || secret == nullptr || site == nullptr || csr == nullptr) {
      return expect(res, http::status::bad_request, "not a claim body");
    }
    TokenModel* token = nullptr;
    for (auto& t : tokens_) {
      if (t.id == *id && t.secret == *secret) token = &t;
    }
    if (token == nullptr) return expect(res, http::status::forbidden, "unknown token");
    if (token->expires <= std::time(nullptr)) {
      return expect(res, http::status::forbidden, "expired token");
    }
    if (token->used >= token->uses) return expect(res, http::status::forbidden, "used up");
    if (!validSite(*site)) return expect(res, http::status::bad_request, "bad site name");
    if (*site == kSite) return expect(res, http::status::bad_request, "own site name");
    if (csr->find("-----BEGIN CERTIFICATE REQUEST-----") == std::string::npos) {
      return expect(res, http::status::bad_request, "not a PEM request");
    }
    if (res.result() == http::status::bad_request) return;  // a request OpenSSL refused
    expect(res, http::status::ok, "a valid claim");
    ++token->used;
    dirty_ = true;
    if (!body.is_object() || !body.contains("certificate") || !body["certificate"].is_string() ||
        body.value("ca", "") != ca_.certificate || body.value("site", "") != kSite) {
      fail("200 without certificate, ca and site");
    }
    const std::string certificate = body["certificate"].get<std::string>();
    const vane::pki::CertInfo info = vane::pki::describe(certificate);
    if (info.subject_cn != *site) fail("certificate for another name than the site claimed");
    if (info.issuer_cn != kCaName) fail("certificate from another issuer");
    if (!vane::pki::signedBy(certificate, ca_.certificate))
      fail("certificate not signed by the CA");
  }

  fs::path dir_;
  vane::pki::CertAndKey ca_;
  std::string state_;
  vane::config::ClaimsConfig cfg_;
  std::unique_ptr<vane::management::Claims> claims_;
  std::vector<TokenModel> tokens_;
  bool dirty_ = false;
};

std::unique_ptr<Harness> harness;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  vane::fuzz::logIntoNullSink();
  harness = std::make_unique<Harness>();
  // Removes the temporary directory when the run ends normally.
  std::atexit([] { harness.reset(); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  harness->run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
