// vane: the command-line tool for a running router. It reads the router's
// management API (docs/management.md) and prints what it finds.
//
// Exit status: 0 done, 1 the router could not answer (one sentence on
// stderr says why and what to do), 2 a usage error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "cli/commands.hpp"
#include "cli/http_client.hpp"
#include "cli/management_client.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  using vane::cli::Command;

  CLI::App app{"vane - look at a running Vane router through its management API", "vane"};
  app.set_version_flag("--version", "vane " VANE_VERSION);
  app.require_subcommand(0, 1);  // none: the error below, after CLI11 saw unknown words
  app.fallthrough();             // the common options work before or after the command
  app.footer(
      "The router must have a `management` section in its configuration.\n"
      "Exit status: 0 done, 1 the router could not answer, 2 usage error.\n"
      "Output is coloured on a terminal unless NO_COLOR is set.");

  std::string url_text = "http://127.0.0.1:8672";
  std::string token;
  bool json = false;
  std::string cacert;
  app.add_option("--cacert", cacert, "https: a CA certificate file (PEM) to trust")
      ->envname("VANE_CACERT");
  app.add_option("--url", url_text, "the router's management API (http:// or https://)")
      ->envname("VANE_URL")
      ->capture_default_str();
  app.add_option("--token", token, "bearer token, if the router's management section sets one")
      ->envname("VANE_TOKEN");
  app.add_flag("--json", json, "print the API's JSON answer instead of a table");

  struct Entry {
    const char* name;
    const char* help;
    Command command;
  };
  const Entry entries[] = {
      {"status", "this router, its links, reachable routers and tcp listeners/connectors",
       Command::kStatus},
      {"routers", "the routers this router knows: cost and next hop", Command::kRouters},
      {"addresses", "addresses with consumers: kind, distribution, where the consumers are",
       Command::kAddresses},
      {"flows", "TCP flows through this router: open ones, then recently ended ones",
       Command::kFlows},
  };
  std::vector<std::pair<CLI::App*, Command>> subcommands;
  for (const auto& e : entries) {
    CLI::App* sub = app.add_subcommand(e.name, e.help);
    sub->footer(
        "Common options, before or after the command: --url URL, --token TOKEN, --cacert FILE, "
        "--json");
    subcommands.emplace_back(sub, e.command);
  }

  std::optional<Command> command;
  try {
    app.parse(argc, argv);
    for (const auto& [sub, c] : subcommands) {
      if (sub->parsed()) command = c;
    }
    if (!command) throw CLI::RequiredError("A command (status, routers, addresses or flows)");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsage;  // --help and --version exit 0
  }

  auto url = vane::cli::parseUrl(url_text);
  if (const auto* err = std::get_if<std::string>(&url)) {
    std::cerr << "vane: " << *err << "\n";
    return kFailed;
  }
  auto& parsed = std::get<vane::cli::Url>(url);
  parsed.cacert = cacert;
  const vane::cli::ManagementClient client(std::move(parsed), token);
  auto answer = vane::cli::fetch(*command, client);
  if (const auto* failure = std::get_if<vane::cli::Failure>(&answer)) {
    std::cerr << "vane: " << failure->message << "\n";
    return kFailed;
  }
  const auto& data = std::get<vane::cli::Json>(answer);
  if (json) {
    std::cout << data.dump(2, ' ', false, vane::cli::Json::error_handler_t::replace) << "\n";
  } else {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    vane::cli::render(*command, data, std::cout, vane::cli::Style{wantColor()}, now.count());
  }
  std::cout.flush();
  return std::cout.good() ? 0 : kFailed;
}
