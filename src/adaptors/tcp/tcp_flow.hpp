// The TCP adaptor's data path: one TcpFlow per TCP connection at each end.
//
// A client connects to a tcp listener on router L; the flow there (client
// side) sends the client's bytes as one streaming delivery to the service
// address ("_vane/tcp/<address>"), with its own flow address as reply-to.
// Anycast picks a tcp connector on some router C; the flow there (server
// side) connects to the real server, writes the client's bytes to it, and
// sends the server's bytes back as a streaming delivery to the reply-to.
//
//   client ⇄ TcpFlow(L) ══ stream links between routers ══ TcpFlow(C) ⇄ server
//
// Each direction is one AMQP delivery that lasts as long as the direction:
// end of stream (a half-close) completes it; a reset aborts it, and the other
// end resets its socket. The outcome of each delivery is reported when its
// bytes have all been written (accepted), or failed (modified/rejected).
// A flow ends when both directions have ended.
//
// Flow control: bytes read from the socket are taken from the flow's
// FlowBudget (router.stream_window_bytes); reading pauses above it until the
// egress has passed them on. Incoming bytes are released once written to the
// socket. So each direction holds at most one window per hop.
//
// IMPORTANT: a flow and its FlowTable live on one worker loop.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"

namespace vane::adaptors::tcp {

// Prefix of the address under which tcp connectors serve `address`.
inline constexpr std::string_view kServicePrefix = "_vane/tcp/";
std::string serviceAddress(std::string_view address);

// Counters of one tcp listener or connector (relaxed atomics, shared by the
// flows it made; read by management).
struct TcpCounters {
  std::atomic<std::uint64_t> flows_opened{0};
  std::atomic<std::uint64_t> flows_failed{0};  // ended by a reset or failure
  std::atomic<std::int64_t> flows_active{0};
  std::atomic<std::uint64_t> refused{0};           // listener: no connector reachable
  std::atomic<std::uint64_t> connect_failures{0};  // connector: the server refused / unreachable
  std::atomic<std::uint64_t> bytes_in{0};          // read from this end's sockets
  std::atomic<std::uint64_t> bytes_out{0};         // written to them
  std::atomic<bool> failing{false};                // logs the first of a run of failures only
};

class TcpFlow;

// What management shows of one TCP connection at this router.
struct FlowRecord {
  std::uint64_t id = 0;  // unique on its loop
  std::size_t loop = 0;
  bool client_side = true;      // a tcp listener's flow (else a tcp connector's)
  std::string name;             // the listener or connector
  std::string address;          // the service address
  std::string peer_router;      // the router at the other end, once known
  std::string endpoint;         // the client's (client side) or server's host:port
  std::uint64_t bytes_in = 0;   // read from this end's socket
  std::uint64_t bytes_out = 0;  // written to it
  std::int64_t start_ms = 0;    // Unix time
  std::int64_t end_ms = 0;      // 0 while open
  std::string outcome;          // "open", "closed", "reset"
};

// The flows of one loop, by id; also the consumer of the loop's flow
// addresses (see forwarding::flowAddress), which hands each delivery to its
// flow. Owns the flows.
class FlowTable : public forwarding::EgressSink, public std::enable_shared_from_this<FlowTable> {
 public:
  FlowTable(core::EventLoop& loop, forwarding::ForwardingTable& table, std::string router_id,
            std::size_t loop_index, std::int64_t window, std::size_t max_frame_size,
            std::atomic<std::uint64_t>& token_mismatches);

  std::uint64_t add(std::shared_ptr<TcpFlow> flow);
  void remove(std::uint64_t id);
  // Resets every flow (router shutdown).
  void closeAll();
  std::size_t size() const { return flows_.size(); }
  // Open flows, then recently ended ones (newest last, at most kRecent).
  std::vector<FlowRecord> records() const;
  void ended(FlowRecord r);
  static constexpr std::size_t kRecent = 256;

  void enqueue(std::shared_ptr<forwarding::Transfer> t) override;
  void append(const std::shared_ptr<forwarding::Transfer>& t, forwarding::Chunk chunk,
              bool last) override;
  void abort(const std::shared_ptr<forwarding::Transfer>& t) override;

  core::EventLoop& loop;
  forwarding::ForwardingTable& table;
  const std::string router_id;
  const std::size_t loop_index;
  const std::int64_t window;
  // Bytes read from a socket at once: what fits, with its data section
  // header, in one transfer frame, so that the engine sends each chunk whole.
  const std::size_t read_size;
  // Deliveries sent to a flow address whose token is not the flow's (a
  // guessed or forged address): dropped and counted here.
  std::atomic<std::uint64_t>& token_mismatches;

 private:
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<TcpFlow>> flows_;
  std::deque<FlowRecord> recent_;
};

// Client side: a connection accepted by a tcp listener for `address`.
void startClientFlow(FlowTable& flows, boost::asio::ip::tcp::socket socket,
                     const std::string& address, std::shared_ptr<TcpCounters> counters,
                     const std::string& listener_name);

// The consumer of a tcp connector on one loop: each delivery it gets is a new
// client stream, for which it starts a server-side flow. Each flow keeps its
// sink alive: a connector removed at run time stops taking new flows, and
// the open ones run to their end.
class ConnectorSink : public forwarding::EgressSink,
                      public std::enable_shared_from_this<ConnectorSink> {
 public:
  ConnectorSink(FlowTable& flows, std::string name, std::string address, std::string host,
                std::uint16_t port, std::shared_ptr<TcpCounters> counters)
      : flows_(flows),
        name_(std::move(name)),
        address_(std::move(address)),
        host_(std::move(host)),
        port_(port),
        counters_(std::move(counters)) {}

  void enqueue(std::shared_ptr<forwarding::Transfer> t) override;
  void append(const std::shared_ptr<forwarding::Transfer>& t, forwarding::Chunk chunk,
              bool last) override;
  void abort(const std::shared_ptr<forwarding::Transfer>& t) override;

 private:
  FlowTable& flows_;
  const std::string name_;
  const std::string address_;
  const std::string host_;
  const std::uint16_t port_;
  const std::shared_ptr<TcpCounters> counters_;
};

}  // namespace vane::adaptors::tcp
