#include "adaptors/tcp/tcp_flow.hpp"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <vector>

#include "adaptors/stream_codec.hpp"
#include "amqp/inter_router.hpp"
#include "amqp/message_scan.hpp"
#include "core/log.hpp"
#include "forwarding/copies.hpp"

namespace vane::adaptors::tcp {

namespace asio = boost::asio;
using asio::ip::tcp;
using forwarding::Chunk;
using forwarding::IngressDelivery;
using forwarding::Outcome;
using forwarding::Transfer;

namespace {
// Buffers gathered into one socket write.
constexpr std::size_t kMaxWriteBuffers = 64;
// How long a server may take to accept a connection.
constexpr std::chrono::seconds kConnectTimeout{10};
}  // namespace

class TcpFlow final : public forwarding::IngressSink,
                      public Flow,
                      public std::enable_shared_from_this<TcpFlow> {
 public:
  enum class Side { kClient, kServer };

  TcpFlow(FlowTable& flows, Side side, tcp::socket socket, std::shared_ptr<FlowCounters> counters,
          std::string name, std::string address)
      : flows_(flows),
        side_(side),
        socket_(std::move(socket)),
        timer_(flows.loop.context()),
        counters_(std::move(counters)),
        name_(std::move(name)) {
    rec_.loop = flows.loop_index;
    rec_.client_side = side == Side::kClient;
    rec_.name = name_;
    rec_.address = std::move(address);
    rec_.start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    rec_.outcome = "open";
    budget_ = std::make_shared<forwarding::FlowBudget>(flows.loop, flows.window);
    counters_->flows_opened.fetch_add(1, std::memory_order_relaxed);
    counters_->flows_active.fetch_add(1, std::memory_order_relaxed);
  }

  ~TcpFlow() override { counters_->flows_active.fetch_sub(1, std::memory_order_relaxed); }

  const FlowRecord& record() const override { return rec_; }
  const forwarding::FlowToken& token() const override { return token_; }

  void init(std::uint64_t id) override {
    id_ = id;
    token_ = forwarding::FlowToken::random();
    rec_.id = id;
    budget_->sink = weak_from_this();
  }

  // Client side: sends the client's stream to `service`, then reads.
  void startClient(const std::string& service) {
    setNoDelay();
    boost::system::error_code ec;
    const auto peer = socket_.remote_endpoint(ec);
    if (!ec) rec_.endpoint = peer.address().to_string() + ":" + std::to_string(peer.port());
    if (!openOut(service, flows_.table.flowAddressHere(flows_.loop_index, id_, token_))) {
      counters_->refused.fetch_add(1, std::memory_order_relaxed);
      if (!counters_->failing.exchange(true)) {
        VANE_LOG_INFO(
            "tcp listener {}: no tcp connector for '{}' is reachable: connections are "
            "reset until one is",
            name_, service.substr(kServicePrefix.size()));
      }
      fail(true);
      return;
    }
    if (counters_->failing.exchange(false)) {
      VANE_LOG_INFO("tcp listener {}: a tcp connector for '{}' is reachable again", name_,
                    service.substr(kServicePrefix.size()));
    }
    readMore();
  }

  // Server side: connects to host:port; the client's stream is `t`.
  void startServer(std::shared_ptr<Transfer> t, const std::string& host, std::uint16_t port) {
    rec_.endpoint = host + ":" + std::to_string(port);
    t->via = weak_from_this();
    enqueue(std::move(t));
    if (finished_) return;
    auto self = shared_from_this();
    auto resolver = std::make_shared<tcp::resolver>(flows_.loop.context());
    timer_.expires_after(kConnectTimeout);
    timer_.async_wait([this, self, resolver](const boost::system::error_code& ec) {
      if (ec || connected_ || finished_) return;
      timed_out_ = true;
      resolver->cancel();
      boost::system::error_code ignored;
      socket_.close(ignored);  // fails the pending connect
    });
    resolver->async_resolve(
        host, std::to_string(port), tcp::resolver::numeric_service,
        [this, self, resolver, host, port](const boost::system::error_code& ec,
                                           tcp::resolver::results_type results) {
          if (finished_) return;
          if (ec) {
            connectFailed(host, port, ec.message());
            return;
          }
          asio::async_connect(
              socket_, results,
              [this, self, host, port](const boost::system::error_code& ec, const tcp::endpoint&) {
                if (finished_) return;
                if (ec) {
                  connectFailed(host, port, timed_out_ ? std::string("timed out") : ec.message());
                  return;
                }
                timer_.cancel();
                connected_ = true;
                setNoDelay();
                if (counters_->failing.exchange(false)) {
                  VANE_LOG_INFO("tcp connector {}: connected to {}:{} again", name_, host, port);
                }
                maybeOpenReply();
                writeMore();
              });
        });
  }

  // Router shutdown.
  void close() override { fail(true); }

  // Keeps `owner` alive as long as the flow (the sink later bytes come
  // through).
  void setOwner(std::shared_ptr<void> owner) { owner_ = std::move(owner); }

  // -- IngressSink: our outgoing stream -----------------------------------
  void onOutcome(const std::shared_ptr<IngressDelivery>&, const Outcome& o) override {
    if (finished_) return;
    out_settled_ = true;
    if (o.kind != Outcome::Kind::kAccepted) {
      // The other end could not connect, was reset, or a router on the way
      // went down.
      if (!o.error_description.empty()) {
        VANE_LOG_DEBUG("tcp flow {} ({}): the other end failed: {}", id_, name_,
                       o.error_description);
      }
      fail(true);
      return;
    }
    maybeFinish();
  }
  void onCopyDone(const std::shared_ptr<IngressDelivery>&) override {}
  void onResume() override { readMore(); }

  // -- EgressSink: the stream coming to us ----------------------------------
  void enqueue(std::shared_ptr<Transfer> t) override {
    if (finished_ || in_) {
      forwarding::dropTransfer(t);
      return;
    }
    in_ = std::move(t);
    std::deque<Chunk> first;
    first.swap(in_->pending);
    in_->front_offset = 0;
    const bool last = in_->complete;
    for (auto& c : first) {
      if (!consume(c)) return;
    }
    if (last) in_last_ = true;
    writeMore();
  }

  void append(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) override {
    if (t != in_ || finished_ || in_done_) {
      t->budget->release(static_cast<std::int64_t>(chunk->size()));
      return;
    }
    if (!chunk->empty() && !consume(chunk)) return;
    if (last) in_last_ = true;
    writeMore();
  }

  void abort(const std::shared_ptr<Transfer>& t) override {
    if (t != in_ || finished_) return;
    // The other end was reset (or a router on the way went down).
    t->aborted = true;
    t->outcome_reported = true;  // nobody waits for an outcome
    fail(true);
  }

 private:
  void setNoDelay() {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
  }

  void connectFailed(const std::string& host, std::uint16_t port, const std::string& why) {
    counters_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    if (!counters_->failing.exchange(true)) {
      VANE_LOG_INFO("tcp connector {}: cannot connect to {}:{}: {}", name_, host, port, why);
    } else {
      VANE_LOG_DEBUG("tcp connector {}: cannot connect to {}:{}: {}", name_, host, port, why);
    }
    reportIn(Outcome::rejected("vane:connect-failed", "cannot connect to the server: " + why));
    fail(true);
  }

  // Routes our outgoing stream and hands its first bytes to the egress.
  bool openOut(const std::string& to, const std::string& reply_to) {
    forwarding::RouteRequest rq;
    rq.address = to;
    rq.arrival = forwarding::Arrival::kClient;
    rq.origin = flows_.router_id;
    std::vector<forwarding::Target> targets;
    const auto result = flows_.table.route(rq, targets);
    if (result.status != forwarding::RouteStatus::kRouted || targets.empty()) return false;
    auto& target = targets.front();
    out_d_ = std::make_shared<IngressDelivery>(weak_from_this());
    out_d_->routed = true;
    out_d_->copies_in_router = 1;
    out_ = forwarding::makeCopy(out_d_, target, budget_, /*presettled=*/false,
                                /*streaming=*/true);
    std::string prefix;
    if (target.remote) prefix = amqp::encodeRouteHeader(target.header);
    prefix += encodeStreamPrefix(to, reply_to, flows_.router_id);
    forwarding::addFirstBytes(*out_, std::make_shared<const std::string>(std::move(prefix)));
    forwarding::postStart(out_);
    return true;
  }

  void sendOut(Chunk c, bool last) { forwarding::postBytes(out_, std::move(c), last); }

  void abortOut() {
    if (!out_ || out_finished_) return;
    out_finished_ = true;
    forwarding::postAbort(out_);
  }

  // Server side: the reply stream starts once connected and the client's
  // stream has told us where to send it.
  void maybeOpenReply() {
    if (side_ != Side::kServer || out_ || !connected_ || !prefix_done_ || finished_) return;
    if (reply_to_.empty() || !openOut(reply_to_, {})) {
      reportIn(Outcome::rejected("vane:no-route", "no route back to the client's router"));
      fail(true);
      return;
    }
    readMore();
  }

  void readMore() {
    if (reading_ || read_eof_ || finished_ || !out_) return;
    if (budget_->pauseIfFull()) return;  // onResume continues
    reading_ = true;
    const std::size_t want = flows_.read_size;
    auto buf = std::make_shared<std::string>(kDataHeaderSize + want, '\0');
    socket_.async_read_some(asio::buffer(buf->data() + kDataHeaderSize, want),
                            [this, self = shared_from_this(), buf, want](
                                const boost::system::error_code& ec, std::size_t n) {
                              reading_ = false;
                              if (finished_) return;
                              if (ec == asio::error::eof) {
                                read_eof_ = true;
                                out_finished_ = true;
                                sendOut(std::make_shared<const std::string>(), true);
                                maybeFinish();
                                return;
                              }
                              if (ec) {
                                if (ec != asio::error::operation_aborted) fail(true);
                                return;
                              }
                              counters_->bytes_in.fetch_add(n, std::memory_order_relaxed);
                              rec_.bytes_in += n;
                              writeDataHeader(buf->data(), static_cast<std::uint32_t>(n));
                              buf->resize(kDataHeaderSize + n);
                              if (n < want / 4) buf->shrink_to_fit();
                              sendOut(std::move(buf), false);
                              readMore();
                            });
  }

  // Takes one chunk of the incoming stream: the message's start is parsed
  // once; after it, payload ranges are queued for writing. The chunk's bytes
  // are released from the sender's budget when its last range is written.
  // Returns false if the flow failed.
  bool consume(const Chunk& c) {
    if (!prefix_done_) {
      prefix_.append(*c);
      in_->budget->release(static_cast<std::int64_t>(c->size()));
      const amqp::ScanResult r = amqp::scanTo(prefix_.data(), prefix_.size());
      if (r.status == amqp::ScanStatus::kNeedMore) return true;
      if (r.status == amqp::ScanStatus::kMalformed || r.properties_end == 0) {
        malformed();
        return false;
      }
      prefix_done_ = true;
      reply_to_ = r.reply_to;
      rec_.peer_router = r.subject;
      const std::size_t end = r.properties_end;
      if (end < prefix_.size()) {
        // The rest is body: one copy, once per stream.
        auto rest = std::make_shared<const std::string>(prefix_, end);
        prefix_.clear();
        prefix_.shrink_to_fit();
        in_->budget->take(static_cast<std::int64_t>(rest->size()));
        if (!consumeBody(rest)) return false;
      } else {
        prefix_.clear();
        prefix_.shrink_to_fit();
      }
      maybeOpenReply();
      return !finished_;
    }
    return consumeBody(c);
  }

  bool consumeBody(const Chunk& c) {
    const std::size_t before = wq_.size();
    const auto st = decoder_.feed(c->data(), c->size(), [&](const char* p, std::size_t n) {
      wq_.push_back(Slice{c, p, n, 0});
    });
    if (st != BodyDecoder::Status::kOk) {
      in_->budget->release(static_cast<std::int64_t>(c->size()));
      malformed();
      return false;
    }
    if (wq_.size() > before) {
      wq_.back().release = c->size();
    } else {
      in_->budget->release(static_cast<std::int64_t>(c->size()));
    }
    return true;
  }

  void malformed() {
    VANE_LOG_WARN("tcp flow {} ({}): the incoming stream is not a valid stream message: reset", id_,
                  name_);
    reportIn(Outcome::rejected("amqp:decode-error", "not a valid stream message"));
    fail(true);
  }

  void writeMore() {
    if (writing_ || finished_ || !in_ || in_done_) return;
    if (side_ == Side::kServer && !connected_) return;
    if (wq_.empty()) {
      if (!in_last_) return;
      // The other end finished its direction: pass the half-close on.
      if (!decoder_.atBoundary()) {
        malformed();
        return;
      }
      boost::system::error_code ec;
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      reportIn(Outcome::accepted());
      maybeFinish();
      return;
    }
    bufs_.clear();
    for (std::size_t i = 0; i < wq_.size() && i < kMaxWriteBuffers; ++i) {
      bufs_.emplace_back(wq_[i].data, wq_[i].size);
    }
    writing_ = true;
    asio::async_write(
        socket_, bufs_,
        [this, self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          writing_ = false;
          if (finished_) return;
          if (ec) {
            if (ec != asio::error::operation_aborted) fail(true);
            return;
          }
          counters_->bytes_out.fetch_add(n, std::memory_order_relaxed);
          rec_.bytes_out += n;
          in_->started = true;
          std::int64_t release = 0;
          while (n > 0) {
            Slice& s = wq_.front();
            const std::size_t k = std::min(n, s.size);
            s.data += k;
            s.size -= k;
            n -= k;
            if (s.size == 0) {
              release += static_cast<std::int64_t>(s.release);
              wq_.pop_front();
            }
          }
          if (release > 0) in_->budget->release(release);
          writeMore();
        });
  }

  // Reports the outcome of the incoming stream to its sender, once.
  void reportIn(const Outcome& o) {
    if (!in_ || in_done_) return;
    in_done_ = true;
    std::int64_t bytes = 0;
    for (auto& s : wq_) bytes += static_cast<std::int64_t>(s.release);
    wq_.clear();
    if (bytes > 0) in_->budget->release(bytes);
    forwarding::uncount(*in_);
    if (!in_->aborted) forwarding::postOutcome(in_, o);
    forwarding::postCopyDone(in_);
  }

  // Both directions done: close and forget the flow.
  void maybeFinish() {
    if (finished_ || !out_settled_ || !in_done_) return;
    finish(false);
  }

  // Resets the socket (when `reset`) and ends both directions.
  void fail(bool reset) {
    if (finished_) return;
    counters_->flows_failed.fetch_add(1, std::memory_order_relaxed);
    abortOut();
    reportIn(in_ && in_->started ? Outcome::modifiedFailed() : Outcome::released());
    finish(reset);
  }

  void finish(bool reset) {
    finished_ = true;
    rec_.end_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    rec_.outcome = reset ? "reset" : "closed";
    flows_.ended(rec_);
    boost::system::error_code ec;
    timer_.cancel();
    if (reset && socket_.is_open()) {
      // Linger 0: the close sends a reset, as the other end got.
      socket_.set_option(asio::socket_base::linger(true, 0), ec);
    }
    socket_.close(ec);
    if (out_d_) out_d_->settled = true;
    flows_.remove(id_);  // may destroy this: last
  }

  struct Slice {
    Chunk keep;
    const char* data;
    std::size_t size;
    std::size_t release;  // budget bytes freed when this slice is written
  };

  FlowTable& flows_;
  const Side side_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  const std::shared_ptr<FlowCounters> counters_;
  const std::string name_;
  std::uint64_t id_ = 0;
  forwarding::FlowToken token_;  // in this flow's reply address
  std::shared_ptr<void> owner_;
  FlowRecord rec_;

  // Outgoing stream (we are its ingress).
  std::shared_ptr<forwarding::FlowBudget> budget_;
  std::shared_ptr<IngressDelivery> out_d_;
  std::shared_ptr<Transfer> out_;
  bool reading_ = false;
  bool read_eof_ = false;
  bool out_finished_ = false;  // last byte or abort sent
  bool out_settled_ = false;   // its outcome came back

  // Incoming stream (we are its egress).
  std::shared_ptr<Transfer> in_;
  std::string prefix_;
  bool prefix_done_ = false;
  std::string reply_to_;
  BodyDecoder decoder_;
  std::deque<Slice> wq_;
  std::vector<asio::const_buffer> bufs_;
  bool writing_ = false;
  bool in_last_ = false;
  bool in_done_ = false;

  bool connected_ = false;
  bool timed_out_ = false;
  bool finished_ = false;
};

void startClientFlow(FlowTable& flows, tcp::socket socket, const std::string& address,
                     std::shared_ptr<FlowCounters> counters, const std::string& listener_name) {
  auto flow = std::make_shared<TcpFlow>(
      flows, TcpFlow::Side::kClient, std::move(socket), std::move(counters), listener_name,
      address.substr(std::min(address.size(), kServicePrefix.size())));
  flows.add(flow);
  flow->startClient(address);
}

void ConnectorSink::enqueue(std::shared_ptr<Transfer> t) {
  auto flow =
      std::make_shared<TcpFlow>(flows_, TcpFlow::Side::kServer, tcp::socket(flows_.loop.context()),
                                counters_, name_, address_);
  flows_.add(flow);
  flow->setOwner(shared_from_this());
  flow->startServer(std::move(t), host_, port_);
}

void ConnectorSink::append(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) {
  forwarding::appendVia(t, std::move(chunk), last);
}

void ConnectorSink::abort(const std::shared_ptr<Transfer>& t) {
  forwarding::abortVia(t);
}

}  // namespace vane::adaptors::tcp
