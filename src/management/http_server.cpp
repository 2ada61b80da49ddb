#include "management/http_server.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>

#include "core/log.hpp"

namespace vane::management {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

// Open connections per source address. Sessions end on any thread.
class HttpServer::Sources {
 public:
  // Takes a place for `source` unless it has `max` already.
  bool acquire(const std::string& source, std::uint32_t max) {
    std::lock_guard lock(mutex_);
    auto& n = open_[source];
    if (n >= max) return false;
    ++n;
    ++total_;
    return true;
  }
  void release(const std::string& source) {
    std::lock_guard lock(mutex_);
    auto it = open_.find(source);
    if (it == open_.end()) return;
    if (--it->second == 0) open_.erase(it);
    --total_;
  }
  std::size_t total() const {
    std::lock_guard lock(mutex_);
    return total_;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::uint32_t> open_;  // only sources with a connection
  std::size_t total_ = 0;
};

// One client connection: reads a request, lets the handler answer, writes
// the response, and reads the next (keep-alive) until the client closes,
// sends something invalid, or misses a deadline: the TLS handshake and the
// first request's header within header_timeout of the connection; then each
// request's first byte within idle_timeout of the previous answer, and its
// header within header_timeout of that byte (a client trickling a header
// byte by byte is cut off at the deadline, not kept alive by each byte).
// Stream: beast::tcp_stream, or beast::ssl_stream<beast::tcp_stream> (TLS).
template <typename Stream>
class HttpServer::Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <typename... Args>
  Session(core::EventLoop& loop, std::shared_ptr<const Handler> handler,
          std::shared_ptr<Sources> sources, std::string source,
          std::shared_ptr<HttpCounters> counters, const config::HttpLimitsConfig& limits,
          Args&&... args)
      : loop_(loop),
        stream_(std::forward<Args>(args)...),
        handler_(std::move(handler)),
        sources_(std::move(sources)),
        source_(std::move(source)),
        counters_(std::move(counters)),
        header_timeout_(limits.header_timeout_ms),
        idle_timeout_(limits.idle_timeout_ms) {}
  // The source's place was taken by the accept.
  ~Session() { sources_->release(source_); }

  void keep(std::shared_ptr<asio::ssl::context> ctx, std::string name) {
    ctx_ = std::move(ctx);
    name_ = std::move(name);
  }

