#include "amqp/in_link.hpp"

#include <algorithm>
#include <cstring>

#include "amqp/inter_router.hpp"
#include "amqp/message_scan.hpp"
#include "core/log.hpp"
#include "forwarding/copies.hpp"
#include "routing/core.hpp"

namespace vane::amqp {

using namespace detail;

void InLink::init() {
  const bool router = arrival_ != forwarding::Arrival::kClient;
  budget_ = std::make_shared<forwarding::FlowBudget>(
      ctx_.loop, stream_  ? ctx_.settings.stream_window
                 : router ? ctx_.settings.inter_router_inflight_limit
                          : ctx_.settings.inflight_limit);
  budget_->sink = weak_from_this();
  if (!address_.empty() && !router) {
    ctx_.table.addListener(address_, ctx_.core.distributionFor(address_), this);
    registered_ = true;
  }
  topUpCredit();
}

void InLink::onDelivery(pn_delivery_t* d) {
  auto* rec = static_cast<IngressDelivery*>(pn_delivery_get_context(d));
  if (rec && rec->fully_received) {
    if (pn_delivery_settled(d) && !rec->settled) {
      // The sender settled first (it no longer cares about the outcome).
      finishSettle(rec, d);
      maybeRetire(rec);
    }
    return;
  }
  pump();
}

void InLink::pump(bool peer_closed) {
  if (window_held_ > 0 && link_ && !budget_->overLimit()) giveBackWindow();
  while (link_) {
    pn_delivery_t* d = pn_link_current(link_);
    if (!d) break;
    auto* rec = static_cast<IngressDelivery*>(pn_delivery_get_context(d));
    if (!rec) rec = startDelivery(d);
    if (pn_delivery_aborted(d)) {
      onAborted(rec, d);
      continue;
    }
    if (peer_closed && (!(rec->presettled || pn_delivery_settled(d)) || pn_delivery_partial(d)))
      break;
    if (!readFrom(rec, d, /*ignore_budget=*/peer_closed)) break;
  }
  if (read_bytes_ && link_ && !peer_closed) {
    // Proton re-announces a receiver's session window only when the link
    // is marked modified and the window was exhausted: without this, a
    // sender that filled the window waits for an unrelated frame.
    read_bytes_ = false;
    pn_link_flow(link_, 0);
  }
}

void InLink::onOutcome(const std::shared_ptr<IngressDelivery>& rec, const Outcome& copy) {
  if (!link_ || rec->settled) return;
  if (rec->multicast) {
    // One outcome for all copies, once the last copy is settled.
    forwarding::mergeMulticastOutcome(rec->merged_outcome, rec->merged_any, copy);
    if (--rec->outcomes_awaited > 0) return;
  }
  const Outcome& o = rec->multicast ? rec->merged_outcome : copy;
  if (!rec->fully_received) {
    rec->has_pending_outcome = true;
    rec->pending_outcome = o;
    if (stream_ && rec->engine_delivery && !rec->early_outcome) {
      // A stream may never end by itself (a client that waits for an
      // answer): tell the sender now, unsettled; it aborts the stream,
      // and the abort settles it here.
      rec->early_outcome = true;
      updateWith(static_cast<pn_delivery_t*>(rec->engine_delivery), o, ctx_.stats);
      conn_.process();
    }
    return;
  }
  applyOutcome(rec.get(), o);
  maybeRetire(rec.get());
  conn_.process();
}

void InLink::onCopyDone(const std::shared_ptr<IngressDelivery>& rec) {
  if (!link_) return;
  --rec->copies_in_router;
  maybeFreeSlot(rec.get());
  maybeRetire(rec.get());
  conn_.process();
}

void InLink::onResume() {
  if (!link_) return;
  pump();
  conn_.process();
}

void InLink::onConsumersChanged(bool available) {
  if (available && link_) {
    topUpCredit();
    conn_.process();
  }
}

void InLink::close() {
  if (!link_) return;
  giveBackWindow();  // the session may carry other links
  for (auto& [raw, rec] : live_) {
    if (!rec->fully_received) abortCopies(rec.get());
    rec->copies.clear();
    if (rec->engine_delivery) {
      pn_delivery_set_context(static_cast<pn_delivery_t*>(rec->engine_delivery), nullptr);
      rec->engine_delivery = nullptr;
    }
    rec->settled = true;
  }
  live_.clear();
  link_ = nullptr;
  unregister();
}

void InLink::unregister() {
  if (registered_) {
    ctx_.table.removeListener(address_, this);
    registered_ = false;
  }
}

IngressDelivery* InLink::startDelivery(pn_delivery_t* d) {
  auto rec = std::make_shared<IngressDelivery>(weak_from_this());
  rec->engine_delivery = d;
  rec->presettled = pn_delivery_settled(d);
  pn_delivery_set_context(d, rec.get());
  ++occupied_;
  auto* raw = rec.get();
  live_.emplace(raw, std::move(rec));
  return raw;
}

bool InLink::readFrom(IngressDelivery* rec, pn_delivery_t* d, bool ignore_budget) {
  while (true) {
    std::size_t allowance = kReadChunk;
    const bool full = !ignore_budget && budget_->pauseIfFull();
    if (full) {
      allowance = std::min(allowance, windowAllowance());
      if (allowance == 0) return false;
    }
    const ssize_t pending = pn_delivery_pending(d);
    const bool partial = pn_delivery_partial(d);
    if (pending <= 0) {
      if (partial) return false;
      complete(rec, d, nullptr);
      return true;
    }
    const std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(pending), allowance);
    auto buf = std::make_shared<std::string>(want, '\0');
    const ssize_t n = pn_link_recv(link_, buf->data(), want);
    if (n <= 0) {
      // PN_EOS: nothing more in this delivery.
      if (partial) return false;
      complete(rec, d, nullptr);
      return true;
    }
    buf->resize(static_cast<std::size_t>(n));
    if (full) holdWindow(static_cast<std::size_t>(n));
    read_bytes_ = true;
    if (!partial && pn_delivery_pending(d) == 0) {
      complete(rec, d, std::move(buf));
      return true;
    }
    onBytes(rec, std::move(buf), false);
  }
}

