// A TCP listener: accepts on the acceptor loop and hands each socket to a
// worker, round-robin.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/event_loop.hpp"

namespace vane::server {

class Worker;

class Listener {
 public:
  // `admit` returns false to refuse a connection (over the connection limit).
  Listener(config::ListenerConfig cfg, core::EventLoop& acceptor_loop, std::vector<Worker*> workers,
           std::function<bool()> admit, std::function<void()> on_refused);

  // Binds and listens. Returns an error message, or "" on success.
  std::string open();
  void startAccepting();
  void close();  // acceptor loop only

  const config::ListenerConfig& config() const { return cfg_; }
  std::uint16_t boundPort() const { return bound_port_; }

 private:
  void acceptNext();

  config::ListenerConfig cfg_;
  core::EventLoop& loop_;
  std::vector<Worker*> workers_;
  std::function<bool()> admit_;
  std::function<void()> on_refused_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::size_t next_worker_ = 0;
  std::uint16_t bound_port_ = 0;
  bool closed_ = false;
};

}  // namespace vane::server
