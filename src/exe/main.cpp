// vaned: the Vane router daemon.
#include <malloc.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>

#include "adaptors/sections.hpp"
#include "config/config.hpp"
#include "core/log.hpp"
#include "server/router.hpp"

int main(int argc, char** argv) {
  vane::adaptors::addConfigSections();
  CLI::App app{"vaned - Vane router daemon"};
  std::string config_path;
  std::string log_level = "info";
  bool version = false;
  app.add_option("-c,--config", config_path, "YAML configuration file (default: built-in)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  app.add_flag("--version", version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "vaned " << VANE_VERSION << "\n";
    return 0;
  }
  if (!vane::core::initLogging(log_level)) {
    std::cerr << "vaned: unknown --log-level '" << log_level
              << "' (expected trace, debug, info, warn, error or off)\n";
    return 2;
  }

  vane::config::Config cfg;
  if (config_path.empty()) {
    cfg = vane::config::defaultConfig();
  } else {
    auto result = vane::config::loadFile(config_path);
    if (auto* err = std::get_if<vane::config::ConfigError>(&result)) {
      std::cerr << "vaned: invalid configuration: " << err->toString() << "\n";
      return 2;
    }
    cfg = std::move(std::get<vane::config::Config>(result));
  }

  // Every connection is a file descriptor: use all the process may have.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      VANE_LOG_WARN("cannot raise the open-file limit: {}", std::strerror(errno));
    }
  }

  // glibc raises its mmap threshold each time a large block is freed, after
  // which large message buffers come from the heap arenas of the worker
  // threads and stay there: RSS then climbs under large messages although
  // the memory in use stays flat. A fixed threshold keeps large buffers
  // mapped and returned on free. MALLOC_MMAP_THRESHOLD_ in the environment
  // still wins.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) {
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  }

  // Block the shutdown signals in every thread; the main thread waits for them.
  boost::asio::io_context signals_ctx;
  boost::asio::signal_set signals(signals_ctx, SIGINT, SIGTERM, SIGHUP);
  std::signal(SIGPIPE, SIG_IGN);

  VANE_LOG_INFO("vaned {} starting with configuration {}", VANE_VERSION, cfg.source);
  vane::server::Router router(std::move(cfg));
  if (std::string err = router.start(); !err.empty()) {
    VANE_LOG_ERROR("startup failed: {}", err);
    return 1;
  }
  // SIGHUP re-reads the configuration file and applies what can change at
  // run time (the adaptors' listeners and connectors, ...); SIGINT/SIGTERM stop.
  int received = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig != SIGHUP) {
          received = sig;
          return;
        }
        if (config_path.empty()) {
          VANE_LOG_WARN("received SIGHUP: no configuration file to reload (built-in defaults)");
        } else {
          VANE_LOG_INFO("received SIGHUP, reloading {}", config_path);
          auto result = vane::config::loadFile(config_path);
          if (auto* err = std::get_if<vane::config::ConfigError>(&result)) {
            VANE_LOG_ERROR("reload refused, the running configuration stays: {}", err->toString());
          } else if (std::string e = router.reload(std::get<vane::config::Config>(result));
                     !e.empty()) {
            VANE_LOG_ERROR("reload partly failed: {}", e);
          } else {
            VANE_LOG_INFO("reload done");
          }
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  signals_ctx.run();
  VANE_LOG_INFO("received {}, shutting down", received == SIGINT ? "SIGINT" : "SIGTERM");
  router.stop();
  return 0;
}