void InLink::complete(IngressDelivery* rec, pn_delivery_t* d, std::shared_ptr<std::string> last) {
  pn_link_advance(link_);
  rec->fully_received = true;
  ctx_.stats.deliveries_in.fetch_add(1, std::memory_order_relaxed);
  onBytes(rec, std::move(last), true);
  rec->copies.clear();  // no more bytes to pass on
  if (rec->discard) {
    if (rec->presettled) {
      finishSettle(rec, d);
    } else {
      applyOutcome(rec, rec->drop_outcome);
    }
  } else if (rec->presettled) {
    finishSettle(rec, d);
  } else if (rec->has_pending_outcome) {
    applyOutcome(rec, rec->pending_outcome);
  }
  maybeFreeSlot(rec);
  maybeRetire(rec);
}

void InLink::onBytes(IngressDelivery* rec, std::shared_ptr<std::string> chunk, bool last) {
  if (rec->discard) return;
  if (!rec->routed) {
    if (!address_.empty() && arrival_ == forwarding::Arrival::kClient) {
      route(rec, address_, nullptr);
    } else {
      // Route by what the message starts with: the route header on a
      // router link, the `to` property from an anonymous sender. Usually
      // the first chunk holds it: parse in place, and only buffer when it
      // arrives in pieces.
      const bool in_place = rec->buffered.empty() && chunk;
      if (!in_place && chunk) rec->buffered.append(*chunk);
      const char* data = in_place ? chunk->data() : rec->buffered.data();
      const std::size_t size = in_place ? chunk->size() : rec->buffered.size();
      std::size_t used = 0;
      const bool more = routeByContent(rec, data, size, last, &used);
      if (more) {
        if (in_place) rec->buffered = std::move(*chunk);
        return;
      }
      if (rec->discard) return;
      if (used > 0) {
        chunk = std::make_shared<std::string>(data + used, size - used);
      } else if (!in_place) {
        chunk = std::make_shared<std::string>(std::move(rec->buffered));
      }
      rec->buffered.clear();
    }
    if (rec->discard) return;
    // First bytes for freshly created copies: hand over in one post.
    const Chunk c = chunk ? Chunk(std::move(chunk)) : Chunk();
    for (auto& t : rec->copies) {
      if (c && !c->empty()) forwarding::addFirstBytes(*t, c);
      t->complete = last;
      forwarding::postStart(t);
    }
    return;
  }
  const Chunk c = chunk ? Chunk(std::move(chunk)) : std::make_shared<const std::string>();
  for (auto& t : rec->copies) forwarding::postBytes(t, c, last);
}

