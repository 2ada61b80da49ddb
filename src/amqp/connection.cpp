#include "amqp/connection.hpp"

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

#include "amqp/inter_router.hpp"
#include "amqp/message_scan.hpp"
#include "amqp/sasl_server.hpp"
#include "core/log.hpp"
#include "routing/core.hpp"

namespace vane::amqp {

namespace asio = boost::asio;
using forwarding::Chunk;
using forwarding::Consumer;
using forwarding::dropTransfer;
using forwarding::IngressDelivery;
using forwarding::Outcome;
using forwarding::Transfer;

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// The most bytes an outgoing delivery holds in Proton before they are framed
// (see OutLink::pump).
constexpr std::size_t kMaxUnframed = 64 * 1024;
// Channels (sessions) of a router connection, and the stream links each side
// may open on it (each on its own session), leaving room for the control
// and data sessions of both sides.
constexpr std::uint16_t kRouterChannelMax = 32767;
// Links a client may leave refused (or attached on a refused session)
// without answering before its connection is closed.
constexpr std::size_t kMaxPendingRefusals = 256;

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string str(const char* s) {
  return s ? std::string(s) : std::string();
}

std::string terminusAddress(pn_terminus_t* t) {
  return str(pn_terminus_get_address(t));
}

// The router's own namespace ("_vane/...") carries TCP flows, router links
// and reply addresses. A client may send to a dynamic reply address
// ("_vane/temp/<router>/<token>": request/response) and nothing else in it;
// it receives from one only through the dynamic receiver that created it.
constexpr std::string_view kReservedPrefix = "_vane/";
bool reserved(std::string_view address) {
  return address.substr(0, 6) == kReservedPrefix;
}
bool clientMaySendTo(std::string_view address) {
  if (!reserved(address)) return true;
  if (address.substr(0, forwarding::kTempPrefix.size()) != forwarding::kTempPrefix) return false;
  address.remove_prefix(forwarding::kTempPrefix.size());
  const auto slash = address.find('/');
  // Exactly <router>/<token>: flow addresses have more segments.
  return slash != std::string_view::npos && slash > 0 && slash + 1 < address.size() &&
         address.find('/', slash + 1) == std::string_view::npos;
}

// Copies an Outcome onto a delivery's local disposition and settles it.
// Sets the delivery's local state to the outcome (and counts it) without
// settling it.
void updateWith(pn_delivery_t* d, const Outcome& o, Stats& stats) {
  pn_disposition_t* local = pn_delivery_local(d);
  std::uint64_t type = PN_RELEASED;
  switch (o.kind) {
    case Outcome::Kind::kAccepted:
      type = PN_ACCEPTED;
      break;
    case Outcome::Kind::kRejected:
      type = PN_REJECTED;
      stats.deliveries_rejected.fetch_add(1, std::memory_order_relaxed);
      if (!o.error_name.empty()) {
        pn_condition_t* c = pn_disposition_condition(local);
        pn_condition_set_name(c, o.error_name.c_str());
        if (!o.error_description.empty())
          pn_condition_set_description(c, o.error_description.c_str());
      }
      break;
    case Outcome::Kind::kReleased:
      type = PN_RELEASED;
      stats.deliveries_released.fetch_add(1, std::memory_order_relaxed);
      break;
    case Outcome::Kind::kModified:
      type = PN_MODIFIED;
      stats.deliveries_modified.fetch_add(1, std::memory_order_relaxed);
      pn_disposition_set_failed(local, o.delivery_failed);
      pn_disposition_set_undeliverable(local, o.undeliverable_here);
      break;
  }
  pn_delivery_update(d, type);
}

void settleWith(pn_delivery_t* d, const Outcome& o, Stats& stats) {
  updateWith(d, o, stats);
  pn_delivery_settle(d);
}

// Reads the consumer's outcome from a delivery's remote disposition.
bool remoteOutcome(pn_delivery_t* d, Outcome& out) {
  switch (pn_delivery_remote_state(d)) {
    case PN_ACCEPTED:
      out = Outcome::accepted();
      return true;
    case PN_REJECTED: {
      pn_condition_t* c = pn_disposition_condition(pn_delivery_remote(d));
      out = Outcome::rejected(str(pn_condition_get_name(c)), str(pn_condition_get_description(c)));
      return true;
    }
    case PN_RELEASED:
      out = Outcome::released();
      return true;
    case PN_MODIFIED: {
      pn_disposition_t* r = pn_delivery_remote(d);
      out = Outcome(Outcome::Kind::kModified);
      out.delivery_failed = pn_disposition_is_failed(r);
      out.undeliverable_here = pn_disposition_is_undeliverable(r);
      return true;
    }
    default:
      return false;
  }
}

// Encodes an AMQP close frame carrying an error, for the one case where
// Proton cannot send it itself (see Connection::scheduleIo). Uses Proton's
// codec for the performative; the 8-byte frame header is AMQP's fixed layout.
std::string encodeCloseFrame(const char* condition, const char* description) {
  pn_data_t* data = pn_data(0);
  pn_data_put_described(data);
  pn_data_enter(data);
  pn_data_put_ulong(data, 0x18);  // close
  pn_data_put_list(data);
  pn_data_enter(data);
  pn_data_put_described(data);
  pn_data_enter(data);
  pn_data_put_ulong(data, 0x1d);  // error
  pn_data_put_list(data);
  pn_data_enter(data);
  pn_data_put_symbol(data, pn_bytes(std::strlen(condition), condition));
  pn_data_put_string(data, pn_bytes(std::strlen(description), description));
  pn_data_exit(data);
  pn_data_exit(data);
  pn_data_exit(data);
  pn_data_exit(data);
  char body[512];
  const ssize_t n = pn_data_encode(data, body, sizeof body);
  pn_data_free(data);
  if (n <= 0) return {};
  const std::uint32_t size = 8 + static_cast<std::uint32_t>(n);
  std::string frame = {static_cast<char>(size >> 24),
                       static_cast<char>(size >> 16),
                       static_cast<char>(size >> 8),
                       static_cast<char>(size),
                       2,
                       0,
                       0,
                       0};
  frame.append(body, static_cast<std::size_t>(n));
  return frame;
}

constexpr const char* kInstanceProperty = "vane-instance";

// The peer router's instance from its open's properties, 0 if absent.
std::uint64_t remoteInstance(pn_connection_t* c) {
  pn_data_t* props = pn_connection_remote_properties(c);
  if (props == nullptr) return 0;
  pn_data_rewind(props);
  if (!pn_data_next(props) || pn_data_type(props) != PN_MAP) return 0;
  const std::size_t n = pn_data_get_map(props);
  pn_data_enter(props);
  for (std::size_t i = 0; i + 1 < n; i += 2) {
    if (!pn_data_next(props)) break;
    const bool key = pn_data_type(props) == PN_SYMBOL &&
                     std::string_view(pn_data_get_symbol(props).start,
                                      pn_data_get_symbol(props).size) == kInstanceProperty;
    if (!pn_data_next(props)) break;
    if (key && pn_data_type(props) == PN_ULONG) return pn_data_get_ulong(props);
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------
// OutLink: router -> consumer. The egress side of Transfers.
// ---------------------------------------------------------------------------
class OutLink : public forwarding::EgressSink, public std::enable_shared_from_this<OutLink> {
 public:
  OutLink(Connection& conn, pn_link_t* link, std::string address)
      : conn_(conn), link_(link), address_(std::move(address)) {
    force_settled_ = pn_link_remote_snd_settle_mode(link) == PN_SND_SETTLED;
  }

  const std::string& address() const { return address_; }
  // An inter-router data link: not an address's consumer; settlement as the
  // upstream delivery asks.
  void setRouterLink() {
    router_link_ = true;
    force_settled_ = false;
  }
  bool routerLink() const { return router_link_; }
  // A stream link: carries one streaming copy at a time.
  void setStream() { stream_ = true; }
  bool stream() const { return stream_; }
  // A client's dynamic (router-named) source.
  void setDynamic() { dynamic_ = true; }
  bool dynamic() const { return dynamic_; }
  bool ready() const { return ready_; }
  void setConsumer(std::shared_ptr<Consumer> c) { consumer_ = std::move(c); }
  const std::shared_ptr<Consumer>& consumer() const { return consumer_; }
  pn_link_t* link() const { return link_; }

  // Called when the routing core has published the consumer everywhere.
  void setReady() { ready_ = true; }

  void enqueue(std::shared_ptr<Transfer> t) override {
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

  void append(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) override {
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

  void abort(const std::shared_ptr<Transfer>& t) override {
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

  // Moves queued bytes into the engine while the consumer has credit and the
  // session has room.
  void pump() {
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
        if (pn_session_outgoing_bytes(ssn) > limit) {
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

  std::size_t unsettledCount() const { return unsettled_.size() + queue_.size(); }

  // Taken off the connection's blocked list (it pumps us next).
  void clearBlocked() { blocked_ = false; }

  // The consumer updated a delivery we sent.
  void onDeliveryUpdated(pn_delivery_t* d) {
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

  // The link or its connection is gone: every copy still here is settled
  // back to its sender as released (never sent) or modified (sent).
  void close() {
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

 private:
  bool settlesOnSend(const Transfer& t) const { return t.presettled || force_settled_; }

  // Takes a copy off the unsettled map (and the connection's count).
  void forget(Transfer* raw) {
    if (unsettled_.erase(raw) > 0 && !router_link_) conn_.removeUnsettled();
  }

  // A consumer that takes deliveries but never settles them would grow the
  // router's memory (and Proton's) without bound: past the limit, wait.
  bool unsettledFull() {
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

  // Waits for the connection's next socket write to pump again (once on its
  // list however often it is blocked meanwhile).
  void block() {
    if (blocked_) return;
    blocked_ = true;
    conn_.addBlocked(weak_from_this());
  }

  Connection& conn_;
  pn_link_t* link_;
  std::string address_;
  std::shared_ptr<Consumer> consumer_;
  bool ready_ = false;
  bool force_settled_ = false;
  bool router_link_ = false;
  bool stream_ = false;
  bool dynamic_ = false;
  bool in_pool_ = false;
  bool blocked_ = false;
  bool unsettled_full_ = false;    // paused at max_unsettled_per_link
  bool unsettled_logged_ = false;  // said so once for this link
  std::uint64_t next_tag_ = 1;
  std::deque<std::shared_ptr<Transfer>> queue_;
  std::shared_ptr<Transfer> current_;
  std::unordered_map<Transfer*, std::shared_ptr<Transfer>> unsettled_;
};

// ---------------------------------------------------------------------------
// InLink: sender -> router. The ingress side: reads deliveries, routes them,
// and turns consumer outcomes back into dispositions.
// ---------------------------------------------------------------------------
class InLink : public forwarding::IngressSink,
               public forwarding::CreditListener,
               public std::enable_shared_from_this<InLink> {
 public:
  InLink(Connection& conn, pn_link_t* link, std::string address,
         forwarding::Arrival arrival = forwarding::Arrival::kClient, std::string peer_router = {},
         bool stream = false)
      : conn_(conn),
        ctx_(conn.context()),
        link_(link),
        address_(std::move(address)),
        arrival_(arrival),
        peer_router_(std::move(peer_router)),
        stream_(stream),
        capacity_(arrival == forwarding::Arrival::kClient
                      ? ctx_.settings.link_capacity
                      : ctx_.settings.inter_router_link_capacity) {}

  ~InLink() override { unregister(); }

  void init() {
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

  pn_link_t* link() const { return link_; }
  const std::string& address() const { return address_; }
  std::size_t liveCount() const { return live_.size(); }
  bool stream() const { return stream_; }

  // PN_DELIVERY on this link: new bytes, or the sender settled.
  void onDelivery(pn_delivery_t* d) {
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

  // Reads the link's current deliveries as far as the budget allows.
  //
  // `peer_closed`: the sender detached or closed its connection. The
  // pre-settled deliveries it has sent whole are already in the engine
  // (within the session window), so they are passed on rather than lost,
  // budget or not. Unsettled ones are left: their sender can no longer hear
  // an outcome and will resend.
  void pump(bool peer_closed = false) {
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

  // IngressSink
  void onOutcome(const std::shared_ptr<IngressDelivery>& rec, const Outcome& copy) override {
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

  void onCopyDone(const std::shared_ptr<IngressDelivery>& rec) override {
    if (!link_) return;
    --rec->copies_in_router;
    maybeFreeSlot(rec.get());
    maybeRetire(rec.get());
    conn_.process();
  }

  void onResume() override {
    if (!link_) return;
    pump();
    conn_.process();
  }

  // CreditListener
  void onConsumersChanged(bool available) override {
    if (available && link_) {
      topUpCredit();
      conn_.process();
    }
  }

  // The link or connection is gone. Partly received deliveries are aborted
  // towards their consumers; outcomes that arrive later are dropped.
  void close() {
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

 private:
  void unregister() {
    if (registered_) {
      ctx_.table.removeListener(address_, this);
      registered_ = false;
    }
  }

  IngressDelivery* startDelivery(pn_delivery_t* d) {
    auto rec = std::make_shared<IngressDelivery>(weak_from_this());
    rec->engine_delivery = d;
    rec->presettled = pn_delivery_settled(d);
    pn_delivery_set_context(d, rec.get());
    ++occupied_;
    auto* raw = rec.get();
    live_.emplace(raw, std::move(rec));
    return raw;
  }

  // Returns true when the delivery is complete (the link advanced), false
  // when reading must wait (more frames to come, or the budget is full).
  //
  // With the budget full, the bytes the sender may still send within the
  // session window are read all the same, and the session's incoming
  // capacity is lowered by as much (holdWindow): the window the sender sees
  // is what it would have been had Proton kept them, but they wait in
  // budgeted chunks, counted in vane_traffic_buffered_bytes and freed once
  // sent on. Left in Proton they would grow its delivery buffers, which it
  // pools at their largest size for the life of the connection.
  bool readFrom(IngressDelivery* rec, pn_delivery_t* d, bool ignore_budget = false) {
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

  void complete(IngressDelivery* rec, pn_delivery_t* d, std::shared_ptr<std::string> last) {
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

  void onBytes(IngressDelivery* rec, std::shared_ptr<std::string> chunk, bool last) {
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
        if (c && !c->empty()) {
          t->pending.push_back(c);
          budget_->take(static_cast<std::int64_t>(c->size()));
        }
        t->complete = last;
        t->consumer->loop.post([t] {
          if (auto sink = t->consumer->sink.lock()) {
            sink->enqueue(t);
          } else {
            dropTransfer(t);
          }
        });
      }
      return;
    }
    const Chunk c = chunk ? Chunk(std::move(chunk)) : std::make_shared<const std::string>();
    for (auto& t : rec->copies) {
      budget_->take(static_cast<std::int64_t>(c->size()));
      t->consumer->loop.post([t, c, last] {
        if (auto sink = t->consumer->sink.lock()) {
          sink->append(t, c, last);
        } else {
          t->budget->release(static_cast<std::int64_t>(c->size()));
          if (!t->slot_reported) dropTransfer(t);
        }
      });
    }
  }

  // Routes (or drops) a delivery from the bytes it starts with. Returns true
  // when more bytes are needed first. `*used` is set to the bytes that are
  // not part of the message (a route header).
  bool routeByContent(IngressDelivery* rec, const char* data, std::size_t size, bool last,
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

  void route(IngressDelivery* rec, const std::string& address,
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
      if (target.load) target.load->fetch_add(1, std::memory_order_relaxed);
      auto t = std::make_shared<Transfer>(self, std::move(target.to), budget_, presettled,
                                          std::move(target.load));
      t->streaming = stream_;
      t->flow = target.flow;
      t->flow_token = target.flow_token;
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
        budget_->take(static_cast<std::int64_t>(last_header_bytes_->size()));
        t->pending.push_back(last_header_bytes_);
      }
      rec->copies.push_back(std::move(t));
    }
    rec->copies_in_router = static_cast<int>(rec->copies.size());
    if (rec->multicast && !presettled) rec->outcomes_awaited = rec->copies_in_router;
    targets_.clear();
  }

  // No consumer will get this delivery: read and discard the rest of it, then
  // settle it with `o`.
  void drop(IngressDelivery* rec, Outcome o) {
    rec->routed = true;
    rec->discard = true;
    rec->drop_outcome = std::move(o);
    rec->buffered.clear();
    rec->buffered.shrink_to_fit();
  }

  void abortCopies(IngressDelivery* rec) {
    for (auto& t : rec->copies) {
      t->consumer->loop.post([t] {
        if (auto sink = t->consumer->sink.lock()) {
          sink->abort(t);
        } else if (!t->slot_reported) {
          dropTransfer(t);
        }
      });
    }
    rec->copies.clear();
  }

  void onAborted(IngressDelivery* rec, pn_delivery_t* d) {
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

  void applyOutcome(IngressDelivery* rec, const Outcome& o) {
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

  void finishSettle(IngressDelivery* rec, pn_delivery_t* d) {
    rec->settled = true;
    rec->engine_delivery = nullptr;
    pn_delivery_set_context(d, nullptr);
    pn_delivery_settle(d);
  }

  void maybeFreeSlot(IngressDelivery* rec) {
    if (rec->slot_freed || !rec->fully_received || rec->copies_in_router > 0) return;
    rec->slot_freed = true;
    --occupied_;
    topUpCredit();
  }

  void maybeRetire(IngressDelivery* rec) {
    if (rec->slot_freed && rec->settled) live_.erase(rec);
  }

  // Bytes that may still be read past a full budget: the session's incoming
  // capacity may go down to one frame (Proton refuses less), never below.
  std::size_t windowAllowance() const {
    const std::size_t capacity = pn_session_get_incoming_capacity(pn_link_session(link_));
    const std::size_t floor = ctx_.settings.max_frame_size;
    return capacity > floor ? capacity - floor : 0;
  }

  // `n` bytes were read past a full budget: narrow the session by as much.
  // Reading n bytes lowers Proton's incoming byte count by n, so capacity
  // minus that count, from which it computes the window it announces, stays
  // what it was: the window already promised to the sender still fits.
  void holdWindow(std::size_t n) {
    pn_session_t* s = pn_link_session(link_);
    pn_session_set_incoming_capacity(s, pn_session_get_incoming_capacity(s) - n);
    window_held_ += n;
  }

  // The budget is below its limit again: widen the session back and tell
  // the sender (a flow frame carries the session's window).
  void giveBackWindow() {
    if (window_held_ == 0 || !link_) return;
    pn_session_t* s = pn_link_session(link_);
    pn_session_set_incoming_capacity(s, pn_session_get_incoming_capacity(s) + window_held_);
    window_held_ = 0;
    if (pn_link_state(link_) & PN_LOCAL_ACTIVE) pn_link_flow(link_, 0);
  }

  // Grants credit up to link_capacity minus the deliveries still inside the
  // router; none while a named address has no consumer.
  void topUpCredit() {
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

  Connection& conn_;
  LoopContext& ctx_;
  pn_link_t* link_;
  const std::string address_;  // empty: anonymous sender, route by `to`
  // kClient: an application's link; otherwise a router's data link, whose
  // deliveries start with a route header.
  const forwarding::Arrival arrival_;
  const std::string peer_router_;  // router links: the peer's id
  const bool stream_;              // a stream link (one stream at a time)
  const int capacity_;             // credit window
  bool registered_ = false;
  bool read_bytes_ = false;  // pn_link_recv took bytes since the last flow nudge
  int occupied_ = 0;         // deliveries received and not yet out of the router
  // Bytes read while the budget was full, by which the session's incoming
  // capacity is lowered (holdWindow).
  std::size_t window_held_ = 0;
  std::shared_ptr<forwarding::FlowBudget> budget_;
  std::unordered_map<IngressDelivery*, std::shared_ptr<IngressDelivery>> live_;
  std::vector<forwarding::Target> targets_;  // scratch
  // Route header caches (see routeByContent and route).
  std::string last_raw_header_;
  forwarding::RouteHeader last_header_in_;
  forwarding::RouteHeader last_header_out_;
  Chunk last_header_bytes_;
};

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
  bool onDelivery(pn_delivery_t* d) {
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

  void close() { link_ = nullptr; }

 private:
  void fail(const std::string& why) {
    conn_.countProtocolError();
    VANE_LOG_WARN("connection {}: malformed control message from router {}: {}", conn_.peer(),
                  conn_.peerRouter(), why);
    link_ = nullptr;
    conn_.closeWithError("vane:protocol-error", "malformed control message");
  }

  void topUp() {
    if (!link_) return;
    const int credit = std::max(0, pn_link_credit(link_));
    if (credit < kWindow / 2) pn_link_flow(link_, kWindow - credit);
  }

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
  void close(const std::string& condition, const std::string& reason) override {
    auto c = conn_.lock();
    if (!c) return;
    c->closeWithError(condition.c_str(), reason.c_str());
    // A neighbour declared dead will not answer the close: waiting the close
    // grace would hold its in-flight deliveries (and their senders' credit)
    // for nothing. Settle them back now.
    if (condition == "vane:neighbor-dead") c->shutdownNow();
  }

 private:
  core::EventLoop& loop_;
  std::weak_ptr<Connection> conn_;
};

// ---------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------
Connection::Connection(LoopContext& ctx, asio::ip::tcp::socket socket, ConnectionOptions options,
                       ClosedCallback on_closed)
    : ctx_(ctx),
      socket_(std::move(socket)),
      timer_(ctx.loop.context()),
      grace_timer_(ctx.loop.context()),
      options_(std::move(options)),
      on_closed_(std::move(on_closed)),
      driver_(std::make_unique<pn_connection_driver_t>()) {
  std::memset(driver_.get(), 0, sizeof(pn_connection_driver_t));
  pn_connection_driver_init(driver_.get(), nullptr, nullptr);
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (options_.tls) tls_.emplace(std::move(socket_), *options_.tls);
}

Connection::~Connection() {
  // Links hold raw engine pointers: detach them before the engine goes.
  for (auto& [l, in] : in_links_) in->close();
  for (auto& [l, out] : out_links_) out->close();
  if (control_in_) control_in_->close();
  pn_connection_driver_destroy(driver_.get());
}

void Connection::start() {
  VANE_ASSERT_THREAD(ctx_.loop);
  // Active from now (also while TLS is negotiated): max_connections counts it.
  ctx_.stats.connections_active.fetch_add(1, std::memory_order_relaxed);
  if (options_.counters)
    options_.counters->connections_active.fetch_add(1, std::memory_order_relaxed);
  // TLS, SASL and the AMQP open must all be done by then.
  handshake_deadline_ = std::chrono::steady_clock::now() + options_.handshake_timeout;
  if (!tls_) {
    begin();
    return;
  }
  namespace ssl = asio::ssl;
  if (options_.outgoing && !options_.tls_host.empty()) {
    boost::system::error_code ec;
    asio::ip::make_address(options_.tls_host, ec);
    if (ec) SSL_set_tlsext_host_name(tls_->native_handle(), options_.tls_host.c_str());
    tls_->set_verify_callback(ssl::host_name_verification(options_.tls_host));
  }
  handshaking_ = true;
  timer_.expires_at(handshake_deadline_);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || !self->handshaking_ || self->torn_down_) return;
    boost::system::error_code ignored;
    self->sock().close(ignored);  // the handshake fails with operation_aborted
  });
  tls_->async_handshake(
      options_.outgoing ? ssl::stream_base::client : ssl::stream_base::server,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->onHandshake(ec); });
}

void Connection::onHandshake(const boost::system::error_code& ec) {
  handshaking_ = false;
  if (torn_down_) return;
  timer_.cancel();
  SSL* ssl = tls_->native_handle();
  if (ec) {
    const bool timed_out =
        ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
    // A peer that connects and leaves without a word (a port scan, a
    // health check) is not a TLS failure worth a warning.
    const bool silent = (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) &&
                        SSL_get_state(ssl) == TLS_ST_BEFORE;
    std::string why = ec.message();
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    } else if (timed_out) {
      ctx_.stats.handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
      why = "no TLS handshake within " + std::to_string(options_.handshake_timeout.count()) +
            " ms (handshake_timeout_ms)";
    }
    if (closing_) {
      VANE_LOG_DEBUG("connection {} on {}: closed during the TLS handshake", peer_, listener_);
    } else if (silent) {
      VANE_LOG_DEBUG("connection {} on {}: closed before a TLS handshake", peer_, listener_);
    } else {
      reportFailure("TLS handshake failed: " + why);
    }
    torn_down_ = true;
    boost::system::error_code ignored;
    sock().close(ignored);
    ctx_.stats.connections_active.fetch_sub(1, std::memory_order_relaxed);
    if (options_.counters)
      options_.counters->connections_active.fetch_sub(1, std::memory_order_relaxed);
    if (on_closed_) on_closed_(this);
    return;
  }
  tls_version_ = SSL_get_version(ssl);
  if (X509* cert = SSL_get1_peer_certificate(ssl)) {
    char cn[256] = {0};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0)
      tls_peer_ = cn;
    X509_free(cert);
  }
  VANE_LOG_DEBUG("connection {} on {}: {} established{}", peer_, listener_, tls_version_,
                 tls_peer_.empty() ? std::string() : ", peer certificate " + tls_peer_);
  begin();
}

void Connection::reportFailure(const std::string& what) {
  const bool auth = what.rfind("TLS", 0) != 0;
  auto& stat = auth ? ctx_.stats.auth_failures : ctx_.stats.tls_failures;
  stat.fetch_add(1, std::memory_order_relaxed);
  if (options_.counters) {
    (auth ? options_.counters->auth_failures : options_.counters->tls_failures)
        .fetch_add(1, std::memory_order_relaxed);
  }
  static core::LogThrottle unattached_log;  // connections without a listener's counters
  const std::uint64_t n =
      (options_.counters ? options_.counters->failure_log : unattached_log).admit();
  if (n == 1)
    VANE_LOG_WARN("connection {} {} {}: {}", peer_,
                  options_.outgoing ? "of connector" : "on listener", listener_, what);
  else if (n > 1)
    VANE_LOG_WARN(
        "connection {} {} {}: {} (and {} more TLS or authentication failure(s) "
        "since the last such line)",
        peer_, options_.outgoing ? "of connector" : "on listener", listener_, what, n - 1);
  if (options_.on_failure) options_.on_failure(what);
}

void Connection::begin() {
  pn_transport_t* t = driver_->transport;
  if (!options_.outgoing) pn_transport_set_server(t);
  pn_transport_set_max_frame(t, ctx_.settings.max_frame_size);
  // Router links open a session per stream link (router.max_stream_links
  // from each side); clients need few.
  pn_transport_set_channel_max(t, routerLink() ? kRouterChannelMax : 1024);
  const std::uint32_t idle = options_.idle_timeout_ms.value_or(ctx_.settings.idle_timeout_ms);
  if (idle > 0) pn_transport_set_idle_timeout(t, idle);
  if (!options_.outgoing && options_.sasl) {
    sasl_ = std::make_unique<SaslServer>(
        options_.sasl, tls_peer_, peer_,
        [this](const std::string& mechanism, const std::string& user, bool ok) {
          if (ok) {
            user_ = user;
            return;
          }
          auth_reported_ = true;
          reportFailure("authentication failed (" + mechanism +
                        (user.empty() ? std::string() : " as '" + user + "'") + ")");
        });
    sasl_->install(t);
  } else if (!options_.outgoing) {
    // Clients may or may not use a SASL layer; accept both, ANONYMOUS only.
    pn_transport_require_auth(t, false);
    pn_sasl_t* sasl = pn_sasl(t);
    pn_sasl_allowed_mechs(sasl, "ANONYMOUS");
  }
  pn_connection_set_container(driver_->connection, ctx_.settings.container_id.c_str());
  if (routerLink()) {
    neighbor_id_ = ctx_.core.nextNeighborId();
    handle_ = std::make_shared<NeighborHandle>(ctx_.loop, weak_from_this());
    // Our run's instance tells a second connection from the same router
    // apart from another router that uses the same id.
    pn_data_t* props = pn_connection_properties(driver_->connection);
    pn_data_put_map(props);
    pn_data_enter(props);
    pn_data_put_symbol(props, pn_bytes(std::strlen(kInstanceProperty), kInstanceProperty));
    pn_data_put_ulong(props, ctx_.settings.instance);
    pn_data_exit(props);
  }
  if (options_.outgoing) {
    // We dialled: open at once, with our links (sent after the open).
    pn_connection_open(driver_->connection);
    openRouterLinks();
  }
  ctx_.stats.connections_opened.fetch_add(1, std::memory_order_relaxed);
  opened_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  if (options_.counters)
    options_.counters->connections_opened.fetch_add(1, std::memory_order_relaxed);
  // A peer must open the connection within the handshake timeout; one that
  // connects and stays silent would otherwise hold a socket forever. The
  // idle-timeout ticks reuse this timer once the peer's open arrives.
  timer_.expires_at(handshake_deadline_);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->torn_down_ || self->remote_opened_) return;
    VANE_LOG_INFO(
        "connection {} on listener {}: handshake (TLS, SASL, AMQP open) not done within {} ms, "
        "closing",
        self->peer_, self->listener_, self->options_.handshake_timeout.count());
    self->ctx_.stats.handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
    pn_connection_driver_close(self->driver_.get());
    self->process();
  });
  VANE_LOG_DEBUG("connection from {} accepted on listener {}", peer_, listener_);
  process();
}

void Connection::closeWithError(const char* condition, const char* description) {
  VANE_ASSERT_THREAD(ctx_.loop);
  if (torn_down_) return;
  if (handshaking_) {
    closing_ = true;  // not the peer's failure
    boost::system::error_code ignored;
    sock().close(ignored);  // the handshake ends with an error, and the connection with it
    return;
  }
  pn_connection_t* c = driver_->connection;
  if (!(pn_connection_state(c) & PN_LOCAL_CLOSED)) {
    pn_condition_t* cond = pn_connection_condition(c);
    pn_condition_set_name(cond, condition);
    pn_condition_set_description(cond, description);
    if (pn_connection_state(c) & PN_LOCAL_UNINIT) pn_connection_open(c);
    pn_connection_close(c);
  }
  // Give the peer a moment to read the close, then drop the socket.
  armGrace();
  process();
}

void Connection::process() {
  if (torn_down_ || handshaking_) return;
  if (processing_) {
    again_ = true;
    return;
  }
  auto self = shared_from_this();  // on_closed_ may drop the registry's reference
  processing_ = true;
  do {
    again_ = false;
    while (pn_event_t* e = pn_connection_driver_next_event(driver_.get())) handleEvent(e);
    // Taking the driver's buffers can queue events (the transport closes
    // once it has no more output): handle them too, or the connection is
    // never finished and nothing would wake it again.
    scheduleIo();
  } while (!torn_down_ && (again_ || pn_connection_driver_has_event(driver_.get())));
  processing_ = false;
}

void Connection::scheduleIo() {
  if (torn_down_) return;
  if (!writing_) {
    pn_bytes_t wb = pn_connection_driver_write_buffer(driver_.get());
    if (wb.size > 0) {
      if (!amqp_header_sent_) {
        // Our close frame (below) is only valid once the AMQP layer started.
        static constexpr char kAmqpHeader[] = {'A', 'M', 'Q', 'P', 0, 1, 0, 0};
        amqp_header_sent_ = std::search(wb.start, wb.start + wb.size, kAmqpHeader,
                                        kAmqpHeader + sizeof kAmqpHeader) != wb.start + wb.size;
      }
      writing_ = true;
      writeSome(asio::buffer(wb.start, wb.size),
                [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                  self->writing_ = false;
                  if (self->torn_down_) return;
                  if (ec) {
                    pn_connection_driver_write_close(self->driver_.get());
                  } else {
                    pn_connection_driver_write_done(self->driver_.get(), n);
                    self->onWritten();
                  }
                  self->process();
                });
    }
  }
  if (!reading_ && !input_stopped_) {
    pn_rwbytes_t rb = pn_connection_driver_read_buffer(driver_.get());
    if (rb.size > 0) {
      reading_ = true;
      readSome(asio::buffer(rb.start, rb.size),
               [self = shared_from_this(), start = rb.start](const boost::system::error_code& ec,
                                                             std::size_t n) {
                 self->reading_ = false;
                 if (self->torn_down_) return;
                 if (ec) {
                   self->socket_eof_ = true;
                   // TLS 1.3: a server refuses our certificate after our side of
                   // the handshake is done; its alert arrives here.
                   if (self->tls_ && !self->remote_opened_ &&
                       ec.category() == asio::error::get_ssl_category()) {
                     self->reportFailure("TLS: the peer refused the connection: " + ec.message());
                   }
                   pn_connection_driver_read_close(self->driver_.get());
                 } else {
                   // The guard sees the bytes before the engine does; bytes of a
                   // refused frame never reach it.
                   std::size_t accepted = n;
                   auto violation = self->guard_.feed(start, n, &accepted);
                   pn_connection_driver_read_done(self->driver_.get(), accepted);
                   if (violation)
                     self->onGuardViolation(violation->condition, violation->description);
                 }
                 self->process();
               });
    }
  }
  if (input_stopped_ && !reading_) {
    // After a refused frame nothing more goes to the engine, but the socket
    // is still drained so that closing it does not reset the peer before it
    // has read our close.
    reading_ = true;
    readSome(asio::buffer(discard_),
             [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
               self->reading_ = false;
               if (self->torn_down_) return;
               if (ec) {
                 self->socket_eof_ = true;
                 pn_connection_driver_read_close(self->driver_.get());
                 self->process();
                 return;
               }
               self->scheduleIo();
             });
  }
  if (!socket_eof_ && !decode_failed_ && !input_stopped_ &&
      !(pn_connection_state(driver_->connection) & PN_LOCAL_CLOSED) &&
      pn_connection_driver_read_closed(driver_.get()) &&
      !(pn_connection_state(driver_->connection) & PN_REMOTE_CLOSED) &&
      !pn_condition_is_set(pn_transport_condition(driver_->transport))) {
    // The engine stopped reading although the peer neither closed nor
    // disconnected and no error was raised: a frame it could not decode
    // (Proton closes its input silently then). Tell the peer why.
    decode_failed_ = true;
    countProtocolError();
    VANE_LOG_WARN(
        "connection {} on listener {}: protocol error: amqp:decode-error: malformed frame", peer_,
        listener_);
    // Proton treats a performative it cannot decode as the end of input and
    // will not send a close any more; open the connection (if it was not)
    // so the peer gets a well-formed open, then append our own close.
    if (amqp_header_sent_) {
      pn_connection_t* c = driver_->connection;
      if (pn_connection_state(c) & PN_LOCAL_UNINIT) pn_connection_open(c);
      final_frame_ = encodeCloseFrame("amqp:decode-error", "malformed frame");
    }
  }
  if (!final_frame_.empty() && !writing_ &&
      pn_connection_driver_write_buffer(driver_.get()).size == 0) {
    writing_ = true;
    auto frame = std::make_shared<std::string>(std::move(final_frame_));
    final_frame_.clear();
    auto done = [self = shared_from_this(), frame](const boost::system::error_code&, std::size_t) {
      self->writing_ = false;
      if (self->torn_down_) return;
      pn_connection_driver_write_close(self->driver_.get());
      self->process();
    };
    if (tls_) {
      asio::async_write(*tls_, asio::buffer(*frame), std::move(done));
    } else {
      asio::async_write(socket_, asio::buffer(*frame), std::move(done));
    }
    return;
  }
  if (!final_frame_.empty()) return;  // proton's output goes first
  if (!writing_ && pn_connection_driver_read_closed(driver_.get()) &&
      !pn_connection_driver_write_closed(driver_.get()) &&
      pn_connection_driver_write_buffer(driver_.get()).size == 0) {
    // The peer's stream has ended and the engine has nothing left to write.
    // Proton closes its output itself only if the stream ended on a frame
    // boundary; after a partial frame it would stay open, and nothing would
    // ever wake the connection again. Close it (the events this queues are
    // handled by process()).
    pn_connection_driver_write_close(driver_.get());
  }
  if (pn_connection_driver_finished(driver_.get()) && !writing_) teardown();
}

void Connection::onGuardViolation(const std::string& condition, const std::string& description) {
  input_stopped_ = true;
  countProtocolError();
  VANE_LOG_WARN("connection {} on listener {}: protocol error: {}: {}", peer_, listener_, condition,
                description);
  if (!guard_.inAmqpLayer()) {
    // No AMQP layer to carry a close (e.g. still in SASL): just drop it.
    pn_connection_driver_close(driver_.get());
    return;
  }
  if (remote_opened_) {
    closeWithError(condition.c_str(), description.c_str());
    return;
  }
  // The engine sends no close before the peer's open; answer with our open
  // and then our own close frame.
  pn_connection_t* c = driver_->connection;
  if (pn_connection_state(c) & PN_LOCAL_UNINIT) pn_connection_open(c);
  final_frame_ = encodeCloseFrame(condition.c_str(), description.c_str());
  armGrace();
}

void Connection::armGrace() {
  if (grace_armed_) return;
  grace_armed_ = true;
  grace_timer_.expires_after(std::chrono::seconds(2));
  grace_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && !self->torn_down_) {
      pn_connection_driver_close(self->driver_.get());
      self->process();
    }
  });
}

ConnectionInfo Connection::info() const {
  ConnectionInfo i;
  i.peer = peer_;
  i.listener = options_.name;
  i.role = config::toString(options_.role);
  i.outgoing = options_.outgoing;
  i.opened_ms = opened_ms_;
  i.tls = tls_version_;
  i.tls_peer = tls_peer_;
  i.user = user_;
  if (remote_opened_ && driver_)
    i.container = str(pn_connection_remote_container(driver_->connection));
  for (const auto& [l, in] : in_links_) {
    i.links.push_back(
        {str(pn_link_name(l)), true, in->address(), pn_link_credit(l), in->liveCount()});
  }
  for (const auto& [l, out] : out_links_) {
    i.links.push_back(
        {str(pn_link_name(l)), false, out->address(), pn_link_credit(l), out->unsettledCount()});
  }
  std::sort(i.links.begin(), i.links.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return i;
}

void Connection::countProtocolError() {
  ctx_.stats.protocol_errors.fetch_add(1, std::memory_order_relaxed);
  if (options_.counters) options_.counters->protocol_errors.fetch_add(1, std::memory_order_relaxed);
}

void Connection::frameOutput() {
  // IMPORTANT: while a socket write is in flight it reads straight out of
  // the transport's output buffer, and framing more output may grow (move)
  // that buffer: the write would then send freed memory. Frame only between
  // writes; a link that needs room waits for onWritten().
  if (!torn_down_ && !writing_) pn_transport_pending(driver_->transport);
}

void Connection::onWritten() {
  if (blocked_.empty()) return;
  auto blocked = std::move(blocked_);
  blocked_.clear();
  for (auto& w : blocked) {
    if (auto l = w.lock()) {
      l->clearBlocked();
      l->pump();
    }
  }
}

void Connection::scheduleTick() {
  if (torn_down_) return;
  const std::int64_t deadline = pn_transport_tick(driver_->transport, nowMs());
  if (deadline == 0 || (tick_armed_ && deadline >= tick_deadline_)) return;
  tick_armed_ = true;
  tick_deadline_ = deadline;
  timer_.expires_after(std::chrono::milliseconds(std::max<std::int64_t>(1, deadline - nowMs())));
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->torn_down_) return;
    self->tick_armed_ = false;
    self->scheduleTick();
    self->process();
  });
}

void Connection::teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  pn_condition_t* cond = pn_transport_condition(driver_->transport);
  if (pn_condition_is_set(cond)) {
    VANE_LOG_DEBUG("connection {} closed: {}: {}", peer_, str(pn_condition_get_name(cond)),
                   str(pn_condition_get_description(cond)));
  } else {
    VANE_LOG_DEBUG("connection {} closed", peer_);
  }
  for (auto& [l, in] : in_links_) in->close();
  for (auto& [l, out] : out_links_) {
    out->close();
    if (out->consumer() && !out->routerLink())
      ctx_.core.removeConsumer(out->address(), out->consumer()->id);
  }
  in_links_.clear();
  out_links_.clear();
  blocked_.clear();
  if (control_in_) control_in_->close();
  control_in_.reset();
  data_out_.reset();
  idle_streams_.clear();
  ctl_out_ = ctl_in_ = nullptr;
  control_queue_.clear();
  if (routerLink() && neighbor_id_ != 0) {  // 0: torn down before the protocol began
    handle_.reset();
    ctx_.core.neighborGone(neighbor_id_);
  }
  boost::system::error_code ec;
  timer_.cancel();
  grace_timer_.cancel();
  sock().close(ec);
  ctx_.stats.connections_closed.fetch_add(1, std::memory_order_relaxed);
  ctx_.stats.connections_active.fetch_sub(1, std::memory_order_relaxed);
  if (options_.counters)
    options_.counters->connections_active.fetch_sub(1, std::memory_order_relaxed);
  if (on_closed_) on_closed_(this);
}

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

namespace vane::amqp {

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
