#include "cli/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "cli/errors.hpp"

namespace vane::cli {

namespace {

bool executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// argv of a process (NUL-separated in /proc), empty if it is gone or a zombie.
std::vector<std::string> commandLine(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

// The process runs vaned with this configuration file.
bool isOurVaned(pid_t pid, const fs::path& config) {
  const auto args = commandLine(pid);
  if (args.empty() || fs::path(args[0]).filename().string().rfind("vaned", 0) != 0) return false;
  for (std::size_t i = 1; i + 1 < args.size(); ++i) {
    if ((args[i] == "--config" || args[i] == "-c") && fs::path(args[i + 1]) == config) {
      return true;
    }
  }
  return false;
}

}  // namespace

fs::path findVaned() {
  if (const char* env = std::getenv("VANE_VANED"); env != nullptr && *env != '\0') {
    if (!executable(env)) {
      throw UserError("VANE_VANED is set to " + std::string(env) +
                      ", which is not an executable file; point it at vaned or unset it");
    }
    return env;
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && executable(self.parent_path() / "vaned")) return self.parent_path() / "vaned";
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty() && executable(fs::path(dir) / "vaned")) return fs::path(dir) / "vaned";
    }
  }
  throw UserError("cannot find vaned next to vane (" + self.parent_path().string() +
                  ") or on PATH; install it, or set VANE_VANED to its path");
}

pid_t spawnVaned(const fs::path& vaned, const fs::path& config, const fs::path& log) {
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) {
    throw UserError("cannot open " + log.string() + " (" + std::strerror(errno) +
                    "); check the site directory's permissions");
  }
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const std::string binary = vaned.string();
  const std::string config_path = config.string();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    throw UserError("cannot start vaned (fork: " + std::string(std::strerror(errno)) +
                    "); try again");
  }
  if (pid == 0) {
    ::setsid();
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::signal(SIGPIPE, SIG_DFL);
    (void)::chdir(config.parent_path().c_str());
    const char* argv[] = {binary.c_str(), "--config", config_path.c_str(), nullptr};
    ::execv(binary.c_str(), const_cast<char* const*>(argv));
    const std::string why = "vane: cannot run " + binary + ": " + std::strerror(errno) + "\n";
    (void)::write(STDERR_FILENO, why.data(), why.size());
    ::_exit(127);
  }
  ::close(out);
  if (in >= 0) ::close(in);
  return pid;
}

std::optional<pid_t> runningPid(const fs::path& pid_file, const fs::path& config) {
  std::ifstream in(pid_file);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return std::nullopt;
  if (!isOurVaned(static_cast<pid_t>(pid), config)) return std::nullopt;
  return static_cast<pid_t>(pid);
}

bool childExited(pid_t pid, int& status) {
  return ::waitpid(pid, &status, WNOHANG) == pid;
}

bool stopProcess(pid_t pid, const fs::path& config, std::chrono::milliseconds grace) {
  using Clock = std::chrono::steady_clock;
  auto gone = [&] { return ::kill(pid, 0) != 0 || !isOurVaned(pid, config); };
  ::kill(pid, SIGTERM);
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (gone()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 40; ++i) {
    if (gone()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace vane::cli