bool InLink::routeByContent(IngressDelivery* rec, const char* data, std::size_t size, bool last,
                            std::size_t* used) {
  if (arrival_ != forwarding::Arrival::kClient) {
    // Consecutive deliveries usually carry the same header: AMQP
    // encodings delimit themselves, so the same leading bytes decode to
    // the same header with the same length.
    if (!last_raw_header_.empty() && size >= last_raw_header_.size() &&
        std::memcmp(data, last_raw_header_.data(), last_raw_header_.size()) == 0) {
      *used = last_raw_header_.size();
      if (last_header_in_.presettled) rec->presettled = true;
      route(rec, last_header_in_.address, &last_header_in_);
      return false;
    }
    forwarding::RouteHeader h;
    std::string error;
    const auto st = decodeRouteHeader(data, size, h, used, &error);
    if (st == DecodeStatus::kNeedMore && !last && size < kMaxRouteHeader) return true;
    if (st != DecodeStatus::kOk) {
      *used = 0;
      ctx_.stats.route_header_errors.fetch_add(1, std::memory_order_relaxed);
      VANE_LOG_WARN("connection {}: bad route header from router {}: {}", conn_.peer(),
                    peer_router_, st == DecodeStatus::kNeedMore ? "incomplete" : error);
      drop(rec, Outcome::rejected("amqp:decode-error", "bad route header"));
      return false;
    }
    last_raw_header_.assign(data, *used);
    last_header_in_ = std::move(h);
    // The upstream router says it is pre-settled (its first frames may not).
    if (last_header_in_.presettled) rec->presettled = true;
    route(rec, last_header_in_.address, &last_header_in_);
    return false;
  }
  ScanResult r = scanTo(data, size);
  if (r.status == ScanStatus::kNeedMore && !last) return true;
  if (r.status == ScanStatus::kFound && !clientMaySendTo(r.to)) {
    ctx_.stats.reserved_refused.fetch_add(1, std::memory_order_relaxed);
    VANE_LOG_WARN("connection {}: message to reserved address '{}' rejected", conn_.peer(), r.to);
    drop(rec, Outcome::rejected("amqp:unauthorized-access",
                                "addresses under _vane/ are reserved for the router"));
  } else if (r.status == ScanStatus::kFound) {
    route(rec, r.to, nullptr);
  } else if (r.status == ScanStatus::kMalformed) {
    drop(rec, Outcome::rejected("amqp:decode-error", "message sections are malformed"));
  } else {
    drop(rec, Outcome::rejected("amqp:precondition-failed",
                                "message from an anonymous sender has no 'to' address"));
  }
  return false;
}

void InLink::route(IngressDelivery* rec, const std::string& address,
                   const forwarding::RouteHeader* header) {
  rec->routed = true;
  forwarding::RouteRequest rq;
  rq.address = address;
  rq.header = header;
  rq.arrival = arrival_;
  rq.arrival_peer = peer_router_;
  rq.origin = header ? std::string_view(header->origin) : std::string_view(ctx_.core.routerId());
  const auto result = ctx_.table.route(rq, targets_);
  rec->counters = ctx_.table.counters(address);
  if (rec->counters) {
    ++rec->counters->in;
    if (result.status == forwarding::RouteStatus::kRouted) {
      rec->counters->out += targets_.size();
    } else {
      ++rec->counters->no_route;
    }
  }
  if (result.status != forwarding::RouteStatus::kRouted) {
    if (result.status == forwarding::RouteStatus::kHopLimit) {
      ctx_.stats.deliveries_dropped_hop_limit.fetch_add(1, std::memory_order_relaxed);
    } else {
      ctx_.stats.deliveries_dropped_no_route.fetch_add(1, std::memory_order_relaxed);
    }
    targets_.clear();
    drop(rec, Outcome::released());
    return;
  }
  // Copies of an unsettled delivery go out unsettled (multicast too), so
  // that every consumer settles its own copy and the sender hears back.
  const bool presettled = rec->presettled;
  rec->multicast = result.multicast;
  auto self = live_.at(rec);
  for (auto& target : targets_) {
    auto t = forwarding::makeCopy(self, target, budget_, presettled, stream_);
    if (target.remote) {
      // Reuse the last encoding while the header stays the same (a named
      // link to one router): the chunk is immutable and shared.
      auto& h = target.header;
      h.presettled = presettled;
      const auto& p = last_header_out_;
      if (!last_header_bytes_ || h.address != p.address || h.dest != p.dest ||
          h.has_dests != p.has_dests || h.dests != p.dests || h.hops != p.hops ||
          h.origin != p.origin || h.presettled != p.presettled) {
        last_header_bytes_ = std::make_shared<const std::string>(encodeRouteHeader(h));
        last_header_out_ = h;
      }
      forwarding::addFirstBytes(*t, last_header_bytes_);
    }
    rec->copies.push_back(std::move(t));
  }
  rec->copies_in_router = static_cast<int>(rec->copies.size());
  if (rec->multicast && !presettled) rec->outcomes_awaited = rec->copies_in_router;
  targets_.clear();
}

