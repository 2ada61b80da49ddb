// The command lines of the site commands (site, token, link, expose,
// listen): CLI11 subcommands, each with the action main() runs once it is
// the one parsed.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <utility>
#include <vector>

#include "cli/site.hpp"

namespace vane::cli {

using Actions = std::vector<std::pair<CLI::App*, std::function<int()>>>;

// `options` must outlive the actions (they read it when run).
void addSiteCommands(CLI::App& app, const Options& options, Actions& actions);

}  // namespace vane::cli
