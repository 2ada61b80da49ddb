// The site's vaned process: finding the binary, starting it detached,
// recognising it by its pid file, stopping it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace vane::cli {

namespace fs = std::filesystem;

// $VANE_VANED, else `vaned` next to this vane (/proc/self/exe), else on
// PATH; UserError saying how to fix it when none is found.
fs::path findVaned();

// Starts `vaned --config CONFIG` in its own session, stdin /dev/null,
// stdout and stderr appended to `log`. Returns its pid (a child of this
// process until this process exits).
pid_t spawnVaned(const fs::path& vaned, const fs::path& config, const fs::path& log);

// The pid in `pid_file` if that process is alive and is vaned running
// `config`; nullopt for no file, a stale pid, or another program.
std::optional<pid_t> runningPid(const fs::path& pid_file, const fs::path& config);

// True once a child started by spawnVaned has exited; `status` gets its
// wait status.
bool childExited(pid_t pid, int& status);

// SIGTERM, then SIGKILL after `grace`; true when the process is gone.
bool stopProcess(pid_t pid, const fs::path& config, std::chrono::milliseconds grace);

}  // namespace vane::cli
