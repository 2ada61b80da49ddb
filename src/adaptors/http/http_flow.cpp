#include "adaptors/http/http_flow.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <optional>

#include "adaptors/http/http_codec.hpp"
#include "adaptors/stream_flow.hpp"
#include "core/assert.hpp"
#include "core/log.hpp"
#include "forwarding/copies.hpp"

namespace vane::adaptors::http {

namespace asio = boost::asio;
using asio::ip::tcp;
using forwarding::Outcome;
using forwarding::Transfer;
using Clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t kReadSize = 16384;
constexpr std::size_t kMaxWriteBuffers = 64;
// A kept-alive client connection with no request for this long is closed;
// a request head must arrive within head_timeout_ms of its first byte.
constexpr std::chrono::seconds kIdleTimeout{60};
constexpr std::chrono::seconds kConnectTimeout{10};
// A client connection closed by the router while the client may still be
// sending (an answer before the request's end, a refused request with more
// behind it) is drained for up to this long and this many bytes before the
// socket closes: closing with unread bytes resets the connection, and a
// client still sending then sees the reset instead of the answer.
constexpr std::chrono::seconds kLingerTime{5};
constexpr std::size_t kLingerBytes = 16u << 20;
// Idle server connections older than this are not reused.
constexpr std::chrono::seconds kMaxIdleAge{30};
// Request bytes a connector keeps to send again on a fresh connection when
// a kept-alive one turns out closed before answering.
constexpr std::size_t kRetryCopyLimit = 65536;
// A server's answer head (and a request head from the network) is read
// with this limit.
constexpr std::uint32_t kUpstreamHeadLimit = 1u << 20;

// Reads once from `socket` into the tail of `buf`; calls done(ec).
template <typename Done>
void readInto(HttpStream& stream, std::string& buf, Done&& done) {
  const std::size_t old = buf.size();
  buf.resize(old + kReadSize);
  stream.asyncReadSome(asio::buffer(buf.data() + old, kReadSize),
                       [&buf, old, done = std::forward<Done>(done)](
                           const boost::system::error_code& ec, std::size_t n) mutable {
                         buf.resize(old + (ec ? 0 : n));
                         done(ec, ec ? 0 : n);
                       });
}

// As readInto, without trying the read first: for a read that cannot
// succeed yet (an answer just asked for), the failed attempt would be a
// wasted system call.
template <typename Done>
void readIntoWhenReady(tcp::socket& socket, std::string& buf, Done&& done) {
  socket.async_wait(tcp::socket::wait_read, [&socket, &buf, done = std::forward<Done>(done)](
                                                const boost::system::error_code& ec) mutable {
    if (ec) {
      done(ec, 0);
      return;
    }
    boost::system::error_code rec;
    socket.non_blocking(true, rec);
    const std::size_t old = buf.size();
    buf.resize(old + kReadSize);
    const std::size_t n = socket.read_some(asio::buffer(buf.data() + old, kReadSize), rec);
    buf.resize(old + (rec ? 0 : n));
    if (rec == asio::error::would_block || rec == asio::error::try_again) {
      readIntoWhenReady(socket, buf, std::move(done));  // woken for nothing
      return;
    }
    done(rec, rec ? 0 : n);
  });
}

// The end of a byte stream's direction: EOF, or over TLS the peer closing
// TCP without close_notify (the bytes before it were delivered).
bool endOfData(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace

void HttpCounters::observe(Clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
    if (s <= kDurationBuckets[i]) {
      duration_buckets[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  duration_count.fetch_add(1, std::memory_order_relaxed);
  duration_sum_us.fetch_add(
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count()),
      std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// Listener side
// ---------------------------------------------------------------------------

class RequestExchange;

// One client connection: reads each request's head, then hands the
// connection to that request's exchange until it has been answered.
class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  ClientConnection(FlowTable& flows, tcp::socket socket,
                   std::shared_ptr<const ListenerSettings> settings)
      : flows(flows),
        stream(std::move(socket)),
        timer(flows.loop.context()),
        s(std::move(settings)) {
    s->http->connections_active.fetch_add(1, std::memory_order_relaxed);
    boost::system::error_code ec;
    stream.socket().set_option(tcp::no_delay(true), ec);
    const auto peer = stream.socket().remote_endpoint(ec);
    if (!ec) {
      peer_ip = peer.address().to_string();
      endpoint = peer_ip + ":" + std::to_string(peer.port());
    }
    reader_.reset(s->cfg.max_header_bytes);
    s->conns->open[worker_].insert(this);
    stopping_ = s->conns->stopped[worker_] != 0;
  }
  // (At router shutdown a connection still waiting is destroyed with its
  // loop's handlers, after the FlowTable: only `s` may be used here.)
  ~ClientConnection() {
    s->conns->open[worker_].erase(this);
    s->http->connections_active.fetch_sub(1, std::memory_order_relaxed);
  }

  // The listener has stopped: no more requests. An idle connection closes
  // now, one in the middle of a request once it has been answered.
  void stop() {
    stopping_ = true;
    // (rbuf has room for the read in progress: a head begun is head_since_.
    // An answer being written closes the connection when it is done.)
    if (!in_exchange_ && !answering_ && !head_since_) closeGracefully();
  }

  // TLS first, if the listener has it; then the first request.
  void start();
  void readHead();
  // The exchange has ended: write `answer` (if any) and then read the next
  // request (keep) or close.
  void exchangeDone(bool keep, std::string answer);
  void resetNow() {
    closed_ = true;
    timer.cancel();
    stream.reset();
  }

  FlowTable& flows;
  HttpStream stream;
  asio::steady_timer timer;
  const std::shared_ptr<const ListenerSettings> s;
  std::string peer_ip;
  std::string endpoint;
  std::string rbuf;  // read from the client, not yet taken by a request

 private:
  void onHead(RequestReader reader, std::size_t used);
  void answerAndClose(unsigned status, std::string text);
  // Closes after the answers written so far, draining what the client
  // still sends (linger) so that it reads them rather than a reset.
  void closeGracefully();
  void linger(std::size_t budget);

  RequestReader reader_{65536};
  std::string linger_buf_;  // what lingering reads drop
  // When the head being read began (its first byte): the whole head must
  // arrive within head_timeout_ms of it, however it trickles in.
  std::optional<Clock::time_point> head_since_;
  bool reading_ = false;
  bool closed_ = false;
  bool tls_done_ = false;
  const std::size_t worker_ = flows.loop_index;
  bool in_exchange_ = false;  // a request's exchange has the connection
  bool answering_ = false;    // exchangeDone() is writing an answer
  bool stopping_ = false;     // the listener stopped: close when idle
};

// One request at the listener's router: sends it to a connector and writes
// the answer to the client.
class RequestExchange final : public StreamFlow {
 public:
  RequestExchange(FlowTable& flows, std::shared_ptr<ClientConnection> conn, RequestReader req)
      : StreamFlow(flows, true, conn->s->flows, conn->s->cfg.name, conn->s->cfg.address),
        conn_(std::move(conn)),
        req_(std::move(req)),
        res_(kUpstreamHeadLimit),
        timer_(flows.loop.context()),
        started_(Clock::now()) {
    rec_.adaptor = "http";
    conn_->s->http->requests_active.fetch_add(1, std::memory_order_relaxed);
  }
  ~RequestExchange() override {
    conn_->s->http->requests_active.fetch_sub(1, std::memory_order_relaxed);
  }

  void start();

 private:
  const ListenerSettings& settings() const { return *conn_->s; }
  HttpCounters& http() const { return *conn_->s->http; }

  void pumpRequest();
  // All of the request has been read: its stream ends, unless it may
  // switch to a byte stream (that waits for the answer's head).
  void requestEnded();
  void pumpTunnel();
  void onOutResume() override { pumpRequest(); }
  void onOutFailed(const Outcome& o) override;
  void onInAborted() override;
  void onInData() override;
  void writeMore();
  void closeEndpoint(bool reset) override;
  // Something moved (request bytes read, answer bytes received or
  // written): the silence that response_timeout_ms bounds starts again.
  void touch() { last_progress_ = Clock::now(); }
  void watchSilence();
  void silent();
  // Ends the exchange with an answer made here (nothing of an answer has
  // been written yet); the connection closes after it unless `keep`.
  void answer(unsigned status, std::string text, bool keep);

  std::shared_ptr<ClientConnection> conn_;
  RequestReader req_;
  ResponseReader res_;
  asio::steady_timer timer_;
  const Clock::time_point started_;
  Clock::time_point last_progress_;
  bool head_request_ = false;
  bool client_keep_ = true;
  bool http10_ = false;
  bool request_read_ = false;  // all of the request has been read and sent
  bool reading_ = false;
  Tunnel tunnel_kind_ = Tunnel::kNone;  // what the request may switch to
  bool tunnel_ = false;                 // switched: bytes both ways, unparsed
  // The answer: its head is collected in resp_buf_ and parsed, then written
  // (head_out_), then the body slices of the stream.
  std::string resp_buf_;
  bool resp_started_ = false;  // a final head arrived (or an interim one was written)
  bool resp_head_done_ = false;
  bool close_after_ = false;
  std::string head_out_;      // heads to write next
  std::string head_writing_;  // heads being written (head_out_ may grow meanwhile)
  std::vector<asio::const_buffer> bufs_;
  bool writing_ = false;
  bool resp_complete_ = false;
  std::string answer_;  // made here, written by the connection at the end
};

void ClientConnection::start() {
  if (stopping_) {  // accepted as its listener stopped
    closed_ = true;
    stream.close();
    return;
  }
  if (!s->tls) {
    readHead();
    return;
  }
  const auto ctx = s->tls();
  stream.startTls(*ctx);
  timer.expires_after(std::chrono::milliseconds(s->cfg.head_timeout_ms));
  timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed_ || self->tls_done_) return;
    self->s->http->tls_failures.fetch_add(1, std::memory_order_relaxed);
    self->resetNow();  // no TLS handshake in time
  });
  stream.tlsStream().async_handshake(
      asio::ssl::stream_base::server,
      [self = shared_from_this(), ctx](const boost::system::error_code& ec) {
        self->tls_done_ = true;
        if (self->closed_) return;
        self->timer.cancel();
        if (ec) {
          self->s->http->tls_failures.fetch_add(1, std::memory_order_relaxed);
          VANE_LOG_DEBUG("http listener {}: TLS handshake with {} failed: {}", self->s->cfg.name,
                         self->endpoint, ec.message());
          self->resetNow();
          return;
        }
        self->readHead();
      });
}

void ClientConnection::readHead() {
  if (closed_) return;
  if (stopping_ && rbuf.empty()) {
    closeGracefully();
    return;
  }
  for (;;) {
    std::size_t used = 0;
    const auto st = rbuf.empty() ? RequestReader::Status::kNeedMore : reader_.head(rbuf, used);
    if (st == RequestReader::Status::kError) {
      s->http->bad_requests.fetch_add(1, std::memory_order_relaxed);
      VANE_LOG_DEBUG("http listener {}: bad request from {}: {}", s->cfg.name, endpoint,
                     reader_.error());
      answerAndClose(400, "bad request: " + reader_.error());
      return;
    }
    if (st != RequestReader::Status::kNeedMore) {
      timer.cancel();
      head_since_.reset();
      RequestReader reader = std::move(reader_);
      reader_.reset(s->cfg.max_header_bytes);
      onHead(std::move(reader), used);
      return;
    }
    break;
  }
  if (reading_) return;
  reading_ = true;
  if (rbuf.empty()) {
    timer.expires_after(kIdleTimeout);
  } else {
    if (!head_since_) head_since_ = Clock::now();
    timer.expires_at(*head_since_ + std::chrono::milliseconds(s->cfg.head_timeout_ms));
  }
  timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed_) return;
    if (!self->rbuf.empty()) {
      self->s->http->head_timeouts.fetch_add(1, std::memory_order_relaxed);
      self->answerAndClose(408, "the request head did not arrive in time");
      return;
    }
    self->closeGracefully();
  });
  readInto(stream, rbuf,
           [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
             self->reading_ = false;
             if (self->closed_) return;
             if (ec) {
               // The client closed (or reset) between requests, or mid-head.
               self->closed_ = true;
               self->timer.cancel();
               boost::system::error_code ignored;
               self->stream.close();
               return;
             }
             self->s->flows->bytes_in.fetch_add(n, std::memory_order_relaxed);
             self->readHead();
           });
}

