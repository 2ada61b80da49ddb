// vane: the command-line tool of a Vane site. It creates and runs this
// machine's site (site.hpp), links it to other sites with tokens (token.hpp,
// links.hpp), exposes and reaches TCP services (services.hpp), and reads a
// router's management API (docs/management.md) and prints what it finds
// (commands.hpp). docs/cli.md is the reference.
//
// Exit status: 0 done, 1 failed (one sentence on stderr says why and what
// to do), 2 a usage error; `vane site status`: 3 when the site is not running.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "adaptors/sections.hpp"
#include "cli/commands.hpp"
#include "cli/errors.hpp"
#include "cli/http_client.hpp"
#include "cli/management_client.hpp"
#include "cli/site_commands.hpp"
#include "pki/pki.hpp"

#ifndef VANE_VERSION
#define VANE_VERSION "dev"
#endif

namespace {

constexpr int kFailed = 1;
constexpr int kUsage = 2;

// Colour only for a terminal, and never when NO_COLOR is set (no-color.org).
bool wantColor() {
  const char* term = std::getenv("TERM");
  return isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr &&
         !(term != nullptr && std::string(term) == "dumb");
}

// The read commands: against --url / VANE_URL when given, else the site in
// the directory when there is one, else the default URL.
int read(vane::cli::Command command, const std::string& url_text, bool url_given,
         const std::string& token, bool token_given, const std::string& cacert,
         const vane::cli::Options& options) {
  using namespace vane::cli;
  std::optional<Site> site;
  if (!url_given) {
    const SiteDir dir = SiteDir::locate(options.dir);
    if (dir.exists()) site = openSite(options);
  }
  std::optional<ManagementClient> client;
  if (site) {
    client.emplace(site->requireRunning());
    if (token_given) client.emplace(client->url(), token);
    if (command == Command::kStatus) command = Command::kSiteStatus;
  } else {
    auto url = parseUrl(url_text);
    if (const auto* err = std::get_if<std::string>(&url)) throw UserError(*err);
    auto& parsed = std::get<Url>(url);
    parsed.cacert = cacert;
    client.emplace(std::move(parsed), token);
  }
  auto answer = fetch(command, *client);
  if (const auto* failure = std::get_if<Failure>(&answer)) throw UserError(failure->message);
  Json data = std::move(std::get<Json>(answer));
  if (command == Command::kSiteStatus) {
    Json with = {{"site",
                  {{"name", site->info.name},
                   {"directory", site->dir.dir().string()},
                   {"running", true},
                   {"pid", site->pid ? Json(*site->pid) : Json(nullptr)}}}};
    for (auto& [key, value] : data.items()) with[key] = std::move(value);
    data = std::move(with);
  }
  if (options.json) {
    std::cout << data.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    render(command, data, std::cout, options.style, now.count());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  vane::adaptors::addConfigSections();
  using vane::cli::Command;

  CLI::App app{
      "vane - set up and look at a Vane site: a router, its links to other sites, "
      "and the TCP services it exposes and reaches",
      "vane"};
  app.set_version_flag("--version", "vane " VANE_VERSION);
  app.require_subcommand(0, 1);  // none: the error below, after CLI11 saw unknown words
  app.fallthrough();             // the common options work before or after the command
  app.footer(
      "Start: `vane site init NAME`, `vane site start`; the README section 'Connect two sites in "
      "five minutes' links two sites.\n"
      "The site lives in $XDG_CONFIG_HOME/vane (~/.config/vane), or --dir DIR / VANE_DIR.\n"
      "status, routers, addresses and flows read the site's router, or the router at --url.\n"
      "Exit status: 0 done, 1 failed (one line on stderr says what to do), 2 usage error.\n"
      "Output is coloured on a terminal unless NO_COLOR is set.");

  vane::cli::Options options;
  std::string url_text = "http://127.0.0.1:8672";
  std::string token;
  std::string cacert;
  app.add_option("--dir", options.dir, "the site's directory")->envname("VANE_DIR");
  app.add_option("--cacert", cacert, "https: a CA certificate file (PEM) to trust")
      ->envname("VANE_CACERT");
  CLI::Option* url_option =
      app.add_option("--url", url_text, "a router's management API (http:// or https://)")
          ->envname("VANE_URL")
          ->capture_default_str();
  CLI::Option* token_option =
      app.add_option("--token", token, "bearer token, if the router's management section sets one")
          ->envname("VANE_TOKEN");
  app.add_flag("--json", options.json, "print JSON instead of a table");

  struct Entry {
    const char* name;
    const char* help;
    Command command;
  };
  const Entry entries[] = {
      {"status", "this router, its links, reachable routers, addresses and tcp services",
       Command::kStatus},
      {"routers", "the routers this router knows: cost and next hop", Command::kRouters},
      {"addresses", "addresses with consumers: kind, distribution, where the consumers are",
       Command::kAddresses},
      {"flows", "TCP flows through this router: open ones, then recently ended ones",
       Command::kFlows},
  };
  vane::cli::Actions actions;
  for (const auto& e : entries) {
    CLI::App* sub = app.add_subcommand(e.name, e.help);
    sub->footer(
        "Common options, before or after the command: --dir DIR, --url URL, --token TOKEN, "
        "--cacert FILE, --json");
    const Command command = e.command;
    actions.emplace_back(sub, [&, command] {
      return read(command, url_text, url_option->count() > 0, token, token_option->count() > 0,
                  cacert, options);
    });
  }
  vane::cli::addSiteCommands(app, options, actions);

  const std::function<int()>* action = nullptr;
  try {
    app.parse(argc, argv);
    for (const auto& [sub, run] : actions) {
      if (sub->parsed()) action = &run;
    }
    if (action == nullptr) {
      throw CLI::RequiredError(
          "A command (status, routers, addresses, flows, site, token, link, expose or listen)");
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsage;  // --help and --version exit 0
  }
  options.style = vane::cli::Style{wantColor()};

  int status = kFailed;
  try {
    status = (*action)();
  } catch (const vane::cli::UserError& e) {
    std::cerr << "vane: " << e.what() << "\n";
    return kFailed;
  } catch (const vane::pki::Error& e) {
    std::cerr << "vane: " << e.what() << "\n";
    return kFailed;
  } catch (const std::exception& e) {
    std::cerr << "vane: unexpected failure (" << e.what()
              << "); please report it with the command you ran\n";
    return kFailed;
  }
  std::cout.flush();
  return std::cout.good() ? status : kFailed;
}
