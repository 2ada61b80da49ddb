// A small blocking HTTP/1.1 client for the management API and a site's claim
// service: http or https (OpenSSL, peer certificate and host name verified),
// one request per connection, every step bounded by a timeout and every
// answer by a size limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace vane::cli {

// http[s]://HOST[:PORT][/PATH]; PATH is a prefix for the API's paths (a proxy).
struct Url {
  std::string text;    // as given, for messages
  bool tls = false;    // https
  std::string cacert;  // https: CA file to trust ("" = the system's)
  std::string ca_pem;  // https: a CA certificate (PEM) to trust instead of any file
  std::string host;    // an IPv6 literal without its brackets
  std::string port;    // 80 (443 for https) when the URL names none
  std::string base;    // "" or "/prefix", without a trailing slash
};

// Returns the URL, or a sentence saying what is wrong with it.
std::variant<Url, std::string> parseUrl(std::string_view text);

struct Timeouts {
  std::chrono::milliseconds connect{5000};
  std::chrono::milliseconds read{5000};  // writing the request and reading the whole answer
};

struct HttpResponse {
  unsigned status = 0;
  std::string reason;
  std::string body;
};

struct HttpError {
  enum class Kind {
    kResolve,      // the host name does not resolve
    kUnreachable,  // refused, no route, or no answer to connect within the timeout
    kTimeout,      // connected, but no complete answer within the timeout
    kNotHttp,      // the peer answered something that is not HTTP/1.x
    kTooLarge,     // the answer exceeds kMaxBody
    kTls,          // https: the handshake failed (e.g. the certificate is not trusted)
    kNetwork,      // anything else (connection reset, ...)
  };
  Kind kind;
  std::string detail;      // the system's words, for the unusual cases
  bool untrusted = false;  // kTls: the peer's certificate (or its host name) did not verify
};

inline constexpr std::uint64_t kMaxBody = 16 * 1024 * 1024;

struct HttpRequest {
  std::string method = "GET";  // GET, POST or DELETE
  std::string path;            // appended to url.base
  std::string body;            // sent as application/json when not empty
  std::string token;           // "Authorization: Bearer TOKEN" unless empty
};

std::variant<HttpResponse, HttpError> httpRequest(const Url& url, const HttpRequest& request,
                                                  Timeouts timeouts = {});

// GET url.base + path, with "Authorization: Bearer TOKEN" unless token is empty.
std::variant<HttpResponse, HttpError> httpGet(const Url& url, std::string_view path,
                                              const std::string& token, Timeouts timeouts = {});

}  // namespace vane::cli
