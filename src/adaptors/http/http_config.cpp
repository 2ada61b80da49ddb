#include "adaptors/http/http_config.hpp"

#include <string_view>
#include <utility>

namespace vane::adaptors {

namespace {

constexpr std::string_view kListenerFields[] = {"name",
                                                "host",
                                                "port",
                                                "address",
                                                "routes",
                                                "max_header_bytes",
                                                "head_timeout_ms",
                                                "response_timeout_ms",
                                                "tls_profile"};
constexpr std::string_view kConnectorFields[] = {
    "name", "host", "port", "address", "max_idle_connections", "tls_profile"};
constexpr std::string_view kRouteFields[] = {"path_prefix", "host", "address"};

// http_listeners[].routes[i]: {path_prefix, host, address}.
HttpRouteConfig parseRoute(const config::EntryReader& in) {
  HttpRouteConfig r;
  in.read(kRouteFields, [&r](const config::FieldReader& f) {
    if (f.key() == "path_prefix") {
      r.path_prefix = f.string();
      if (r.path_prefix.front() != '/') f.fail("a path prefix starts with '/'");
      if (r.path_prefix.size() > 4096) f.fail("a path prefix is at most 4096 bytes");
    } else if (f.key() == "host") {
      r.host = f.string();
      if (r.host.size() > 255) f.fail("a host name is at most 255 bytes");
      for (char& ch : r.host) {
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        if (ch <= ' ' || ch == '/' || ch >= 0x7f) {
          f.fail("invalid host name '" + config::displayValue(r.host) + "'");
        }
      }
    } else if (f.key() == "address") {
      r.address = f.serviceAddress();
    }
  });
  if (r.path_prefix.empty() && r.host.empty())
    in.fail("", "a route needs path_prefix, host or both");
  if (r.address.empty()) in.fail("address", "missing required field 'address'");
  return r;
}

void parseListener(const config::EntryReader& in, HttpListenerConfig& c) {
  in.read(kListenerFields, [&c](const config::FieldReader& f) {
    if (f.key() == "name") {
      c.name = f.name();
    } else if (f.key() == "host") {
      c.host = f.string();
    } else if (f.key() == "port") {
      c.port = static_cast<std::uint16_t>(f.integer(0, 65535));
    } else if (f.key() == "address") {
      c.address = f.serviceAddress();
    } else if (f.key() == "routes") {
      f.items(1000, "routes",
              [&c](const config::EntryReader& item) { c.routes.push_back(parseRoute(item)); });
    } else if (f.key() == "max_header_bytes") {
      c.max_header_bytes = static_cast<std::uint32_t>(f.integer(1024, 1u << 20));
    } else if (f.key() == "head_timeout_ms") {
      c.head_timeout_ms = static_cast<std::uint32_t>(f.integer(1, 3600000));
    } else if (f.key() == "response_timeout_ms") {
      c.response_timeout_ms = static_cast<std::uint32_t>(f.integer(1, 86400000));
    } else if (f.key() == "tls_profile") {
      c.tls_profile = f.name();
    }
  });
  in.require({"port", "address"});
}

void parseConnector(const config::EntryReader& in, HttpConnectorConfig& c) {
  in.read(kConnectorFields, [&c](const config::FieldReader& f) {
    if (f.key() == "name") {
      c.name = f.name();
    } else if (f.key() == "host") {
      c.host = f.string();
    } else if (f.key() == "port") {
      c.port = static_cast<std::uint16_t>(f.integer(1, 65535));
    } else if (f.key() == "address") {
      c.address = f.serviceAddress();
    } else if (f.key() == "max_idle_connections") {
      c.max_idle_connections = static_cast<std::uint32_t>(f.integer(0, 10000));
    } else if (f.key() == "tls_profile") {
      c.tls_profile = f.name();
    }
  });
  in.require({"port", "address"});
}

config::EntryWriter writeListener(const HttpListenerConfig& h) {
  std::vector<config::EntryWriter> routes;
  for (const HttpRouteConfig& r : h.routes) {
    config::EntryWriter w;
    w.optional("path_prefix", r.path_prefix).optional("host", r.host).add("address", r.address);
    routes.push_back(std::move(w));
  }
  config::EntryWriter w;
  w.add("name", h.name)
      .add("host", h.host)
      .add("port", std::uint64_t{h.port})
      .add("address", h.address)
      .optional("routes", std::move(routes))
      .add("max_header_bytes", std::uint64_t{h.max_header_bytes})
      .add("head_timeout_ms", std::uint64_t{h.head_timeout_ms})
      .add("response_timeout_ms", std::uint64_t{h.response_timeout_ms})
      .optional("tls_profile", h.tls_profile);
  return w;
}

config::EntryWriter writeConnector(const HttpConnectorConfig& h) {
  config::EntryWriter w;
  w.add("name", h.name)
      .add("host", h.host)
      .add("port", std::uint64_t{h.port})
      .add("address", h.address)
      .add("max_idle_connections", std::uint64_t{h.max_idle_connections})
      .optional("tls_profile", h.tls_profile);
  return w;
}

template <typename T>
const std::string& tlsProfile(const T& c) {
  return c.tls_profile;
}

}  // namespace

constinit const config::ListSection<HttpListenerConfig> kHttpListeners{
    {.key = "http_listeners", .what = "http listener", .fields = kListenerFields},
    parseListener,
    writeListener,
    tlsProfile<HttpListenerConfig>};
constinit const config::ListSection<HttpConnectorConfig> kHttpConnectors{
    {.key = "http_connectors",
     .what = "http connector",
     .fields = kConnectorFields,
     .needs_ca = "an http connector needs it to verify the server's certificate"},
    parseConnector,
    writeConnector,
    tlsProfile<HttpConnectorConfig>};

const config::ListSection<HttpListenerConfig>& HttpListenerConfig::section() {
  return kHttpListeners;
}
const config::ListSection<HttpConnectorConfig>& HttpConnectorConfig::section() {
  return kHttpConnectors;
}

}  // namespace vane::adaptors