void ClientConnection::onHead(RequestReader reader, std::size_t used) {
  if (auto why = checkRequest(reader)) {
    (why->status == 501 ? s->http->not_implemented : s->http->bad_requests)
        .fetch_add(1, std::memory_order_relaxed);
    VANE_LOG_DEBUG("http listener {}: refused a request from {}: {}", s->cfg.name, endpoint,
                   why->text);
    answerAndClose(why->status, (why->status == 400 ? "bad request: " : "") + why->text);
    return;
  }
  rbuf.erase(0, used);
  in_exchange_ = true;
  auto exchange = std::make_shared<RequestExchange>(flows, shared_from_this(), std::move(reader));
  flows.add(exchange);
  exchange->start();
}

void ClientConnection::answerAndClose(unsigned status, std::string text) {
  s->http->countStatus(status);
  exchangeDone(false, errorResponse(status, text, true));
}

void ClientConnection::exchangeDone(bool keep, std::string answer) {
  in_exchange_ = false;
  if (closed_) return;
  keep = keep && !stopping_;
  if (answer.empty()) {
    if (keep) {
      readHead();
    } else {
      closeGracefully();
    }
    return;
  }
  auto bytes = std::make_shared<std::string>(std::move(answer));
  answering_ = true;
  stream.asyncWrite(asio::buffer(*bytes), [self = shared_from_this(), bytes, keep](
                                              const boost::system::error_code& ec, std::size_t n) {
    self->answering_ = false;
    if (self->closed_) return;
    self->s->flows->bytes_out.fetch_add(n, std::memory_order_relaxed);
    if (ec) {
      self->resetNow();
      return;
    }
    self->exchangeDone(keep, {});
  });
}

