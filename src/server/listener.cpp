#include "server/listener.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "amqp/connection.hpp"
#include "core/log.hpp"
#include "server/worker.hpp"

namespace vane::server {

namespace asio = boost::asio;
using asio::ip::tcp;

Listener::Listener(config::ListenerConfig cfg, core::EventLoop& acceptor_loop,
                   std::vector<Worker*> workers, std::function<bool()> admit,
                   std::function<void()> on_refused)
    : cfg_(std::move(cfg)),
      loop_(acceptor_loop),
      workers_(std::move(workers)),
      admit_(std::move(admit)),
      on_refused_(std::move(on_refused)),
      acceptor_(acceptor_loop.context()) {}

std::string Listener::open() {
  boost::system::error_code ec;
  tcp::resolver resolver(loop_.context());
  auto results = resolver.resolve(cfg_.host, std::to_string(cfg_.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return "cannot resolve host '" + cfg_.host + "': " + ec.message();
  }
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return "cannot listen on " + cfg_.host + ":" + std::to_string(cfg_.port) + ": " + ec.message();
  }
  bound_port_ = acceptor_.local_endpoint(ec).port();
  VANE_LOG_INFO("listener {} listening on {}:{} (role {})", cfg_.name,
                acceptor_.local_endpoint(ec).address().to_string(), bound_port_,
                config::toString(cfg_.role));
  return {};
}

void Listener::startAccepting() {
  acceptNext();
}

void Listener::acceptNext() {
  if (closed_) return;
  Worker* w = workers_[next_worker_++ % workers_.size()];
  acceptor_.async_accept(
      w->loop().context(), [this, w](const boost::system::error_code& ec, tcp::socket socket) {
        if (closed_) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          VANE_LOG_WARN("listener {}: accept failed: {}", cfg_.name, ec.message());
          // Out of file descriptors and similar: back off briefly, keep serving.
          auto t =
              std::make_shared<asio::steady_timer>(loop_.context(), std::chrono::milliseconds(100));
          t->async_wait([this, t](const boost::system::error_code&) { acceptNext(); });
          return;
        }
        if (!admit_()) {
          on_refused_();
          VANE_LOG_WARN("listener {}: connection refused: connection limit reached", cfg_.name);
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          amqp::ConnectionOptions options;
          options.name = cfg_.name;
          options.role = cfg_.role;
          options.cost = cfg_.cost;
          w->loop().post([w, s = std::move(socket), options = std::move(options)]() mutable {
            w->adopt(std::move(s), std::move(options));
          });
        }
        acceptNext();
      });
}

void Listener::close() {
  closed_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
}

}  // namespace vane::server
