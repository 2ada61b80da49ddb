// Internal to the amqp module: see connection.hpp.
#pragma once

#include <memory>
#include <string>

#include "amqp/engine_helpers.hpp"
#include "routing/core.hpp"

namespace vane::amqp {

// ---------------------------------------------------------------------------
// ControlIn: the peer router's control link. Each delivery is one routing
// protocol message, handed to the routing core.
// ---------------------------------------------------------------------------
class ControlIn {
 public:
  ControlIn(Connection& conn, pn_link_t* link, std::uint64_t neighbor)
      : conn_(conn), link_(link), neighbor_(neighbor) {}

  void init() { topUp(); }

  // Returns false on a protocol violation (the connection is being closed).
  bool onDelivery(pn_delivery_t* d);

  void close() { link_ = nullptr; }

 private:
  void fail(const std::string& why);

  void topUp();

  static constexpr int kWindow = 256;
  Connection& conn_;
  pn_link_t* link_;
  const std::uint64_t neighbor_;
  std::string buffer_;
};

// The routing core's handle on a router connection.
class NeighborHandle : public routing::NeighborLink {
 public:
  NeighborHandle(core::EventLoop& loop, std::weak_ptr<Connection> conn)
      : loop_(loop), conn_(std::move(conn)) {}
  core::EventLoop& loop() override { return loop_; }
  void sendControl(std::string message) override {
    if (auto c = conn_.lock()) c->sendControl(std::move(message));
  }
  void close(const std::string& condition, const std::string& reason) override;

 private:
  core::EventLoop& loop_;
  std::weak_ptr<Connection> conn_;
};

}  // namespace vane::amqp
