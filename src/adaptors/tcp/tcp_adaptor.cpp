#include "adaptors/tcp/tcp_adaptor.hpp"

#include "adaptors/entities.hpp"
#include "adaptors/section.hpp"
#include "adaptors/tcp/tcp_config.hpp"
#include "adaptors/tcp/tcp_flow.hpp"

namespace vane::adaptors::tcp {

namespace {

extern const EntityKind kListenerKind;
extern const EntityKind kConnectorKind;

class TcpListener final : public ListenerEntity {
 public:
  TcpListener(Host& host, const TcpListenerConfig& c)
      : ListenerEntity(host, kListenerKind, c.name, config::toJson(c), c.host, c.port, c.address),
        cfg(c) {}
  const TcpListenerConfig cfg;

 protected:
  Host::Accept accepting() const override {
    return [service = serviceAddress(), counters = sharedCounters(), name = cfg.name](
               FlowTable& flows, boost::asio::ip::tcp::socket s) {
      startClientFlow(flows, std::move(s), service, counters, name);
    };
  }
};

class TcpConnector final : public ConnectorEntity {
 public:
  TcpConnector(Host& host, const TcpConnectorConfig& c)
      : ConnectorEntity(host, kConnectorKind, c.name, config::toJson(c), c.host, c.port, c.address),
        cfg(c) {}
  const TcpConnectorConfig cfg;

 protected:
  std::shared_ptr<forwarding::EgressSink> makeSink(FlowTable& flows) override {
    return std::make_shared<ConnectorSink>(flows, cfg.name, cfg.address, cfg.host, cfg.port,
                                           sharedCounters());
  }
};

using ListenerOps = SectionOps<TcpListenerConfig, kTcpListeners, TcpListener>;
using ConnectorOps = SectionOps<TcpConnectorConfig, kTcpConnectors, TcpConnector>;

const EntityKind kListenerKind = ListenerOps::kind(&adaptor(), "tcp listener", "tcp_listeners",
                                                   "tcp-listeners", ListenerOps::Role::kListener);
const EntityKind kConnectorKind =
    ConnectorOps::kind(&adaptor(), "tcp connector", "tcp_connectors", "tcp-connectors",
                       ConnectorOps::Role::kConnector);

}  // namespace

const Adaptor& adaptor() {
  static const Adaptor a{.name = "tcp",
                         .display = "TCP",
                         .service_prefix = kServicePrefix,
                         .kinds = {&kListenerKind, &kConnectorKind}};
  return a;
}

}  // namespace vane::adaptors::tcp
