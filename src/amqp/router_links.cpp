// The links of a router connection: control and data links, the stream-link
// pool, readiness and control messages.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include <algorithm>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>

#include "amqp/connection.hpp"
#include "amqp/control_link.hpp"
#include "amqp/engine_helpers.hpp"
#include "amqp/in_link.hpp"
#include "amqp/inter_router.hpp"
#include "amqp/message_scan.hpp"
#include "amqp/out_link.hpp"
#include "amqp/sasl_server.hpp"
#include "core/log.hpp"
#include "routing/core.hpp"

namespace vane::amqp {

namespace asio = boost::asio;
using namespace detail;

// Each side of a router connection opens two sending links: control (its own
// session, so routing messages never queue behind data) and data.
void Connection::openRouterLinks() {
  pn_connection_t* c = driver_->connection;
  pn_session_t* ctl_ssn = pn_session(c);
  pn_session_set_incoming_capacity(ctl_ssn, ctx_.settings.session_capacity);
  pn_session_open(ctl_ssn);
  ctl_out_ = pn_sender(ctl_ssn, "vane-control");
  pn_terminus_set_address(pn_link_target(ctl_out_), kControlAddress);
  pn_terminus_set_address(pn_link_source(ctl_out_), kControlAddress);
  pn_link_set_snd_settle_mode(ctl_out_, PN_SND_SETTLED);
  pn_link_open(ctl_out_);

  pn_session_t* data_ssn = pn_session(c);
  pn_session_set_incoming_capacity(data_ssn, ctx_.settings.session_capacity);
  pn_session_open(data_ssn);
  pn_link_t* data = pn_sender(data_ssn, "vane-data");
  pn_terminus_set_address(pn_link_target(data), kDataAddress);
  pn_terminus_set_address(pn_link_source(data), kDataAddress);
  pn_link_set_snd_settle_mode(data, PN_SND_MIXED);
  data_out_ = std::make_shared<OutLink>(*this, data, kDataAddress);
  data_out_->setRouterLink();
  data_consumer_ = std::make_shared<Consumer>(ctx_.core.nextConsumerId(), ctx_.loop,
                                              std::weak_ptr<OutLink>(data_out_));
  data_out_->setConsumer(data_consumer_);
  pn_link_set_context(data, data_out_.get());
  out_links_.emplace(data, data_out_);
  pn_link_open(data);
}

// A link the peer router opened: its control or data sender.
bool Connection::acceptRouterLink(pn_link_t* link) {
  if (!pn_link_is_receiver(link) || !remote_opened_) return false;
  const std::string target = terminusAddress(pn_link_remote_target(link));
  if (target != kControlAddress && target != kDataAddress && target != kStreamAddress) {
    return false;
  }
  // The dialling router opens its links first; ours follow its first one, so
  // that a client that dialled the wrong port never sees them.
  if (!ctl_out_ && !data_out_) openRouterLinks();
  pn_terminus_copy(pn_link_source(link), pn_link_remote_source(link));
  pn_terminus_copy(pn_link_target(link), pn_link_remote_target(link));
  pn_link_set_snd_settle_mode(link, pn_link_remote_snd_settle_mode(link));
  if (target == kControlAddress && !ctl_in_) {
    ctl_in_ = link;
    control_in_ = std::make_unique<ControlIn>(*this, link, neighbor_id_);
    pn_link_open(link);
    control_in_->init();
    return true;
  }
  const bool stream = target == kStreamAddress;
  if ((target == kDataAddress && !data_in_) || (stream && data_in_)) {
    using forwarding::Arrival;
    Arrival arrival = Arrival::kInterior;
    if (options_.role == config::ListenerRole::kEdge) {
      arrival = ctx_.settings.edge_mode ? Arrival::kUplink : Arrival::kEdgeChild;
    }
    if (stream && incoming_streams_ >= ctx_.settings.max_stream_links) {
      // A Vane peer opens at most as many (the same setting): this one is
      // hostile or misconfigured. Each stream may hold a window of bytes here.
      ctx_.stats.stream_links_refused.fetch_add(1, std::memory_order_relaxed);
      VANE_LOG_WARN(
          "connection {} on {}: router {} opened more than {} stream links "
          "(router.max_stream_links): closing",
          peer_, listener_, peer_router_, ctx_.settings.max_stream_links);
      closeWithError("amqp:resource-limit-exceeded",
                     ("more than " + std::to_string(ctx_.settings.max_stream_links) +
                      " stream links (router.max_stream_links)")
                         .c_str());
      return true;  // answered: the connection goes
    }
    if (stream) {
      ++incoming_streams_;
      // The stream's window: what its sender may have in flight to us.
      pn_session_set_incoming_capacity(
          pn_link_session(link), static_cast<std::size_t>(std::max<std::int64_t>(
                                     ctx_.settings.stream_window, ctx_.settings.max_frame_size)));
    }
    auto in = std::make_shared<InLink>(*this, link, std::string(), arrival, peer_router_, stream);
    pn_link_set_context(link, in.get());
    in_links_.emplace(link, in);
    pn_link_open(link);
    in->init();
    if (!stream) data_in_ = true;
    return true;
  }
  return false;
}

void Connection::enqueueStream(std::shared_ptr<Transfer> t) {
  std::shared_ptr<OutLink> out;
  if (idle_streams_.empty() && stream_links_ >= ctx_.settings.max_stream_links) {
    VANE_LOG_WARN(
        "connection {} to router {}: {} streams at once (router.max_stream_links): refusing "
        "another",
        peer_, peer_router_, ctx_.settings.max_stream_links);
    dropTransfer(t);
    return;
  }
  while (!idle_streams_.empty() && !out) {
    out = std::move(idle_streams_.back());
    idle_streams_.pop_back();
    if (!out->link()) out.reset();
  }
  if (!out && !torn_down_) {
    pn_session_t* ssn = pn_session(driver_->connection);
    if (ssn != nullptr) {
      // We only send on this session: a small incoming window is plenty.
      pn_session_set_incoming_capacity(ssn, ctx_.settings.max_frame_size);
      pn_session_open(ssn);
      const std::string name = "vane-stream-" + std::to_string(next_stream_++);
      pn_link_t* link = pn_sender(ssn, name.c_str());
      pn_terminus_set_address(pn_link_target(link), kStreamAddress);
      pn_terminus_set_address(pn_link_source(link), kStreamAddress);
      pn_link_set_snd_settle_mode(link, PN_SND_MIXED);
      out = std::make_shared<OutLink>(*this, link, kStreamAddress);
      out->setRouterLink();
      out->setStream();
      out->setConsumer(data_consumer_);
      pn_link_set_context(link, out.get());
      out_links_.emplace(link, out);
      pn_link_open(link);
      ++stream_links_;
    }
  }
  if (!out) {
    dropTransfer(t);
    return;
  }
  t->via = out;
  out->enqueue(std::move(t));
}

void Connection::streamIdle(std::shared_ptr<OutLink> link) {
  if (torn_down_ || !link->link()) return;
  idle_streams_.push_back(std::move(link));
}

void Connection::checkRouterReady() {
  if (!routerLink() || router_ready_ || torn_down_ || !remote_opened_ || peer_router_.empty())
    return;
  if (!ctl_out_up_ || !data_out_up_ || !control_in_ || !data_in_) return;
  router_ready_ = true;
  routing::NeighborInfo info;
  info.id = neighbor_id_;
  info.peer_id = peer_router_;
  info.peer_instance = peer_instance_;
  info.cost = options_.cost;
  if (options_.role == config::ListenerRole::kEdge) {
    info.role =
        ctx_.settings.edge_mode ? routing::NeighborRole::kUplink : routing::NeighborRole::kEdge;
  } else {
    info.role = routing::NeighborRole::kInterior;
  }
  info.link = handle_;
  info.data = data_consumer_;
  ctx_.core.neighborReady(std::move(info));
  if (options_.on_ready) options_.on_ready();
}

void Connection::sendControl(std::string json) {
  VANE_ASSERT_THREAD(ctx_.loop);
  if (torn_down_ || !ctl_out_) return;
  control_queue_.push_back(encodeControlMessage(json));
  pumpControl();
  process();
}

void Connection::pumpControl() {
  while (ctl_out_ && !control_queue_.empty() && pn_link_credit(ctl_out_) > 0) {
    const std::uint64_t tag = next_control_tag_++;
    pn_delivery_t* d =
        pn_delivery(ctl_out_, pn_dtag(reinterpret_cast<const char*>(&tag), sizeof tag));
    const std::string& m = control_queue_.front();
    pn_link_send(ctl_out_, m.data(), m.size());
    pn_link_advance(ctl_out_);
    pn_delivery_settle(d);
    control_queue_.pop_front();
  }
}

}  // namespace vane::amqp
