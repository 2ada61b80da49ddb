// One connection of the HTTP adaptor, to a client or to a server: a TCP
// socket, with TLS over it or not. Moves (a server connection goes to the
// connector's pool and back with its TLS state).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <utility>

namespace vane::adaptors::http {

class HttpStream {
 public:
  using tcp = boost::asio::ip::tcp;
  using TlsStream = boost::asio::ssl::stream<tcp::socket>;

  explicit HttpStream(tcp::socket s) : plain_(std::move(s)) {}

  // From now on bytes go through TLS with `ctx` (before any are sent).
  void startTls(boost::asio::ssl::context& ctx) {
    tls_ = std::make_unique<TlsStream>(std::move(plain_), ctx);
  }
  bool tls() const { return tls_ != nullptr; }
  TlsStream& tlsStream() { return *tls_; }

  tcp::socket& socket() { return tls_ ? tls_->next_layer() : plain_; }
  bool isOpen() { return socket().is_open(); }

  template <typename Buffers, typename Handler>
  void asyncReadSome(const Buffers& b, Handler&& h) {
    if (tls_) {
      tls_->async_read_some(b, std::forward<Handler>(h));
    } else {
      plain_.async_read_some(b, std::forward<Handler>(h));
    }
  }
  // All of `b`.
  template <typename Buffers, typename Handler>
  void asyncWrite(const Buffers& b, Handler&& h) {
    if (tls_) {
      boost::asio::async_write(*tls_, b, std::forward<Handler>(h));
    } else {
      boost::asio::async_write(plain_, b, std::forward<Handler>(h));
    }
  }

  // Closed, and back to a plain socket (for a new connection).
  void renew() {
    tls_.reset();
    boost::system::error_code ec;
    plain_.close(ec);
  }

  // Closes without more (no TLS close_notify: the framing of HTTP says
  // where answers end).
  void close() {
    boost::system::error_code ec;
    socket().close(ec);
  }
  // Closes with a TCP reset.
  void reset() {
    boost::system::error_code ec;
    if (socket().is_open()) socket().set_option(boost::asio::socket_base::linger(true, 0), ec);
    socket().close(ec);
  }

 private:
  tcp::socket plain_;               // when not tls_ (else moved into it)
  std::unique_ptr<TlsStream> tls_;  // owns the socket once TLS is on
};

}  // namespace vane::adaptors::http