void ClientConnection::closeGracefully() {
  if (closed_) return;
  closed_ = true;
  timer.cancel();
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    stream.close();
    return;
  }
  // Lingering close: what the client still sends is read and dropped until
  // it closes its end, for kLingerTime and kLingerBytes at most. A read may
  // still be waiting (for the next head, or an exchange's for its body): it
  // is cancelled, and the lingering reads start after its handler has run,
  // into a buffer of their own.
  stream.socket().cancel(ec);
  timer.expires_after(kLingerTime);
  timer.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    if (!e) self->stream.close();
  });
  asio::post(flows.loop.context(), [self = shared_from_this()] { self->linger(kLingerBytes); });
}

void ClientConnection::linger(std::size_t budget) {
  if (!stream.isOpen()) return;
  linger_buf_.resize(kReadSize);
  stream.asyncReadSome(
      asio::buffer(linger_buf_),
      [self = shared_from_this(), budget](const boost::system::error_code& ec, std::size_t n) {
        if (ec || n >= budget) {
          self->timer.cancel();
          self->stream.close();
          return;
        }
        self->linger(budget - n);
      });
}

void RequestExchange::start() {
  const auto& h = req_.get();
  const auto& cfg = settings().cfg;
  rec_.endpoint = conn_->endpoint;
  rec_.method = std::string(h.method_string());
  rec_.host = hostOf(req_);
  const std::string_view target(h.target().data(), h.target().size());
  rec_.path = std::string(pathOf(target));
  head_request_ = h.method() == bhttp::verb::head;
  http10_ = h.version() < 11;
  client_keep_ = req_.keepAlive();
  tunnel_kind_ = tunnelOf(req_);
  if (head_request_) res_.skipBody();
  // The first route that matches, else the listener's address.
  const std::string* address = &cfg.address;
  for (const auto& r : cfg.routes) {
    if (!r.host.empty() && r.host != rec_.host) continue;
    if (!r.path_prefix.empty() && rec_.path.compare(0, r.path_prefix.size(), r.path_prefix) != 0)
      continue;
    address = &r.address;
    break;
  }
  rec_.address = *address;
  const std::string service = std::string(kServicePrefix) + *address;
  if (!openOut(service, flows_.table.flowAddressHere(flows_.loop_index, id_, token()))) {
    request_read_ = req_.done();  // else the body would be taken for the next request
    counters_->refused.fetch_add(1, std::memory_order_relaxed);
    http().unavailable.fetch_add(1, std::memory_order_relaxed);
    if (!counters_->failing.exchange(true)) {
      VANE_LOG_INFO(
          "http listener {}: no http connector for '{}' is reachable: requests get 503 until "
          "one is",
          name_, *address);
    }
    answer(503, "no http connector for address '" + *address + "' is reachable", req_.done());
    return;
  }
  if (counters_->failing.exchange(false)) {
    VANE_LOG_INFO("http listener {}: an http connector for '{}' is reachable again", name_,
                  *address);
  }
  const std::string head =
      forwardRequestHead(req_, ForwardInfo{conn_->peer_ip, conn_->stream.tls() ? "https" : "http",
                                           "1.1 " + flows_.router_id});
  sendBytes(head);
  touch();
  watchSilence();
  if (req_.done()) {
    requestEnded();
    return;
  }
  pumpRequest();
}

// Until the exchange ends (or becomes a byte stream), nothing may stay
// still for response_timeout_ms: not the answer's head after the request's
// last bytes, not the request's body, not the answer's body.
void RequestExchange::watchSilence() {
  timer_.expires_at(last_progress_ + std::chrono::milliseconds(settings().cfg.response_timeout_ms));
  timer_.async_wait([this, self = self<RequestExchange>()](const boost::system::error_code& ec) {
    if (ec || finished() || tunnel_) return;
    if (Clock::now() <
        last_progress_ + std::chrono::milliseconds(settings().cfg.response_timeout_ms)) {
      watchSilence();
      return;
    }
    silent();
  });
}

void RequestExchange::silent() {
  const auto ms = settings().cfg.response_timeout_ms;
  if (!resp_started_) {
    http().timeouts.fetch_add(1, std::memory_order_relaxed);
    VANE_LOG_DEBUG("http listener {}: no answer for {} {} within {} ms", name_, rec_.method,
                   rec_.path, ms);
    answer(504,
           "no answer from address '" + rec_.address + "' within " + std::to_string(ms) + " ms",
           false);
    return;
  }
  // Part of an answer has been written: it can only be cut off.
  http().stalls.fetch_add(1, std::memory_order_relaxed);
  VANE_LOG_DEBUG("http listener {}: the answer to {} {} stalled for {} ms", name_, rec_.method,
                 rec_.path, ms);
  fail(true);
}

void RequestExchange::requestEnded() {
  request_read_ = true;
  if (tunnel_kind_ != Tunnel::kNone && !resp_head_done_) return;  // onInData decides
  if (!outFinished()) endOut();
  maybeFinish();
}

