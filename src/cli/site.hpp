// `vane site init|start|stop|status`, and the running-site context every
// other site command works through.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cli/management_client.hpp"
#include "cli/site_dir.hpp"
#include "cli/table.hpp"

namespace vane::cli {

// The options every command takes, after parsing.
struct Options {
  std::string dir;  // --dir / VANE_DIR ("" = the default)
  bool json = false;
  Style style;
};

// A site as the commands see it: its directory, site.json, and whether its
// router runs (started by `vane site start`, or found answering on its
// management port, e.g. under systemd).
struct Site {
  SiteDir dir;
  SiteInfo info;
  std::optional<pid_t> pid;  // from vaned.pid, when that process is the site's vaned
  bool running = false;

  ManagementClient client() const;
  // The client, or UserError "site 'a' is not running; start it with `vane site start`".
  ManagementClient requireRunning() const;
  // "; site 'a' is not running, so this takes effect at `vane site start`" or "".
  std::string whenStopped() const;
};

// UserError when the directory holds no site.
Site openSite(const Options& options);

// Asks the API; on a Failure or an answer outside 2xx (other than the
// `allowed` status), UserError with `what` ("cannot add tcp connector 'x'")
// and the API's words.
Reply apiCall(const ManagementClient& client, const std::string& method, const std::string& path,
              const Json& body, const std::string& what, unsigned allowed = 0);

struct InitOptions {
  std::string name;
  int link_port = 55671;
  int claim_port = 0;       // 0: link_port + 1
  int management_port = 0;  // 0: link_port + 2
  int amqp_port = 5672;     // 0: none
  std::vector<std::string> hosts;
};
int siteInit(const Options& options, InitOptions init);

struct StartOptions {
  bool foreground = false;
  bool systemd = false;
};
int siteStart(const Options& options, const StartOptions& start);
int siteStop(const Options& options);
// Exit status 0 when running, 3 when not (as LSB init scripts do).
int siteStatus(const Options& options);

}  // namespace vane::cli
