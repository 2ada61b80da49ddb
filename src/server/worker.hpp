// An I/O worker: one event loop thread, the connections it owns, and its
// replica of the forwarding table. A connection stays on its worker for life.
//
// Made and destroyed on the main thread (Router); everything else runs on
// the worker's own loop: the methods marked "loop thread" assert it (debug
// builds), the accessors only hand out references for the wiring.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "adaptors/flow.hpp"
#include "amqp/connection.hpp"
#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"

namespace vane::server {

class Worker {
 public:
  Worker(int index, routing::RoutingCore& core, const amqp::ConnectionSettings& settings,
         amqp::Stats& stats);
  // Stops the loop, then tears down what is left on this thread.
  ~Worker();

  int index() const { return index_; }
  core::EventLoop& loop() { return loop_; }
  const core::EventLoop& loop() const { return loop_; }
  forwarding::ForwardingTable& table() { return table_; }
  // Adaptor flows on this loop, and the consumer of their reply addresses.
  adaptors::FlowTable& flows() { return *flows_; }
  const std::shared_ptr<forwarding::Consumer>& flowConsumer() const { return flow_consumer_; }

  // Loop thread: takes over a connected socket. `on_closed` (optional) runs
  // on this loop when the connection is gone.
  std::weak_ptr<amqp::Connection> adopt(boost::asio::ip::tcp::socket socket,
                                        amqp::ConnectionOptions options,
                                        std::function<void()> on_closed = {});
  // Loop thread: sends every connection an AMQP close with `condition`, and
  // resets every adaptor flow.
  void closeAll(const char* condition, const char* description);
  // Loop thread: what management shows of this worker's connections.
  std::vector<amqp::ConnectionInfo> connectionInfos() const;
  // Loop thread: AMQP connections and adaptor flows.
  std::size_t connectionCount() const {
    VANE_ASSERT_THREAD(loop_);
    return connections_.size() + flows_->size();
  }

 private:
  const int index_;
  core::EventLoop loop_;
  forwarding::ForwardingTable table_{loop_};
  amqp::LoopContext ctx_;
  std::shared_ptr<adaptors::FlowTable> flows_;
  std::shared_ptr<forwarding::Consumer> flow_consumer_;
  std::unordered_map<amqp::Connection*, std::shared_ptr<amqp::Connection>> connections_;
};

}  // namespace vane::server
