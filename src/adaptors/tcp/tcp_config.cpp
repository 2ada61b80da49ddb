#include "adaptors/tcp/tcp_config.hpp"

#include <string_view>

namespace vane::adaptors {

namespace {

// tcp_listeners and tcp_connectors share their fields: name, host, port and
// address, all but host required; a listener may take port 0.
constexpr std::string_view kFields[] = {"name", "host", "port", "address"};

template <typename T>
void parse(const config::EntryReader& in, T& c) {
  constexpr std::uint64_t kMinPort = std::is_same_v<T, TcpListenerConfig> ? 0 : 1;
  in.read(kFields, [&c](const config::FieldReader& f) {
    if (f.key() == "name") {
      c.name = f.name();
    } else if (f.key() == "host") {
      c.host = f.string();
    } else if (f.key() == "port") {
      c.port = static_cast<std::uint16_t>(f.integer(kMinPort, 65535));
    } else if (f.key() == "address") {
      c.address = f.serviceAddress();
    }
  });
  in.require({"port", "address"});
}

template <typename T>
config::EntryWriter write(const T& t) {
  config::EntryWriter w;
  w.add("name", t.name)
      .add("host", t.host)
      .add("port", std::uint64_t{t.port})
      .add("address", t.address);
  return w;
}

}  // namespace

constinit const config::ListSection<TcpListenerConfig> kTcpListeners{
    {.key = "tcp_listeners", .what = "tcp listener", .fields = kFields},
    parse<TcpListenerConfig>,
    write<TcpListenerConfig>};
constinit const config::ListSection<TcpConnectorConfig> kTcpConnectors{
    {.key = "tcp_connectors", .what = "tcp connector", .fields = kFields},
    parse<TcpConnectorConfig>,
    write<TcpConnectorConfig>};

const config::ListSection<TcpListenerConfig>& TcpListenerConfig::section() {
  return kTcpListeners;
}
const config::ListSection<TcpConnectorConfig>& TcpConnectorConfig::section() {
  return kTcpConnectors;
}

}  // namespace vane::adaptors
