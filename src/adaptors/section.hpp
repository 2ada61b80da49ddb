// The three EntityKind functions for a kind whose entries are one list
// section of config::Config (`std::vector<C> config::Config::*Section`) and
// whose entity type E is made as E(Host&, const C&) and keeps its entry as
// `E::cfg`. An entry's key is its JSON (config::toJson(C)).
//
//   using Ops = SectionOps<config::TcpListenerConfig, &config::Config::tcp_listeners, TcpListener>;
//   EntityKind{..., .entries = Ops::entries, .make = Ops::make, .store = Ops::store}
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "adaptors/adaptor.hpp"

namespace vane::adaptors {

template <typename C, std::vector<C> config::Config::*Section, typename E>
struct SectionOps {
  static std::vector<std::pair<std::string, std::string>> entries(const config::Config& cfg) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const C& c : cfg.*Section) out.emplace_back(c.name, config::toJson(c));
    return out;
  }
  static std::unique_ptr<Entity> make(Host& host, const config::Config& cfg,
                                      const std::string& name) {
    const auto& section = cfg.*Section;
    auto it =
        std::find_if(section.begin(), section.end(), [&](const C& c) { return c.name == name; });
    if (it == section.end()) return nullptr;
    return std::make_unique<E>(host, *it);
  }
  static void store(config::Config& cfg, const std::vector<const Entity*>& entities) {
    auto& section = cfg.*Section;
    section.clear();
    for (const Entity* e : entities) section.push_back(static_cast<const E*>(e)->cfg);
  }
};

}  // namespace vane::adaptors
