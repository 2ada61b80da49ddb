#include "adaptors/tcp/tcp_adaptor.hpp"

#include <algorithm>

#include "adaptors/entities.hpp"
#include "adaptors/tcp/tcp_flow.hpp"

namespace vane::adaptors::tcp {

namespace {

extern const EntityKind kListenerKind;
extern const EntityKind kConnectorKind;

// tcp_listeners and tcp_connectors entries: name, host, port, address.
template <typename C>
std::vector<std::pair<std::string, std::string>> entriesOf(const std::vector<C>& section) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const C& c : section) out.emplace_back(c.name, config::toJson(c));
  return out;
}

template <typename C>
const C* find(const std::vector<C>& section, const std::string& name) {
  auto it =
      std::find_if(section.begin(), section.end(), [&](const C& c) { return c.name == name; });
  return it == section.end() ? nullptr : &*it;
}

class TcpListener final : public ListenerEntity {
 public:
  TcpListener(Host& host, const config::TcpListenerConfig& c)
      : ListenerEntity(host, kListenerKind, c.name, config::toJson(c), c.host, c.port, c.address),
        cfg(c) {}
  const config::TcpListenerConfig cfg;

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
  TcpConnector(Host& host, const config::TcpConnectorConfig& c)
      : ConnectorEntity(host, kConnectorKind, c.name, config::toJson(c), c.host, c.port, c.address),
        cfg(c) {}
  const config::TcpConnectorConfig cfg;

 protected:
  std::shared_ptr<forwarding::EgressSink> makeSink(FlowTable& flows) override {
    return std::make_shared<ConnectorSink>(flows, cfg.name, cfg.address, cfg.host, cfg.port,
                                           sharedCounters());
  }
};

const EntityKind kListenerKind{
    .adaptor = &adaptor(),
    .what = "tcp listener",
    .section = "tcp_listeners",
    .path = "tcp-listeners",
    .role = "listener",
    .accepts = true,
    .entries = [](const config::Config& cfg) { return entriesOf(cfg.tcp_listeners); },
    .make = [](Host& host, const config::Config& cfg,
               const std::string& name) -> std::unique_ptr<Entity> {
      const auto* c = find(cfg.tcp_listeners, name);
      return c ? std::make_unique<TcpListener>(host, *c) : nullptr;
    },
    .store =
        [](config::Config& cfg, const std::vector<const Entity*>& entities) {
          cfg.tcp_listeners.clear();
          for (const Entity* e : entities)
            cfg.tcp_listeners.push_back(static_cast<const TcpListener*>(e)->cfg);
        },
};

const EntityKind kConnectorKind{
    .adaptor = &adaptor(),
    .what = "tcp connector",
    .section = "tcp_connectors",
    .path = "tcp-connectors",
    .role = "connector",
    .accepts = false,
    .entries = [](const config::Config& cfg) { return entriesOf(cfg.tcp_connectors); },
    .make = [](Host& host, const config::Config& cfg,
               const std::string& name) -> std::unique_ptr<Entity> {
      const auto* c = find(cfg.tcp_connectors, name);
      return c ? std::make_unique<TcpConnector>(host, *c) : nullptr;
    },
    .store =
        [](config::Config& cfg, const std::vector<const Entity*>& entities) {
          cfg.tcp_connectors.clear();
          for (const Entity* e : entities)
            cfg.tcp_connectors.push_back(static_cast<const TcpConnector*>(e)->cfg);
        },
};

}  // namespace

const Adaptor& adaptor() {
  static const Adaptor a{.name = "tcp",
                         .display = "TCP",
                         .service_prefix = kServicePrefix,
                         .kinds = {&kListenerKind, &kConnectorKind}};
  return a;
}

}  // namespace vane::adaptors::tcp
