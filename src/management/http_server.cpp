#include "management/http_server.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <optional>
#include <type_traits>

#include "core/log.hpp"

namespace vane::management {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

// One client connection: reads a request, lets the handler answer, writes
// the response, and reads the next (keep-alive) until the client closes,
// sends something invalid, or is idle for the server's idle timeout.
// Stream: beast::tcp_stream, or beast::ssl_stream<beast::tcp_stream> (TLS).
template <typename Stream>
class HttpServer::Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <typename... Args>
  Session(std::shared_ptr<const Handler> handler, std::shared_ptr<std::atomic<std::size_t>> count,
          Args&&... args)
      : stream_(std::forward<Args>(args)...),
        handler_(std::move(handler)),
        count_(std::move(count)) {
    count_->fetch_add(1, std::memory_order_relaxed);
  }
  // The last owner may be an answer gathered on a worker loop: the count is
  // atomic because a session can end on any thread.
  ~Session() { count_->fetch_sub(1, std::memory_order_relaxed); }

  void keep(std::shared_ptr<asio::ssl::context> ctx, std::string name) {
    ctx_ = std::move(ctx);
    name_ = std::move(name);
  }
  void setIdleTimeout(std::chrono::seconds d) { idle_ = d; }

  void start() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(idle_);
      stream_.async_handshake(
          asio::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) {
              VANE_LOG_INFO("{}: TLS handshake failed: {}", self->name_, ec.message());
              self->shutdown();
              return;
            }
            self->readNext();
          });
    } else {
      readNext();
    }
  }

 private:
  void readNext() {
    parser_.emplace();
    parser_->body_limit(kMaxBody);
    parser_->header_limit(kMaxHeader);
    beast::get_lowest_layer(stream_).expires_after(idle_);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::ssl::error::stream_truncated) {
      shutdown();
      return;
    }
    if (ec) {
      // Malformed or too large: answer 400/413 and close.
      Response res{ec == http::error::body_limit ? http::status::payload_too_large
                                                 : http::status::bad_request,
                   11};
      res.set(http::field::content_type, "application/json");
      res.body() = std::string(R"({"error":"bad request: )") + ec.message() + "\"}";
      res.keep_alive(false);
      res.prepare_payload();
      write(std::move(res));
      return;
    }
    request_ = parser_->release();
    auto answered = std::make_shared<bool>(false);
    try {
      (*handler_)(request_, [self = this->shared_from_this(), answered](Response res) {
        *answered = true;
        self->answer(std::move(res));
      });
    } catch (const std::exception& e) {
      // A request the handler could not deal with must not reach the loop
      // (and take the router down): answer 500 and close this connection.
      VANE_LOG_WARN("{}: request failed: {}", name_, e.what());
      if (!*answered) {
        Response res{http::status::internal_server_error, 11};
        res.set(http::field::content_type, "application/json");
        res.body() = R"({"error":"internal error"})";
        res.keep_alive(false);
        res.prepare_payload();
        write(std::move(res));
      }
    }
  }

  void answer(Response res) {
    res.version(request_.version());
    res.keep_alive(request_.keep_alive());
    res.set(http::field::server, "vaned");
    res.prepare_payload();
    if (request_.method() == http::verb::head) {
      // The headers a GET would get, Content-Length included; no content.
      const auto length = res[http::field::content_length];
      res.body().clear();
      res.set(http::field::content_length, length);
    }
    write(std::move(res));
  }

  void write(Response res) {
    auto shared = std::make_shared<Response>(std::move(res));
    beast::get_lowest_layer(stream_).expires_after(idle_);
    http::async_write(stream_, *shared,
                      [self = this->shared_from_this(), shared](beast::error_code ec, std::size_t) {
                        if (ec || !shared->keep_alive()) {
                          self->shutdown();
                          return;
                        }
                        self->readNext();
                      });
  }

  void shutdown() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  // Declared before the stream: destroyed after it.
  std::shared_ptr<asio::ssl::context> ctx_;
  std::string name_ = "management";
  std::chrono::seconds idle_ = kIdleTimeout;
  Stream stream_;
  std::shared_ptr<const Handler> handler_;
  std::shared_ptr<std::atomic<std::size_t>> count_;
  beast::flat_buffer buffer_{8192};
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;
};

HttpServer::HttpServer(core::EventLoop& loop, Handler handler, TlsProvider tls, std::string name,
                       std::chrono::seconds idle_timeout)
    : loop_(loop),
      handler_(std::make_shared<const Handler>(std::move(handler))),
      tls_(std::move(tls)),
      name_(std::move(name)),
      idle_timeout_(idle_timeout),
      acceptor_(loop.context()) {}

HttpServer::~HttpServer() = default;

std::string HttpServer::open(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  tcp::resolver resolver(loop_.context());
  auto results = resolver.resolve(host, std::to_string(port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) return "cannot resolve host '" + host + "': " + ec.message();
  const tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message();
  port_ = acceptor_.local_endpoint(ec).port();
  VANE_LOG_INFO("{} listening on {}:{}{}", name_,
                acceptor_.local_endpoint(ec).address().to_string(), port_, tls_ ? " (TLS)" : "");
  return {};
}

void HttpServer::start() {
  acceptNext();
}

void HttpServer::close() {
  closed_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void HttpServer::acceptNext() {
  if (closed_) return;
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (closed_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (sessions_->load(std::memory_order_relaxed) >= kMaxSessions) {
        VANE_LOG_WARN("{}: {} clients at once: refusing another", name_, kMaxSessions);
        socket.close(ec);
      } else {
        if (tls_) {
          auto ctx = tls_();
          auto session = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
              handler_, sessions_, std::move(socket), *ctx);
          session->keep(std::move(ctx), name_);  // the context lives as long as the session
          session->setIdleTimeout(idle_timeout_);
          session->start();
        } else {
          auto session =
              std::make_shared<Session<beast::tcp_stream>>(handler_, sessions_, std::move(socket));
          session->setIdleTimeout(idle_timeout_);
          session->start();
        }
      }
    }
    acceptNext();
  });
}

}  // namespace vane::management
