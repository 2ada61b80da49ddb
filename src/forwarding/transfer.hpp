// The objects a delivery is made of while it crosses the router.
//
// An ingress delivery (a message arriving on a link the router receives on)
// produces one Transfer per consumer it is forwarded to: one for anycast,
// one per consumer for multicast. Payload travels as immutable Chunks shared
// by all copies, so multicast fan-out copies no bytes.
//
// IMPORTANT thread rules. Every object here has one owning event loop:
//  - IngressDelivery, IngressSink: the loop of the connection the message
//    arrived on ("ingress loop").
//  - Transfer (its non-atomic fields), EgressSink: the loop of the consumer's
//    connection ("egress loop"), from the moment the ingress loop posts it there.
// Cross-loop communication is only by posting closures; the atomics in
// FlowBudget and Consumer are the only state touched from two loops.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/event_loop.hpp"

namespace vane::forwarding {

// 128 random bits in a flow's reply address (see flowAddress): only a party
// that was told the address can send into the flow.
struct FlowToken {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  bool operator==(const FlowToken&) const = default;
  // From the system's CSPRNG.
  static FlowToken random();
};

// Immutable payload bytes. Shared by all copies of a multicast delivery.
using Chunk = std::shared_ptr<const std::string>;

// The terminal state of a delivery as AMQP defines it.
struct Outcome {
  enum class Kind : std::uint8_t { kAccepted, kRejected, kReleased, kModified };
  Kind kind = Kind::kReleased;
  // kModified
  bool delivery_failed = false;
  bool undeliverable_here = false;
  // kRejected: the error condition, if the consumer gave one
  std::string error_name;
  std::string error_description;

  Outcome() = default;
  explicit Outcome(Kind k) : kind(k) {}

  static Outcome accepted() { return Outcome(Kind::kAccepted); }
  static Outcome released() { return Outcome(Kind::kReleased); }
  static Outcome modifiedFailed() {
    Outcome o(Kind::kModified);
    o.delivery_failed = true;
    return o;
  }
  static Outcome rejected(std::string name, std::string description) {
    Outcome o(Kind::kRejected);
    o.error_name = std::move(name);
    o.error_description = std::move(description);
    return o;
  }
};

class IngressSink;
class EgressSink;

// The sum of every FlowBudget's bytes in this process: message and stream
// bytes the router holds between reading them and handing them to the egress
// protocol engine or socket (vane_traffic_buffered_bytes). A multicast
// delivery counts once per copy although its copies share the bytes. Cheap
// enough for the data path: each thread adds to its own cache line; reading
// sums them.
namespace traffic {
void add(std::int64_t n);
std::int64_t buffered();
}  // namespace traffic

// Bytes of one ingress link that are inside the router (received from the
// sender, not yet handed to the egress protocol engine). The ingress stops
// reading the link above `limit` and resumes when the egress side drains
// below limit/2. Invariant: 0 <= bytes.
struct FlowBudget {
  FlowBudget(core::EventLoop& loop, std::int64_t limit) : ingress_loop(loop), limit(limit) {}
  // Bytes never released (copies dropped with their chunks) leave the gauge.
  ~FlowBudget() { traffic::add(-bytes.load(std::memory_order_relaxed)); }
  FlowBudget(const FlowBudget&) = delete;
  FlowBudget& operator=(const FlowBudget&) = delete;

  core::EventLoop& ingress_loop;
  const std::int64_t limit;
  std::atomic<std::int64_t> bytes{0};
  // Set by the ingress when it paused; the egress that drains below the low
  // mark clears it and posts a resume.
  std::atomic<bool> paused{false};
  // Where to post the resume. Only dereferenced on ingress_loop.
  std::weak_ptr<IngressSink> sink;

