// A listening socket: accepts on the acceptor loop and hands each socket to a
// worker, round-robin. What the worker does with it (an AMQP connection, a
// TCP flow) is the `handoff`'s business.
//
// Lives on the acceptor loop (the router's core loop): made there or on the
// main thread before that loop runs (which is also where start() opens the
// listeners of the file); startAccepting, close and `admit` run on it
// (asserted in debug builds).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/event_loop.hpp"
#include "core/log.hpp"

namespace vane::server {

class Worker;

class Listener {
 public:
  struct Endpoint {
    std::string name;
    std::string host;
    std::uint16_t port = 0;
    std::string kind;    // log prefix: "listener", "tcp listener"
    std::string detail;  // log suffix in parentheses, e.g. "role normal"
  };
  // Runs on the worker's loop with the accepted socket.
  using Handoff = std::function<void(Worker&, boost::asio::ip::tcp::socket)>;

  // `admit` returns nullptr to accept a connection, or the limit that refuses
  // it (a configuration field, for the log: "router.max_connections").
  using Admit = std::function<const char*()>;
  Listener(Endpoint endpoint, core::EventLoop& acceptor_loop, std::vector<Worker*> workers,
           Admit admit, std::function<void()> on_refused, Handoff handoff);

  // Binds and listens. Returns an error message, or "" on success. Before
  // the acceptor loop runs, or on it.
  std::string open();
  void startAccepting();  // acceptor loop only
  void close();           // acceptor loop only

  const std::string& name() const { return ep_.name; }
  std::uint16_t boundPort() const { return bound_port_; }

 private:
  void acceptNext();

  Endpoint ep_;
  core::EventLoop& loop_;
  std::vector<Worker*> workers_;
  Admit admit_;
  std::function<void()> on_refused_;
  Handoff handoff_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::size_t next_worker_ = 0;
  std::uint16_t bound_port_ = 0;
  bool closed_ = false;
  core::LogThrottle refusal_log_;
};

}  // namespace vane::server
