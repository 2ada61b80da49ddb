#include "amqp/out_link.hpp"

#include <algorithm>
#include <cstring>

#include "core/log.hpp"

namespace vane::amqp {

using namespace detail;

void OutLink::enqueue(std::shared_ptr<Transfer> t) {
  if (!link_) {
    dropTransfer(t);
    return;
  }
  if (t->streaming && router_link_ && !stream_) {
    conn_.enqueueStream(std::move(t));
    conn_.process();
    return;
  }
  in_pool_ = false;
  queue_.push_back(std::move(t));
  pump();
  conn_.process();
}

void OutLink::append(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) {
  if (t->streaming && router_link_ && !stream_) {
    forwarding::appendVia(t, std::move(chunk), last);
    return;
  }
  if (!link_ || t->aborted || t->slot_reported) {
    // The copy was already dropped or settled: the bytes go nowhere.
    t->budget->release(static_cast<std::int64_t>(chunk->size()));
    return;
  }
  if (!chunk->empty()) {
    t->pending.push_back(std::move(chunk));
  } else {
    t->budget->release(0);
  }
  if (last) t->complete = true;
  pump();
  conn_.process();
}

void OutLink::abort(const std::shared_ptr<Transfer>& t) {
  if (t->streaming && router_link_ && !stream_) {
    forwarding::abortVia(t);
    return;
  }
  if (t->aborted || t->finished_sending || t->slot_reported) return;
  t->aborted = true;
  t->outcome_reported = true;  // the sender aborted: nobody waits for an outcome
  if (current_ == t) {
    current_.reset();
    forget(t.get());
    if (link_ && t->engine_delivery) {
      auto* d = static_cast<pn_delivery_t*>(t->engine_delivery);
      pn_delivery_set_context(d, nullptr);
      pn_delivery_abort(d);
      t->engine_delivery = nullptr;
    }
  } else {
    auto it = std::find(queue_.begin(), queue_.end(), t);
    if (it != queue_.end()) queue_.erase(it);
  }
  dropTransfer(t);
  if (link_) {
    pump();
    conn_.resumeUnsettled();
    conn_.process();
  }
}

void OutLink::pump() {
  if (!link_ || !ready_) return;
  pn_session_t* ssn = pn_link_session(link_);
  const std::size_t limit = conn_.context().settings.session_outgoing_limit;
  while (true) {
    if (!current_) {
      if (queue_.empty() || pn_link_credit(link_) <= 0) break;
      if (unsettledFull()) break;  // resumes as the consumer settles
      current_ = std::move(queue_.front());
      queue_.pop_front();
      const std::uint64_t tag = next_tag_++;
      pn_delivery_t* d =
          pn_delivery(link_, pn_dtag(reinterpret_cast<const char*>(&tag), sizeof tag));
      current_->engine_delivery = d;
      pn_delivery_set_context(d, current_.get());
      if (!settlesOnSend(*current_)) {
        unsettled_[current_.get()] = current_;
        if (!router_link_) conn_.addUnsettled();
      }
    }
    Transfer& t = *current_;
    auto* d = static_cast<pn_delivery_t*>(t.engine_delivery);
    while (!t.pending.empty()) {
      if (pn_session_outgoing_bytes(ssn) > limit || conn_.outputFull()) {
        block();
        return;
      }
      // Proton keeps a delivery's unsent bytes in a ring buffer that it
      // straightens byte by byte (over its whole capacity) when it frames
      // bytes that wrapped around. Append only to an empty buffer: frame
      // what is there first, and if the peer's window holds it back, wait.
      // Appending is cheap while nothing was framed since our last append
      // (the buffer holds exactly what we put there, so it has not wrapped):
      // a route header and a message's first bytes then go out in one frame.
      // And never more than kMaxUnframed at once: Proton pools a finished
      // delivery with its buffer at the largest size it ever reached, for
      // as long as the connection lives, so a delivery that once held a
      // megabyte of a large message would keep that megabyte while it
      // carries small messages ever after (on a router link: for days).
      const auto unsent = static_cast<std::size_t>(pn_delivery_pending(d));
      if (unsent > 0 && (unsent != t.engine_appended || unsent >= kMaxUnframed)) {
        conn_.frameOutput();
        if (pn_delivery_pending(d) > 0) {
          block();
          return;
        }
      }
      const Chunk& c = t.pending.front();
      const std::size_t n = c->size() - t.front_offset;
      pn_link_send(link_, c->data() + t.front_offset, n);
      conn_.addEngineBytes(n);
      t.engine_appended = static_cast<std::size_t>(pn_delivery_pending(d));
      t.started = true;
      t.pending.pop_front();
      t.front_offset = 0;
      t.budget->release(static_cast<std::int64_t>(n));
    }
    if (!t.complete) break;  // more bytes to come
    pn_link_advance(link_);
    t.finished_sending = true;
    conn_.context().stats.deliveries_out.fetch_add(1, std::memory_order_relaxed);
    if (settlesOnSend(t)) {
      pn_delivery_set_context(d, nullptr);
      pn_delivery_settle(d);
      t.engine_delivery = nullptr;
      forwarding::uncount(t);
      // A consumer that asked for pre-settled delivery takes the message
      // as given: it is accepted on its behalf.
      if (!t.presettled) forwarding::postOutcome(current_, Outcome::accepted());
    }
    forwarding::postCopyDone(current_);
    current_.reset();
  }
  if (!current_ && queue_.empty() && pn_link_get_drain(link_) && pn_link_credit(link_) > 0) {
    pn_link_drained(link_);
  }
  if (stream_ && !current_ && queue_.empty() && !in_pool_) {
    in_pool_ = true;
    conn_.streamIdle(shared_from_this());
  }
}

void OutLink::onDeliveryUpdated(pn_delivery_t* d) {
  auto* raw = static_cast<Transfer*>(pn_delivery_get_context(d));
  if (!raw) return;
  auto it = unsettled_.find(raw);
  if (it == unsettled_.end()) return;
  Outcome o;
  const bool terminal = remoteOutcome(d, o);
  if (!terminal && !pn_delivery_settled(d)) return;  // e.g. "received": not final
  if (!terminal) o = Outcome::accepted();            // settled with no state: consumed
  auto t = it->second;
  unsettled_.erase(it);
  if (!router_link_) conn_.removeUnsettled();
  pn_delivery_set_context(d, nullptr);
  t->engine_delivery = nullptr;
  if (current_ == t) {
    // Settled before the last byte was sent: stop sending it.
    current_.reset();
    pn_delivery_abort(d);
    std::int64_t bytes = -static_cast<std::int64_t>(t->front_offset);
    for (auto& c : t->pending) bytes += static_cast<std::int64_t>(c->size());
    t->pending.clear();
    t->front_offset = 0;
    t->aborted = true;
    if (bytes > 0) t->budget->release(bytes);
    forwarding::postCopyDone(t);
  } else {
    pn_delivery_settle(d);
  }
  forwarding::uncount(*t);
  forwarding::postOutcome(t, o);
  pump();
  conn_.resumeUnsettled();
}

void OutLink::close() {
  if (!link_) return;
  for (auto& [raw, t] : unsettled_) {
    if (t->engine_delivery) {
      pn_delivery_set_context(static_cast<pn_delivery_t*>(t->engine_delivery), nullptr);
      t->engine_delivery = nullptr;
    }
  }
  if (current_ && current_->engine_delivery) {
    pn_delivery_set_context(static_cast<pn_delivery_t*>(current_->engine_delivery), nullptr);
    current_->engine_delivery = nullptr;
  }
  link_ = nullptr;
  if (current_) {
    forget(current_.get());
    dropTransfer(current_);
    current_.reset();
  }
  for (auto& t : queue_) dropTransfer(t);
  queue_.clear();
  for (auto& [raw, t] : unsettled_) {
    dropTransfer(t);
    if (!router_link_) conn_.removeUnsettled();
  }
  unsettled_.clear();
}

bool OutLink::unsettledFull() {
  if (router_link_) return false;  // bounded by the consumers at the far end
  const auto limit = conn_.context().settings.max_unsettled_per_link;
  if (unsettled_.size() < limit) {
    unsettled_full_ = false;
    // The connection's limit, over all its consumers' links.
    return conn_.connectionUnsettledFull();
  }
  if (!unsettled_full_) {
    unsettled_full_ = true;
    conn_.context().stats.unsettled_limit_reached.fetch_add(1, std::memory_order_relaxed);
    if (!unsettled_logged_) {
      unsettled_logged_ = true;
      VANE_LOG_INFO(
          "connection {}: consumer link '{}' ({}) has {} unsettled deliveries "
          "(router.max_unsettled_per_link): sending paused until it settles",
          conn_.peer(), str(pn_link_name(link_)), address_, unsettled_.size());
    }
  }
  return true;
}

void OutLink::block() {
  if (blocked_) return;
  blocked_ = true;
  conn_.addBlocked(weak_from_this());
}

}  // namespace vane::amqp