  bool overLimit() const { return bytes.load(std::memory_order_relaxed) > limit; }
  // Ingress loop, before reading more: true when over the limit, in which
  // case `paused` is set and a resume (IngressSink::onResume) will come once
  // the egress drains below the low mark. The flag is set before a second
  // check, so a drain racing the pause is never lost. That needs sequential
  // consistency here and in release(): with release/acquire alone the
  // second check may read `bytes` from before the egress drained while the
  // egress reads `paused` from before it was set (a store followed by a
  // load of another variable; x86 reorders them too), and then nobody
  // resumes the link: it stalls for good.
  bool pauseIfFull() {
    if (!overLimit()) return false;
    paused.store(true, std::memory_order_seq_cst);
    if (bytes.load(std::memory_order_seq_cst) > limit) return true;
    // Drained between the checks: take the flag back (or let the resume that
    // the egress posted find nothing to do).
    paused.store(false, std::memory_order_release);
    return false;
  }
  void take(std::int64_t n) {
    bytes.fetch_add(n, std::memory_order_relaxed);
    traffic::add(n);
  }
  // Called on the egress loop when `n` bytes have left the router's buffers.
  void release(std::int64_t n);
};

// A consumer of an address: an egress link. Shared (read-only apart from the
// atomics) by every loop's forwarding table.
struct Consumer {
  Consumer(std::uint64_t id, core::EventLoop& loop, std::weak_ptr<EgressSink> sink)
      : id(id), loop(loop), sink(std::move(sink)) {}

  const std::uint64_t id;
  core::EventLoop& loop;                 // the egress loop
  const std::weak_ptr<EgressSink> sink;  // lock() only on `loop`
  // Deliveries assigned to this consumer and not yet settled; used by
  // `balanced` to prefer the least busy consumer.
  std::atomic<std::int32_t> outstanding{0};
};

// A router elsewhere in the network that has consumers for an address, as
// seen from this router. Shared (read-only apart from the atomic) by every
// loop's forwarding table, like Consumer.
struct RemoteDest {
  explicit RemoteDest(std::string r) : router(std::move(r)) {}
  const std::string router;
  // Unsettled anycast deliveries this router sent there for the address.
  std::atomic<std::int32_t> outstanding{0};
};

// What the ingress keeps for one arriving delivery.
struct IngressDelivery;

// One copy of a delivery on its way to one consumer.
struct Transfer {
  Transfer(std::shared_ptr<IngressDelivery> in, std::shared_ptr<Consumer> to,
           std::shared_ptr<FlowBudget> budget, bool presettled,
           std::shared_ptr<std::atomic<std::int32_t>> load)
      : ingress(std::move(in)),
        consumer(std::move(to)),
        budget(std::move(budget)),
        presettled(presettled),
        load(std::move(load)) {}

  // Immutable after creation.
  const std::shared_ptr<IngressDelivery> ingress;  // to report outcome / slot back
  // The egress link: a local consumer, or the data link to the next router.
  const std::shared_ptr<Consumer> consumer;
  const std::shared_ptr<FlowBudget> budget;
  const bool presettled;  // forwarded settled; no outcome is reported back
  // The outstanding counter the ingress incremented for this copy (a local
  // consumer's or a RemoteDest's), or null; the egress decrements it exactly
  // once (uncount()).
  const std::shared_ptr<std::atomic<std::int32_t>> load;

  // Set by the ingress before the copy is posted; read-only afterwards.
  // A stream (a TCP connection's direction): one delivery that lasts as
  // long as the stream, sent on a link of its own between routers.
  bool streaming = false;
  // For a flow's own consumer (FlowTable): which flow on that loop, and the
  // token its address carried.
  std::uint64_t flow = 0;
  FlowToken flow_token;

