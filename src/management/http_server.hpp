// A small HTTP/1.1 server (Boost.Beast) for the management API and the
// claims endpoint: accepts on one event loop, bounds the connections (in all
// and per source address), reads requests with bounded sizes and deadlines,
// and hands each to a handler that answers asynchronously (it may gather
// state from other loops first).
//
// IMPORTANT: everything runs on the loop given to the constructor (the
// router's core loop), but for open(), which the router calls before that
// loop runs; the handler is called there and must answer there. Debug
// builds assert it.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "core/event_loop.hpp"
#include "core/log.hpp"

namespace vane::management {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Respond = std::function<void(Response)>;
using Handler = std::function<void(const Request&, Respond)>;

// What an HTTP endpoint's hostile clients did (relaxed atomics).
struct HttpCounters {
  std::atomic<std::uint64_t> refused_max_connections{0};  // over max_connections
  std::atomic<std::uint64_t> refused_per_source{0};       // over max_connections_per_source
  std::atomic<std::uint64_t> header_timeouts{0};          // no handshake/header in time
};

class HttpServer {
 public:
  // Bounds on what a client can make the server hold.
  static constexpr std::size_t kMaxBody = 64 * 1024;
  static constexpr std::size_t kMaxHeader = 16 * 1024;

  // With `tls`, every client connection starts with a TLS handshake, with
  // the context `tls` gives at that moment (a reload may change it).
  // `name` starts its log lines ("management", "claims").
  using TlsProvider = std::function<std::shared_ptr<boost::asio::ssl::context>()>;
  // `limits`: connections at once (all, and per source address); the TLS
  // handshake and each request's header must arrive within
  // header_timeout_ms of the connection or of the request's first byte; a
  // kept-alive connection waits idle_timeout_ms for the next request.
  HttpServer(core::EventLoop& loop, Handler handler, TlsProvider tls = {},
             std::string name = "management", config::HttpLimitsConfig limits = {});
  ~HttpServer();

  // Binds and listens. Returns an error message, or "" on success.
  std::string open(const std::string& host, std::uint16_t port);
  void start();
  void close();
  std::uint16_t port() const { return port_; }
  const HttpCounters& counters() const { return *counters_; }

  // Open connections per source address, shared by the sessions (which may
  // end on any thread: the last owner can be an answer gathered elsewhere).
  class Sources;

 private:
  template <typename Stream>
  class Session;
  void acceptNext();
  // Counts a refusal and logs at most once a second.
  void refused(const std::string& source, const char* limit);

  core::EventLoop& loop_;
  std::shared_ptr<const Handler> handler_;
  TlsProvider tls_;
  std::string name_;
  config::HttpLimitsConfig limits_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  bool closed_ = false;
  std::shared_ptr<Sources> sources_;
  std::shared_ptr<HttpCounters> counters_ = std::make_shared<HttpCounters>();
  core::LogThrottle refusal_log_;
};

}  // namespace vane::management
