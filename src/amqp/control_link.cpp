#include "amqp/control_link.hpp"

#include <algorithm>
#include <cstring>

#include "amqp/inter_router.hpp"
#include "core/log.hpp"
#include "routing/core.hpp"

namespace vane::amqp {

using namespace detail;

bool ControlIn::onDelivery(pn_delivery_t* d) {
  if (!link_ || d != pn_link_current(link_)) return true;
  if (pn_delivery_aborted(d)) {
    buffer_.clear();
    pn_delivery_settle(d);
    return true;
  }
  char tmp[16384];
  while (true) {
    const ssize_t n = pn_link_recv(link_, tmp, sizeof tmp);
    if (n <= 0) break;
    if (buffer_.size() + static_cast<std::size_t>(n) > kMaxControlMessage) {
      fail("control message too large");
      return false;
    }
    buffer_.append(tmp, static_cast<std::size_t>(n));
  }
  if (pn_delivery_partial(d)) return true;
  std::string json, error;
  const bool ok = decodeControlMessage(buffer_.data(), buffer_.size(), json, &error);
  buffer_.clear();
  pn_delivery_update(d, PN_ACCEPTED);
  pn_delivery_settle(d);  // also advances
  if (!ok) {
    fail(error);
    return false;
  }
  conn_.context().core.controlReceived(neighbor_, std::move(json));
  topUp();
  return true;
}

void ControlIn::fail(const std::string& why) {
  conn_.countProtocolError();
  VANE_LOG_WARN("connection {}: malformed control message from router {}: {}", conn_.peer(),
                conn_.peerRouter(), why);
  link_ = nullptr;
  conn_.closeWithError("vane:protocol-error", "malformed control message");
}

void ControlIn::topUp() {
  if (!link_) return;
  const int credit = std::max(0, pn_link_credit(link_));
  if (credit < kWindow / 2) pn_link_flow(link_, kWindow - credit);
}

void NeighborHandle::close(const std::string& condition, const std::string& reason) {
  auto c = conn_.lock();
  if (!c) return;
  c->closeWithError(condition.c_str(), reason.c_str());
  // A neighbour declared dead will not answer the close: waiting the close
  // grace would hold its in-flight deliveries (and their senders' credit)
  // for nothing. Settle them back now.
  if (condition == "vane:neighbor-dead") c->shutdownNow();
}

}  // namespace vane::amqp