// Streams the request body: bytes the connection has read first, then the
// socket, until the parser says the request ended.
void RequestExchange::pumpRequest() {
  if (tunnel_) {
    pumpTunnel();
    return;
  }
  if (finished() || request_read_ || reading_ || outFinished()) return;
  std::string& buf = conn_->rbuf;
  while (!buf.empty()) {
    if (outPaused()) return;  // onOutResume continues
    std::size_t used = 0;
    const auto st =
        req_.body(std::string_view(buf).substr(0, std::min(buf.size(), kReadSize)), used);
    if (st == RequestReader::Status::kError) {
      http().bad_requests.fetch_add(1, std::memory_order_relaxed);
      abortOut();
      if (!resp_started_) {
        answer(400, "bad request: " + req_.error(), false);
      } else {
        fail(true);
      }
      return;
    }
    if (used > 0) {
      sendBytes(std::string_view(buf).substr(0, used));
      rec_.bytes_in += used;
      buf.erase(0, used);
    }
    if (st == RequestReader::Status::kDone) {
      requestEnded();
      return;
    }
    if (used == 0) break;  // an incomplete chunk header: read more after it
  }
  if (buf.size() > settings().cfg.max_header_bytes) {
    // A chunk header or trailers longer than any head may be.
    http().bad_requests.fetch_add(1, std::memory_order_relaxed);
    abortOut();
    if (!resp_started_) {
      answer(400, "bad request: chunk header or trailers too long", false);
    } else {
      fail(true);
    }
    return;
  }
  if (outPaused()) return;
  reading_ = true;
  readInto(
      conn_->stream, buf,
      [this, self = self<RequestExchange>()](const boost::system::error_code& ec, std::size_t n) {
        reading_ = false;
        if (finished()) return;
        if (tunnel_ && endOfData(ec)) {
          // The answer switched while this read was waiting: the client's
          // end of the byte stream.
          endOut();
          maybeFinish();
          return;
        }
        if (ec) {
          // The client went away in the middle of its request.
          fail(true);
          return;
        }
        touch();
        counters_->bytes_in.fetch_add(n, std::memory_order_relaxed);
        pumpRequest();
      });
}

// A switched connection: the client's bytes go on as they come (what it
// sent after its request first), until it half-closes.
void RequestExchange::pumpTunnel() {
  if (finished() || reading_ || outFinished()) return;
  std::string& buf = conn_->rbuf;
  if (!buf.empty()) {
    sendBytes(buf);
    rec_.bytes_in += buf.size();
    buf.clear();
  }
  if (outPaused()) return;  // onOutResume continues
  reading_ = true;
  readInto(
      conn_->stream, buf,
      [this, self = self<RequestExchange>()](const boost::system::error_code& ec, std::size_t n) {
        reading_ = false;
        if (finished()) return;
        if (endOfData(ec)) {
          endOut();  // the client half-closed: so does the stream
          maybeFinish();
          return;
        }
        if (ec) {
          fail(true);
          return;
        }
        counters_->bytes_in.fetch_add(n, std::memory_order_relaxed);
        pumpTunnel();
      });
}

void RequestExchange::onOutFailed(const Outcome& o) {
  if (tunnel_) {
    fail(true);  // the server end of the byte stream failed
    return;
  }
  if (resp_started_) {
    // The connector stopped taking the request after the server answered
    // (an early answer): finish the answer, then close.
    close_after_ = true;
    abortOut();
    maybeFinish();
    return;
  }
  http().bad_gateway.fetch_add(1, std::memory_order_relaxed);
  std::string why =
      o.error_description.empty() ? std::string("the connector failed") : o.error_description;
  answer(502, "address '" + rec_.address + "': " + why, false);
}

void RequestExchange::onInAborted() {
  if (resp_started_) {
    fail(true);
    return;
  }
  http().bad_gateway.fetch_add(1, std::memory_order_relaxed);
  answer(502, "address '" + rec_.address + "': the connector went away before answering", false);
}

void RequestExchange::answer(unsigned status, std::string text, bool keep) {
  if (writing_) {
    // An interim head is being written: the connection cannot take the
    // router's answer behind it in order.
    fail(true);
    return;
  }
  rec_.status = status;
  http().countStatus(status);
  // The connection stays only if the client keeps it too and all of the
  // request has been read (closeEndpoint): the answer says which.
  keep = keep && client_keep_ && request_read_;
  answer_ = errorResponse(status, text, !keep);
  close_after_ = !keep;
  fail(false);
}

void RequestExchange::onInData() {
  if (finished()) return;
  touch();
  while (!resp_head_done_) {
    // Collect the head (and any interim 1xx heads before it).
    std::size_t taken = 0;
    for (const auto& s : inq_) {
      resp_buf_.append(s.data, s.size);
      taken += s.size;
    }
    consumedIn(taken);
    if (resp_buf_.empty()) {
      if (inLast()) {
        onInAborted();
      } else {
        writeMore();  // interim heads
      }
      return;
    }
    std::size_t used = 0;
    const auto st = res_.head(resp_buf_, used);
    if (st == ResponseReader::Status::kNeedMore) {
      if (inLast()) {
        reportIn(Outcome::rejected("vane:bad-response", "the answer ended inside its head"));
        onInAborted();
      } else {
        writeMore();  // interim heads
      }
      return;
    }
    if (st == ResponseReader::Status::kError) {
      reportIn(Outcome::rejected("vane:bad-response", res_.error()));
      http().bad_gateway.fetch_add(1, std::memory_order_relaxed);
      answer(502, "address '" + rec_.address + "': bad answer: " + res_.error(), false);
      return;
    }
    const unsigned status = res_.get().result_int();
    std::string_view head(resp_buf_.data(), used);
    if (status >= 100 && status < 200 && status != 101) {
      // Interim: passed on as it is, except to an HTTP/1.0 client (RFC
      // 9110 15.2: it would not know what to do with it). A server that
      // sends them faster than the client reads is a hostile one.
      if (!http10_) head_out_.append(head);
      if (head_out_.size() > kUpstreamHeadLimit) {
        fail(true);
        return;
      }
      resp_buf_.erase(0, used);
      res_.reset(kUpstreamHeadLimit);
      if (head_request_) res_.skipBody();
      resp_started_ = resp_started_ || !http10_;
      continue;
    }
    if (status == 101 && !grantsUpgrade(req_, res_)) {
      reportIn(Outcome::rejected("vane:bad-response", "101 to a request that asked for none"));
      http().bad_gateway.fetch_add(1, std::memory_order_relaxed);
      answer(502, "address '" + rec_.address + "': bad answer: 101 without an Upgrade", false);
      return;
    }
    resp_started_ = true;
    resp_head_done_ = true;
    rec_.status = status;
    http().countStatus(status);
    tunnel_ = switches(tunnel_kind_, status);
    // An answer that begins before the request has all been read may end
    // before it too, and then the connection closes: say so at once.
    close_after_ = close_after_ || !client_keep_ || res_.needEof() || tunnel_ || !request_read_;
    if (tunnel_) {
      // From here on, bytes both ways as they come; the connection is
      // never an HTTP one again (and may be silent as long as it likes).
      timer_.cancel();
      http().tunnels.fetch_add(1, std::memory_order_relaxed);
      head_out_.append(head);
    } else if (close_after_) {
      head_out_ += withConnection(head, "close");
    } else if (http10_) {
      head_out_ += withConnection(head, "keep-alive");
    } else {
      head_out_.append(head);
    }
    // Whatever followed the head is body: put it back in front of the
    // stream's slices (as one owned slice).
    if (used < resp_buf_.size()) {
      auto rest = std::make_shared<const std::string>(resp_buf_, used);
      inq_.push_front(Slice{rest, rest->data(), rest->size(), 0});
    }
    resp_buf_.clear();
    resp_buf_.shrink_to_fit();
    if (tunnel_) {
      // (Were the request's body not all read, the rest of it is now part
      // of the byte stream.)
      pumpTunnel();
    } else if (tunnel_kind_ != Tunnel::kNone && request_read_) {
      requestEnded();  // no switch: the request was all there was
    }
  }
  writeMore();
}

