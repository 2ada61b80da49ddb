// StreamFlow: one end of an adaptor's flow, the part every adaptor shares.
//
// A flow at one router sends one stream (its outgoing direction) and
// receives one (its incoming direction), each an AMQP streaming delivery
// (adaptors/stream_codec.hpp):
//
// * outgoing: openOut() routes the stream to an address (anycast picks a
//   consumer: a connector somewhere, or the reply address of the flow at the
//   other end), sendBytes()/sendOut() pass chunks on, abortOut() aborts it.
//   Bytes sent are taken from the flow's FlowBudget (router.stream_window_bytes):
//   an adaptor stops reading its socket while outPaused() and continues in
//   onOutResume(). The stream's outcome comes back once the other end has
//   written everything (accepted) or failed (onOutFailed).
// * incoming: the stream's start (its properties: reply-to, the sending
//   router) is parsed once (onInStarted), then its payload is queued as
//   slices in inq_ (onInData). The adaptor writes them where they go and
//   calls consumedIn() for what it wrote, which releases the sender's
//   budget; inLast() says the other end has finished. reportIn() settles the
//   stream with an outcome.
//
// The flow ends (finish: endpoint closed, record kept, removed from its
// FlowTable) when both directions are done: its own stream settled and the
// incoming one reported; fail() ends it at once, aborting the one and
// releasing (or failing) the other.
//
// IMPORTANT: a flow and its FlowTable live on one worker loop.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "adaptors/flow.hpp"
#include "adaptors/stream_codec.hpp"

namespace vane::adaptors {

class StreamFlow : public forwarding::IngressSink,
                   public Flow,
                   public std::enable_shared_from_this<StreamFlow> {
 public:
  // `address`: the service address without its adaptor's prefix (records).
  StreamFlow(FlowTable& flows, bool client_side, std::shared_ptr<FlowCounters> counters,
             std::string name, std::string address);
  ~StreamFlow() override;

  const FlowRecord& record() const override { return rec_; }
  const forwarding::FlowToken& token() const override { return token_; }
  void init(std::uint64_t id) override;
  // Router shutdown.
  void close() override { fail(true); }

  // Keeps `owner` alive as long as the flow (the sink later bytes of the
  // incoming stream come through).
  void setOwner(std::shared_ptr<void> owner) { owner_ = std::move(owner); }

  // -- IngressSink: our outgoing stream ---------------------------------
  void onOutcome(const std::shared_ptr<forwarding::IngressDelivery>&,
                 const forwarding::Outcome& o) override;
  void onCopyDone(const std::shared_ptr<forwarding::IngressDelivery>&) override {}
  void onResume() override { onOutResume(); }

  // -- EgressSink: the stream coming to us --------------------------------
  void enqueue(std::shared_ptr<forwarding::Transfer> t) override;
  void append(const std::shared_ptr<forwarding::Transfer>& t, forwarding::Chunk chunk,
              bool last) override;
  void abort(const std::shared_ptr<forwarding::Transfer>& t) override;

 protected:
  struct Slice {
    forwarding::Chunk keep;
    const char* data;
    std::size_t size;
    std::size_t release;  // budget bytes freed when this slice is consumed
  };

  // -- outgoing --
  // Routes our stream to `to` and hands its start to the egress; false if
  // nothing consumes `to` (no route).
  bool openOut(const std::string& to, const std::string& reply_to);
  bool outOpen() const { return out_ != nullptr; }
  bool outFinished() const { return out_finished_; }
  // True when the budget is full: stop reading; onOutResume() follows.
  bool outPaused() { return budget_->pauseIfFull(); }
  // A buffer for reading up to flows_.read_size bytes at data() +
  // kDataHeaderSize, for sendRead().
  std::shared_ptr<std::string> readBuffer() const;
  // Sends the `n` bytes read into `buf` (a readBuffer()).
  void sendRead(std::shared_ptr<std::string> buf, std::size_t n);
  // Sends a copy of `bytes` (any length: split into frame-sized chunks).
  void sendBytes(std::string_view bytes);
  // Ends our stream (end of data: the other end half-closes).
  void endOut();
  void abortOut();
  virtual void onOutResume() {}
  // Our stream failed at the other end (it could not connect, was reset, or
  // a router on the way went down). Default: fail(true).
  virtual void onOutFailed(const forwarding::Outcome& o);

  // -- incoming --
  // The stream's start was parsed: replyTo() and rec_.peer_router are set.
  virtual void onInStarted() {}
  // Each payload range of the incoming stream as it arrives, before it is
  // queued (and before onInData): false refuses it, and the stream is reset
  // as malformed. Default: any bytes.
  virtual bool checkIn(std::string_view) { return true; }
  // inq_ grew, or inLast() became true.
  virtual void onInData() = 0;
  // The other end aborted the incoming stream (it was reset, or a router on
  // the way went down). Default: fail(true).
  virtual void onInAborted() { fail(true); }
  bool inOpen() const { return in_ != nullptr; }
  bool inStarted() const { return prefix_done_; }
  bool inLast() const { return in_last_; }
  bool inDone() const { return in_done_; }
  const std::string& replyTo() const { return reply_to_; }
  // The payload ended between data sections (a clean end of stream).
  bool inAtBoundary() const { return decoder_.atBoundary(); }
  // `n` bytes from the front of inq_ have been written: drops them and
  // releases what their chunks held of the sender's budget.
  void consumedIn(std::size_t n);
  // Settles the incoming stream, once, releasing what inq_ still holds.
  void reportIn(const forwarding::Outcome& o);
  // The incoming stream is not a valid stream message: reset.
  void malformed();

  // -- the end --
  // Both directions done: finish(false).
  void maybeFinish();
  // Ends both directions now (counted as failed), then finish(reset).
  void fail(bool reset);
  void finish(bool reset);
  // Closes the adaptor's endpoint (its socket), resetting it when `reset`.
  virtual void closeEndpoint(bool reset) = 0;
  bool finished() const { return finished_; }

  template <typename T>
  std::shared_ptr<T> self() {
    return std::static_pointer_cast<T>(shared_from_this());
  }

  FlowTable& flows_;
  const std::shared_ptr<FlowCounters> counters_;
  const std::string name_;
  std::uint64_t id_ = 0;
  FlowRecord rec_;
  std::deque<Slice> inq_;

 private:
  bool consume(const forwarding::Chunk& c);
  bool consumeBody(const forwarding::Chunk& c);

  forwarding::FlowToken token_;  // in this flow's reply address
  std::shared_ptr<void> owner_;

  // Outgoing stream (we are its ingress).
  std::shared_ptr<forwarding::FlowBudget> budget_;
  std::shared_ptr<forwarding::IngressDelivery> out_d_;
  std::shared_ptr<forwarding::Transfer> out_;
  bool out_finished_ = false;  // last byte or abort sent
  bool out_settled_ = false;   // its outcome came back

  // Incoming stream (we are its egress).
  std::shared_ptr<forwarding::Transfer> in_;
  std::string prefix_;
  bool prefix_done_ = false;
  std::string reply_to_;
  BodyDecoder decoder_;
  bool in_last_ = false;
  bool in_done_ = false;

  bool finished_ = false;
};

}  // namespace vane::adaptors
