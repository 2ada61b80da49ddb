#include "adaptors/entities.hpp"

#include "core/log.hpp"

namespace vane::adaptors {

using nlohmann::json;

json countersJson(const FlowCounters& c) {
  auto v = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  return {{"flows_opened", v(c.flows_opened)},
          {"flows_failed", v(c.flows_failed)},
          {"flows_active", v(c.flows_active)},
          {"refused", v(c.refused)},
          {"connect_failures", v(c.connect_failures)},
          {"malformed", v(c.malformed)},
          {"bytes_in", v(c.bytes_in)},
          {"bytes_out", v(c.bytes_out)}};
}

ListenerEntity::ListenerEntity(Host& host, const EntityKind& kind, std::string name,
                               std::string key, std::string bind_host, std::uint16_t port,
                               std::string address)
    : Entity(kind, std::move(name), std::move(key)),
      host_(host),
      bind_host_(std::move(bind_host)),
      port_(port),
      address_(std::move(address)) {}

// stop() hands a running acceptor to the host; one still here was never
// started (its open failed) or outlived the router's loops (shutdown),
// with no accept pending: it goes with the entity.
ListenerEntity::~ListenerEntity() = default;

std::string ListenerEntity::serviceAddress() const {
  return kind().adaptor->serviceAddress(address_);
}

std::string ListenerEntity::open() {
  if (!acceptor_) {
    acceptor_ = host_.listen(
        {name(), bind_host_, port_, std::string(kind().what), "address " + address_}, accepting());
  }
  return acceptor_->open();
}

void ListenerEntity::start() {
  if (acceptor_) acceptor_->start();
}

void ListenerEntity::stop() {
  if (!acceptor_) return;
  acceptor_->close();
  host_.retire(std::move(acceptor_));
  VANE_LOG_INFO("{} {}: closed (flows already open continue)", kind().what, name());
}

void ListenerEntity::shutdown() {
  if (acceptor_) acceptor_->close();
}

json ListenerEntity::info() const {
  return {{"name", name()},
          {"host", bind_host_},
          {"port", acceptor_ ? acceptor_->port() : port_},
          {"address", address_},
          {"state", "listening"},
          {"counters", countersJson(*counters_)}};
}

ConnectorEntity::ConnectorEntity(Host& host, const EntityKind& kind, std::string name,
                                 std::string key, std::string server_host, std::uint16_t port,
                                 std::string address)
    : Entity(kind, std::move(name), std::move(key)),
      host_(host),
      server_host_(std::move(server_host)),
      port_(port),
      address_(std::move(address)) {}

void ConnectorEntity::start() {
  if (published_) return;
  if (consumers_.empty()) {
    for (std::size_t i = 0; i < host_.workerLoops(); ++i) {
      FlowTable& flows = host_.flowTable(i);
      auto sink = makeSink(flows);
      consumers_.push_back(std::make_shared<forwarding::Consumer>(
          host_.nextConsumerId(), flows.loop, std::weak_ptr<forwarding::EgressSink>(sink)));
      sinks_.push_back(std::move(sink));
    }
  }
  host_.publish(kind().adaptor->serviceAddress(address_), consumers_);
  published_ = true;
  VANE_LOG_INFO("{} {}: serving address {} with {}:{}", kind().what, name(), address_, server_host_,
                port_);
}

void ConnectorEntity::stop() {
  if (!published_) return;
  host_.unpublish(kind().adaptor->serviceAddress(address_), consumers_);
  published_ = false;
  // What a sink keeps between flows goes now, on its loop.
  for (std::size_t i = 0; i < sinks_.size(); ++i) {
    if (auto r = std::dynamic_pointer_cast<LoopResource>(sinks_[i])) {
      host_.flowTable(i).loop.post([r = std::move(r)] { r->release(); });
    }
  }
  VANE_LOG_INFO("{} {}: removed (flows already open continue)", kind().what, name());
}

json ConnectorEntity::info() const {
  const bool failing = counters_->failing.load(std::memory_order_relaxed);
  return {{"name", name()},
          {"host", server_host_},
          {"port", port_},
          {"address", address_},
          {"state", failing ? "failing" : "ok"},
          {"counters", countersJson(*counters_)}};
}

}  // namespace vane::adaptors
