#include "cli/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <optional>

#ifndef VANE_VERSION
#define VANE_VERSION "dev"
#endif

namespace vane::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

std::string invalid(std::string_view text, std::string_view why) {
  return "invalid URL '" + std::string(text) + "' (" + std::string(why) +
         "); expected http[s]://HOST[:PORT], set with --url or VANE_URL";
}

// Runs one asynchronous step to completion on the caller's thread. Beast
// applies tcp_stream's timeouts to asynchronous operations only, so the
// client starts each step asynchronously and runs its private io_context
// until that step finishes: synchronous for the caller, and never blocked for
// longer than the stream's expiry.
template <class Start>
beast::error_code await(asio::io_context& ioc, Start start) {
  beast::error_code result;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

}  // namespace

std::variant<Url, std::string> parseUrl(std::string_view text) {
  const bool tls = startsWithNoCase(text, "https://");
  if (!tls && !startsWithNoCase(text, "http://")) return invalid(text, "not an http:// URL");
  Url url;
  url.text = std::string(text);
  url.tls = tls;
  std::string_view rest = text.substr(tls ? 8 : 7);
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return invalid(text, "user info");
  if (path.find_first_of("?#") != std::string_view::npos) {
    return invalid(text, "a query or fragment");
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.base = std::string(path);

  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return invalid(text, "unclosed '['");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid(text, "junk after ']'");
      port = after.substr(1);
      if (port.empty()) return invalid(text, "empty port");
    }
  } else {
    const auto colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return invalid(text, "empty port");
    }
  }
  if (url.host.empty()) return invalid(text, "no host");
  if (port.empty()) {
    url.port = tls ? "443" : "80";
  } else {
    unsigned long value = 0;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port.size() > 5) {
        return invalid(text, "port is not a number from 1 to 65535");
      }
      value = value * 10 + static_cast<unsigned long>(c - '0');
    }
    if (value == 0 || value > 65535) return invalid(text, "port is not a number from 1 to 65535");
    url.port = std::to_string(value);
  }
  return url;
}

std::variant<HttpResponse, HttpError> httpGet(const Url& url, std::string_view path,
                                              const std::string& token, Timeouts timeouts) {
  return httpRequest(url, HttpRequest{"GET", std::string(path), "", token}, timeouts);
}

std::variant<HttpResponse, HttpError> httpRequest(const Url& url, const HttpRequest& request,
                                                  Timeouts timeouts) {
  using Kind = HttpError::Kind;
  asio::io_context ioc;
  beast::error_code ec;

  // Name resolution is the system's (getaddrinfo, bounded by its own
  // timeouts); numeric hosts, the usual case, resolve at once.
  tcp::resolver resolver(ioc);
  const auto endpoints = resolver.resolve(url.host, url.port, tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) return HttpError{Kind::kResolve, ec.message()};

  // Plain or TLS, the exchange is the same; the TLS stream adds a handshake.
  asio::ssl::context tls_ctx(asio::ssl::context::tls_client);
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  if (url.tls) {
    tls_ctx.set_verify_mode(asio::ssl::verify_peer);
    if (!url.ca_pem.empty()) {
      tls_ctx.add_certificate_authority(asio::buffer(url.ca_pem), ec);
      if (ec) return HttpError{Kind::kTls, "the CA certificate is not valid PEM"};
    } else if (url.cacert.empty()) {
      tls_ctx.set_default_verify_paths(ec);
    } else {
      tls_ctx.load_verify_file(url.cacert, ec);
      if (ec) return HttpError{Kind::kTls, "cannot read the CA file " + url.cacert};
    }
    tls_ctx.set_verify_callback(asio::ssl::host_name_verification(url.host));
    secure.emplace(ioc, tls_ctx);
    SSL_set_tlsext_host_name(secure->native_handle(), url.host.c_str());
  } else {
    plain.emplace(ioc);
  }
  beast::tcp_stream& lowest = url.tls ? beast::get_lowest_layer(*secure) : *plain;
  lowest.expires_after(timeouts.connect);
  ec = await(ioc, [&](auto handler) { lowest.async_connect(endpoints, std::move(handler)); });
  if (ec) return HttpError{Kind::kUnreachable, ec.message()};
  if (url.tls) {
    ec = await(ioc, [&](auto handler) {
      secure->async_handshake(asio::ssl::stream_base::client, std::move(handler));
    });
    if (ec == beast::error::timeout) return HttpError{Kind::kTimeout, ec.message()};
    if (ec) {
      std::string why = ec.message();
      bool untrusted = false;
      if (ec.category() == asio::error::get_ssl_category()) {
        char buf[256];
        ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
        why = buf;
        untrusted = ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
                    SSL_R_CERTIFICATE_VERIFY_FAILED;
      }
      return HttpError{Kind::kTls, why, untrusted};
    }
  }

  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) return HttpError{Kind::kNetwork, "unknown method"};
  http::request<http::string_body> req{verb, url.base + request.path, 11};
  const bool v6 = url.host.find(':') != std::string::npos;
  req.set(http::field::host, (v6 ? "[" + url.host + "]" : url.host) + ":" + url.port);
  req.set(http::field::user_agent, "vane/" VANE_VERSION);
  req.set(http::field::accept, "application/json");
  if (!request.token.empty()) req.set(http::field::authorization, "Bearer " + request.token);
  if (!request.body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = request.body;
  }
  req.prepare_payload();
  req.keep_alive(false);

  lowest.expires_after(timeouts.read);  // one deadline for writing and reading
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  auto exchange = [&](auto& stream) {
    ec = await(ioc, [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
    if (!ec) {
      ec = await(
          ioc, [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
    }
  };
  if (url.tls) {
    exchange(*secure);
  } else {
    exchange(*plain);
  }
  beast::error_code ignored;
  lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
  lowest.socket().close(ignored);
  // A TLS peer that closes without close_notify after a complete answer.
  if (ec == asio::ssl::error::stream_truncated && parser.is_done()) ec = {};

  if (ec == beast::error::timeout) return HttpError{Kind::kTimeout, ec.message()};
  if (ec == http::error::body_limit) return HttpError{Kind::kTooLarge, ec.message()};
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return HttpError{Kind::kNetwork, "the connection was closed before a complete answer"};
  }
  // Every other error of Beast's HTTP category is a parse error.
  if (ec && ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return HttpError{Kind::kNotHttp, ec.message()};
  }
  if (ec) return HttpError{Kind::kNetwork, ec.message()};

  auto res = parser.release();
  return HttpResponse{res.result_int(), std::string(res.reason()), std::move(res.body())};
}

}  // namespace vane::cli
