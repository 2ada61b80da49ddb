#include "server/router.hpp"

#include <algorithm>
#include <future>
#include <thread>

#include "core/log.hpp"
#include "server/connector.hpp"
#include "server/listener.hpp"
#include "server/worker.hpp"

namespace vane::server {

Router::Router(config::Config cfg) : cfg_(std::move(cfg)) {
  const auto& r = cfg_.router;
  settings_.container_id = r.id;
  settings_.max_frame_size = r.max_frame_size;
  settings_.session_capacity = r.session_capacity;
  settings_.idle_timeout_ms = r.idle_timeout_ms;
  settings_.link_capacity = r.link_capacity;
  settings_.inflight_limit = static_cast<std::int64_t>(r.max_message_inflight_bytes);
  settings_.edge_mode = r.mode == config::RouterMode::kEdge;
  settings_.inter_router_link_capacity = std::max(1000, r.link_capacity);
  settings_.inter_router_inflight_limit = 4 * settings_.inflight_limit;

  auto policy = std::make_shared<const routing::AddressPolicy>(cfg_.addresses);
  core_ = std::make_unique<routing::RoutingCore>(core_loop_, r.id, policy);
  std::vector<routing::RoutingCore::Replica> replicas;
  std::vector<Worker*> workers;
  for (int i = 0; i < r.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, *core_, settings_, stats_));
    replicas.push_back({&workers_.back()->loop(), &workers_.back()->table()});
    workers.push_back(workers_.back().get());
  }
  core_->setReplicas(std::move(replicas));
  routing::EngineConfig ecfg;
  ecfg.id = r.id;
  ecfg.edge = settings_.edge_mode;
  ecfg.hello_interval_ms = r.hello_interval_ms;
  ecfg.dead_interval_ms = r.dead_interval_ms;
  // A restarted router must outrank its earlier run: its start time.
  ecfg.instance =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  settings_.instance = ecfg.instance;
  core_->enableNetwork(ecfg);
  if (settings_.edge_mode) {
    if (!cfg_.connectors.empty()) {
      connectors_.push_back(std::make_unique<Connector>(cfg_.connectors, core_loop_, workers, 0));
    }
  } else {
    std::size_t i = 0;
    for (const auto& c : cfg_.connectors) {
      connectors_.push_back(std::make_unique<Connector>(std::vector<config::ConnectorConfig>{c},
                                                        core_loop_, workers, i++));
    }
  }
  const std::uint32_t max_conn = r.max_connections;
  for (const auto& l : cfg_.listeners) {
    listeners_.push_back(std::make_unique<Listener>(
        l, core_loop_, workers,
        [this, max_conn] {
          return max_conn == 0 ||
                 stats_.connections_active.load(std::memory_order_relaxed) < max_conn;
        },
        [this] { stats_.connections_refused.fetch_add(1, std::memory_order_relaxed); }));
  }
}

Router::~Router() {
  stop(std::chrono::milliseconds(0));
  // A worker runs its leftover handlers when it is destroyed, among them a
  // connector's connect or close callbacks: the connectors must outlive it.
  workers_.clear();
  connectors_.clear();
}

std::string Router::start() {
  for (auto& l : listeners_) {
    std::string err = l->open();
    if (!err.empty()) return "listener " + l->config().name + ": " + err;
  }
  for (auto& w : workers_) w->loop().start();
  core_loop_.start();
  core_->start();
  core_loop_.post([this] {
    for (auto& l : listeners_) l->startAccepting();
    for (auto& c : connectors_) c->start();
  });
  started_ = true;
  VANE_LOG_INFO("router {} ready (mode {}, {} worker{})", cfg_.router.id,
                config::toString(cfg_.router.mode), workers_.size(),
                workers_.size() == 1 ? "" : "s");
  return {};
}

void Router::stop(std::chrono::milliseconds grace) {
  if (stopped_) return;
  stopped_ = true;
  if (started_) {
    // Stop accepting first so no new connection slips in.
    std::promise<void> closed;
    core_loop_.post([this, &closed] {
      for (auto& l : listeners_) l->close();
      for (auto& c : connectors_) c->stop();
      closed.set_value();
    });
    core_->stop();
    closed.get_future().wait();
    for (auto& w : workers_) {
      w->loop().post(
          [w = w.get()] { w->closeAll("amqp:connection:forced", "router is shutting down"); });
    }
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (true) {
      std::size_t open = 0;
      for (auto& w : workers_) {
        std::promise<std::size_t> n;
        w->loop().post([w = w.get(), &n] { n.set_value(w->connectionCount()); });
        open += n.get_future().get();
      }
      if (open == 0 || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (auto& w : workers_) w->loop().stop();
  core_loop_.stop();
  for (auto& w : workers_) w->loop().join();
  core_loop_.join();
  // An accept that completed or was cancelled but not yet handled holds a
  // socket of a worker's io_context: run those handlers now, while the
  // workers live, then drop the acceptors.
  core_loop_.drainAfterJoin([] {});
  listeners_.clear();
  VANE_LOG_INFO("router {} stopped", cfg_.router.id);
}

}  // namespace vane::server
