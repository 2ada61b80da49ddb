// One AMQP 1.0 connection accepted by the router, driven by Proton's
// connection driver on one event loop for its whole life.
//
// The socket is Boost.Asio; bytes are read straight into Proton's input
// buffer and written from its output buffer. Proton types stay inside
// src/amqp: the rest of the router sees forwarding::Transfer, Outcome and the
// sink interfaces.
//
// IMPORTANT: every method runs on the connection's loop.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "amqp/frame_guard.hpp"
#include "config/config.hpp"
#include "core/event_loop.hpp"
#include "core/log.hpp"
#include "forwarding/forwarder.hpp"

struct pn_connection_driver_t;
struct pn_event_t;
struct pn_link_t;
struct pn_session_t;

namespace vane::routing {
class RoutingCore;
}

namespace vane::amqp {

struct SaslServerConfig;

struct ConnectionSettings {
  std::string container_id;
  std::uint32_t max_frame_size = 65536;
  std::uint32_t session_capacity = 1u << 24;
  std::uint32_t idle_timeout_ms = 16000;
  int link_capacity = 250;
  // router.max_unsettled_per_link: consumers' links (not router links).
  std::uint32_t max_unsettled_per_link = 1000;
  // router.max_*_per_connection: what one client connection may hold.
  std::uint32_t max_sessions_per_connection = 64;
  std::uint32_t max_links_per_connection = 10000;
  std::uint32_t max_receivers_per_connection = 5000;
  std::uint32_t max_dynamic_addresses_per_connection = 1000;
  std::uint32_t max_unsettled_per_connection = 10000;
  // router.max_stream_links: stream links per router connection, each way.
  std::size_t max_stream_links = 16000;
  std::int64_t inflight_limit = 1 << 20;
  // Bytes a session may hold in the engine's outgoing buffer before the
  // router stops moving more into it.
  std::size_t session_outgoing_limit = 1u << 20;
  // Bytes a connection's links may have moved into the engine and not yet
  // seen written to the socket, over all its sessions. The engine frames
  // whatever every session may send into one output buffer that keeps its
  // largest size for the connection's life (on a router link, where every
  // stream has a session of its own: streams at once x stream window).
  std::size_t connection_output_limit = 1u << 20;
  // router.mode: edge (an edge connection then leads to our uplink).
  bool edge_mode = false;
  // This run of the router (routing::EngineConfig::instance), announced in
  // the open of router connections.
  std::uint64_t instance = 0;
  // Inter-router data links carry many senders' deliveries: a larger window.
  int inter_router_link_capacity = 1000;
  std::int64_t inter_router_inflight_limit = 4 << 20;
  // router.stream_window_bytes: per stream direction and hop.
  std::int64_t stream_window = 1 << 20;
};

// Counters of one listener (relaxed atomics; read by management).
struct ListenerCounters {
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> protocol_errors{0};
  std::atomic<std::uint64_t> tls_failures{0};   // handshakes that failed (e.g. untrusted peer)
  std::atomic<std::uint64_t> auth_failures{0};  // SASL authentication refused
  // Connections refused over this listener's max_connections.
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::int64_t> connections_active{0};
  // TLS and authentication failures are logged at most once a second per
  // listener: a password-guessing client must not flood the log.
  core::LogThrottle failure_log;
};

// The per-connection limits a client can run into (router.max_*).
enum class Limit : std::uint8_t {
  kSessions,          // max_sessions_per_connection: the begin is answered with an end
  kLinks,             // max_links_per_connection: the attach is refused
  kReceivers,         // max_receivers_per_connection
  kDynamicAddresses,  // max_dynamic_addresses_per_connection
  kUnsettled,         // max_unsettled_per_connection: sending paused
  kCount,
};
// The configuration field of a limit ("router.max_sessions_per_connection").
const char* limitField(Limit l);

// What kind of peer a connection serves, from its listener or connector.
struct ConnectionOptions {
  std::string name;  // listener or connector name, for logs
  config::ListenerRole role = config::ListenerRole::kNormal;
  std::uint32_t cost = 1;                      // inter-router and edge roles
  bool outgoing = false;                       // we connected (a connector): we are the AMQP client
  std::shared_ptr<ListenerCounters> counters;  // the listener's (or connector's), if any
  // TLS on this connection, when set. Outgoing: `tls_host` is the name the
  // server's certificate must carry ("" = any name, the CA still checked).
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::string tls_host;
  // Router listeners with TLS: the peer's router id must be its
  // certificate's subject CN.
  bool verify_router_id = false;
  // Normal listeners: the SASL mechanisms offered (null: ANONYMOUS only).
  std::shared_ptr<const SaslServerConfig> sasl;
  // Incoming connections: TLS, SASL and the AMQP open must be done within
  // this; the idle timeout offered (unset: the router's).
  std::chrono::milliseconds handshake_timeout{10000};
  std::optional<std::uint32_t> idle_timeout_ms;
  // Outgoing router links: called on the connection's loop once the link is
  // up, and with a sentence when TLS or authentication failed.
  std::function<void()> on_ready;
  std::function<void(const std::string&)> on_failure;
};

// Counters shared by all connections (relaxed atomics; read by management).
struct Stats {
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> connections_closed{0};
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::uint64_t> protocol_errors{0};
  std::atomic<std::uint64_t> connections_aborted{0};
  std::atomic<std::uint64_t> handshake_timeouts{0};  // peer vanished without a close
  std::atomic<std::uint64_t> tls_failures{0};
  std::atomic<std::uint64_t> auth_failures{0};
  std::atomic<std::uint64_t> deliveries_in{0};
  std::atomic<std::uint64_t> deliveries_out{0};
  std::atomic<std::uint64_t> deliveries_released{0};
  std::atomic<std::uint64_t> deliveries_rejected{0};
  std::atomic<std::uint64_t> deliveries_modified{0};
  std::atomic<std::uint64_t> deliveries_dropped_no_route{0};
  std::atomic<std::uint64_t> deliveries_dropped_hop_limit{0};
  std::atomic<std::uint64_t> route_header_errors{0};
  // Client links and messages refused for an address under "_vane/".
  std::atomic<std::uint64_t> reserved_refused{0};
  // Times a consumer's link reached max_unsettled_per_link (sending paused).
  std::atomic<std::uint64_t> unsettled_limit_reached{0};
  // Deliveries to a TCP flow's address with the wrong token (dropped).
  std::atomic<std::uint64_t> flow_token_mismatches{0};
  // Router connections closed for opening more than max_stream_links.
  std::atomic<std::uint64_t> stream_links_refused{0};
  std::atomic<std::int64_t> connections_active{0};
  // Times each per-connection limit was hit (indexed by Limit).
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Limit::kCount)> limit_hits{};
  void hit(Limit l) {
    limit_hits[static_cast<std::size_t>(l)].fetch_add(1, std::memory_order_relaxed);
  }
};

