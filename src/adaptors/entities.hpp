// The listener and connector entities that adaptors build theirs on.
//
// ListenerEntity: a local port; each connection accepted there becomes a
// client-side flow of the adaptor (Accept, on a worker loop), which opens a
// stream to the service address.
// ConnectorEntity: a real server at host:port that serves the service
// address: one consumer per worker loop, whose sink starts a server-side
// flow for every stream that arrives.
//
// Both live on the router's core loop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "adaptors/adaptor.hpp"

namespace vane::adaptors {

class ListenerEntity : public Entity {
 public:
  ListenerEntity(Host& host, const EntityKind& kind, std::string name, std::string key,
                 std::string bind_host, std::uint16_t port, std::string address);
  ~ListenerEntity() override;

  std::string open() override;
  void start() override;
  void stop() override;
  void shutdown() override;
  // {name, host, port (bound), address, state, counters}
  nlohmann::json info() const override;
  const std::string& address() const override { return address_; }
  const FlowCounters& counters() const override { return *counters_; }

 protected:
  // What each accepted connection becomes, on its worker's loop. Must not
  // refer to the entity (which may be gone by then): capture by value.
  virtual Host::Accept accepting() const = 0;
  const std::shared_ptr<FlowCounters>& sharedCounters() const { return counters_; }
  std::string serviceAddress() const;

 private:
  Host& host_;
  const std::string bind_host_;
  const std::uint16_t port_;
  const std::string address_;
  std::shared_ptr<FlowCounters> counters_ = std::make_shared<FlowCounters>();
  std::unique_ptr<Acceptor> acceptor_;
};

class ConnectorEntity : public Entity {
 public:
  ConnectorEntity(Host& host, const EntityKind& kind, std::string name, std::string key,
                  std::string server_host, std::uint16_t port, std::string address);

  void start() override;  // publishes the service address
  void stop() override;   // withdraws it
  // {name, host, port, address, state ("ok", or "failing" while connections
  // to the server fail), counters}
  nlohmann::json info() const override;
  const std::string& address() const override { return address_; }
  const FlowCounters& counters() const override { return *counters_; }

 protected:
  // The consumer's sink on one worker loop: each delivery it gets starts a
  // server-side flow. Each flow should keep its sink alive, so that a
  // connector removed at run time lets its open flows run to their end.
  virtual std::shared_ptr<forwarding::EgressSink> makeSink(FlowTable& flows) = 0;
  const std::shared_ptr<FlowCounters>& sharedCounters() const { return counters_; }
  const std::string& serverHost() const { return server_host_; }
  std::uint16_t port() const { return port_; }

 private:
  Host& host_;
  const std::string server_host_;
  const std::uint16_t port_;
  const std::string address_;
  std::shared_ptr<FlowCounters> counters_ = std::make_shared<FlowCounters>();
  std::vector<std::shared_ptr<forwarding::EgressSink>> sinks_;  // one per worker
  std::vector<std::shared_ptr<forwarding::Consumer>> consumers_;
  bool published_ = false;
};

// {flows_opened, flows_failed, flows_active, refused, connect_failures,
// bytes_in, bytes_out}
nlohmann::json countersJson(const FlowCounters& c);

}  // namespace vane::adaptors
