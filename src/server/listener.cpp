#include "server/listener.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/log.hpp"
#include "server/worker.hpp"

namespace vane::server {

namespace asio = boost::asio;
using asio::ip::tcp;

Listener::Listener(Endpoint endpoint, core::EventLoop& acceptor_loop, std::vector<Worker*> workers,
                   Admit admit, std::function<void()> on_refused, Handoff handoff)
    : ep_(std::move(endpoint)),
      loop_(acceptor_loop),
      workers_(std::move(workers)),
      admit_(std::move(admit)),
      on_refused_(std::move(on_refused)),
      handoff_(std::move(handoff)),
      acceptor_(acceptor_loop.context()) {}

std::string Listener::open() {
  boost::system::error_code ec;
  tcp::resolver resolver(loop_.context());
  auto results = resolver.resolve(ep_.host, std::to_string(ep_.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return "cannot resolve host '" + ep_.host + "': " + ec.message();
  }
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return "cannot listen on " + ep_.host + ":" + std::to_string(ep_.port) + ": " + ec.message();
  }
  bound_port_ = acceptor_.local_endpoint(ec).port();
  VANE_LOG_INFO("{} {} listening on {}:{} ({})", ep_.kind, ep_.name,
                acceptor_.local_endpoint(ec).address().to_string(), bound_port_, ep_.detail);
  return {};
}

void Listener::startAccepting() {
  VANE_ASSERT_THREAD(loop_);
  acceptNext();
}

void Listener::acceptNext() {
  if (closed_) return;
  Worker* w = workers_[next_worker_++ % workers_.size()];
  acceptor_.async_accept(w->loop().context(), [this, w](const boost::system::error_code& ec,
                                                        tcp::socket socket) {
    VANE_ASSERT_THREAD(loop_);  // the acceptor's loop, not the socket's
    if (closed_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      VANE_LOG_WARN("{} {}: accept failed: {}", ep_.kind, ep_.name, ec.message());
      // Out of file descriptors and similar: back off briefly, keep serving.
      auto t =
          std::make_shared<asio::steady_timer>(loop_.context(), std::chrono::milliseconds(100));
      t->async_wait([this, t](const boost::system::error_code&) { acceptNext(); });
      return;
    }
    if (const char* limit = admit_()) {
      on_refused_();
      if (const auto n = refusal_log_.admit())
        VANE_LOG_WARN("{} {}: {} connection(s) refused: limit {} reached", ep_.kind, ep_.name, n,
                      limit);
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      // A copy of the handoff: the listener may be gone (reload) when
      // the worker runs it.
      w->loop().post([h = handoff_, w, s = std::move(socket)]() mutable { h(*w, std::move(s)); });
    }
    acceptNext();
  });
}

void Listener::close() {
  VANE_ASSERT_THREAD(loop_);
  closed_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
}

}  // namespace vane::server
