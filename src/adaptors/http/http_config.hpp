// The HTTP/1.1 adaptor's configuration sections, http_listeners and
// http_connectors: their entries, how they are read (with the file's rules
// and messages) and written (vaned.yaml, the management API's bodies). Added
// to the schema by adaptors::addConfigSections() (adaptors/sections.hpp);
// config::toYaml(), toJson() and validate() take their entries.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/section.hpp"

namespace vane::adaptors {

// One route of an http listener: a request whose path starts with
// `path_prefix` and (when set) whose Host is `host` goes to `address`. At
// least one of path_prefix and host is set.
struct HttpRouteConfig {
  std::string path_prefix;  // starts with '/'
  std::string host;         // compared without port, case-insensitively; stored lower-case
  std::string address;
  bool operator==(const HttpRouteConfig&) const = default;
};

// A local HTTP/1.1 port: each request is routed on its own to an http
// connector for its address somewhere in the network.
struct HttpListenerConfig {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;               // required (0 = pick a free port, logged)
  std::string address;                  // required: where requests go unless a route matches
  std::vector<HttpRouteConfig> routes;  // first match wins
  // A request's line and header fields together: larger gets 400.
  std::uint32_t max_header_bytes = 65536;
  // From a request head's first byte to its last: longer gets 408 (however
  // slowly it trickles in).
  std::uint32_t head_timeout_ms = 30000;
  // The longest silence in an exchange: before the answer's head (504), in
  // the request's or the answer's body (the exchange is cut off).
  std::uint32_t response_timeout_ms = 60000;
  std::string tls_profile;  // "": plain HTTP; else HTTPS with the profile's certificate
  int line = 0;
  bool operator==(const HttpListenerConfig&) const = default;
  static const config::ListSection<HttpListenerConfig>& section();  // kHttpListeners
};

// A real HTTP/1.1 server that serves the requests arriving for `address`.
struct HttpConnectorConfig {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // required
  std::string address;     // required
  // Idle keep-alive connections to the server kept for reuse, per router
  // worker thread.
  std::uint32_t max_idle_connections = 256;
  // "": plain HTTP; else HTTPS to the server, its certificate verified with
  // the profile's ca (and the host name against it); the profile's own
  // certificate is presented if the server asks.
  std::string tls_profile;
  int line = 0;
  bool operator==(const HttpConnectorConfig&) const = default;
  static const config::ListSection<HttpConnectorConfig>& section();  // kHttpConnectors
};

extern const config::ListSection<HttpListenerConfig> kHttpListeners;    // http_listeners
extern const config::ListSection<HttpConnectorConfig> kHttpConnectors;  // http_connectors

// Both, for adaptors::addConfigSections().
inline std::array<const config::SectionType*, 2> httpSections() {
  return {&kHttpListeners, &kHttpConnectors};
}

}  // namespace vane::adaptors
