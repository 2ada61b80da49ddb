#include "server/worker.hpp"

#include <vector>

#include "routing/core.hpp"

namespace vane::server {

Worker::Worker(int index, routing::RoutingCore& core, const amqp::ConnectionSettings& settings,
               amqp::Stats& stats)
    : index_(index),
      loop_("worker-" + std::to_string(index)),
      ctx_{loop_, table_, core, settings, stats},
      flows_(std::make_shared<adaptors::FlowTable>(
          loop_, table_, settings.container_id, static_cast<std::size_t>(index),
          settings.stream_window, settings.max_frame_size, stats.flow_token_mismatches)),
      flow_consumer_(std::make_shared<forwarding::Consumer>(
          core.nextConsumerId(), loop_, std::weak_ptr<forwarding::EgressSink>(flows_))) {}

Worker::~Worker() {
  loop_.join();
  loop_.drainAfterJoin([this] {
    flows_->closeAll();
    for (auto& [p, c] : connections_) c->shutdownNow();
    connections_.clear();
  });
}

std::weak_ptr<amqp::Connection> Worker::adopt(boost::asio::ip::tcp::socket socket,
                                              amqp::ConnectionOptions options,
                                              std::function<void()> on_closed) {
  VANE_ASSERT_THREAD(loop_);
  auto conn = std::make_shared<amqp::Connection>(
      ctx_, std::move(socket), std::move(options),
      [this, on_closed = std::move(on_closed)](amqp::Connection* c) {
        // Deferred: the connection may be inside one of its own handlers.
        loop_.post([this, c] { connections_.erase(c); });
        if (on_closed) on_closed();
      });
  connections_.emplace(conn.get(), conn);
  conn->start();
  return conn;
}

std::vector<amqp::ConnectionInfo> Worker::connectionInfos() const {
  VANE_ASSERT_THREAD(loop_);
  std::vector<amqp::ConnectionInfo> out;
  for (const auto& [p, c] : connections_) {
    if (!c->closed() && !c->handshaking()) out.push_back(c->info());
  }
  return out;
}

void Worker::closeAll(const char* condition, const char* description) {
  VANE_ASSERT_THREAD(loop_);
  std::vector<std::shared_ptr<amqp::Connection>> all;
  all.reserve(connections_.size());
  for (auto& [p, c] : connections_) all.push_back(c);
  for (auto& c : all) c->closeWithError(condition, description);
  flows_->closeAll();
}

}  // namespace vane::server
