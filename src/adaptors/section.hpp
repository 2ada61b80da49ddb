// The three EntityKind functions for a kind whose entries are one added
// configuration section (config::ListSection<C>, e.g. kTcpListeners) and
// whose entity type E is made as E(Host&, const C&) and keeps its entry as
// `E::cfg`. An entry's key is its JSON (Section.json(C)).
//
//   using Ops = SectionOps<TcpListenerConfig, kTcpListeners, TcpListener>;
//   const EntityKind kListenerKind = Ops::kind(&adaptor(), "tcp listener", "tcp_listeners",
//                                              "tcp-listeners", Role::kListener);
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adaptors/adaptor.hpp"
#include "config/section.hpp"

namespace vane::adaptors {

template <typename C, const config::ListSection<C>& Section, typename E>
struct SectionOps {
  enum class Role { kListener, kConnector };
  // The kind: `what` in messages, its configuration `section`, its API
  // `path`; a listener's flows take connections on this router.
  static EntityKind kind(const Adaptor* adaptor, std::string_view what, std::string_view section,
                         std::string_view path, Role role) {
    const bool listener = role == Role::kListener;
    return EntityKind{.adaptor = adaptor,
                      .what = what,
                      .section = section,
                      .path = path,
                      .role = listener ? "listener" : "connector",
                      .accepts = listener,
                      .entries = entries,
                      .make = make,
                      .store = store};
  }
  static std::vector<std::pair<std::string, std::string>> entries(const config::Config& cfg) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const C& c : Section.of(cfg)) out.emplace_back(c.name, Section.json(c));
    return out;
  }
  static std::unique_ptr<Entity> make(Host& host, const config::Config& cfg,
                                      const std::string& name) {
    const auto& section = Section.of(cfg);
    auto it =
        std::find_if(section.begin(), section.end(), [&](const C& c) { return c.name == name; });
    if (it == section.end()) return nullptr;
    return std::make_unique<E>(host, *it);
  }
  static void store(config::Config& cfg, const std::vector<const Entity*>& entities) {
    auto& section = Section.of(cfg);
    section.clear();
    for (const Entity* e : entities) section.push_back(static_cast<const E*>(e)->cfg);
  }
};

}  // namespace vane::adaptors
