// Engine events of a connection: opens, attaches (client and router links),
// limits, refusals, detaches and closes.
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

void Connection::handleEvent(pn_event_t* e) {
  switch (pn_event_type(e)) {
    case PN_CONNECTION_REMOTE_OPEN: {
      remote_opened_ = true;
      pn_connection_t* c = pn_event_connection(e);
      if (routerLink()) {
        peer_router_ = str(pn_connection_remote_container(c));
        peer_instance_ = remoteInstance(c);
        if (peer_router_.empty() || peer_router_.size() > 255) {
          closeWithError("vane:protocol-error", "a router link needs the peer's router id");
          break;
        }
        if (options_.verify_router_id && tls_ && peer_router_ != tls_peer_) {
          const std::string why = "router id '" + peer_router_ +
                                  "' is not the name in its certificate ('" + tls_peer_ + "')";
          auth_reported_ = true;
          reportFailure("refused: " + why);
          closeWithError("amqp:unauthorized-access", why.c_str());
          break;
        }
        if (peer_router_ == ctx_.settings.container_id) {
          VANE_LOG_WARN("connection {} on {}: refused: the peer has our own router id '{}'", peer_,
                        listener_, peer_router_);
          closeWithError("vane:duplicate-router-id",
                         ("router id '" + peer_router_ + "' is already in use here").c_str());
          break;
        }
      }
      if (pn_connection_state(c) & PN_LOCAL_UNINIT) pn_connection_open(c);
      scheduleTick();
      checkRouterReady();
      break;
    }
    case PN_CONNECTION_REMOTE_CLOSE: {
      pn_connection_t* c = pn_event_connection(e);
      pn_condition_t* rc = pn_connection_remote_condition(c);
      if (pn_condition_is_set(rc)) {
        if (routerLink()) {
          const std::string name = str(pn_condition_get_name(rc));
          // A router shutting down closes with connection:forced: routine.
          const auto level =
              name == "amqp:connection:forced" ? spdlog::level::info : spdlog::level::warn;
          spdlog::log(level, "connection {} on {}: router {} closed the link: {}: {}", peer_,
                      listener_, peer_router_, name, str(pn_condition_get_description(rc)));
        } else {
          VANE_LOG_DEBUG("connection {} closed by peer: {}: {}", peer_,
                         str(pn_condition_get_name(rc)), str(pn_condition_get_description(rc)));
        }
      }
      for (auto& [l, in] : in_links_) in->pump(/*peer_closed=*/true);
      if (!(pn_connection_state(c) & PN_LOCAL_CLOSED)) pn_connection_close(c);
      break;
    }
    case PN_SESSION_REMOTE_OPEN: {
      pn_session_t* s = pn_event_session(e);
      if (pn_session_state(s) & PN_LOCAL_UNINIT) {
        pn_session_set_incoming_capacity(s, ctx_.settings.session_capacity);
        pn_session_open(s);
        if (!routerLink()) {
          const auto max = ctx_.settings.max_sessions_per_connection;
          if (sessions_open_ >= max) {
            // Begun and ended at once: the client learns why, its other
            // sessions go on.
            const std::string why = limitHit(Limit::kSessions, max, "sessions");
            pn_condition_set_name(pn_session_condition(s), "amqp:resource-limit-exceeded");
            pn_condition_set_description(pn_session_condition(s), why.c_str());
            pn_session_close(s);
            break;
          }
          ++sessions_open_;
          pn_session_set_context(s, this);  // counted
        }
      }
      break;
    }
    case PN_SESSION_REMOTE_CLOSE:
      onSessionRemoteClose(pn_event_session(e));
      break;
    case PN_LINK_REMOTE_OPEN:
      onLinkRemoteOpen(pn_event_link(e));
      break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
      onLinkRemoteClose(pn_event_link(e));
      break;
    case PN_LINK_FLOW: {
      pn_link_t* l = pn_event_link(e);
      if (l == ctl_out_) {
        pumpControl();
      } else if (pn_link_is_sender(l)) {
        if (auto* out = static_cast<OutLink*>(pn_link_get_context(l))) out->pump();
      }
      break;
    }
    case PN_DELIVERY: {
      pn_delivery_t* d = pn_event_delivery(e);
      pn_link_t* l = pn_delivery_link(d);
      if (l == ctl_in_) {
        if (control_in_) control_in_->onDelivery(d);
        break;
      }
      if (l == ctl_out_) break;  // pre-settled: nothing comes back
      void* ctx = pn_link_get_context(l);
      if (!ctx) break;
      if (pn_link_is_receiver(l)) {
        static_cast<InLink*>(ctx)->onDelivery(d);
      } else {
        static_cast<OutLink*>(ctx)->onDeliveryUpdated(d);
      }
      break;
    }
    case PN_TRANSPORT_ERROR: {
      pn_condition_t* c = pn_transport_condition(pn_event_transport(e));
      if (socket_eof_ && str(pn_condition_get_description(c)) == "connection aborted") {
        // The peer disconnected without an AMQP close (killed, crashed,
        // network loss): common and not hostile, so not a protocol error.
        ctx_.stats.connections_aborted.fetch_add(1, std::memory_order_relaxed);
        VANE_LOG_INFO("connection {} on listener {} dropped by the peer without a close", peer_,
                      listener_);
        break;
      }
      if (str(pn_condition_get_name(c)) == "amqp:unauthorized-access") {
        // Refused by SASL: our plugin reported it, unless the engine refused
        // the mechanism itself (one not offered).
        if (!auth_reported_) {
          auth_reported_ = true;
          reportFailure("authentication failed (" + str(pn_condition_get_description(c)) + ")");
        }
        break;
      }
      countProtocolError();
      VANE_LOG_WARN("connection {} on listener {}: protocol error: {}: {}", peer_, listener_,
                    str(pn_condition_get_name(c)), str(pn_condition_get_description(c)));
      break;
    }
    default:
      break;
  }
}

