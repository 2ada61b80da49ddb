// The adaptor registry: every kind is a section the configuration parser
// takes as an API entry, with its own API path, and its entries are named
// and keyed from the configuration as the router reloads them.
#include "adaptors/registry.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <variant>

#include "adaptors/http/http_config.hpp"
#include "adaptors/sections.hpp"
#include "adaptors/tcp/tcp_config.hpp"
#include "adaptors/tcp/tcp_flow.hpp"
#include "config/config.hpp"

// The schema these tests read has the adaptors' sections too.
[[maybe_unused]] static const bool kAdaptorSections = (vane::adaptors::addConfigSections(), true);

namespace vane::adaptors {
namespace {

TEST(Registry, KindsHaveDistinctPathsSectionsAndTheirAdaptor) {
  std::set<std::string_view> paths;
  std::set<std::string_view> sections;
  ASSERT_FALSE(kinds().empty());
  for (const EntityKind* k : kinds()) {
    ASSERT_NE(k->adaptor, nullptr) << k->what;
    EXPECT_TRUE(paths.insert(k->path).second) << k->path;
    EXPECT_TRUE(sections.insert(k->section).second) << k->section;
    EXPECT_TRUE(k->role == "listener" || k->role == "connector") << k->role;
    EXPECT_EQ(k->accepts, k->role == "listener") << k->what;
    EXPECT_NE(k->entries, nullptr);
    EXPECT_NE(k->make, nullptr);
    EXPECT_NE(k->store, nullptr);
    // Every field the parser reads for the section: the API takes it.
    EXPECT_FALSE(config::entryFields(k->section).empty()) << k->section;
  }
}

TEST(Registry, FindsKindsByPathAndAdaptorsByAddress) {
  const EntityKind* l = kindByPath("tcp-listeners");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->section, "tcp_listeners");
  EXPECT_EQ(kindByPath("tcp-listener"), nullptr);
  EXPECT_EQ(kindByPath("listeners"), nullptr);  // the router's own AMQP listeners
  const Adaptor* a = adaptorOf(std::string(tcp::kServicePrefix) + "db");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name, "tcp");
  EXPECT_EQ(a->serviceAddress("db"), "_vane/tcp/db");
  EXPECT_EQ(adaptorOf("db"), nullptr);
  EXPECT_EQ(adaptorOf("_vane/tc"), nullptr);
}

TEST(Registry, EntriesAreNamedAndKeyedByTheirFields) {
  const EntityKind* k = kindByPath("tcp-connectors");
  ASSERT_NE(k, nullptr);
  auto parse = [](const std::string& text) {
    auto r = config::parseString(text, "test.yaml");
    EXPECT_TRUE(std::holds_alternative<config::Config>(r))
        << std::get<config::ConfigError>(r).toString();
    return std::get<config::Config>(r);
  };
  const auto a = parse(
      "tcp_connectors:\n  - {name: db, host: 127.0.0.1, port: 5432, address: db}\n"
      "  - {name: web, port: 80, address: web}\n");
  const auto b = parse(
      "tcp_connectors:\n  - {name: db, host: 127.0.0.1, port: 5433, address: db}\n"
      "  - {name: web, port: 80, address: web}\n");
  const auto ea = k->entries(a);
  const auto eb = k->entries(b);
  ASSERT_EQ(ea.size(), 2u);
  ASSERT_EQ(eb.size(), 2u);
  EXPECT_EQ(ea[0].first, "db");
  EXPECT_EQ(ea[1].first, "web");
  EXPECT_NE(ea[0].second, eb[0].second);  // the port changed: replaced on reload
  EXPECT_EQ(ea[1].second, eb[1].second);  // unchanged: kept
  // The listeners' kind sees none of them.
  EXPECT_TRUE(kindByPath("tcp-listeners")->entries(a).empty());
}

}  // namespace
}  // namespace vane::adaptors
