// A small HTTP/1.1 server (Boost.Beast) for the management API: accepts on
// one event loop, reads requests with bounded sizes and an idle timeout, and
// hands each to a handler that answers asynchronously (it may gather state
// from other loops first).
//
// IMPORTANT: everything runs on the loop given to the constructor.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <memory>
#include <string>

#include "core/event_loop.hpp"

namespace vane::management {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Respond = std::function<void(Response)>;
using Handler = std::function<void(const Request&, Respond)>;

class HttpServer {
 public:
  // Bounds on what a client can make the server hold.
  static constexpr std::size_t kMaxBody = 64 * 1024;
  static constexpr std::size_t kMaxHeader = 16 * 1024;
  static constexpr std::size_t kMaxSessions = 64;
  static constexpr std::chrono::seconds kIdleTimeout{30};

  // With `tls`, every client connection starts with a TLS handshake, with
  // the context `tls` gives at that moment (a reload may change it).
  // `name` starts its log lines ("management", "claims").
  using TlsProvider = std::function<std::shared_ptr<boost::asio::ssl::context>()>;
  // `idle_timeout` bounds the TLS handshake, each request and the wait for
  // the next one.
  HttpServer(core::EventLoop& loop, Handler handler, TlsProvider tls = {},
             std::string name = "management", std::chrono::seconds idle_timeout = kIdleTimeout);
  ~HttpServer();

  // Binds and listens. Returns an error message, or "" on success.
  std::string open(const std::string& host, std::uint16_t port);
  void start();
  void close();
  std::uint16_t port() const { return port_; }

 private:
  template <typename Stream>
  class Session;
  void acceptNext();

  core::EventLoop& loop_;
  std::shared_ptr<const Handler> handler_;
  TlsProvider tls_;
  std::string name_;
  std::chrono::seconds idle_timeout_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  bool closed_ = false;
  std::shared_ptr<std::atomic<std::size_t>> sessions_ =
      std::make_shared<std::atomic<std::size_t>>(0);
};

}  // namespace vane::management