void Connection::onLinkRemoteOpen(pn_link_t* link) {
  if (!(pn_link_state(link) & PN_LOCAL_UNINIT)) {
    // The peer answered one of our own links.
    if (link == ctl_out_) ctl_out_up_ = true;
    if (data_out_ && link == data_out_->link()) {
      data_out_up_ = true;
      data_out_->setReady();
      data_out_->pump();
    } else if (auto it = out_links_.find(link); it != out_links_.end() && it->second->stream()) {
      it->second->setReady();
      it->second->pump();
    }
    checkRouterReady();
    return;
  }
  if (!routerLink() && (pn_session_state(pn_link_session(link)) & PN_LOCAL_CLOSED)) {
    // Attached on a session we refused (the client had not seen our end
    // yet): the session's end ends the link too. A client that goes on
    // attaching there is not listening.
    if (++orphan_links_ > kMaxPendingRefusals) {
      closeWithError("amqp:resource-limit-exceeded",
                     "links attached on a session that was refused");
    }
    return;
  }
  if (routerLink()) {
    if (!acceptRouterLink(link)) {
      VANE_LOG_WARN("connection {} on {}: not a router link ('{}'): closing", peer_, listener_,
                    str(pn_link_name(link)));
      closeWithError("amqp:not-allowed", "this listener is for router links only");
      return;
    }
    checkRouterReady();
    return;
  }
  pn_terminus_copy(pn_link_source(link), pn_link_remote_source(link));
  pn_terminus_copy(pn_link_target(link), pn_link_remote_target(link));
  pn_link_set_snd_settle_mode(link, pn_link_remote_snd_settle_mode(link));
  // As a receiver the router settles each delivery as it sends its outcome
  // (rcv-settle-mode first); it says so instead of echoing `second`. As a
  // sender it follows the consumer's mode (it settles once told the outcome).
  pn_link_set_rcv_settle_mode(
      link, pn_link_is_receiver(link) ? PN_RCV_FIRST : pn_link_remote_rcv_settle_mode(link));

  if (pn_link_is_receiver(link)) {
    // The peer sends to the router.
    pn_terminus_t* rt = pn_link_remote_target(link);
    if (pn_terminus_get_type(rt) == PN_COORDINATOR) {
      // The router holds no queues and cannot take part in transactions:
      // refuse the coordinator link rather than attach it and drop the
      // client's declare (AMQP 1.0 part 4.2: amqp:not-implemented).
      pn_terminus_set_type(pn_link_target(link), PN_UNSPECIFIED);
      pn_condition_set_name(pn_link_condition(link), "amqp:not-implemented");
      pn_condition_set_description(pn_link_condition(link), "transactions are not supported");
      pn_link_open(link);
      pn_link_close(link);
      return;
    }
    if (pn_terminus_is_dynamic(rt)) {
      pn_condition_set_name(pn_link_condition(link), "amqp:not-implemented");
      pn_condition_set_description(pn_link_condition(link), "dynamic targets are not supported");
      pn_link_open(link);
      pn_link_close(link);
      return;
    }
    std::string target = terminusAddress(rt);
    if (!clientMaySendTo(target)) {
      refuseReserved(link, target);
      return;
    }
    if (!admitLink(link, false, false)) return;
    auto in = std::make_shared<InLink>(*this, link, std::move(target));
    pn_link_set_context(link, in.get());
    in_links_.emplace(link, in);
    pn_link_open(link);
    in->init();
    return;
  }

  // The peer receives from the router: a consumer.
  pn_terminus_t* rs = pn_link_remote_source(link);
  // The router applies no filters (selectors, no-local, ...): leave them out
  // of the source it attaches, as AMQP 1.0 (3.5.3) says, so the client can
  // see that it receives unfiltered and detach if it depends on the filter.
  if (pn_data_t* filter = pn_terminus_filter(pn_link_source(link)); pn_data_size(filter) > 0) {
    pn_data_clear(filter);
    VANE_LOG_DEBUG("connection {}: link '{}': source filter left out (filters are not supported)",
                   peer_, str(pn_link_name(link)));
  }
  const bool dynamic = pn_terminus_is_dynamic(rs);
  if (!dynamic && reserved(terminusAddress(rs))) {
    refuseReserved(link, terminusAddress(rs));
    return;
  }
  if (!admitLink(link, true, dynamic)) return;
  std::string address;
  if (dynamic) {
    address = ctx_.core.newDynamicAddress();
    pn_terminus_set_address(pn_link_source(link), address.c_str());
  } else {
    address = terminusAddress(rs);
  }
  if (address.empty()) {
    pn_condition_set_name(pn_link_condition(link), "amqp:invalid-field");
    pn_condition_set_description(pn_link_condition(link),
                                 "a receiving link needs a source address (or dynamic)");
    pn_link_open(link);
    pn_link_close(link);
    return;
  }
  auto out = std::make_shared<OutLink>(*this, link, address);
  if (dynamic) {
    out->setDynamic();
    ++dynamic_links_;
  }
  ++receivers_;
  auto consumer = std::make_shared<Consumer>(ctx_.core.nextConsumerId(), ctx_.loop,
                                             std::weak_ptr<OutLink>(out));
  out->setConsumer(consumer);
  pn_link_set_context(link, out.get());
  out_links_.emplace(link, out);
  // Answer the attach once every loop can route to the new consumer.
  ctx_.core.addConsumer(address, consumer, ctx_.loop,
                        [weak_self = weak_from_this(), weak_out = std::weak_ptr<OutLink>(out)] {
                          auto self = weak_self.lock();
                          auto out = weak_out.lock();
                          if (!self || !out || !out->link()) return;
                          pn_link_open(out->link());
                          out->setReady();
                          out->pump();
                          self->process();
                        });
}