  // Egress loop only.
  // The sink that took the copy over from the consumer it was posted to (a
  // router link's stream link, a flow): later bytes and aborts go there.
  std::weak_ptr<EgressSink> via;
  std::deque<Chunk> pending;      // bytes not yet handed to the egress engine
  std::size_t front_offset = 0;   // bytes of pending.front() already sent
  bool complete = false;          // the last chunk has arrived
  bool aborted = false;           // the sender aborted; abort the copy
  bool started = false;           // some bytes went to the consumer's engine
  bool finished_sending = false;  // all bytes handed to the engine
  bool slot_reported = false;     // copyDone sent to the ingress
  bool outcome_reported = false;
  bool uncounted = false;
  void* engine_delivery = nullptr;  // the egress engine's delivery handle
  // What the engine's delivery buffer held right after our last append: if
  // it still holds that much, nothing was framed since.
  std::size_t engine_appended = 0;
};

// Interface of an egress link (router -> consumer), implemented by the AMQP
// adaptor. All calls happen on the egress loop.
class EgressSink {
 public:
  virtual ~EgressSink() = default;
  // A new copy to send (possibly with no bytes yet).
  virtual void enqueue(std::shared_ptr<Transfer> t) = 0;
  // More bytes for a copy already enqueued; `last` marks the end.
  virtual void append(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) = 0;
  // The sender aborted the delivery.
  virtual void abort(const std::shared_ptr<Transfer>& t) = 0;
};

// Interface of an ingress link (sender -> router). All calls happen on the
// ingress loop.
class IngressSink {
 public:
  virtual ~IngressSink() = default;
  // The consumer settled a copy with `outcome` (unsettled anycast only).
  virtual void onOutcome(const std::shared_ptr<IngressDelivery>& d, const Outcome& outcome) = 0;
  // A copy has left the router (handed to the consumer's engine, or dropped):
  // when all copies have, the delivery's credit slot is free.
  virtual void onCopyDone(const std::shared_ptr<IngressDelivery>& d) = 0;
  // The FlowBudget drained below its low mark: continue reading.
  virtual void onResume() = 0;
};

struct AddressCounters;

struct IngressDelivery {
  explicit IngressDelivery(std::weak_ptr<IngressSink> s) : sink(std::move(s)) {}
  const std::weak_ptr<IngressSink> sink;  // lock() only on the ingress loop
  // Ingress loop only:
  void* engine_delivery = nullptr;  // null once settled or the link is gone
  int copies_in_router = 0;         // copies not yet done (slot accounting)
  bool presettled = false;          // the sender settled it on sending
  bool routed = false;              // consumers chosen (or dropped)
  bool multicast = false;
  bool discard = false;  // no route: read and throw away
  bool fully_received = false;
  bool slot_freed = false;
  bool settled = false;
  bool has_pending_outcome = false;
  // Unsettled multicast: copies whose outcome has not come back yet, and the
  // outcome merged from those that have (see mergeMulticastOutcome).
  int outcomes_awaited = 0;
  bool merged_any = false;
  Outcome merged_outcome;
  bool early_outcome = false;           // a stream's outcome sent before its end
  Outcome pending_outcome;              // outcome that arrived before the last byte did
  Outcome drop_outcome;                 // outcome for a discarded delivery
  std::string buffered;                 // bytes held until the route is known (anonymous senders)
  AddressCounters* counters = nullptr;  // the ingress loop's, for its address
  std::vector<std::shared_ptr<Transfer>> copies;  // cleared once fully received
};

// The sender of an unsettled multicast delivery learns one outcome for all
// its copies, once every copy is settled: accepted when any consumer
// accepted; otherwise rejected when any rejected (the first rejection's
// error); otherwise modified when any copy was modified (delivery-failed if
// any said so); otherwise released. A consumer that went away before
// settling counts as released (never sent to it) or modified (sent).
inline void mergeMulticastOutcome(Outcome& merged, bool& any, const Outcome& o) {
  auto rank = [](Outcome::Kind k) {
    switch (k) {
      case Outcome::Kind::kAccepted:
        return 3;
      case Outcome::Kind::kRejected:
        return 2;
      case Outcome::Kind::kModified:
        return 1;
      case Outcome::Kind::kReleased:
        break;
    }
    return 0;
  };
  if (!any) {
    merged = o;
    any = true;
    return;
  }
  if (o.kind == Outcome::Kind::kModified && merged.kind == Outcome::Kind::kModified) {
    merged.delivery_failed = merged.delivery_failed || o.delivery_failed;
    merged.undeliverable_here = merged.undeliverable_here && o.undeliverable_here;
    return;
  }
  if (rank(o.kind) > rank(merged.kind)) merged = o;
}

// Takes a counted copy off its consumer's outstanding count, once. Egress loop.
inline void uncount(Transfer& t) {
  if (t.load && !t.uncounted) {
    t.uncounted = true;
    t.load->fetch_sub(1, std::memory_order_relaxed);
  }
}

// For sinks that hand a copy over to another sink (Transfer::via): pass on
// later bytes or an abort. Bytes for a copy whose sink is gone leave the
// budget. Egress loop.
void appendVia(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last);
void abortVia(const std::shared_ptr<Transfer>& t);

// Helpers that post to the ingress loop. Safe from any loop.
void postOutcome(const std::shared_ptr<Transfer>& t, const Outcome& outcome);
void postCopyDone(const std::shared_ptr<Transfer>& t);

// Frees a copy that will not (or no longer) be sent: its buffered bytes leave
// the budget, its sender learns the outcome (released if the consumer never
// saw a byte, modified/delivery-failed otherwise), and its slot is returned.
// Egress loop.
void dropTransfer(const std::shared_ptr<Transfer>& t);

}  // namespace vane::forwarding
