#include "routing/core.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "core/log.hpp"

namespace vane::routing {

namespace {
const char* roleName(NeighborRole r) {
  switch (r) {
    case NeighborRole::kInterior:
      return "interior";
    case NeighborRole::kEdge:
      return "edge";
    case NeighborRole::kUplink:
      return "uplink";
  }
  return "?";
}
}  // namespace

RoutingCore::RoutingCore(core::EventLoop& loop, std::string router_id,
                         std::shared_ptr<const AddressPolicy> policy)
    : loop_(loop), router_id_(std::move(router_id)), policy_(std::move(policy)) {}

RoutingCore::~RoutingCore() = default;

void RoutingCore::setReplicas(std::vector<Replica> replicas) {
  replicas_ = std::move(replicas);
  auto paths = std::make_shared<forwarding::PathTable>();
  paths->self = router_id_;
  std::shared_ptr<const forwarding::PathTable> snapshot = std::move(paths);
  for (auto& r : replicas_) r.table->initPaths(snapshot);
}

void RoutingCore::enableNetwork(const EngineConfig& cfg) {
  engine_ = std::make_unique<Engine>(cfg, static_cast<EngineOutput&>(*this));
  timer_ = std::make_unique<boost::asio::steady_timer>(loop_.context());
}

void RoutingCore::start() {
  if (!engine_) return;
  loop_.post([this] { scheduleTick(); });
}

void RoutingCore::stop() {
  if (!engine_) return;
  loop_.post([this] {
    stopped_ = true;
    timer_->cancel();
  });
}

Millis RoutingCore::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void RoutingCore::scheduleTick() {
  if (stopped_) return;
  const Millis t = now();
  const Millis next = std::clamp<Millis>(engine_->nextTick() - t, 1, 250);
  timer_->expires_after(std::chrono::milliseconds(next));
  timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    engine_->tick(now());
    scheduleTick();
  });
}

void RoutingCore::scheduleFlush() {
  if (!engine_ || flush_pending_) return;
  flush_pending_ = true;
  // Posted, so that a burst of attaches handled in one turn of the loop is
  // advertised as one update.
  loop_.post([this] {
    flush_pending_ = false;
    if (!stopped_) {
      engine_->flush(now());
      scheduleTick();
    }
  });
}

std::string RoutingCore::newDynamicAddress() {
  // 128 random bits from the system's CSPRNG (getrandom), so nobody can
  // guess another client's reply address; one device per thread.
  thread_local std::random_device random;
  std::uint32_t words[4];
  for (auto& w : words) w = random();
  return fmt::format("_vane/temp/{}/{:08x}{:08x}{:08x}{:08x}", router_id_, words[0], words[1],
                     words[2], words[3]);
}

void RoutingCore::addConsumer(std::string address, std::shared_ptr<forwarding::Consumer> consumer,
                              core::EventLoop& reply_loop, std::function<void()> done) {
  loop_.post([this, address = std::move(address), consumer = std::move(consumer), &reply_loop,
              done = std::move(done)]() mutable {
    auto& ids = local_[address];
    ids.push_back(consumer->id);
    if (ids.size() == 1 && engine_) {
      engine_->localAddress(address, true);
      scheduleFlush();
    }
    const auto dist = distributionFor(address);
    auto remaining = std::make_shared<std::atomic<int>>(static_cast<int>(replicas_.size()));
    auto finish = std::make_shared<std::function<void()>>(std::move(done));
    for (auto& r : replicas_) {
      r.loop->post([table = r.table, address, dist, consumer, remaining, finish, &reply_loop] {
        table->addConsumer(address, dist, consumer);
        if (remaining->fetch_sub(1) == 1) reply_loop.post([finish] { (*finish)(); });
      });
    }
  });
}

