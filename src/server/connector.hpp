// Keeps one outgoing router link up: connects to a listener of another
// router, and reconnects forever with capped exponential backoff and jitter.
//
// An interior router has one Connector per `connectors` entry. An edge
// router has one Connector for all its edge connectors together: it uses one
// at a time, and when that link is lost (or cannot be made) it moves on to
// the next in the list.
//
// IMPORTANT: runs on the core loop (made on the main thread or, through the
// management API, on the core loop); the connection itself lives on a
// worker, which reads none of its members. Debug builds assert the loop.
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "amqp/connection.hpp"
#include "config/config.hpp"
#include "core/event_loop.hpp"
#include "server/tls.hpp"

namespace vane::amqp {
class Connection;
}

namespace vane::server {

class Worker;

class Connector {
 public:
  // Backoff between rounds of failed attempts: starts at kInitialDelay,
  // doubles up to kMaxDelay; each wait is drawn from [delay/2, delay].
  static constexpr std::chrono::milliseconds kInitialDelay{100};
  static constexpr std::chrono::milliseconds kMaxDelay{5000};
  // A link that stayed up this long resets the backoff.
  static constexpr std::chrono::seconds kStableAfter{5};

  Connector(std::vector<config::ConnectorConfig> candidates, core::EventLoop& loop,
            std::vector<Worker*> workers, std::size_t first_worker);

  // Before start(): TLS for the candidate named `name`.
  void setTls(const std::string& name, std::shared_ptr<TlsSource> tls) {
    tls_[name] = std::move(tls);
  }

  void start();  // core loop
  void stop();   // core loop
  // Core loop: stops, and closes its link if it is up (amqp:connection:forced).
  void stopAndClose();

  const std::string& name() const { return candidates_.front().name; }
  const std::vector<config::ConnectorConfig>& candidates() const { return candidates_; }
  // Core loop: the candidate whose link is up ("" if none), and the
  // attempts made with candidate `name`.
  const std::string& connectedTo() const {
    VANE_ASSERT_THREAD(loop_);
    return connected_to_;
  }
  std::uint64_t attempts(const std::string& name) const {
    VANE_ASSERT_THREAD(loop_);
    auto it = attempts_.find(name);
    return it == attempts_.end() ? 0 : it->second;
  }
  // Core loop: why the last attempt failed ("" once a link is up).
  const std::string& lastError() const {
    VANE_ASSERT_THREAD(loop_);
    return last_error_;
  }
  const std::shared_ptr<amqp::ListenerCounters>& counters() const { return counters_; }
  const std::shared_ptr<TlsSource>* tls(const std::string& name) const {
    auto it = tls_.find(name);
    return it == tls_.end() ? nullptr : &it->second;
  }

 private:
  void attempt();
  void onConnectFailed(const std::string& error);
  void onReady(const std::string& name);
  void onClosed();
  void retry(bool next_candidate);

  const std::vector<config::ConnectorConfig> candidates_;
  core::EventLoop& loop_;
  std::vector<Worker*> workers_;
  std::size_t next_worker_;
  std::size_t current_ = 0;
  std::size_t failures_in_round_ = 0;
  std::chrono::milliseconds delay_ = kInitialDelay;
  std::chrono::steady_clock::time_point connected_at_{};
  boost::asio::steady_timer timer_;
  std::mt19937 rng_;
  bool stopped_ = false;
  // Set by stop(); read by the worker that is connecting for us, so that a
  // connector stopped (deleted) meanwhile never adopts its socket.
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
  bool logged_failure_ = false;
  std::string connected_to_;
  Worker* link_worker_ = nullptr;  // where the link's connection lives
  std::weak_ptr<amqp::Connection> link_;
  std::map<std::string, std::uint64_t> attempts_;
  std::map<std::string, std::shared_ptr<TlsSource>> tls_;
  std::shared_ptr<amqp::ListenerCounters> counters_ = std::make_shared<amqp::ListenerCounters>();
  std::string last_error_;
};

}  // namespace vane::server
