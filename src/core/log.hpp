// Logging: spdlog, one logger for the process, writing to stderr.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace vane::core {

// Installs the process logger. `level` is one of trace, debug, info, warn,
// error, off. Returns false (and leaves the logger unchanged) for an unknown level.
bool initLogging(std::string_view level);

}  // namespace vane::core

#define VANE_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define VANE_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define VANE_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define VANE_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define VANE_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