void RequestExchange::writeMore() {
  if (writing_ || finished()) return;
  if (head_out_.empty() && inq_.empty()) {
    if (resp_head_done_ && inLast() && !inDone()) {
      if (!inAtBoundary()) {
        malformed();
        return;
      }
      if (tunnel_) {
        // The server's end of the byte stream closed: the client's too.
        boost::system::error_code ignored;
        conn_->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        reportIn(Outcome::accepted());
        maybeFinish();
        return;
      }
      resp_complete_ = true;
      http().observe(Clock::now() - started_);
      reportIn(Outcome::accepted());
      if (!request_read_) {
        // Answered before the request ended: the rest of it cannot be
        // told from the next request. (The aborted stream's outcome may
        // never come: the other end may be waiting for its end.)
        close_after_ = true;
        abortOut();
        finish(false);
        return;
      }
      maybeFinish();
    }
    return;
  }
  bufs_.clear();
  const bool head = !head_out_.empty();
  if (head) {
    head_writing_ = std::move(head_out_);
    head_out_.clear();
    bufs_.emplace_back(head_writing_.data(), head_writing_.size());
  }
  if (resp_head_done_) {
    for (std::size_t i = 0; i < inq_.size() && bufs_.size() < kMaxWriteBuffers; ++i) {
      bufs_.emplace_back(inq_[i].data, inq_[i].size);
    }
  }
  writing_ = true;
  conn_->stream.asyncWrite(bufs_, [this, self = self<RequestExchange>(), head](
                                      const boost::system::error_code& ec, std::size_t n) {
    writing_ = false;
    if (finished()) return;
    if (ec) {
      fail(true);
      return;
    }
    touch();
    counters_->bytes_out.fetch_add(n, std::memory_order_relaxed);
    rec_.bytes_out += n;
    if (head) {
      n -= std::min(n, head_writing_.size());  // a whole write: all of it
      head_writing_.clear();
    }
    consumedIn(n);
    writeMore();
  });
}

void RequestExchange::closeEndpoint(bool reset) {
  timer_.cancel();
  if (reset) {
    conn_->resetNow();
    return;
  }
  const bool keep = !close_after_ && request_read_ && client_keep_;
  // Posted: the connection reads the next request after this handler.
  asio::post(flows_.loop.context(), [conn = conn_, keep, answer = std::move(answer_)]() mutable {
    conn->exchangeDone(keep, std::move(answer));
  });
}

void stopClientConnections(ListenerConnections& conns, std::size_t worker) {
  conns.stopped[worker] = 1;
  // stop() may close (and so free) a connection: not while iterating.
  std::vector<std::shared_ptr<ClientConnection>> all;
  for (ClientConnection* c : conns.open[worker]) all.push_back(c->shared_from_this());
  for (const auto& c : all) c->stop();
}

void startClientConnection(FlowTable& flows, tcp::socket socket,
                           std::shared_ptr<const ListenerSettings> settings) {
  auto conn = std::make_shared<ClientConnection>(flows, std::move(socket), std::move(settings));
  conn->start();
}

// ---------------------------------------------------------------------------
// Connector side
// ---------------------------------------------------------------------------

class OriginExchange final : public StreamFlow {
 public:
  OriginExchange(FlowTable& flows, std::shared_ptr<ConnectorSink> sink,
                 std::shared_ptr<const ConnectorSettings> settings)
      : StreamFlow(flows, false, settings->flows, settings->cfg.name, settings->cfg.address),
        sink_(std::move(sink)),
        s_(std::move(settings)),
        stream_(tcp::socket(flows.loop.context())),
        timer_(flows.loop.context()),
        req_(kUpstreamHeadLimit),
        res_(kUpstreamHeadLimit) {
    rec_.adaptor = "http";
    s_->http->requests_active.fetch_add(1, std::memory_order_relaxed);
    rec_.endpoint = s_->cfg.host + ":" + std::to_string(s_->cfg.port);
  }
  ~OriginExchange() override { s_->http->requests_active.fetch_sub(1, std::memory_order_relaxed); }

  void start(std::shared_ptr<Transfer> t) {
    t->via = weak_from_this();
    enqueue(std::move(t));
  }

 private:
  void onInStarted() override {
    if (replyTo().empty() || !openOut(replyTo(), {})) {
      reportIn(Outcome::rejected("vane:no-route", "no route back to the client's router"));
      fail(true);
    }
  }
  void onInData() override;
  void onOutResume() override { readOrigin(); }
  void onInAborted() override { fail(true); }
  void closeEndpoint(bool reset) override;

  void connect();
  void startTls();
  void connected();
  void writeOrigin();
  void readOrigin();
  void onOrigin();
  void originEnded(const std::string& why);
  bool checkIn(std::string_view bytes) override { return !req_head_done_ || checkBody(bytes); }
  bool checkBody(std::string_view bytes);
  void keepForRetry(std::size_t n);
  void retry();
  void responseDone();
  // An answer made here, before any of the server's.
  void answer(unsigned status, const std::string& text);