// What the connections of one loop share.
struct LoopContext {
  core::EventLoop& loop;
  forwarding::ForwardingTable& table;  // this loop's replica
  routing::RoutingCore& core;
  const ConnectionSettings& settings;
  Stats& stats;
};

// What management shows of a connection and its links.
struct LinkInfo {
  std::string name;
  bool incoming = false;  // the peer sends to the router (else it receives)
  std::string address;
  int credit = 0;
  std::size_t unsettled = 0;  // deliveries in progress or awaiting an outcome
};
struct ConnectionInfo {
  std::string peer;            // host:port
  std::string listener;        // listener or connector name
  std::string role;            // normal, inter-router, edge
  bool outgoing = false;       // made by a connector
  std::string container;       // the peer's container id (a router's id)
  std::int64_t opened_ms = 0;  // Unix time
  std::string tls;             // protocol version ("" = plain TCP)
  std::string tls_peer;        // the subject CN of the peer's certificate, if any
  std::string user;            // SASL: the authenticated user
  std::vector<LinkInfo> links;
};

class InLink;
class OutLink;
class SaslServer;
class ControlIn;
class NeighborHandle;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using ClosedCallback = std::function<void(Connection*)>;

  Connection(LoopContext& ctx, boost::asio::ip::tcp::socket socket, ConnectionOptions options,
             ClosedCallback on_closed);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Begins the protocol. Call once, on the loop.
  void start();

  // Closes with an AMQP close carrying `condition`; the socket closes once the
  // close frame is written or `grace` expires.
  void closeWithError(const char* condition, const char* description);

  // Drops the connection at once (no AMQP close): shutdown after the grace
  // period. Loop thread.
  void shutdownNow() { teardown(); }

  // Drains engine events and schedules socket I/O. Safe to call at any time
  // on the loop; re-entrant calls are folded into the running one.
  void process();

  const std::string& peer() const { return peer_; }
  ConnectionInfo info() const;
  LoopContext& context() { return ctx_; }
  bool closed() const { return torn_down_; }
  bool handshaking() const { return handshaking_; }  // TLS not yet established

  // Counts a protocol error (router-wide and for the listener).
  void countProtocolError();

  // Lets the engine turn buffered delivery bytes into frames now (as far as
  // the peer's session window allows). Does nothing while a socket write is
  // in flight: that write reads the engine's output buffer in place.
  void frameOutput();

  // Called by an OutLink that could not move bytes into a full session.
  void addBlocked(std::weak_ptr<OutLink> link) { blocked_.push_back(std::move(link)); }
  // connection_output_limit: whether a link should wait for the socket
  // before moving more bytes into the engine (it blocks; onWritten()
  // resumes it). Only while output is pending, so a write is under way or
  // about to start: bytes the engine cannot frame (a closed peer window)
  // or dropped never hold the connection back (the count starts again once
  // everything framed is written).
  bool outputFull();
  // Bytes a link has moved into the engine.
  void addEngineBytes(std::size_t n) { engine_bytes_ += n; }

  // Client connections: deliveries sent to the connection's consumers and
  // not settled yet (router.max_unsettled_per_connection).
  void addUnsettled() { ++unsettled_; }
  void removeUnsettled() { --unsettled_; }
  // True when the connection is at its limit: the caller pauses until
  // resumeUnsettled() pumps it again.
  bool connectionUnsettledFull();
  // Pumps the paused links once the connection is below its limit.
  void resumeUnsettled();

  // Router links: queues one routing-protocol message on the control link.
  void sendControl(std::string json);
  // Router links: the peer router's id (its container id), once open.
  const std::string& peerRouter() const { return peer_router_; }

  // Router links: sends a streaming copy on a stream link of its own (an
  // idle one, or a new one on a new session).
  void enqueueStream(std::shared_ptr<forwarding::Transfer> t);
  // A stream link finished sending its copy: it may carry the next one.
  void streamIdle(std::shared_ptr<OutLink> link);

 private:
  void begin();
  void onHandshake(const boost::system::error_code& ec);
  void reportFailure(const std::string& what);
  boost::asio::ip::tcp::socket& sock() { return tls_ ? tls_->next_layer() : socket_; }
  template <typename Buffers, typename Handler>
  void readSome(const Buffers& b, Handler&& h) {
    if (tls_)
      tls_->async_read_some(b, std::forward<Handler>(h));
    else
      socket_.async_read_some(b, std::forward<Handler>(h));
  }
  // TLS writes all of it: the stream takes one TLS record (16 KiB) per
  // write_some, and a trip through the engine per record costs more than the
  // encryption.
  template <typename Buffers, typename Handler>
  void writeSome(const Buffers& b, Handler&& h) {
    if (tls_)
      boost::asio::async_write(*tls_, b, std::forward<Handler>(h));
    else
      socket_.async_write_some(b, std::forward<Handler>(h));
  }
  void handleEvent(pn_event_t* e);
  void onLinkRemoteOpen(pn_link_t* link);
  void onLinkRemoteClose(pn_link_t* link);
  void onSessionRemoteClose(pn_session_t* ssn);
  void closeLink(pn_link_t* link);
  void refuseReserved(pn_link_t* link, const std::string& address);
  // Answers a client's attach and detaches it at once with `condition`.
  void refuseLink(pn_link_t* link, const char* condition, const std::string& description);
  // Counts a limit hit and logs it once per connection; returns the
  // description the peer is told.
  std::string limitHit(Limit limit, std::uint32_t value, const char* what);
  // Whether a client link may attach (limits); refuses it if not.
  bool admitLink(pn_link_t* link, bool receiver, bool dynamic);
  void scheduleIo();
  void startWrite();    // sends what the engine has, unless a send is in flight
  void startReadEtc();  // reads, and what follows the end of input
  void scheduleTick();
  void onWritten();
  void armGrace();
  void onGuardViolation(const std::string& condition, const std::string& description);
  void teardown();
  // Router links (options_.role != kNormal).
  bool routerLink() const { return options_.role != config::ListenerRole::kNormal; }
  void openRouterLinks();
  bool acceptRouterLink(pn_link_t* link);
  void pumpControl();
  void checkRouterReady();

  LoopContext& ctx_;
  boost::asio::ip::tcp::socket socket_;
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> tls_;
  bool handshaking_ = false;
  bool closing_ = false;  // we closed it during the TLS handshake (shutdown, connector removed)
  std::string tls_version_;
  std::string tls_peer_;
  std::unique_ptr<SaslServer> sasl_;
  std::string user_;
  bool auth_reported_ = false;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer grace_timer_;  // bounds how long a closing peer is waited for
  bool grace_armed_ = false;
  const ConnectionOptions options_;
  const std::string& listener_ = options_.name;
  std::string peer_;
  std::int64_t opened_ms_ = 0;
  ClosedCallback on_closed_;
  std::unique_ptr<pn_connection_driver_t> driver_;
  FrameGuard guard_;
  std::array<char, 4096> discard_;  // drains the socket after a refused frame
  bool reading_ = false;
  bool input_stopped_ = false;  // a guard violation: read nothing more
  bool remote_opened_ = false;
  bool socket_eof_ = false;        // the socket reported EOF or an error
  bool decode_failed_ = false;     // the engine stopped reading on bad input
  bool amqp_header_sent_ = false;  // the engine wrote the AMQP (not SASL) header
  std::string final_frame_;        // our own close frame, written after the engine's output
  bool writing_ = false;
  bool write_posted_ = false;  // a startWrite() is posted
  // Moved into the engine by the links, less what was written since
  // (connection_output_limit).
  std::size_t engine_bytes_ = 0;
  bool processing_ = false;
  bool again_ = false;
  bool torn_down_ = false;
  bool tick_armed_ = false;
  std::int64_t tick_deadline_ = 0;
  std::unordered_map<pn_link_t*, std::shared_ptr<InLink>> in_links_;
  std::unordered_map<pn_link_t*, std::shared_ptr<OutLink>> out_links_;
  std::vector<std::weak_ptr<OutLink>> blocked_;
  // Client limits.
  std::chrono::steady_clock::time_point handshake_deadline_;
  std::uint32_t sessions_open_ = 0;
  std::uint32_t dynamic_links_ = 0;
  std::uint32_t receivers_ = 0;
  std::uint64_t unsettled_ = 0;
  bool unsettled_paused_ = false;
  std::uint8_t limits_logged_ = 0;                // bit per Limit: said so once
  std::unordered_set<pn_link_t*> refused_links_;  // detached by us, not yet by the peer
  std::size_t orphan_links_ = 0;                  // attached on sessions we refused

  // Router links.
  std::string peer_router_;
  std::uint64_t peer_instance_ = 0;
  std::uint64_t neighbor_id_ = 0;
  pn_link_t* ctl_out_ = nullptr;  // our control sender
  pn_link_t* ctl_in_ = nullptr;   // the peer's control sender
  std::unique_ptr<ControlIn> control_in_;
  std::shared_ptr<OutLink> data_out_;
  std::shared_ptr<forwarding::Consumer> data_consumer_;
  bool data_in_ = false;  // the peer's data link is attached
  bool ctl_out_up_ = false;
  bool data_out_up_ = false;
  bool router_ready_ = false;
  std::uint64_t next_control_tag_ = 1;
  std::deque<std::string> control_queue_;
  std::shared_ptr<NeighborHandle> handle_;
  std::vector<std::shared_ptr<OutLink>> idle_streams_;
  std::uint64_t next_stream_ = 1;
  std::size_t stream_links_ = 0;      // stream links we opened (idle or busy)
  std::size_t incoming_streams_ = 0;  // stream links the peer opened
};

}  // namespace vane::amqp
