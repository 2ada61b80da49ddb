// Internal to the amqp module: see connection.hpp.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "amqp/engine_helpers.hpp"

namespace vane::amqp {

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

  void enqueue(std::shared_ptr<Transfer> t) override;

  void append(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) override;

  void abort(const std::shared_ptr<Transfer>& t) override;

  // Moves queued bytes into the engine while the consumer has credit and the
  // session has room.
  void pump();

  std::size_t unsettledCount() const { return unsettled_.size() + queue_.size(); }

  // Taken off the connection's blocked list (it pumps us next).
  void clearBlocked() { blocked_ = false; }

  // The consumer updated a delivery we sent.
  void onDeliveryUpdated(pn_delivery_t* d);

  // The link or its connection is gone: every copy still here is settled
  // back to its sender as released (never sent) or modified (sent).
  void close();

 private:
  bool settlesOnSend(const Transfer& t) const { return t.presettled || force_settled_; }

  // Takes a copy off the unsettled map (and the connection's count).
  void forget(Transfer* raw) {
    if (unsettled_.erase(raw) > 0 && !router_link_) conn_.removeUnsettled();
  }

  // A consumer that takes deliveries but never settles them would grow the
  // router's memory (and Proton's) without bound: past the limit, wait.
  bool unsettledFull();

  // Waits for the connection's next socket write to pump again (once on its
  // list however often it is blocked meanwhile).
  void block();

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

}  // namespace vane::amqp
