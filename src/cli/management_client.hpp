// The management API as the commands see it: GET a path, get the JSON
// answer back, or one sentence that tells the user what went wrong and what
// to do about it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "cli/http_client.hpp"

namespace vane::cli {

// Keeps the API's key order, so --json prints objects as they were received.
using Json = nlohmann::ordered_json;

// A failed request, in one sentence (no trailing period).
struct Failure {
  std::string message;
};

// Any HTTP answer to a change: its status and JSON body (null if none).
struct Reply {
  unsigned status = 0;
  Json body;

  bool ok() const { return status >= 200 && status < 300; }
  // The API's `error` text, or "HTTP <status>" when the body has none.
  std::string error() const;
};

class ManagementClient {
 public:
  ManagementClient(Url url, std::string token, Timeouts timeouts = {})
      : url_(std::move(url)), token_(std::move(token)), timeouts_(timeouts) {}

  // GET /api/v1/<path>; the answer must be JSON of the expected kind.
  enum class Expect { kObject, kArray };
  std::variant<Json, Failure> get(std::string_view path, Expect expect) const;

  // METHOD /api/v1/<path> with a JSON body (none if null). Failure only when
  // there is no HTTP answer or the token is refused; any other status is the
  // caller's to judge.
  std::variant<Reply, Failure> send(std::string_view method, std::string_view path,
                                    const Json& body = nullptr) const;

  const Url& url() const { return url_; }

  // Failures then speak of the site (`vane site start`, its log) instead of
  // --url and VANE_URL.
  void forSite(std::string name, std::string log_path) {
    site_ = std::move(name);
    site_log_ = std::move(log_path);
  }

 private:
  Failure explain(const HttpError& e) const;
  Failure explain(const HttpResponse& r, const std::string& target) const;

  Url url_;
  std::string token_;
  std::string site_;
  std::string site_log_;
  Timeouts timeouts_;
};

}  // namespace vane::cli
