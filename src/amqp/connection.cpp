// The AMQP connection: socket and TLS I/O, SASL, the frame guard, the engine
// driver, timers and close. Events: dispatch.cpp; router links: router_links.cpp.
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

#include "amqp/control_link.hpp"
#include "amqp/engine_helpers.hpp"
#include "amqp/in_link.hpp"
#include "amqp/inter_router.hpp"
#include "amqp/message_scan.hpp"
#include "amqp/out_link.hpp"
#include "amqp/sasl_server.hpp"
#include "core/log.hpp"
#include "routing/core.hpp"

namespace vane::amqp {

namespace asio = boost::asio;
using namespace detail;

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
  if (!amqp_header_sent_) {
    // Our close frame (startReadEtc) is only valid once the AMQP layer
    // started: our header is in the output (sent, or about to be).
    static constexpr char kAmqpHeader[] = {'A', 'M', 'Q', 'P', 0, 1, 0, 0};
    const pn_bytes_t wb = pn_connection_driver_write_buffer(driver_.get());
    amqp_header_sent_ =
        wb.size > 0 && std::search(wb.start, wb.start + wb.size, kAmqpHeader,
                                   kAmqpHeader + sizeof kAmqpHeader) != wb.start + wb.size;
  }
  if (!writing_ && !write_posted_ && pn_connection_driver_write_buffer(driver_.get()).size > 0) {
    // The write waits for the handlers already due on this loop (other
    // sockets' reads of the same poll), so that what they add to this
    // connection's output goes out in the same send.
    write_posted_ = true;
    asio::post(sock().get_executor(), [self = shared_from_this()] {
      self->write_posted_ = false;
      if (self->torn_down_) return;
      self->startWrite();
    });
  }
  startReadEtc();
}

void Connection::startWrite() {
  if (torn_down_) return;
  if (!writing_) {
    pn_bytes_t wb = pn_connection_driver_write_buffer(driver_.get());
    if (wb.size > 0) {
      writing_ = true;
      writeSome(asio::buffer(wb.start, wb.size),
                [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                  self->writing_ = false;
                  if (self->torn_down_) return;
                  if (ec) {
                    pn_connection_driver_write_close(self->driver_.get());
                  } else {
                    pn_connection_driver_write_done(self->driver_.get(), n);
                    self->engine_bytes_ -= std::min(self->engine_bytes_, n);
                    self->onWritten();
                  }
                  self->process();
                });
    }
  }
}

void Connection::startReadEtc() {
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
  if (!final_frame_.empty() && !writing_ && !write_posted_ &&
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
  if (!writing_ && !write_posted_ && pn_connection_driver_read_closed(driver_.get()) &&
      !pn_connection_driver_write_closed(driver_.get()) &&
      pn_connection_driver_write_buffer(driver_.get()).size == 0) {
    // The peer's stream has ended and the engine has nothing left to write.
    // Proton closes its output itself only if the stream ended on a frame
    // boundary; after a partial frame it would stay open, and nothing would
    // ever wake the connection again. Close it (the events this queues are
    // handled by process()).
    pn_connection_driver_write_close(driver_.get());
  }
  if (pn_connection_driver_finished(driver_.get()) && !writing_ && !write_posted_) teardown();
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

bool Connection::outputFull() {
  if (engine_bytes_ <= ctx_.settings.connection_output_limit) return false;
  if (torn_down_) return false;
  if (writing_) return true;  // its completion calls onWritten()
  // Framed output waiting: scheduleIo() writes it when this turn ends.
  if (pn_transport_pending(driver_->transport) > 0) return true;
  // Everything framed is written: what is left in the count is held back
  // by closed peer windows (or was dropped), and must not stop the others.
  engine_bytes_ = 0;
  return false;
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

}  // namespace vane::amqp