void RoutingCore::removeConsumer(std::string address, std::uint64_t consumer_id) {
  loop_.post([this, address = std::move(address), consumer_id] {
    auto it = local_.find(address);
    if (it != local_.end()) {
      auto& v = it->second;
      v.erase(std::remove(v.begin(), v.end(), consumer_id), v.end());
      if (v.empty()) {
        local_.erase(it);
        if (engine_) {
          engine_->localAddress(address, false);
          scheduleFlush();
        }
      }
    }
    for (auto& r : replicas_) {
      r.loop->post(
          [table = r.table, address, consumer_id] { table->removeConsumer(address, consumer_id); });
    }
  });
}

void RoutingCore::neighborReady(NeighborInfo info) {
  loop_.post([this, info = std::move(info)]() mutable {
    if (!engine_ || stopped_) return;
    const NeighborId id = info.id;
    auto refuse = [&](const std::string& condition, const std::string& reason) {
      VANE_LOG_WARN("router {}: refusing link from router {}: {}", router_id_, info.peer_id,
                    reason);
      auto link = info.link;
      if (auto l = link.lock()) {
        l->loop().post([link, condition, reason] {
          if (auto l = link.lock()) l->close(condition, reason);
        });
      }
    };
    for (auto& [nid, n] : neighbors_) {
      if (!n.up || n.info.peer_id != info.peer_id) continue;
      if (n.info.peer_instance == info.peer_instance) {
        refuse("vane:duplicate-link",
               fmt::format("already linked to router {} over another connection", info.peer_id));
      } else {
        refuse("vane:duplicate-router-id",
               fmt::format("router id {} is already in use by another router linked here",
                           info.peer_id));
      }
      return;
    }
    // Registered first: the engine sends its hello from inside neighborUp.
    auto& n = neighbors_[id];
    n = Neighbor{info, true};
    auto refusal = engine_->neighborUp(id, info.peer_id, info.role, info.cost, now());
    if (refusal) {
      neighbors_.erase(id);
      refuse(refusal->condition, refusal->reason);
      return;
    }
    VANE_LOG_INFO("router {}: link to router {} up (role {}, cost {})", router_id_, info.peer_id,
                  roleName(info.role), info.cost);
    scheduleTick();
  });
}

void RoutingCore::neighborGone(NeighborId id) {
  loop_.post([this, id] {
    auto it = neighbors_.find(id);
    if (it == neighbors_.end()) return;
    VANE_LOG_INFO("router {}: link to router {} down", router_id_, it->second.info.peer_id);
    neighbors_.erase(it);
    if (engine_ && !stopped_) {
      engine_->neighborDown(id, now());
      scheduleTick();
    }
  });
}

void RoutingCore::controlReceived(NeighborId id, std::string message) {
  loop_.post([this, id, message = std::move(message)] {
    if (!engine_ || stopped_ || neighbors_.count(id) == 0) return;
    engine_->receive(id, message, now());
    // The engine paces its output: wake up when it has more to send.
    scheduleTick();
  });
}

void RoutingCore::setPolicy(std::shared_ptr<const AddressPolicy> policy) {
  // On the core loop, so that every delta posted to a replica carries the
  // distribution of the policy the reclassify posted before or after it: a
  // consumer added with the old distribution after the reclassify ran would
  // keep it for good.
  VANE_ASSERT_THREAD(loop_);
  policy_.store(policy, std::memory_order_release);
  for (auto& r : replicas_) {
    r.loop->post([t = r.table, policy] {
      t->reclassify([&policy](std::string_view a) { return policy->lookup(a); });
    });
  }
}

RoutingCore::View RoutingCore::view() const {
  VANE_ASSERT_THREAD(loop_);
  View v;
  for (const auto& [id, n] : neighbors_) {
    v.links.push_back({n.info.peer_id, n.info.role, n.info.cost, n.up});
  }
  std::sort(v.links.begin(), v.links.end(),
            [](const auto& a, const auto& b) { return a.peer < b.peer; });
  for (const auto& p : paths_) {
    auto it = neighbors_.find(p.next_hop);
    v.routes.push_back(
        {p.router, it == neighbors_.end() ? std::string() : it->second.info.peer_id, p.cost});
  }
  std::sort(v.routes.begin(), v.routes.end(),
            [](const auto& a, const auto& b) { return a.router < b.router; });
  std::map<std::string, View::Address> addresses;
  for (const auto& [address, ids] : local_) {
    auto& a = addresses[address];
    a.local_consumers = ids.size();
  }
  for (const auto& k : remote_) addresses[k.address].remote_routers.push_back(k.router);
  for (auto& [address, a] : addresses) {
    a.address = address;
    a.distribution = distributionFor(address);
    std::sort(a.remote_routers.begin(), a.remote_routers.end());
    v.addresses.push_back(std::move(a));
  }
  return v;
}