void InLink::drop(IngressDelivery* rec, Outcome o) {
  rec->routed = true;
  rec->discard = true;
  rec->drop_outcome = std::move(o);
  rec->buffered.clear();
  rec->buffered.shrink_to_fit();
}

void InLink::abortCopies(IngressDelivery* rec) {
  for (auto& t : rec->copies) forwarding::postAbort(t);
  rec->copies.clear();
}

void InLink::onAborted(IngressDelivery* rec, pn_delivery_t* d) {
  abortCopies(rec);
  rec->fully_received = true;
  rec->discard = true;
  pn_delivery_set_context(d, nullptr);
  pn_delivery_settle(d);  // also advances the link past it
  rec->engine_delivery = nullptr;
  rec->settled = true;
  maybeFreeSlot(rec);
  maybeRetire(rec);
}

void InLink::applyOutcome(IngressDelivery* rec, const Outcome& o) {
  if (rec->settled) return;
  auto* d = static_cast<pn_delivery_t*>(rec->engine_delivery);
  rec->settled = true;
  rec->engine_delivery = nullptr;
  if (!d) return;
  pn_delivery_set_context(d, nullptr);
  settleWith(d, o, ctx_.stats);
  if (auto* c = rec->counters) {
    switch (o.kind) {
      case Outcome::Kind::kAccepted:
        ++c->accepted;
        break;
      case Outcome::Kind::kReleased:
        ++c->released;
        break;
      case Outcome::Kind::kRejected:
        ++c->rejected;
        break;
      case Outcome::Kind::kModified:
        ++c->modified;
        break;
    }
  }
}

void InLink::finishSettle(IngressDelivery* rec, pn_delivery_t* d) {
  rec->settled = true;
  rec->engine_delivery = nullptr;
  pn_delivery_set_context(d, nullptr);
  pn_delivery_settle(d);
}

void InLink::maybeFreeSlot(IngressDelivery* rec) {
  if (rec->slot_freed || !rec->fully_received || rec->copies_in_router > 0) return;
  rec->slot_freed = true;
  --occupied_;
  topUpCredit();
}

std::size_t InLink::windowAllowance() const {
  const std::size_t capacity = pn_session_get_incoming_capacity(pn_link_session(link_));
  const std::size_t floor = ctx_.settings.max_frame_size;
  return capacity > floor ? capacity - floor : 0;
}

void InLink::holdWindow(std::size_t n) {
  pn_session_t* s = pn_link_session(link_);
  pn_session_set_incoming_capacity(s, pn_session_get_incoming_capacity(s) - n);
  window_held_ += n;
}

void InLink::giveBackWindow() {
  if (window_held_ == 0 || !link_) return;
  pn_session_t* s = pn_link_session(link_);
  pn_session_set_incoming_capacity(s, pn_session_get_incoming_capacity(s) + window_held_);
  window_held_ = 0;
  if (pn_link_state(link_) & PN_LOCAL_ACTIVE) pn_link_flow(link_, 0);
}

void InLink::topUpCredit() {
  if (!link_) return;
  if (registered_) {
    forwarding::AddressEntry* e = ctx_.table.find(address_);
    if (!e || !e->available()) return;
  }
  const int capacity = capacity_;
  // A peer's flow can advance the delivery-count so the credit reads far
  // below zero; count that as none, and never grant more than capacity.
  const int credit = std::max(0, pn_link_credit(link_));
  const int want = capacity - occupied_ - credit;
  if (want <= 0) return;
  if (credit > 0 && want < std::max(1, capacity / 8)) return;  // batch small top-ups
  pn_link_flow(link_, std::min(want, capacity));
}

}  // namespace vane::amqp