  void start() {
    // The handshake and the first header share one deadline.
    beast::get_lowest_layer(stream_).expires_after(header_timeout_);
    if constexpr (kTls) {
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  if (ec == beast::error::timeout) {
                                    self->timedOut("TLS handshake");
                                  } else {
                                    VANE_LOG_INFO("{}: TLS handshake with {} failed: {}",
                                                  self->name_, self->source_, ec.message());
                                  }
                                  self->shutdown();
                                  return;
                                }
                                self->readHeader(/*restart_deadline=*/false);
                              });
    } else {
      readHeader(/*restart_deadline=*/false);
    }
  }

 private:
  // Waits (idle_timeout) for the next request's first bytes.
  void awaitNext() {
    if (buffer_.size() > 0) {  // pipelined: already here
      readHeader(/*restart_deadline=*/true);
      return;
    }
    beast::get_lowest_layer(stream_).expires_after(idle_timeout_);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) {
                                self->shutdown();  // closed, reset or idle: nothing to answer
                                return;
                              }
                              self->buffer_.commit(n);
                              self->readHeader(/*restart_deadline=*/true);
                            });
  }

  void readHeader(bool restart_deadline) {
    parser_.emplace();
    parser_->body_limit(kMaxBody);
    parser_->header_limit(kMaxHeader);
    if (restart_deadline) beast::get_lowest_layer(stream_).expires_after(header_timeout_);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec == beast::error::timeout) {
                                self->timedOut("request header");
                                self->shutdown();
                                return;
                              }
                              if (ec) {
                                self->onRead(ec);
                                return;
                              }
                              self->readBody();
                            });
  }

  void readBody() {
    // At most kMaxBody bytes: the idle timeout bounds how long they take.
    beast::get_lowest_layer(stream_).expires_after(idle_timeout_);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void timedOut(const char* what) {
    counters_->header_timeouts.fetch_add(1, std::memory_order_relaxed);
    VANE_LOG_INFO("{}: no {} from {} within {} ms: closing", name_, what, source_,
                  header_timeout_.count());
  }

  void onRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::ssl::error::stream_truncated) {
      shutdown();
      return;
    }
    if (ec) {
      // Malformed or too large: answer 400/413/431 and close.
      Response res{ec == http::error::body_limit     ? http::status::payload_too_large
                   : ec == http::error::header_limit ? http::status::request_header_fields_too_large
                                                     : http::status::bad_request,
                   11};
      res.set(http::field::content_type, "application/json");
      res.body() = std::string(R"({"error":"bad request: )") + ec.message() + "\"}";
      res.keep_alive(false);
      res.prepare_payload();
      write(std::move(res));
      return;
    }
    // The handler runs on the server's loop (the router's core loop, which
    // owns what the API reads and changes).
    VANE_ASSERT_THREAD(loop_);
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

  // Wherever the handler answers from: it must be this loop, which owns
  // the stream.
  void answer(Response res) {
    VANE_ASSERT_THREAD(loop_);
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
    beast::get_lowest_layer(stream_).expires_after(idle_timeout_);
    http::async_write(stream_, *shared,
                      [self = this->shared_from_this(), shared](beast::error_code ec, std::size_t) {
                        if (ec || !shared->keep_alive()) {
                          self->shutdown();
                          return;
                        }
                        self->awaitNext();
                      });
  }

  void shutdown() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  core::EventLoop& loop_;
  // Declared before the stream: destroyed after it.
  std::shared_ptr<asio::ssl::context> ctx_;
  std::string name_ = "management";
  Stream stream_;
  std::shared_ptr<const Handler> handler_;
  std::shared_ptr<Sources> sources_;
  std::string source_;
  std::shared_ptr<HttpCounters> counters_;
  std::chrono::milliseconds header_timeout_;
  std::chrono::milliseconds idle_timeout_;
  beast::flat_buffer buffer_{kMaxHeader + 4096};  // a whole header, and some body
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;
};

HttpServer::HttpServer(core::EventLoop& loop, Handler handler, TlsProvider tls, std::string name,
                       config::HttpLimitsConfig limits)
    : loop_(loop),
      handler_(std::make_shared<const Handler>(std::move(handler))),
      tls_(std::move(tls)),
      name_(std::move(name)),
      limits_(limits),
      acceptor_(loop.context()),
      sources_(std::make_shared<Sources>()) {}

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
  VANE_ASSERT_THREAD(loop_);
  acceptNext();
}

void HttpServer::close() {
  VANE_ASSERT_THREAD(loop_);
  closed_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void HttpServer::refused(const std::string& source, const char* limit) {
  if (const auto n = refusal_log_.admit())
    VANE_LOG_WARN("{}: {} connection(s) refused (last from {}): limit {} reached", name_, n, source,
                  limit);
}

void HttpServer::acceptNext() {
  if (closed_) return;
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    VANE_ASSERT_THREAD(loop_);
    if (closed_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      const auto peer = socket.remote_endpoint(ec);
      const std::string source = ec ? std::string("?") : peer.address().to_string();
      if (sources_->total() >= limits_.max_connections) {
        counters_->refused_max_connections.fetch_add(1, std::memory_order_relaxed);
        refused(source, "max_connections");
        socket.close(ec);
      } else if (!sources_->acquire(source, limits_.max_connections_per_source)) {
        counters_->refused_per_source.fetch_add(1, std::memory_order_relaxed);
        refused(source, "max_connections_per_source");
        socket.close(ec);
      } else if (tls_) {
        auto ctx = tls_();
        auto session = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            loop_, handler_, sources_, source, counters_, limits_, std::move(socket), *ctx);
        session->keep(std::move(ctx), name_);  // the context lives as long as the session
        session->start();
      } else {
        auto session = std::make_shared<Session<beast::tcp_stream>>(
            loop_, handler_, sources_, source, counters_, limits_, std::move(socket));
        session->keep(nullptr, name_);
        session->start();
      }
    }
    acceptNext();
  });
}

}  // namespace vane::management