void RoutingCore::summary(std::function<void(Summary)> done) {
  loop_.post([this, done = std::move(done)] {
    Summary s;
    if (engine_) {
      s.paths = engine_->paths();
      s.neighbors = engine_->neighbors();
      s.known_routers = engine_->knownRouters();
    }
    s.remote_addresses = remote_.size();
    done(std::move(s));
  });
}

// --- EngineOutput (core loop) ---

void RoutingCore::send(NeighborId to, std::string message) {
  auto it = neighbors_.find(to);
  if (it == neighbors_.end()) return;
  auto link = it->second.info.link;
  auto l = link.lock();
  if (!l) return;
  l->loop().post([link, message = std::move(message)]() mutable {
    if (auto l = link.lock()) l->sendControl(std::move(message));
  });
}

void RoutingCore::drop(NeighborId n, std::string condition, std::string reason) {
  auto it = neighbors_.find(n);
  if (it == neighbors_.end()) return;
  VANE_LOG_WARN("router {}: dropping link to router {}: {}", router_id_, it->second.info.peer_id,
                reason);
  it->second.up = false;
  auto link = it->second.info.link;
  neighbors_.erase(it);
  if (auto l = link.lock()) {
    l->loop().post([link, condition = std::move(condition), reason = std::move(reason)] {
      if (auto l = link.lock()) l->close(condition, reason);
    });
  }
}

void RoutingCore::log(Severity severity, const std::string& message) {
  if (severity == Severity::kWarning) {
    VANE_LOG_WARN("router {}: {}", router_id_, message);
  } else {
    VANE_LOG_INFO("router {}: {}", router_id_, message);
  }
}

void RoutingCore::pathsChanged(const std::vector<Path>& paths) {
  paths_ = paths;
  publishPaths();
}

void RoutingCore::publishPaths() {
  auto table = std::make_shared<forwarding::PathTable>();
  table->self = router_id_;
  for (const auto& p : paths_) {
    auto it = neighbors_.find(p.next_hop);
    if (it == neighbors_.end()) continue;
    const auto& n = it->second.info;
    forwarding::NextHop hop;
    hop.link = n.data;
    hop.cost = p.cost;
    if (n.role == NeighborRole::kUplink) {
      hop.kind = forwarding::NextHop::Kind::kUplink;
    } else if (n.role == NeighborRole::kEdge && p.router == n.peer_id) {
      hop.kind = forwarding::NextHop::Kind::kEdgeChild;
    }
    table->hops.emplace(p.router, std::move(hop));
  }
  VANE_LOG_DEBUG("router {}: {} router(s) reachable", router_id_, table->hops.size());
  std::shared_ptr<const forwarding::PathTable> snapshot = std::move(table);
  for (auto& r : replicas_) {
    r.loop->post([t = r.table, snapshot] { t->setPaths(snapshot); });
  }
}

void RoutingCore::remoteAddress(const std::string& address, const std::string& router,
                                bool present) {
  RemoteKey key{address, router};
  if (present) {
    if (!remote_.insert(key).second) return;
    auto dest = std::make_shared<forwarding::RemoteDest>(router);
    const auto dist = distributionFor(address);
    for (auto& r : replicas_) {
      r.loop->post([t = r.table, address, dist, dest] { t->addRemote(address, dist, dest); });
    }
  } else {
    if (remote_.erase(key) == 0) return;
    for (auto& r : replicas_) {
      r.loop->post([t = r.table, address, router] { t->removeRemote(address, router); });
    }
  }
}

}  // namespace vane::routing