void Connection::refuseReserved(pn_link_t* link, const std::string& address) {
  ctx_.stats.reserved_refused.fetch_add(1, std::memory_order_relaxed);
  VANE_LOG_WARN("connection {} on listener {}: link '{}' to reserved address '{}' refused", peer_,
                listener_, str(pn_link_name(link)), address);
  refuseLink(link, "amqp:unauthorized-access",
             "addresses under _vane/ are reserved for the router");
}

void Connection::refuseLink(pn_link_t* link, const char* condition,
                            const std::string& description) {
  // The link lives until the client answers our detach: one that never
  // does, and attaches again and again, would grow them without bound.
  refused_links_.insert(link);
  if (refused_links_.size() > kMaxPendingRefusals) {
    closeWithError("amqp:resource-limit-exceeded",
                   "refused links not detached by the client: closing");
    return;
  }
  // The attach we answer with names no terminus, then the detach says why.
  pn_terminus_set_address(pn_link_source(link), nullptr);
  pn_terminus_set_address(pn_link_target(link), nullptr);
  pn_terminus_set_dynamic(pn_link_source(link), false);
  pn_condition_set_name(pn_link_condition(link), condition);
  pn_condition_set_description(pn_link_condition(link), description.c_str());
  pn_link_open(link);
  pn_link_close(link);
}

const char* limitField(Limit l) {
  switch (l) {
    case Limit::kSessions:
      return "router.max_sessions_per_connection";
    case Limit::kLinks:
      return "router.max_links_per_connection";
    case Limit::kReceivers:
      return "router.max_receivers_per_connection";
    case Limit::kDynamicAddresses:
      return "router.max_dynamic_addresses_per_connection";
    case Limit::kUnsettled:
      return "router.max_unsettled_per_connection";
    case Limit::kCount:
      break;
  }
  return "?";
}

