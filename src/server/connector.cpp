#include "server/connector.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "amqp/connection.hpp"
#include "core/log.hpp"
#include "server/worker.hpp"

namespace vane::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Connector::Connector(std::vector<config::ConnectorConfig> candidates, core::EventLoop& loop,
                     std::vector<Worker*> workers, std::size_t first_worker)
    : candidates_(std::move(candidates)),
      loop_(loop),
      workers_(std::move(workers)),
      next_worker_(first_worker),
      timer_(loop.context()),
      rng_(std::random_device{}()) {}

void Connector::start() {
  VANE_ASSERT_THREAD(loop_);
  attempt();
}

void Connector::stop() {
  VANE_ASSERT_THREAD(loop_);
  stopped_ = true;
  cancelled_->store(true, std::memory_order_release);
  timer_.cancel();
}

void Connector::stopAndClose() {
  VANE_ASSERT_THREAD(loop_);
  stop();
  if (link_worker_ == nullptr) return;
  link_worker_->loop().post([conn = link_] {
    if (auto c = conn.lock()) c->closeWithError("amqp:connection:forced", "connector deleted");
  });
}

void Connector::attempt() {
  VANE_ASSERT_THREAD(loop_);
  if (stopped_) return;
  const config::ConnectorConfig cfg = candidates_[current_];
  ++attempts_[cfg.name];
  Worker* w = workers_[next_worker_++ % workers_.size()];
  VANE_LOG_DEBUG("connector {}: connecting to {}:{}", cfg.name, cfg.host, cfg.port);
  // Everything the worker needs is taken here, on the core loop: the worker
  // reads no member of this connector, only the cancel flag.
  amqp::ConnectionOptions options;
  options.name = cfg.name;
  options.role = cfg.role;
  options.cost = cfg.cost;
  options.outgoing = true;
  options.counters = counters_;
  if (auto it = tls_.find(cfg.name); it != tls_.end()) {
    options.tls = it->second->current();
    if (cfg.verify_host) options.tls_host = cfg.host;
  }
  core::EventLoop& home = loop_;
  options.on_ready = [this, &home, name = cfg.name] { home.post([this, name] { onReady(name); }); };
  options.on_failure = [this, &home](const std::string& why) {
    home.post([this, why] {
      if (!stopped_) last_error_ = why;
    });
  };
  // Resolution and connect run on the worker that will own the connection;
  // the outcome comes back to this loop.
  w->loop().post([this, &home, w, cfg, options = std::move(options), cancelled = cancelled_] {
    auto resolver = std::make_shared<tcp::resolver>(w->loop().context());
    resolver->async_resolve(
        cfg.host, std::to_string(cfg.port), tcp::resolver::numeric_service,
        [this, &home, w, cfg, options, cancelled, resolver](const boost::system::error_code& ec,
                                                            tcp::resolver::results_type results) {
          if (cancelled->load(std::memory_order_acquire)) return;
          if (ec) {
            home.post([this, m = "cannot resolve: " + ec.message()] { onConnectFailed(m); });
            return;
          }
          auto socket = std::make_shared<tcp::socket>(w->loop().context());
          asio::async_connect(
              *socket, results,
              [this, &home, w, options, cancelled, socket](const boost::system::error_code& ec,
                                                           const tcp::endpoint&) {
                // Deleted while connecting: the link must never come up.
                if (cancelled->load(std::memory_order_acquire)) return;
                if (ec) {
                  home.post([this, m = ec.message()] { onConnectFailed(m); });
                  return;
                }
                auto conn = w->adopt(std::move(*socket), options,
                                     [this, &home] { home.post([this] { onClosed(); }); });
                home.post([this, w, conn] {
                  if (stopped_) {
                    // Stopped between the check above and now: close it.
                    w->loop().post([conn] {
                      if (auto c = conn.lock())
                        c->closeWithError("amqp:connection:forced", "connector deleted");
                    });
                    return;
                  }
                  link_worker_ = w;
                  link_ = conn;
                });
              });
        });
  });
}

void Connector::onReady(const std::string& name) {
  VANE_ASSERT_THREAD(loop_);
  if (stopped_) return;
  connected_at_ = std::chrono::steady_clock::now();
  connected_to_ = name;
  last_error_.clear();
  if (logged_failure_) {
    VANE_LOG_INFO("connector {}: connected to {}:{}", candidates_[current_].name,
                  candidates_[current_].host, candidates_[current_].port);
  }
  logged_failure_ = false;
}

void Connector::onConnectFailed(const std::string& error) {
  VANE_ASSERT_THREAD(loop_);
  if (stopped_) return;
  last_error_ = error;
  const auto& cfg = candidates_[current_];
  if (!logged_failure_) {
    VANE_LOG_INFO("connector {}: cannot connect to {}:{}: {} (retrying)", cfg.name, cfg.host,
                  cfg.port, error);
    logged_failure_ = true;
  } else {
    VANE_LOG_DEBUG("connector {}: cannot connect to {}:{}: {}", cfg.name, cfg.host, cfg.port,
                   error);
  }
  retry(true);
}

void Connector::onClosed() {
  VANE_ASSERT_THREAD(loop_);
  const bool was_up = !connected_to_.empty();
  connected_to_.clear();
  if (stopped_) return;
  const auto& cfg = candidates_[current_];
  if (was_up) {
    VANE_LOG_INFO("connector {}: link to {}:{} lost", cfg.name, cfg.host, cfg.port);
  } else {
    logged_failure_ = true;  // the connection said why; "connected" is logged when it works
  }
  if (was_up && std::chrono::steady_clock::now() - connected_at_ >= kStableAfter) {
    delay_ = kInitialDelay;
    failures_in_round_ = 0;
  }
  retry(true);
}

// Moves to the next candidate (edge failover) at once while some in this
// round have not been tried; after a whole round has failed, waits.
void Connector::retry(bool next_candidate) {
  if (next_candidate && candidates_.size() > 1) {
    current_ = (current_ + 1) % candidates_.size();
    if (++failures_in_round_ < candidates_.size()) {
      attempt();
      return;
    }
  }
  failures_in_round_ = 0;
  std::uniform_int_distribution<std::int64_t> jitter(delay_.count() / 2, delay_.count());
  const auto wait = std::chrono::milliseconds(jitter(rng_));
  delay_ = std::min(kMaxDelay, delay_ * 2);
  timer_.expires_after(wait);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) attempt();
  });
}

}  // namespace vane::server
