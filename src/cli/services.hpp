// `vane expose` (tcp and http connectors: a local service offered to the
// network under an address) and `vane listen` (tcp and http listeners: a
// local port for a service anywhere in the network). Each change goes into vaned.yaml and, when the
// site runs, into the router through the management API.
#pragma once

#include <string>

#include "cli/site.hpp"

namespace vane::cli {

enum class Service { kExpose, kListen };
enum class Protocol { kTcp, kHttp };

struct ServiceOptions {
  Protocol protocol = Protocol::kTcp;
  std::string address;
  std::string name;  // "" = the address
  std::string host;  // expose: the service's host; listen: where to bind (127.0.0.1)
  int port = 0;
};

int serviceAdd(const Options& options, Service kind, ServiceOptions service);
int serviceList(const Options& options, Service kind);
// `protocol` "": the entry of either protocol with that name (an error if
// both have one).
int serviceDelete(const Options& options, Service kind, const std::string& name,
                  const std::string& protocol);

}  // namespace vane::cli
