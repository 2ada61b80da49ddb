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
// IMPORTANT: a flow and its FlowTable (adaptors/flow.hpp) live on one
// worker loop.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "adaptors/flow.hpp"

namespace vane::adaptors::tcp {

// Prefix of the address under which tcp connectors serve `address`.
inline constexpr std::string_view kServicePrefix = "_vane/tcp/";

// Client side: a connection accepted by a tcp listener for `address`.
void startClientFlow(FlowTable& flows, boost::asio::ip::tcp::socket socket,
                     const std::string& address, std::shared_ptr<FlowCounters> counters,
                     const std::string& listener_name);

// The consumer of a tcp connector on one loop: each delivery it gets is a new
// client stream, for which it starts a server-side flow. Each flow keeps its
// sink alive: a connector removed at run time stops taking new flows, and
// the open ones run to their end.
class ConnectorSink : public forwarding::EgressSink,
                      public std::enable_shared_from_this<ConnectorSink> {
 public:
  ConnectorSink(FlowTable& flows, std::string name, std::string address, std::string host,
                std::uint16_t port, std::shared_ptr<FlowCounters> counters)
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
  const std::shared_ptr<FlowCounters> counters_;
};

}  // namespace vane::adaptors::tcp
