// Flows: what every adaptor carries across the network. A flow is one
// client connection (or one request) at one router; its bytes travel as
// streaming deliveries (adaptors/stream_codec.hpp) to a service address and
// back to the flow's own reply address (forwarding::flowAddress).
//
// The FlowTable of a worker loop owns that loop's flows, of every adaptor;
// it is also the consumer of the loop's flow addresses and hands each
// delivery to its flow, checking the flow's token. It keeps the records of
// the flows that ended recently for management.
//
// IMPORTANT: a flow and its FlowTable live on one worker loop (asserted in
// debug builds).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"

namespace vane::adaptors {

// Counters of one listener or connector of an adaptor (relaxed atomics,
// shared by the flows it made; read by management).
struct FlowCounters {
  std::atomic<std::uint64_t> flows_opened{0};
  std::atomic<std::uint64_t> flows_failed{0};  // ended by a reset or failure
  std::atomic<std::int64_t> flows_active{0};
  std::atomic<std::uint64_t> refused{0};           // listener: no connector reachable
  std::atomic<std::uint64_t> connect_failures{0};  // connector: the server refused / unreachable
  std::atomic<std::uint64_t> malformed{0};  // streams from a peer router that broke their framing
  std::atomic<std::uint64_t> bytes_in{0};   // read from this end's sockets
  std::atomic<std::uint64_t> bytes_out{0};  // written to them
  std::atomic<bool> failing{false};         // logs the first of a run of failures only
};

// What management shows of one flow at this router.
struct FlowRecord {
  std::uint64_t id = 0;      // unique on its loop
  std::string_view adaptor;  // the adaptor's name ("tcp", "http")
  std::size_t loop = 0;
  bool client_side = true;      // a listener's flow (else a connector's)
  std::string name;             // the listener or connector
  std::string address;          // the service address
  std::string peer_router;      // the router at the other end, once known
  std::string endpoint;         // the client's (client side) or server's host:port
  std::uint64_t bytes_in = 0;   // read from this end's socket
  std::uint64_t bytes_out = 0;  // written to it
  std::int64_t start_ms = 0;    // Unix time
  std::int64_t end_ms = 0;      // 0 while open
  std::string outcome;          // "open", "closed", "reset"
  // HTTP requests: method, Host (without port), path (without query) and
  // the answer's status (0 until known).
  std::string method;
  std::string host;
  std::string path;
  unsigned status = 0;
};

// One flow in a FlowTable. The table gives it its id (init) and hands it
// the deliveries sent to its flow address (EgressSink) once their token
// matches.
class Flow : public forwarding::EgressSink {
 public:
  virtual const FlowRecord& record() const = 0;
  virtual const forwarding::FlowToken& token() const = 0;
  // Called once, by FlowTable::add, before anything else.
  virtual void init(std::uint64_t id) = 0;
  // Ends the flow at once, resetting its client (router shutdown).
  virtual void close() = 0;
};

// What an adaptor keeps on a loop between flows (a connector's pool of idle
// server connections). Its I/O objects belong to the loop: release() drops
// them, on the loop, when the router stops (FlowTable::closeAll) or its
// entity is removed, so that what is left may be destroyed anywhere.
class LoopResource {
 public:
  virtual ~LoopResource() = default;
  virtual void release() = 0;
};

class FlowTable : public forwarding::EgressSink, public std::enable_shared_from_this<FlowTable> {
 public:
  FlowTable(core::EventLoop& loop, forwarding::ForwardingTable& table, std::string router_id,
            std::size_t loop_index, std::int64_t window, std::size_t max_frame_size,
            std::atomic<std::uint64_t>& token_mismatches);

  std::uint64_t add(std::shared_ptr<Flow> flow);
  // Drops the table's reference once the current handler returns.
  void remove(std::uint64_t id);
  // Resets every flow and releases every kept resource (router shutdown).
  void closeAll();
  // `r` is released by closeAll() if it still exists then.
  void keep(std::weak_ptr<LoopResource> r);
  std::size_t size() const;
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
  // Bytes of one stream direction in flight per hop (router.stream_window_bytes).
  const std::int64_t window;
  // Bytes read from a socket at once: what fits, with its data section
  // header, in one transfer frame, so that the engine sends each chunk whole.
  const std::size_t read_size;
  // Deliveries sent to a flow address whose token is not the flow's (a
  // guessed or forged address): dropped and counted here.
  std::atomic<std::uint64_t>& token_mismatches;

 private:
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<Flow>> flows_;
  std::deque<FlowRecord> recent_;
  std::vector<std::weak_ptr<LoopResource>> kept_;
};

}  // namespace vane::adaptors
