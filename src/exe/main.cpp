// vaned: the Vane router daemon.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "config/config.hpp"
#include "core/log.hpp"
#include "server/router.hpp"

int main(int argc, char** argv) {
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

  // Block the shutdown signals in every thread; the main thread waits for them.
  boost::asio::io_context signals_ctx;
  boost::asio::signal_set signals(signals_ctx, SIGINT, SIGTERM);
  std::signal(SIGPIPE, SIG_IGN);

  VANE_LOG_INFO("vaned {} starting with configuration {}", VANE_VERSION, cfg.source);
  vane::server::Router router(std::move(cfg));
  if (std::string err = router.start(); !err.empty()) {
    VANE_LOG_ERROR("startup failed: {}", err);
    return 1;
  }
  int received = 0;
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) received = sig;
  });
  signals_ctx.run();
  VANE_LOG_INFO("received {}, shutting down", received == SIGINT ? "SIGINT" : "SIGTERM");
  router.stop();
  return 0;
}
