// The TCP adaptor's configuration sections, tcp_listeners and
// tcp_connectors: their entries, how they are read (with the file's rules and
// messages) and written (vaned.yaml, the management API's bodies). Added to
// the schema by adaptors::addConfigSections() (adaptors/sections.hpp);
// config::toYaml(), toJson() and validate() take their entries.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/section.hpp"

namespace vane::adaptors {

// A local TCP port whose connections are carried to a TCP connector for
// `address` somewhere in the network.
struct TcpListenerConfig {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // required (0 = pick a free port, logged)
  std::string address;     // required
  int line = 0;
  bool operator==(const TcpListenerConfig&) const = default;
  static const config::ListSection<TcpListenerConfig>& section();  // kTcpListeners
};

// A real TCP server reached for the connections arriving for `address`.
struct TcpConnectorConfig {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // required
  std::string address;     // required
  int line = 0;
  bool operator==(const TcpConnectorConfig&) const = default;
  static const config::ListSection<TcpConnectorConfig>& section();  // kTcpConnectors
};

extern const config::ListSection<TcpListenerConfig> kTcpListeners;    // tcp_listeners
extern const config::ListSection<TcpConnectorConfig> kTcpConnectors;  // tcp_connectors

// Both, for adaptors::addConfigSections().
inline std::array<const config::SectionType*, 2> tcpSections() {
  return {&kTcpListeners, &kTcpConnectors};
}

}  // namespace vane::adaptors