  std::shared_ptr<ConnectorSink> sink_;
  const std::shared_ptr<const ConnectorSettings> s_;
  HttpStream stream_;
  asio::steady_timer timer_;
  RequestReader req_;
  ResponseReader res_;
  std::string head_buf_;  // the request head (and what followed it), to write first
  bool req_head_done_ = false;
  // The request's body is parsed here again (req_ finds its end) so that
  // nothing but one whole request reaches a server connection that may be
  // kept: bytes after the end, a body cut short or broken chunking from
  // the other router reset the flow (and that connection).
  bool req_body_done_ = false;
  std::string carry_;  // an incomplete chunk header, given again with what follows
  bool head_request_ = false;
  bool have_socket_ = false;
  bool reused_ = false;
  bool retried_ = false;
  bool timed_out_ = false;
  std::string retry_copy_;  // what was written on a reused connection
  bool retry_ok_ = true;
  bool retry_after_write_ = false;
  // The request's stream was let go (answered before its end) while a write
  // of its chunks was in flight: that write's handler must not touch them
  // (bufs_ points into the chunks that letting go freed).
  bool write_dropped_ = false;
  bool writing_ = false;
  bool request_done_ = false;
  std::vector<asio::const_buffer> bufs_;
  bool reading_ = false;
  std::string rbuf_;
  bool resp_any_ = false;  // any byte of an answer was sent back
  bool resp_head_done_ = false;
  bool resp_done_ = false;
  bool reusable_ = false;
  Tunnel tunnel_kind_ = Tunnel::kNone;  // what the request may switch to
  bool tunnel_ = false;                 // switched: bytes both ways, unparsed
};

void OriginExchange::onInData() {
  if (finished()) return;
  if (!req_head_done_) {
    std::size_t taken = 0;
    for (const auto& s : inq_) {
      head_buf_.append(s.data, s.size);
      taken += s.size;
    }
    consumedIn(taken);
    std::size_t used = 0;
    const auto st = req_.head(head_buf_, used);
    if (st == RequestReader::Status::kNeedMore && !inLast()) return;
    if (st == RequestReader::Status::kNeedMore || st == RequestReader::Status::kError ||
        checkRequest(req_)) {
      malformed();
      return;
    }
    req_head_done_ = true;
    req_body_done_ = st == RequestReader::Status::kDone;
    if (!checkBody(std::string_view(head_buf_).substr(used))) {
      malformed();
      return;
    }
    head_request_ = req_.get().method() == bhttp::verb::head;
    tunnel_kind_ = tunnelOf(req_);
    rec_.method = std::string(req_.get().method_string());
    rec_.host = hostOf(req_);
    rec_.path = std::string(pathOf({req_.get().target().data(), req_.get().target().size()}));
    if (head_request_) res_.skipBody();
    if (sink_->takeIdle(stream_)) {
      reused_ = true;
      s_->http->connections_reused.fetch_add(1, std::memory_order_relaxed);
      connected();
    } else {
      connect();
    }
    return;
  }
  writeOrigin();  // what arrived was checked on its way in (checkIn)
}

// Gives request bytes that followed what req_ has seen to it; false when
// they are not the rest of one request (after a switch they are the
// client's byte stream, unparsed).
bool OriginExchange::checkBody(std::string_view bytes) {
  if (bytes.empty() || tunnel_) return true;
  if (req_body_done_) return false;  // a second request, smuggled after the first
  std::string joined;
  if (!carry_.empty()) {
    joined = std::move(carry_);
    carry_.clear();
    joined.append(bytes);
    bytes = joined;
  }
  std::size_t used = 0;
  const auto st = req_.body(bytes, used);
  if (st == RequestReader::Status::kError) {
    VANE_LOG_DEBUG("http connector {}: a request body from router {} is malformed: {}", name_,
                   rec_.peer_router, req_.error());
    return false;
  }
  if (st == RequestReader::Status::kDone) {
    req_body_done_ = true;
    return used == bytes.size();
  }
  carry_.assign(bytes.substr(used));
  return carry_.size() <= kUpstreamHeadLimit;
}

void OriginExchange::connect() {
  auto self = this->self<OriginExchange>();
  auto resolver = std::make_shared<tcp::resolver>(flows_.loop.context());
  timed_out_ = false;
  timer_.expires_after(kConnectTimeout);
  timer_.async_wait([this, self, resolver](const boost::system::error_code& ec) {
    if (ec || have_socket_ || finished()) return;
    timed_out_ = true;
    resolver->cancel();
    stream_.close();
  });
  resolver->async_resolve(
      s_->cfg.host, std::to_string(s_->cfg.port), tcp::resolver::numeric_service,
      [this, self, resolver](const boost::system::error_code& ec,
                             tcp::resolver::results_type results) {
        if (finished()) return;
        if (ec) {
          originEnded("cannot resolve " + s_->cfg.host + ": " + ec.message());
          return;
        }
        asio::async_connect(
            stream_.socket(), results,
            [this, self](const boost::system::error_code& ec, const tcp::endpoint&) {
              if (finished()) return;
              if (!s_->tls) timer_.cancel();  // else it bounds the handshake too
              if (ec) {
                timer_.cancel();
                counters_->connect_failures.fetch_add(1, std::memory_order_relaxed);
                const std::string why = timed_out_ ? std::string("timed out") : ec.message();
                if (!counters_->failing.exchange(true)) {
                  VANE_LOG_INFO("http connector {}: cannot connect to {}:{}: {}", name_,
                                s_->cfg.host, s_->cfg.port, why);
                }
                originEnded("cannot connect to the server: " + why);
                return;
              }
              if (counters_->failing.exchange(false)) {
                VANE_LOG_INFO("http connector {}: connected to {}:{} again", name_, s_->cfg.host,
                              s_->cfg.port);
              }
              s_->http->connections_opened.fetch_add(1, std::memory_order_relaxed);
              boost::system::error_code ignored;
              stream_.socket().set_option(tcp::no_delay(true), ignored);
              if (s_->tls) {
                startTls();
              } else {
                connected();
              }
            });
      });
}

// TLS to the server: its certificate verified with the profile's ca and
// for the connector's host (SNI sent for a name).
void OriginExchange::startTls() {
  stream_.startTls(*s_->tls());
  auto& tls = stream_.tlsStream();
  const std::string& host = s_->cfg.host;
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec) SSL_set_tlsext_host_name(tls.native_handle(), host.c_str());
  tls.set_verify_callback(asio::ssl::host_name_verification(host));
  static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_set_alpn_protos(tls.native_handle(), kAlpn, sizeof kAlpn);
  tls.async_handshake(asio::ssl::stream_base::client,
                      [this, self = self<OriginExchange>()](const boost::system::error_code& ec) {
                        timer_.cancel();
                        if (finished()) return;
                        if (ec) {
                          s_->http->tls_failures.fetch_add(1, std::memory_order_relaxed);
                          const std::string why =
                              timed_out_ ? std::string("timed out") : ec.message();
                          VANE_LOG_DEBUG("http connector {}: TLS with {}:{} failed: {}", name_,
                                         s_->cfg.host, s_->cfg.port, why);
                          have_socket_ = false;
                          retried_ = true;  // not a stale kept connection
                          originEnded("TLS handshake with the server failed: " + why);
                          return;
                        }
                        connected();
                      });
}

