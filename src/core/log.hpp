// Logging: spdlog, one logger for the process, writing to stderr.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace vane::core {

// Installs the process logger. `level` is one of trace, debug, info, warn,
// error, off. Returns false (and leaves the logger unchanged) for an unknown level.
bool initLogging(std::string_view level);

// Keeps what a peer can make the router log to one line per period: a
// flood of refused connections or failed logins must not flood the log.
// admit() counts one event and returns how many events the line about to
// be written stands for (this one and those swallowed since the last line),
// or 0 when no line is due yet. Safe from any thread.
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration period = std::chrono::seconds(1))
      : period_(period) {}

  std::uint64_t admit() {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    ++pending_;
    if (logged_once_ && now - last_ < period_) return 0;
    logged_once_ = true;
    last_ = now;
    const std::uint64_t n = pending_;
    pending_ = 0;
    return n;
  }

 private:
  const std::chrono::steady_clock::duration period_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t pending_ = 0;
  bool logged_once_ = false;
};

}  // namespace vane::core

#define VANE_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define VANE_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define VANE_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define VANE_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define VANE_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
