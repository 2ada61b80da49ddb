// The read commands: what each asks the management API, and how its answer
// is shown to people (`--json` prints the answer itself instead).
#pragma once

#include <cstdint>
#include <ostream>
#include <variant>

#include "cli/management_client.hpp"
#include "cli/table.hpp"

namespace vane::cli {

// kSiteStatus: `vane status` for the site in the directory (rather than a
// --url): kStatus plus the router's connectors and addresses.
enum class Command { kStatus, kRouters, kAddresses, kFlows, kSiteStatus };

// The command's answer: one API answer, or for kStatus an object holding
// four, keyed by endpoint: "router", "routers", "tcp_listeners",
// "tcp_connectors" (kSiteStatus adds "connectors" and "addresses"; the
// caller adds "site"). Stops at the first failure.
std::variant<Json, Failure> fetch(Command command, const ManagementClient& client);

// Prints a fetched answer as aligned text. `now_ms` (Unix ms) dates the
// flows that are still open. Tolerates missing or mistyped fields ("-").
void render(Command command, const Json& answer, std::ostream& out, const Style& style,
            std::int64_t now_ms);

}  // namespace vane::cli
