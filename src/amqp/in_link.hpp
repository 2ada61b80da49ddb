// Internal to the amqp module: see connection.hpp.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "amqp/engine_helpers.hpp"
#include "forwarding/forwarder.hpp"

namespace vane::amqp {

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

  void init();

  pn_link_t* link() const { return link_; }
  const std::string& address() const { return address_; }
  std::size_t liveCount() const { return live_.size(); }
  bool stream() const { return stream_; }

  // PN_DELIVERY on this link: new bytes, or the sender settled.
  void onDelivery(pn_delivery_t* d);

  // Reads the link's current deliveries as far as the budget allows.
  //
  // `peer_closed`: the sender detached or closed its connection. The
  // pre-settled deliveries it has sent whole are already in the engine
  // (within the session window), so they are passed on rather than lost,
  // budget or not. Unsettled ones are left: their sender can no longer hear
  // an outcome and will resend.
  void pump(bool peer_closed = false);

  // IngressSink
  void onOutcome(const std::shared_ptr<IngressDelivery>& rec, const Outcome& copy) override;

  void onCopyDone(const std::shared_ptr<IngressDelivery>& rec) override;

  void onResume() override;

  // CreditListener
  void onConsumersChanged(bool available) override;

  // The link or connection is gone. Partly received deliveries are aborted
  // towards their consumers; outcomes that arrive later are dropped.
  void close();

 private:
  void unregister();

  IngressDelivery* startDelivery(pn_delivery_t* d);

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
  bool readFrom(IngressDelivery* rec, pn_delivery_t* d, bool ignore_budget = false);

  void complete(IngressDelivery* rec, pn_delivery_t* d, std::shared_ptr<std::string> last);

  void onBytes(IngressDelivery* rec, std::shared_ptr<std::string> chunk, bool last);

  // Routes (or drops) a delivery from the bytes it starts with. Returns true
  // when more bytes are needed first. `*used` is set to the bytes that are
  // not part of the message (a route header).
  bool routeByContent(IngressDelivery* rec, const char* data, std::size_t size, bool last,
                      std::size_t* used);

  void route(IngressDelivery* rec, const std::string& address,
             const forwarding::RouteHeader* header);

  // No consumer will get this delivery: read and discard the rest of it, then
  // settle it with `o`.
  void drop(IngressDelivery* rec, Outcome o);

  void abortCopies(IngressDelivery* rec);

  void onAborted(IngressDelivery* rec, pn_delivery_t* d);

  void applyOutcome(IngressDelivery* rec, const Outcome& o);

  void finishSettle(IngressDelivery* rec, pn_delivery_t* d);

  void maybeFreeSlot(IngressDelivery* rec);

  void maybeRetire(IngressDelivery* rec) {
    if (rec->slot_freed && rec->settled) live_.erase(rec);
  }

  // Bytes that may still be read past a full budget: the session's incoming
  // capacity may go down to one frame (Proton refuses less), never below.
  std::size_t windowAllowance() const;

  // `n` bytes were read past a full budget: narrow the session by as much.
  // Reading n bytes lowers Proton's incoming byte count by n, so capacity
  // minus that count, from which it computes the window it announces, stays
  // what it was: the window already promised to the sender still fits.
  void holdWindow(std::size_t n);

  // The budget is below its limit again: widen the session back and tell
  // the sender (a flow frame carries the session's window).
  void giveBackWindow();

  // Grants credit up to link_capacity minus the deliveries still inside the
  // router; none while a named address has no consumer.
  void topUpCredit();

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

}  // namespace vane::amqp
