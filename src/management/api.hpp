// The management API's routes: JSON reads and writes of the router's
// entities, Prometheus metrics, and health probes. See docs/management.md.
#pragma once

#include <string>

#include "management/http_server.hpp"

namespace vane::management {

class RouterControl;

// The handler serving `router` (on its core loop). A non-empty `token` is
// required as "Authorization: Bearer <token>" on every path but /healthz and
// /readyz.
Handler makeApi(RouterControl& router, std::string token);

}  // namespace vane::management