std::string Connection::limitHit(Limit limit, std::uint32_t value, const char* what) {
  ctx_.stats.hit(limit);
  std::string why = "at most " + std::to_string(value) + " " + what + " per connection (" +
                    limitField(limit) + ")";
  const auto bit = static_cast<std::uint8_t>(1u << static_cast<unsigned>(limit));
  if (!(limits_logged_ & bit)) {
    limits_logged_ |= bit;  // once per connection and limit: a flood logs one line
    VANE_LOG_WARN("connection {} on listener {}: limit reached: {}", peer_, listener_, why);
  }
  return why;
}

bool Connection::admitLink(pn_link_t* link, bool receiver, bool dynamic) {
  const auto& st = ctx_.settings;
  std::string why;
  if (in_links_.size() + out_links_.size() >= st.max_links_per_connection) {
    why = limitHit(Limit::kLinks, st.max_links_per_connection, "links");
  } else if (receiver && receivers_ >= st.max_receivers_per_connection) {
    why = limitHit(Limit::kReceivers, st.max_receivers_per_connection, "receiving links");
  } else if (dynamic && dynamic_links_ >= st.max_dynamic_addresses_per_connection) {
    why = limitHit(Limit::kDynamicAddresses, st.max_dynamic_addresses_per_connection,
                   "dynamic addresses");
  } else {
    return true;
  }
  refuseLink(link, "amqp:resource-limit-exceeded", why);
  return false;
}

bool Connection::connectionUnsettledFull() {
  const auto max = ctx_.settings.max_unsettled_per_connection;
  if (unsettled_ < max) return false;
  if (!unsettled_paused_) {
    unsettled_paused_ = true;
    limitHit(Limit::kUnsettled, max, "unsettled deliveries to its consumers");
  }
  return true;
}

void Connection::resumeUnsettled() {
  if (torn_down_ || !unsettled_paused_ || unsettled_ >= ctx_.settings.max_unsettled_per_connection)
    return;
  unsettled_paused_ = false;
  // Links may close while others pump: pump a snapshot.
  std::vector<std::shared_ptr<OutLink>> links;
  links.reserve(out_links_.size());
  for (auto& [l, out] : out_links_) {
    if (!out->routerLink()) links.push_back(out);
  }
  for (auto& out : links) {
    if (unsettled_paused_) break;  // full again
    out->pump();
  }
  process();
}

void Connection::closeLink(pn_link_t* link) {
  if (routerLink() && (link == ctl_in_ || link == ctl_out_ ||
                       (data_out_ && link == data_out_->link()) || in_links_.count(link))) {
    // A router link's own links never close alone: the connection goes.
    if (link == ctl_in_ && control_in_) control_in_->close();
    if (!torn_down_) closeWithError("vane:protocol-error", "router link detached");
  }
  if (link == ctl_in_) ctl_in_ = nullptr;
  if (link == ctl_out_) ctl_out_ = nullptr;
  if (pn_link_is_receiver(link)) {
    auto it = in_links_.find(link);
    if (it != in_links_.end()) {
      if (it->second->stream()) --incoming_streams_;
      it->second->close();
      in_links_.erase(it);
    }
  } else {
    auto it = out_links_.find(link);
    if (it != out_links_.end()) {
      it->second->close();
      if (it->second->consumer() && !it->second->routerLink()) {
        ctx_.core.removeConsumer(it->second->address(), it->second->consumer()->id);
        --receivers_;
        if (it->second->dynamic()) --dynamic_links_;
      }
      out_links_.erase(it);
      resumeUnsettled();
    }
  }
  pn_link_set_context(link, nullptr);
}

void Connection::onLinkRemoteClose(pn_link_t* link) {
  refused_links_.erase(link);
  if (auto it = in_links_.find(link); it != in_links_.end()) it->second->pump(/*peer_closed=*/true);
  closeLink(link);
  if (!(pn_link_state(link) & PN_LOCAL_CLOSED)) {
    if (pn_link_state(link) & PN_LOCAL_UNINIT) pn_link_open(link);
    pn_link_close(link);
  }
  pn_link_free(link);
}

void Connection::onSessionRemoteClose(pn_session_t* ssn) {
  if (pn_session_get_context(ssn) == this) {
    pn_session_set_context(ssn, nullptr);
    --sessions_open_;
  }
  std::vector<pn_link_t*> links;
  for (auto& [l, in] : in_links_)
    if (pn_link_session(l) == ssn) links.push_back(l);
  for (auto& [l, out] : out_links_)
    if (pn_link_session(l) == ssn) links.push_back(l);
  for (auto* l : links) closeLink(l);
  if (!(pn_session_state(ssn) & PN_LOCAL_CLOSED)) pn_session_close(ssn);
}

}  // namespace vane::amqp
