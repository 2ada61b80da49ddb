#include "adaptors/tcp/tcp_flow.hpp"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <vector>

#include "adaptors/stream_flow.hpp"
#include "core/log.hpp"
#include "forwarding/copies.hpp"

namespace vane::adaptors::tcp {

namespace asio = boost::asio;
using asio::ip::tcp;
using forwarding::Chunk;
using forwarding::Outcome;
using forwarding::Transfer;

namespace {
// Buffers gathered into one socket write.
constexpr std::size_t kMaxWriteBuffers = 64;
// How long a server may take to accept a connection.
constexpr std::chrono::seconds kConnectTimeout{10};
}  // namespace

class TcpFlow final : public StreamFlow {
 public:
  enum class Side { kClient, kServer };

  TcpFlow(FlowTable& flows, Side side, tcp::socket socket, std::shared_ptr<FlowCounters> counters,
          std::string name, std::string address)
      : StreamFlow(flows, side == Side::kClient, std::move(counters), std::move(name),
                   std::move(address)),
        side_(side),
        socket_(std::move(socket)),
        timer_(flows.loop.context()) {
    rec_.adaptor = "tcp";
  }

  // Client side: sends the client's stream to `service`, then reads.
  void startClient(const std::string& service) {
    setNoDelay();
    boost::system::error_code ec;
    const auto peer = socket_.remote_endpoint(ec);
    if (!ec) rec_.endpoint = peer.address().to_string() + ":" + std::to_string(peer.port());
    if (!openOut(service, flows_.table.flowAddressHere(flows_.loop_index, id_, token()))) {
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
    if (finished()) return;
    auto self = this->self<TcpFlow>();
    auto resolver = std::make_shared<tcp::resolver>(flows_.loop.context());
    timer_.expires_after(kConnectTimeout);
    timer_.async_wait([this, self, resolver](const boost::system::error_code& ec) {
      if (ec || connected_ || finished()) return;
      timed_out_ = true;
      resolver->cancel();
      boost::system::error_code ignored;
      socket_.close(ignored);  // fails the pending connect
    });
    resolver->async_resolve(
        host, std::to_string(port), tcp::resolver::numeric_service,
        [this, self, resolver, host, port](const boost::system::error_code& ec,
                                           tcp::resolver::results_type results) {
          if (finished()) return;
          if (ec) {
            connectFailed(host, port, ec.message());
            return;
          }
          asio::async_connect(
              socket_, results,
              [this, self, host, port](const boost::system::error_code& ec, const tcp::endpoint&) {
                if (finished()) return;
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

 private:
  void onOutResume() override { readMore(); }
  void onInStarted() override { maybeOpenReply(); }
  void onInData() override { writeMore(); }
  void closeEndpoint(bool reset) override {
    boost::system::error_code ec;
    timer_.cancel();
    if (reset && socket_.is_open()) {
      // Linger 0: the close sends a reset, as the other end got.
      socket_.set_option(asio::socket_base::linger(true, 0), ec);
    }
    socket_.close(ec);
  }

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

  // Server side: the reply stream starts once connected and the client's
  // stream has told us where to send it.
  void maybeOpenReply() {
    if (side_ != Side::kServer || outOpen() || !connected_ || !inStarted() || finished()) return;
    if (replyTo().empty() || !openOut(replyTo(), {})) {
      reportIn(Outcome::rejected("vane:no-route", "no route back to the client's router"));
      fail(true);
      return;
    }
    readMore();
  }

  void readMore() {
    if (reading_ || read_eof_ || finished() || !outOpen()) return;
    if (outPaused()) return;  // onOutResume continues
    reading_ = true;
    auto buf = readBuffer();
    socket_.async_read_some(
        asio::buffer(buf->data() + kDataHeaderSize, flows_.read_size),
        [this, self = self<TcpFlow>(), buf](const boost::system::error_code& ec, std::size_t n) {
          reading_ = false;
          if (finished()) return;
          if (ec == asio::error::eof) {
            read_eof_ = true;
            endOut();
            maybeFinish();
            return;
          }
          if (ec) {
            if (ec != asio::error::operation_aborted) fail(true);
            return;
          }
          counters_->bytes_in.fetch_add(n, std::memory_order_relaxed);
          rec_.bytes_in += n;
          sendRead(std::move(buf), n);
          readMore();
        });
  }

  void writeMore() {
    if (writing_ || finished() || !inOpen() || inDone()) return;
    if (side_ == Side::kServer && !connected_) return;
    if (inq_.empty()) {
      if (!inLast()) return;
      // The other end finished its direction: pass the half-close on.
      if (!inAtBoundary()) {
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
    for (std::size_t i = 0; i < inq_.size() && i < kMaxWriteBuffers; ++i) {
      bufs_.emplace_back(inq_[i].data, inq_[i].size);
    }
    writing_ = true;
    asio::async_write(
        socket_, bufs_,
        [this, self = self<TcpFlow>()](const boost::system::error_code& ec, std::size_t n) {
          writing_ = false;
          if (finished()) return;
          if (ec) {
            if (ec != asio::error::operation_aborted) fail(true);
            return;
          }
          counters_->bytes_out.fetch_add(n, std::memory_order_relaxed);
          rec_.bytes_out += n;
          consumedIn(n);
          writeMore();
        });
  }

  const Side side_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  bool reading_ = false;
  bool read_eof_ = false;
  std::vector<asio::const_buffer> bufs_;
  bool writing_ = false;
  bool connected_ = false;
  bool timed_out_ = false;
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
