// The HTTP/1.1 adaptor's data path.
//
// Listener side: a ClientConnection (http_flow.cpp) reads request heads
// from one client connection; each request becomes its own flow (a
// RequestExchange), routed on its own to "_vane/http/<address>" (the
// listener's address, or the first route that matches), so consecutive
// requests of one keep-alive connection spread over every connector of the
// address. Requests are handled one at a time and answered in order
// (pipelined ones wait in the socket).
//
// Connector side: each request stream that arrives becomes an
// OriginExchange, which takes a kept-alive connection to the server from its
// worker's pool (or connects), writes the request, reads the answer with a
// Beast parser and streams it back; a connection whose answer ended cleanly
// goes back to the pool.
//
//   client ⇄ ClientConnection ─ RequestExchange(L) ══ network ══ OriginExchange(C) ⇄ pool ⇄ server
//
// An Upgrade answered 101, or a CONNECT answered 2xx, turns that request's
// flow into a byte stream both ways to the one server, as a TCP flow.
//
// Errors are answers: no connector reachable 503, the server refused or
// closed before answering 502, response_timeout_ms of silence before the
// answer's head 504 (later in the answer: the client's connection is reset), a malformed or
// ambiguous request 400 (the connection then closes).
//
// IMPORTANT: everything here lives on one worker loop.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "adaptors/adaptor.hpp"
#include "adaptors/flow.hpp"
#include "adaptors/http/http_config.hpp"
#include "adaptors/http/http_stream.hpp"
#include "config/config.hpp"

namespace vane::adaptors::http {

inline constexpr std::string_view kServicePrefix = "_vane/http/";

// Request durations (head read to answer written), upper bounds in seconds.
inline constexpr std::array<double, 12> kDurationBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30};

// What one http listener or connector counts (relaxed atomics).
struct HttpCounters {
  // Answers by status class: [0] 1xx (final ones only: 101) ... [4] 5xx.
  std::array<std::atomic<std::uint64_t>, 5> responses{};
  std::atomic<std::uint64_t> bad_requests{0};     // 400 by the router
  std::atomic<std::uint64_t> head_timeouts{0};    // 408
  std::atomic<std::uint64_t> not_implemented{0};  // 501: CONNECT, unknown methods
  std::atomic<std::uint64_t> unavailable{0};      // 503: no connector reachable
  std::atomic<std::uint64_t> bad_gateway{0};      // 502 by the router
  std::atomic<std::uint64_t> timeouts{0};         // 504
  std::atomic<std::uint64_t> stalls{0};           // answers cut off: response_timeout_ms of silence
  std::atomic<std::uint64_t> tls_failures{0};     // TLS handshakes that failed
  std::atomic<std::uint64_t> tunnels{0};          // Upgrades (101) and CONNECTs switched to bytes
  std::atomic<std::int64_t> connections_active{0};
  std::atomic<std::int64_t> requests_active{0};
  // Listener: request durations.
  std::array<std::atomic<std::uint64_t>, kDurationBuckets.size()> duration_buckets{};
  std::atomic<std::uint64_t> duration_count{0};
  std::atomic<std::uint64_t> duration_sum_us{0};
  // Connector: server connections made, and requests sent on a kept one.
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> connections_reused{0};

  void countStatus(unsigned status) {
    if (status >= 100 && status < 600) {
      responses[status / 100 - 1].fetch_add(1, std::memory_order_relaxed);
    }
  }
  void observe(std::chrono::steady_clock::duration d);
};

// An http listener's settings, shared by its connections.
class ClientConnection;

// The client connections of one http listener, per worker (each worker's
// part is used on its loop only), so that a stopped listener (removed, or
// replaced by a reload) serves no more requests: stopClientConnections()
// closes the idle ones at once and the others when their exchange is done.
struct ListenerConnections {
  explicit ListenerConnections(std::size_t workers) : open(workers), stopped(workers, 0) {}
  std::vector<std::unordered_set<ClientConnection*>> open;
  std::vector<char> stopped;  // connections accepted later close at once
};

// On worker `worker`'s loop.
void stopClientConnections(ListenerConnections& conns, std::size_t worker);

struct ListenerSettings {
  HttpListenerConfig cfg;
  std::shared_ptr<FlowCounters> flows;
  std::shared_ptr<HttpCounters> http;
  Host::TlsContext tls;  // empty: plain HTTP
  std::shared_ptr<ListenerConnections> conns;
};

// Starts serving a connection accepted by an http listener.
void startClientConnection(FlowTable& flows, boost::asio::ip::tcp::socket socket,
                           std::shared_ptr<const ListenerSettings> settings);

struct ConnectorSettings {
  HttpConnectorConfig cfg;
  std::shared_ptr<FlowCounters> flows;
  std::shared_ptr<HttpCounters> http;
  Host::TlsContext tls;  // empty: plain HTTP
};

// The consumer of an http connector on one loop: each delivery is a
// request, for which it starts an OriginExchange. It keeps the loop's idle
// connections to the server (at most cfg.max_idle_connections, each for at
// most 30 s), until release() (the connector removed, or the router
// stopping).
class ConnectorSink : public forwarding::EgressSink,
                      public LoopResource,
                      public std::enable_shared_from_this<ConnectorSink> {
 public:
  ConnectorSink(FlowTable& flows, std::shared_ptr<const ConnectorSettings> settings)
      : flows_(flows), settings_(std::move(settings)) {}

  void enqueue(std::shared_ptr<forwarding::Transfer> t) override;
  void append(const std::shared_ptr<forwarding::Transfer>& t, forwarding::Chunk chunk,
              bool last) override;
  void abort(const std::shared_ptr<forwarding::Transfer>& t) override;

  // An idle connection to the server that is still open, if any.
  bool takeIdle(HttpStream& out);
  void putIdle(HttpStream s);
  void release() override;

 private:
  void sweepLater();

  struct Idle {
    HttpStream stream;
    std::chrono::steady_clock::time_point since;
  };
  FlowTable& flows_;
  const std::shared_ptr<const ConnectorSettings> settings_;
  std::deque<Idle> idle_;
  std::optional<boost::asio::steady_timer> sweep_;  // while idle_ is not empty
  bool kept_ = false;                               // registered with flows_ (released at shutdown)
  bool released_ = false;                           // no more pooling
};

}  // namespace vane::adaptors::http
