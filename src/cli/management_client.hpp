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

class ManagementClient {
 public:
  ManagementClient(Url url, std::string token, Timeouts timeouts = {})
      : url_(std::move(url)), token_(std::move(token)), timeouts_(timeouts) {}

  // GET /api/v1/<path>; the answer must be JSON of the expected kind.
  enum class Expect { kObject, kArray };
  std::variant<Json, Failure> get(std::string_view path, Expect expect) const;

  const Url& url() const { return url_; }

 private:
  Failure explain(const HttpError& e) const;
  Failure explain(const HttpResponse& r, const std::string& target) const;

  Url url_;
  std::string token_;
  Timeouts timeouts_;
};

}  // namespace vane::cli