void OriginExchange::connected() {
  have_socket_ = true;
  writeOrigin();
  readOrigin();
}

void OriginExchange::writeOrigin() {
  if (writing_ || finished() || !have_socket_) return;
  if (request_done_ || inDone()) {
    // Settled already: only a retry's copy of the request is left to send.
    if (head_buf_.empty()) return;
  } else if (head_buf_.empty() && inq_.empty()) {
    if (!inLast()) return;
    if (!inAtBoundary() || (!tunnel_ && !req_body_done_)) {
      malformed();  // the stream broke off, or the request did
      return;
    }
    request_done_ = true;
    if (tunnel_) {
      // The client half-closed its end of the byte stream.
      boost::system::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    reportIn(Outcome::accepted());
    if (resp_done_) responseDone();
    return;
  }
  bufs_.clear();
  const bool head = !head_buf_.empty();
  if (head) bufs_.emplace_back(head_buf_.data(), head_buf_.size());
  for (std::size_t i = 0; i < inq_.size() && bufs_.size() < kMaxWriteBuffers; ++i) {
    bufs_.emplace_back(inq_[i].data, inq_[i].size);
  }
  writing_ = true;
  stream_.asyncWrite(bufs_, [this, self = self<OriginExchange>(), head](
                                const boost::system::error_code& ec, std::size_t n) {
    writing_ = false;
    if (finished()) return;
    if (write_dropped_) {
      write_dropped_ = false;
      maybeFinish();
      return;
    }
    if (ec) {
      if (retry_after_write_) {
        retry_after_write_ = false;
        retry();
        return;
      }
      // While the answer is awaited the read side sees the same end and
      // decides (what this write took is still in head_buf_ and inq_: a
      // retry sends it after the copy). With no read left to see it (the
      // answer ended, or a byte stream's server half-closed), this ends it.
      if (resp_done_ || tunnel_) fail(true);
      return;
    }
    keepForRetry(n);
    counters_->bytes_out.fetch_add(n, std::memory_order_relaxed);
    rec_.bytes_out += n;
    if (head) {
      const std::size_t k = std::min(n, head_buf_.size());
      head_buf_.erase(0, k);
      n -= k;
    }
    consumedIn(n);
    writeOrigin();
  });
}

void OriginExchange::readOrigin() {
  if (reading_ || finished() || !have_socket_ || resp_done_) return;
  if (outPaused()) return;  // onOutResume continues
  reading_ = true;
  auto done = [this, self = self<OriginExchange>()](const boost::system::error_code& ec,
                                                    std::size_t n) {
    reading_ = false;
    if (finished()) return;
    if (ec && tunnel_) {
      if (!endOfData(ec)) {
        fail(true);
        return;
      }
      resp_done_ = true;  // the server's end of the byte stream closed
      endOut();
      maybeFinish();
      return;
    }
    if (ec) {
      if (resp_head_done_ && res_.needEof() && ec == asio::error::eof) {
        if (res_.eof() == ResponseReader::Status::kDone) {
          responseDone();
          return;
        }
      }
      originEnded(ec == asio::error::eof ? std::string("the server closed the connection")
                                         : "the server connection failed: " + ec.message());
      return;
    }
    counters_->bytes_in.fetch_add(n, std::memory_order_relaxed);
    rec_.bytes_in += n;
    onOrigin();
  };
  if (rbuf_.empty() && !resp_any_ && !stream_.tls()) {
    readIntoWhenReady(stream_.socket(), rbuf_, std::move(done));  // the server is thinking
  } else {
    readInto(stream_, rbuf_, std::move(done));
  }
}

// Parses what the server sent: heads are rewritten, body bytes passed on.
void OriginExchange::onOrigin() {
  // What goes back from this read, sent as one chunk (a head and the body
  // that came with it reach the client in one write).
  std::string out;
  const auto flush = [this, &out] {
    if (!out.empty()) sendBytes(out);
    out.clear();
  };
  if (tunnel_) {
    sendBytes(rbuf_);
    rbuf_.clear();
    readOrigin();
    return;
  }
  while (!rbuf_.empty() && !resp_done_) {
    if (!resp_head_done_) {
      std::size_t used = 0;
      const auto st = res_.head(rbuf_, used);
      if (st == ResponseReader::Status::kNeedMore) break;
      if (st == ResponseReader::Status::kError) {
        VANE_LOG_DEBUG("http connector {}: bad answer from {}:{}: {}", name_, s_->cfg.host,
                       s_->cfg.port, res_.error());
        if (!resp_any_) {
          s_->http->bad_gateway.fetch_add(1, std::memory_order_relaxed);
          answer(502, "bad answer from the server: " + res_.error());
        } else {
          fail(true);
        }
        return;
      }
      const unsigned status = res_.get().result_int();
      if (status == 101 && !grantsUpgrade(req_, res_)) {
        VANE_LOG_DEBUG("http connector {}: {}:{} switched protocols unasked", name_, s_->cfg.host,
                       s_->cfg.port);
        if (!resp_any_) {
          s_->http->bad_gateway.fetch_add(1, std::memory_order_relaxed);
          answer(502, "bad answer from the server: a 101 to no Upgrade the request offered");
        } else {
          fail(true);
        }
        return;
      }
      out += forwardResponseHead(res_, "1.1 " + flows_.router_id);
      resp_any_ = true;
      rbuf_.erase(0, used);
      if (switches(tunnel_kind_, status)) {
        // A byte stream from here on, both ways: what followed the head is
        // its first bytes.
        tunnel_ = true;
        resp_head_done_ = true;
        rec_.status = status;
        s_->http->countStatus(status);
        s_->http->tunnels.fetch_add(1, std::memory_order_relaxed);
        out += rbuf_;
        rbuf_.clear();
        flush();
        writeOrigin();  // bytes the client sent after its request may wait
        readOrigin();
        return;
      }
      if (status >= 100 && status < 200 && status != 101) {
        res_.reset(kUpstreamHeadLimit);
        if (head_request_) res_.skipBody();
        continue;
      }
      rec_.status = status;
      s_->http->countStatus(status);
      resp_head_done_ = true;
      if (st == ResponseReader::Status::kDone) {
        flush();
        responseDone();
        return;
      }
      continue;
    }
    std::size_t used = 0;
    const auto st = res_.body(rbuf_, used);
    if (st == ResponseReader::Status::kError) {
      VANE_LOG_DEBUG("http connector {}: bad answer body from {}:{}: {}", name_, s_->cfg.host,
                     s_->cfg.port, res_.error());
      fail(true);
      return;
    }
    if (used > 0) {
      out.append(rbuf_, 0, used);
      rbuf_.erase(0, used);
    }
    if (st == ResponseReader::Status::kDone) {
      flush();
      responseDone();
      return;
    }
    if (used == 0) break;
  }
  if (rbuf_.size() > kUpstreamHeadLimit) {
    fail(true);
    return;
  }
  flush();
  readOrigin();
}

// The first `n` bytes of bufs_ were written on a kept-alive connection:
// kept (up to kRetryCopyLimit) to be sent again should it turn out closed.
void OriginExchange::keepForRetry(std::size_t n) {
  if (!reused_ || !retry_ok_ || retried_) return;
  if (retry_copy_.size() + n > kRetryCopyLimit) {
    retry_ok_ = false;
    retry_copy_.clear();
    return;
  }
  for (const auto& b : bufs_) {
    if (n == 0) break;
    const std::size_t k = std::min(n, b.size());
    retry_copy_.append(static_cast<const char*>(b.data()), k);
    n -= k;
  }
}

void OriginExchange::retry() {
  have_socket_ = false;
  stream_.renew();
  head_buf_ = std::move(retry_copy_) + head_buf_;
  retry_copy_.clear();
  rbuf_.clear();
  res_.reset(kUpstreamHeadLimit);
  if (head_request_) res_.skipBody();
  connect();
}

void OriginExchange::originEnded(const std::string& why) {
  if (!resp_any_ && reused_ && retry_ok_ && !retried_) {
    // A kept-alive connection the server had closed: once more on a new one.
    VANE_LOG_DEBUG("http connector {}: a kept connection was closed ({}): retrying", name_, why);
    retried_ = true;
    stream_.close();
    if (writing_) {
      retry_after_write_ = true;  // the write's handler retries
      return;
    }
    retry();
    return;
  }
  if (!resp_any_) {
    s_->http->bad_gateway.fetch_add(1, std::memory_order_relaxed);
    answer(502, why);
    return;
  }
  fail(true);
}

void OriginExchange::answer(unsigned status, const std::string& text) {
  rec_.status = status;
  s_->http->countStatus(status);
  resp_any_ = true;
  sendBytes(errorResponse(
      status, "http connector " + name_ + " for address '" + rec_.address + "': " + text, false));
  endOut();
  resp_done_ = true;
  reusable_ = false;
  // The request is not sent on: its stream is done with (a write of it in
  // flight goes first: its buffers are the chunks that settling frees).
  if (writing_) {
    write_dropped_ = true;
    stream_.close();
  }
  reportIn(Outcome::accepted());
  maybeFinish();
}

void OriginExchange::responseDone() {
  resp_done_ = true;
  if (!outFinished()) endOut();
  if (!request_done_ && tunnel_kind_ != Tunnel::kNone && !tunnel_ && !inLast() && inq_.empty() &&
      head_buf_.empty() && !writing_) {
    // No switch, and all of the request has been written: the listener
    // ends its stream now (writeOrigin settles it).
    return;
  }
  if (!request_done_) {
    if (inLast() && inq_.empty() && head_buf_.empty() && !writing_) {
      writeOrigin();  // settles the request
      return;
    }
    // Answered before the request ended: the connection cannot be reused.
    // A write of the request's bytes still in flight goes first (its
    // buffers are the stream's chunks, which settling it frees).
    reusable_ = false;
    if (writing_) {
      write_dropped_ = true;
      stream_.close();
    }
    reportIn(Outcome::released());
    maybeFinish();
    return;
  }
  reusable_ = !tunnel_ && res_.keepAlive() && req_.keepAlive() && rbuf_.empty();
  maybeFinish();
}

void OriginExchange::closeEndpoint(bool reset) {
  timer_.cancel();
  if (!reset && reusable_ && have_socket_ && !writing_ && !reading_ && stream_.isOpen()) {
    sink_->putIdle(std::move(stream_));
    return;
  }
  if (reset) {
    stream_.reset();
  } else {
    stream_.close();
  }
}

namespace {

// An idle connection to the server is still open, and the server has sent
// nothing on it: a close, or bytes it should not have sent, makes it
// unusable. Over TLS bytes may be a record that is not data (a session
// ticket); if they were the server's close_notify, the request sent on it
// fails before any answer and is sent again on a new connection.
bool stillUsable(HttpStream& stream) {
  char c;
  const ssize_t n = ::recv(stream.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
  return n > 0 && stream.tls();
}

}  // namespace

void ConnectorSink::enqueue(std::shared_ptr<Transfer> t) {
  auto ex = std::make_shared<OriginExchange>(flows_, shared_from_this(), settings_);
  flows_.add(ex);
  ex->start(std::move(t));
}

void ConnectorSink::append(const std::shared_ptr<Transfer>& t, forwarding::Chunk chunk, bool last) {
  forwarding::appendVia(t, std::move(chunk), last);
}

void ConnectorSink::abort(const std::shared_ptr<Transfer>& t) {
  forwarding::abortVia(t);
}

bool ConnectorSink::takeIdle(HttpStream& out) {
  const auto now = Clock::now();
  while (!idle_.empty()) {
    Idle idle = std::move(idle_.back());
    idle_.pop_back();
    if (now - idle.since > kMaxIdleAge) continue;
    if (stillUsable(idle.stream)) {
      out = std::move(idle.stream);
      return true;
    }
  }
  return false;
}

void ConnectorSink::putIdle(HttpStream s) {
  VANE_ASSERT_THREAD(flows_.loop);
  if (released_ || settings_->cfg.max_idle_connections == 0) return;
  if (!kept_) {
    flows_.keep(weak_from_this());
    kept_ = true;
  }
  if (idle_.size() >= settings_->cfg.max_idle_connections) idle_.pop_front();
  idle_.push_back(Idle{std::move(s), Clock::now()});
  sweepLater();
}

// Every few seconds while connections are idle: those the server closed,
// and those kept too long, are closed.
void ConnectorSink::sweepLater() {
  if (sweep_) return;
  sweep_.emplace(flows_.loop.context());
  sweep_->expires_after(std::chrono::seconds(5));
  sweep_->async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    auto self = w.lock();
    if (ec || !self || self->released_) return;
    self->sweep_.reset();
    const auto now = Clock::now();
    std::erase_if(self->idle_, [now](Idle& idle) {
      return !stillUsable(idle.stream) || now - idle.since > kMaxIdleAge;
    });
    if (!self->idle_.empty()) self->sweepLater();
  });
}

void ConnectorSink::release() {
  VANE_ASSERT_THREAD(flows_.loop);
  released_ = true;
  idle_.clear();
  sweep_.reset();
}

}  // namespace vane::adaptors::http
