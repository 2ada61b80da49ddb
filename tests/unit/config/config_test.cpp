#include "config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <variant>

#include "adaptors/http/http_config.hpp"
#include "adaptors/sections.hpp"
#include "adaptors/tcp/tcp_config.hpp"

// The schema these tests read has the adaptors' sections too.
[[maybe_unused]] static const bool kAdaptorSections = (vane::adaptors::addConfigSections(), true);

namespace vane::config {
namespace {

const char* kFile = "test.yaml";

Config parseOk(const std::string& yaml) {
  ConfigResult r = parseString(yaml, kFile);
  if (const auto* e = std::get_if<ConfigError>(&r)) {
    ADD_FAILURE() << "unexpected error: " << e->toString() << "\nfor input:\n" << yaml;
    return {};
  }
  return std::get<Config>(r);
}

ConfigError parseErr(const std::string& yaml) {
  ConfigResult r = parseString(yaml, kFile);
  if (std::holds_alternative<Config>(r)) {
    ADD_FAILURE() << "expected an error for input:\n" << yaml;
    return {};
  }
  return std::get<ConfigError>(r);
}

// Checks position and field exactly and that the message contains `text`.
void expectError(const std::string& yaml, int line, int column, const std::string& field,
                 const std::string& text) {
  SCOPED_TRACE("input:\n" + yaml);
  ConfigError e = parseErr(yaml);
  EXPECT_EQ(e.file, kFile);
  EXPECT_EQ(e.line, line) << e.toString();
  EXPECT_EQ(e.column, column) << e.toString();
  EXPECT_EQ(e.field, field) << e.toString();
  EXPECT_NE(e.message.find(text), std::string::npos)
      << "message '" << e.message << "' does not contain '" << text << "'";
}

void expectDefaultRouter(const RouterConfig& r) {
  EXPECT_EQ(r.id, "vane");
  EXPECT_EQ(r.mode, RouterMode::kInterior);
  EXPECT_EQ(r.workers, 1);
  EXPECT_EQ(r.link_capacity, 250);
  EXPECT_EQ(r.max_message_inflight_bytes, 1048576u);
  EXPECT_EQ(r.max_frame_size, 65536u);
  EXPECT_EQ(r.session_capacity, 16777216u);
  EXPECT_EQ(r.idle_timeout_ms, 16000u);
  EXPECT_EQ(r.max_connections, 10000u);
}

void expectDefaultListener(const ListenerConfig& l) {
  EXPECT_EQ(l.name, "amqp");
  EXPECT_EQ(l.host, "127.0.0.1");
  EXPECT_EQ(l.port, 5672);
  EXPECT_EQ(l.role, ListenerRole::kNormal);
  EXPECT_EQ(l.line, 0);
}

// ---------------------------------------------------------------- defaults

TEST(ConfigDefaults, BuiltIn) {
  Config c = defaultConfig();
  EXPECT_EQ(c.source, "<built-in>");
  expectDefaultRouter(c.router);
  ASSERT_EQ(c.listeners.size(), 1u);
  expectDefaultListener(c.listeners[0]);
  EXPECT_TRUE(c.addresses.empty());
}

TEST(ConfigDefaults, EmptyInputsGiveDefaultsWithDefaultListener) {
  for (const char* text :
       {"", "\n\n", "# only a comment\n", "---\n", "~\n", "null\n", "---\n...\n"}) {
    SCOPED_TRACE(text);
    Config c = parseOk(text);
    EXPECT_EQ(c.source, kFile);
    expectDefaultRouter(c.router);
    ASSERT_EQ(c.listeners.size(), 1u);
    expectDefaultListener(c.listeners[0]);
    EXPECT_TRUE(c.addresses.empty());
  }
}

TEST(ConfigDefaults, NoListenersKeyMeansDefaultListener) {
  Config c = parseOk("router:\n  id: r1\naddresses:\n  - prefix: a\n");
  ASSERT_EQ(c.listeners.size(), 1u);
  expectDefaultListener(c.listeners[0]);
  EXPECT_EQ(c.router.id, "r1");
}

TEST(ConfigDefaults, ExplicitEmptyListenerListMeansNoListeners) {
  Config c = parseOk("listeners: []\n");
  EXPECT_TRUE(c.listeners.empty());
  expectDefaultRouter(c.router);
}

TEST(ConfigDefaults, EmptySectionsAreAllowed) {
  // A key with no value (e.g. all entries commented out) is an empty section.
  Config c = parseOk("router:\nlisteners:\n#  - name: x\naddresses:\n");
  expectDefaultRouter(c.router);
  EXPECT_TRUE(c.listeners.empty());
  EXPECT_TRUE(c.addresses.empty());
  Config d = parseOk("router: {}\naddresses: []\n");
  expectDefaultRouter(d.router);
  ASSERT_EQ(d.listeners.size(), 1u);
}

TEST(ConfigDefaults, ListenerFieldDefaults) {
  Config c = parseOk("listeners:\n  - name: only-name\n");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].name, "only-name");
  EXPECT_EQ(c.listeners[0].host, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 5672);
  EXPECT_EQ(c.listeners[0].role, ListenerRole::kNormal);
  EXPECT_EQ(c.listeners[0].line, 2);
}

// ----------------------------------------------------------------- parsing

TEST(ConfigParse, EveryField) {
  const std::string yaml =
      "# Vane test configuration\n"                                                // 1
      "router:\n"                                                                  // 2
      "  id: router-a\n"                                                           // 3
      "  mode: interior\n"                                                         // 4
      "  workers: 8\n"                                                             // 5
      "  link_capacity: 1000\n"                                                    // 6
      "  max_message_inflight_bytes: 65536\n"                                      // 7
      "  max_frame_size: 16384\n"                                                  // 8
      "  session_capacity: 131072\n"                                               // 9
      "  idle_timeout_ms: 0\n"                                                     // 10
      "  max_connections: 0\n"                                                     // 11
      "listeners:\n"                                                               // 12
      "  - name: amqp\n"                                                           // 13
      "    host: 0.0.0.0\n"                                                        // 14
      "    port: 5673\n"                                                           // 15
      "    role: normal\n"                                                         // 16
      "  - name: inter.router_1\n"                                                 // 17
      "    host: router-b.example.com\n"                                           // 18
      "    port: 0\n"                                                              // 19
      "    role: inter-router\n"                                                   // 20
      "    insecure: true\n"                                                       // 21
      "  - {name: edges, host: '::1', port: 65535, role: edge, insecure: true}\n"  // 22
      "addresses:\n"                                                               // 23
      "  - prefix: mc/\n"                                                          // 24
      "    distribution: multicast\n"                                              // 25
      "  - pattern: \"orders.*.eu\"\n"                                             // 26
      "  - distribution: closest\n"                                                // 27
      "    pattern: svc/#\n";                                                      // 28
  Config c = parseOk(yaml);
  EXPECT_EQ(c.source, kFile);
  EXPECT_EQ(c.router.id, "router-a");
  EXPECT_EQ(c.router.mode, RouterMode::kInterior);
  EXPECT_EQ(c.router.workers, 8);
  EXPECT_EQ(c.router.link_capacity, 1000);
  EXPECT_EQ(c.router.max_message_inflight_bytes, 65536u);
  EXPECT_EQ(c.router.max_frame_size, 16384u);
  EXPECT_EQ(c.router.session_capacity, 131072u);
  EXPECT_EQ(c.router.idle_timeout_ms, 0u);
  EXPECT_EQ(c.router.max_connections, 0u);

  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].name, "amqp");
  EXPECT_EQ(c.listeners[0].host, "0.0.0.0");
  EXPECT_EQ(c.listeners[0].port, 5673);
  EXPECT_EQ(c.listeners[0].role, ListenerRole::kNormal);
  EXPECT_EQ(c.listeners[0].line, 13);
  EXPECT_EQ(c.listeners[1].name, "inter.router_1");
  EXPECT_EQ(c.listeners[1].host, "router-b.example.com");
  EXPECT_EQ(c.listeners[1].port, 0);
  EXPECT_EQ(c.listeners[1].role, ListenerRole::kInterRouter);
  EXPECT_EQ(c.listeners[1].line, 17);
  EXPECT_EQ(c.listeners[2].name, "edges");
  EXPECT_EQ(c.listeners[2].host, "::1");
  EXPECT_EQ(c.listeners[2].port, 65535);
  EXPECT_EQ(c.listeners[2].role, ListenerRole::kEdge);
  EXPECT_EQ(c.listeners[2].line, 22);

  ASSERT_EQ(c.addresses.size(), 3u);
  EXPECT_EQ(c.addresses[0].prefix, "mc/");
  EXPECT_EQ(c.addresses[0].pattern, "");
  EXPECT_EQ(c.addresses[0].distribution, Distribution::kMulticast);
  EXPECT_EQ(c.addresses[0].line, 24);
  EXPECT_EQ(c.addresses[1].prefix, "");
  EXPECT_EQ(c.addresses[1].pattern, "orders.*.eu");
  EXPECT_EQ(c.addresses[1].distribution, Distribution::kBalanced);
  EXPECT_EQ(c.addresses[1].line, 26);
  EXPECT_EQ(c.addresses[2].pattern, "svc/#");
  EXPECT_EQ(c.addresses[2].distribution, Distribution::kClosest);
  EXPECT_EQ(c.addresses[2].line, 27);
}

// The example at the top of docs/configuration.md.
TEST(ConfigParse, DocumentedExample) {
  Config c = parseOk(
      "router:\n"
      "  id: router-a                # unique in the network\n"
      "  mode: interior              # interior | edge\n"
      "  workers: 4                  # I/O threads\n"
      "  link_capacity: 250          # credit per incoming link\n"
      "  max_message_inflight_bytes: 1048576\n"
      "  max_frame_size: 65536\n"
      "  session_capacity: 2097152\n"
      "  idle_timeout_ms: 16000\n"
      "  max_connections: 10000\n"
      "\n"
      "listeners:\n"
      "  - name: amqp                # clients\n"
      "    host: 0.0.0.0\n"
      "    port: 5672\n"
      "  - name: interior            # other interior routers\n"
      "    host: 0.0.0.0\n"
      "    port: 55672\n"
      "    role: inter-router\n"
      "    insecure: true            # no TLS: loopback tests only\n"
      "  - name: edges               # edge routers\n"
      "    port: 45672\n"
      "    role: edge\n"
      "    insecure: true\n"
      "\n"
      "addresses:\n"
      "  - prefix: mc/               # every address starting with \"mc/\"\n"
      "    distribution: multicast\n"
      "  - pattern: \"orders.*.eu\"    # orders.<anything>.eu\n"
      "    distribution: closest\n"
      "  - pattern: \"logs/#\"         # logs, logs/app, logs/app/errors, ...\n"
      "    distribution: multicast\n");
  EXPECT_EQ(c.router.workers, 4);
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[2].host, "127.0.0.1");
  EXPECT_EQ(c.listeners[2].role, ListenerRole::kEdge);
  ASSERT_EQ(c.addresses.size(), 3u);
  EXPECT_EQ(c.addresses[2].pattern, "logs/#");
}

TEST(ConfigParse, FlowStyleDocument) {
  Config c = parseOk(
      "{router: {id: x, workers: 2}, listeners: [{name: a, port: 1}], "
      "addresses: [{prefix: p, distribution: balanced}]}");
  EXPECT_EQ(c.router.id, "x");
  EXPECT_EQ(c.router.workers, 2);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1);
  EXPECT_EQ(c.listeners[0].line, 1);
  ASSERT_EQ(c.addresses.size(), 1u);
  EXPECT_EQ(c.addresses[0].prefix, "p");
}

TEST(ConfigParse, EnumSpellings) {
  EXPECT_EQ(parseOk("router: {mode: interior}").router.mode, RouterMode::kInterior);
  EXPECT_EQ(parseOk("router: {mode: edge}").router.mode, RouterMode::kEdge);
  EXPECT_EQ(parseOk("listeners: [{name: a, role: normal}]").listeners[0].role,
            ListenerRole::kNormal);
  EXPECT_EQ(parseOk("listeners: [{name: a, role: inter-router, insecure: true}]").listeners[0].role,
            ListenerRole::kInterRouter);
  EXPECT_EQ(parseOk("listeners: [{name: a, role: edge, insecure: true}]").listeners[0].role,
            ListenerRole::kEdge);
  EXPECT_EQ(parseOk("addresses: [{prefix: a, distribution: balanced}]").addresses[0].distribution,
            Distribution::kBalanced);
  EXPECT_EQ(parseOk("addresses: [{prefix: a, distribution: closest}]").addresses[0].distribution,
            Distribution::kClosest);
  EXPECT_EQ(parseOk("addresses: [{prefix: a, distribution: multicast}]").addresses[0].distribution,
            Distribution::kMulticast);
}

TEST(ConfigParse, EnumToString) {
  EXPECT_STREQ(toString(RouterMode::kInterior), "interior");
  EXPECT_STREQ(toString(RouterMode::kEdge), "edge");
  EXPECT_STREQ(toString(ListenerRole::kNormal), "normal");
  EXPECT_STREQ(toString(ListenerRole::kInterRouter), "inter-router");
  EXPECT_STREQ(toString(ListenerRole::kEdge), "edge");
  EXPECT_STREQ(toString(Distribution::kBalanced), "balanced");
  EXPECT_STREQ(toString(Distribution::kClosest), "closest");
  EXPECT_STREQ(toString(Distribution::kMulticast), "multicast");
}

TEST(ConfigParse, RangeBoundariesAccepted) {
  Config lo = parseOk(
      "router:\n  workers: 1\n  link_capacity: 1\n  max_message_inflight_bytes: 16384\n"
      "  max_frame_size: 512\n  session_capacity: 512\n  idle_timeout_ms: 1000\n"
      "  max_connections: 1\n");
  EXPECT_EQ(lo.router.workers, 1);
  EXPECT_EQ(lo.router.link_capacity, 1);
  EXPECT_EQ(lo.router.max_message_inflight_bytes, 16384u);
  EXPECT_EQ(lo.router.max_frame_size, 512u);
  EXPECT_EQ(lo.router.session_capacity, 512u);
  EXPECT_EQ(lo.router.idle_timeout_ms, 1000u);
  EXPECT_EQ(lo.router.max_connections, 1u);

  Config hi = parseOk(
      "router:\n  workers: 256\n  link_capacity: 100000\n"
      "  max_message_inflight_bytes: 1073741824\n  max_frame_size: 4194304\n"
      "  session_capacity: 1073741824\n  idle_timeout_ms: 3600000\n"
      "  max_connections: 1000000\n");
  EXPECT_EQ(hi.router.workers, 256);
  EXPECT_EQ(hi.router.link_capacity, 100000);
  EXPECT_EQ(hi.router.max_message_inflight_bytes, 1073741824u);
  EXPECT_EQ(hi.router.max_frame_size, 4194304u);
  EXPECT_EQ(hi.router.session_capacity, 1073741824u);
  EXPECT_EQ(hi.router.idle_timeout_ms, 3600000u);
  EXPECT_EQ(hi.router.max_connections, 1000000u);

  EXPECT_EQ(parseOk("listeners: [{name: a, port: 0}]").listeners[0].port, 0);
  EXPECT_EQ(parseOk("listeners: [{name: a, port: 65535}]").listeners[0].port, 65535);
}

TEST(ConfigParse, IntegerSpellings) {
  EXPECT_EQ(parseOk("router: {workers: +4}").router.workers, 4);
  EXPECT_EQ(parseOk("router: {workers: \"4\"}").router.workers, 4);  // quoted is accepted
  EXPECT_EQ(parseOk("router: {max_connections: -0}").router.max_connections, 0u);
  EXPECT_EQ(parseOk("listeners: [{name: a, port: 0}]").listeners[0].port, 0);
}

TEST(ConfigParse, ScalarStringsOfOtherYamlTypes) {
  // Names are strings even when YAML would read them as numbers or booleans.
  Config c = parseOk("router: {id: 123}\nlisteners: [{name: true, host: 10}]\n");
  EXPECT_EQ(c.router.id, "123");
  EXPECT_EQ(c.listeners[0].name, "true");
  EXPECT_EQ(c.listeners[0].host, "10");
}

TEST(ConfigParse, NameOfMaximumLength) {
  const std::string id(64, 'x');
  EXPECT_EQ(parseOk("router: {id: " + id + "}").router.id, id);
  EXPECT_EQ(parseOk("router: {id: A-z_0.9}").router.id, "A-z_0.9");
}

TEST(ConfigParse, AnchorsAndAliases) {
  Config c = parseOk("listeners:\n  - name: a\n    port: &p 7000\n  - name: b\n    port: *p\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[1].port, 7000);
}

TEST(ConfigParse, TrailingEmptyDocumentIsIgnored) {
  EXPECT_EQ(parseOk("router: {id: x}\n---\n").router.id, "x");
}

TEST(ConfigParse, PrefixAndPatternWithSameTextAreDistinctRules) {
  Config c = parseOk("addresses:\n  - prefix: a.b\n  - pattern: a.b\n");
  EXPECT_EQ(c.addresses.size(), 2u);
}

// ------------------------------------------------------------------ errors

TEST(ConfigErrors, UnknownFields) {
  expectError("listeners:\n  - name: amqp\n    prot: 5672\n", 3, 5, "listeners[0].prot",
              "unknown field 'prot' (expected one of: name, host, port, role, cost, tls_profile, "
              "sasl_mechanisms, users_file, verify_router_id, insecure, max_connections, "
              "handshake_timeout_ms, idle_timeout_ms)");
  expectError("routr:\n  id: x\n", 1, 1, "routr",
              "unknown field 'routr' (expected one of: router, listeners, connectors, addresses, "
              "tcp_listeners, tcp_connectors, http_listeners, http_connectors, management, "
              "tls_profiles, claims)");
  expectError("router:\n  id: x\n  worker: 2\n", 3, 3, "router.worker",
              "unknown field 'worker' (expected one of: id, mode, workers, link_capacity, "
              "max_message_inflight_bytes, max_frame_size, session_capacity, idle_timeout_ms, "
              "max_connections, hello_interval_ms, dead_interval_ms, stream_window_bytes, "
              "max_unsettled_per_link, max_sessions_per_connection, max_links_per_connection, "
              "max_receivers_per_connection, max_dynamic_addresses_per_connection, "
              "max_unsettled_per_connection, max_auth_failures_per_source, "
              "auth_failure_window_ms, max_stream_links, key_file, max_routers, max_addresses, "
              "max_addresses_per_router, max_updates_per_neighbor_per_second, "
              "max_update_burst_per_neighbor)");
  expectError("addresses:\n  - prefix: a\n  - prefix: b\n    distrib: closest\n", 4, 5,
              "addresses[1].distrib",
              "unknown field 'distrib' (expected one of: prefix, pattern, distribution)");
  // Keys are case-sensitive.
  expectError("Router: {}\n", 1, 1, "Router", "unknown field 'Router'");
}

TEST(ConfigErrors, UnknownFieldExactMessage) {
  ConfigError e = parseErr("listeners:\n  - name: amqp\n    prot: 5672\n");
  EXPECT_EQ(e.toString(),
            "test.yaml:3:5: field 'listeners[0].prot': unknown field 'prot' (expected one of: "
            "name, host, port, role, cost, tls_profile, sasl_mechanisms, users_file, "
            "verify_router_id, insecure, max_connections, handshake_timeout_ms, idle_timeout_ms)");
}

TEST(ConfigErrors, DuplicateKeys) {
  expectError("router:\n  workers: 2\n  workers: 3\n", 3, 3, "router.workers",
              "duplicate field 'workers' (first given at line 2)");
  expectError("router: {}\nrouter: {}\n", 2, 1, "router", "duplicate field 'router'");
  expectError("listeners:\n  - {name: a, port: 1, port: 2}\n", 2, 24, "listeners[0].port",
              "duplicate field 'port'");
}

TEST(ConfigErrors, NonScalarKey) {
  expectError("? [a]\n: 1\n", 1, 3, "", "expected a field name, got a sequence");
}

TEST(ConfigErrors, TopLevelNotAMapping) {
  expectError("- a\n- b\n", 1, 1, "", "expected a mapping at the top level, got a sequence");
  expectError("hello\n", 1, 1, "", "expected a mapping at the top level, got a scalar");
}

TEST(ConfigErrors, WrongSectionTypes) {
  expectError("router:\n  - id: x\n", 2, 3, "router", "expected a mapping, got a sequence");
  expectError("router: fast\n", 1, 9, "router", "expected a mapping, got a scalar");
  expectError("listeners:\n  name: a\n", 2, 3, "listeners", "expected a sequence, got a mapping");
  expectError("addresses: mc/\n", 1, 12, "addresses", "expected a sequence, got a scalar");
  expectError("listeners:\n  - amqp\n", 2, 5, "listeners[0]", "expected a mapping, got a scalar");
  expectError("addresses:\n  - prefix: a\n  - [b]\n", 3, 5, "addresses[1]",
              "expected a mapping, got a sequence");
}

TEST(ConfigErrors, WrongValueTypes) {
  expectError("router:\n  id: {a: b}\n", 2, 7, "router.id", "expected a string, got a mapping");
  expectError("router:\n  id: [a]\n", 2, 7, "router.id", "expected a string, got a sequence");
  expectError("router:\n  workers: {n: 1}\n", 2, 12, "router.workers",
              "expected an integer, got a mapping");
  expectError("listeners:\n  - name: a\n    port: [1]\n", 3, 11, "listeners[0].port",
              "expected an integer, got a sequence");
  expectError("listeners:\n  - name: a\n    role: [edge]\n", 3, 11, "listeners[0].role",
              "expected a string, got a sequence");
}

TEST(ConfigErrors, MissingValues) {
  // A key without a value is reported at the key.
  expectError("router:\n  id:\n  mode: edge\n", 2, 3, "router.id",
              "missing value (expected a string)");
  expectError("router:\n  workers:\n", 2, 3, "router.workers",
              "missing value (expected an integer)");
  expectError("listeners:\n  - name: a\n    host: ~\n", 3, 5, "listeners[0].host",
              "missing value (expected a string)");
  expectError("addresses:\n  - prefix: null\n", 2, 5, "addresses[0].prefix", "missing value");
}

TEST(ConfigErrors, NotAnInteger) {
  for (const char* v :
       {"abc", "1.5", "0x10", "1e3", "''", "+", "12abc", "1 000", "0o17", ".inf", "true"}) {
    SCOPED_TRACE(v);
    expectError(std::string("router:\n  workers: ") + v + "\n", 2, 12, "router.workers",
                "expected an integer, got '");
  }
  ConfigError e = parseErr("router:\n  workers: abc\n");
  EXPECT_EQ(e.message, "expected an integer, got 'abc'");
}

TEST(ConfigErrors, LeadingZerosRejected) {
  expectError("listeners:\n  - name: a\n    port: 0080\n", 3, 11, "listeners[0].port",
              "invalid integer '0080': leading zeros are not allowed");
}

TEST(ConfigErrors, NegativeAndOverflow) {
  expectError("router:\n  workers: -1\n", 2, 12, "router.workers",
              "value -1 is out of range (allowed: 1..256)");
  expectError("router:\n  max_connections: -5\n", 2, 20, "router.max_connections",
              "value -5 is out of range (allowed: 0..1000000)");
  expectError("router:\n  link_capacity: 99999999999999999999999999\n", 2, 18,
              "router.link_capacity",
              "value 99999999999999999999999999 is out of range (allowed: 1..100000)");
  // Exactly 2^64 and 2^32 (would wrap in 64/32-bit arithmetic).
  expectError("router:\n  max_frame_size: 18446744073709551616\n", 2, 19, "router.max_frame_size",
              "is out of range (allowed: 512..4194304)");
  expectError("router:\n  max_frame_size: 4294967808\n", 2, 19, "router.max_frame_size",
              "value 4294967808 is out of range (allowed: 512..4194304)");
  expectError("listeners:\n  - name: a\n    port: 65536\n", 3, 11, "listeners[0].port",
              "value 65536 is out of range (allowed: 0..65535)");
  expectError("listeners:\n  - name: a\n    port: -1\n", 3, 11, "listeners[0].port",
              "value -1 is out of range (allowed: 0..65535)");
}

struct RangeCase {
  const char* key;
  const char* value;
  const char* allowed;
};

TEST(ConfigErrors, RouterRanges) {
  const RangeCase cases[] = {
      {"workers", "0", "1..256"},
      {"workers", "257", "1..256"},
      {"link_capacity", "0", "1..100000"},
      {"link_capacity", "100001", "1..100000"},
      {"max_message_inflight_bytes", "16383", "16384..1073741824"},
      {"max_message_inflight_bytes", "1073741825", "16384..1073741824"},
      {"max_frame_size", "511", "512..4194304"},
      {"max_frame_size", "4194305", "512..4194304"},
      {"session_capacity", "1073741825", "512..1073741824"},
      {"idle_timeout_ms", "1", "0 or 1000..3600000"},
      {"idle_timeout_ms", "999", "0 or 1000..3600000"},
      {"idle_timeout_ms", "3600001", "0 or 1000..3600000"},
      {"max_connections", "1000001", "0..1000000"},
  };
  for (const RangeCase& c : cases) {
    const std::string yaml = std::string("router:\n  id: r\n  ") + c.key + ": " + c.value + "\n";
    const int column = static_cast<int>(std::string(c.key).size()) + 5;
    expectError(yaml, 3, column, std::string("router.") + c.key,
                std::string("value ") + c.value + " is out of range (allowed: " + c.allowed + ")");
  }
}

TEST(ConfigErrors, SessionCapacityBelowFrameSize) {
  expectError("router:\n  max_frame_size: 65536\n  session_capacity: 4096\n", 3, 21,
              "router.session_capacity", "value 4096 is smaller than max_frame_size (65536)");
  // Only session_capacity given: it must still hold one default-sized frame.
  expectError("router:\n  session_capacity: 8192\n", 2, 21, "router.session_capacity",
              "value 8192 is smaller than max_frame_size (65536)");
  // Equal is fine.
  Config c = parseOk("router:\n  max_frame_size: 4194304\n  session_capacity: 4194304\n");
  EXPECT_EQ(c.router.session_capacity, 4194304u);
}

TEST(ConfigErrors, InvalidEnumValues) {
  expectError("router:\n  mode: core\n", 2, 9, "router.mode",
              "invalid value 'core' (expected one of: interior, edge)");
  expectError("router:\n  mode: Interior\n", 2, 9, "router.mode", "invalid value 'Interior'");
  expectError("listeners:\n  - name: a\n    role: inter_router\n", 3, 11, "listeners[0].role",
              "invalid value 'inter_router' (expected one of: normal, inter-router, edge)");
  expectError("addresses:\n  - prefix: a\n    distribution: anycast\n", 3, 19,
              "addresses[0].distribution",
              "invalid value 'anycast' (expected one of: balanced, closest, multicast)");
}

TEST(ConfigErrors, InvalidNames) {
  expectError("router:\n  id: ''\n", 2, 7, "router.id", "must not be empty");
  expectError("router:\n  id: " + std::string(65, 'a') + "\n", 2, 7, "router.id",
              "is too long (65 characters, at most 64)");
  expectError("router:\n  id: router a\n", 2, 7, "router.id",
              "invalid character ' ' in 'router a' (allowed: letters, digits, '.', '_', '-')");
  expectError("router:\n  id: a/b\n", 2, 7, "router.id", "invalid character '/'");
  expectError("router:\n  id: \"caf\xc3\xa9\"\n", 2, 7, "router.id", "invalid character '\\xc3'");
  expectError("listeners:\n  - name: \"a:b\"\n", 2, 11, "listeners[0].name",
              "invalid character ':'");
  expectError("listeners:\n  - name: \"\"\n", 2, 11, "listeners[0].name", "must not be empty");
}

TEST(ConfigErrors, EmptyHost) {
  expectError("listeners:\n  - name: a\n    host: ''\n", 3, 11, "listeners[0].host",
              "must not be empty");
}

TEST(ConfigErrors, MissingListenerName) {
  // Reported at the start of the listener's mapping.
  expectError("listeners:\n  - name: a\n  - host: h\n    port: 1\n", 3, 5, "listeners[1].name",
              "missing required field 'name'");
  expectError("listeners: [{port: 1}]\n", 1, 13, "listeners[0].name",
              "missing required field 'name'");
  expectError("listeners:\n  - {}\n", 2, 5, "listeners[0].name", "missing required field 'name'");
}

TEST(ConfigErrors, DuplicateListenerNames) {
  expectError(
      "listeners:\n  - name: amqp\n    port: 1\n  - name: other\n  - port: 2\n    name: amqp\n", 6,
      11, "listeners[2].name",
      "duplicate listener name 'amqp' (already used by listeners[0] at line 2)");
}

TEST(ConfigErrors, AddressNeedsExactlyOneOfPrefixOrPattern) {
  expectError("addresses:\n  - distribution: closest\n", 2, 5, "addresses[0]",
              "missing required field: one of 'prefix' or 'pattern'");
  expectError("addresses:\n  - {}\n", 2, 5, "addresses[0]", "missing required field");
  expectError("addresses:\n  - prefix: a\n    pattern: b.*\n", 3, 5, "addresses[0].pattern",
              "'prefix' and 'pattern' are mutually exclusive (give exactly one)");
  expectError("addresses:\n  - pattern: b.*\n    prefix: a\n", 3, 5, "addresses[0].prefix",
              "'prefix' and 'pattern' are mutually exclusive");
  expectError("addresses:\n  - prefix: ''\n", 2, 13, "addresses[0].prefix", "must not be empty");
  expectError("addresses:\n  - pattern: \"\"\n", 2, 14, "addresses[0].pattern",
              "must not be empty");
}

TEST(ConfigErrors, DuplicateAddressRules) {
  expectError("addresses:\n  - prefix: mc/\n  - prefix: x\n  - prefix: mc/\n", 4, 13,
              "addresses[2].prefix",
              "duplicate address prefix 'mc/' (already defined by addresses[0] at line 2)");
  // Same key with a different distribution is a conflict too.
  expectError(
      "addresses:\n  - prefix: mc/\n    distribution: multicast\n  - prefix: mc/\n"
      "    distribution: closest\n",
      4, 13, "addresses[1].prefix", "duplicate address prefix 'mc/'");
  expectError("addresses:\n  - pattern: a.*.c\n  - pattern: a.*.c\n", 3, 14, "addresses[1].pattern",
              "duplicate address pattern 'a.*.c' (same as 'a.*.c' in addresses[0] at line 2)");
  // '.' and '/' are equivalent separators, so these are the same rule.
  expectError("addresses:\n  - pattern: a.*.c\n  - pattern: a/*/c\n", 3, 14, "addresses[1].pattern",
              "same as 'a.*.c'");
}

TEST(ConfigErrors, YamlSyntaxErrors) {
  ConfigError e = parseErr("router:\n  id: x\n    mode: edge\n");
  EXPECT_EQ(e.file, kFile);
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 9);
  EXPECT_EQ(e.field, "");
  EXPECT_EQ(e.message, "illegal map value");
  EXPECT_EQ(e.toString(), "test.yaml:3:9: illegal map value");

  ConfigError f = parseErr("router: {id: x\n");
  EXPECT_EQ(f.toString(), "test.yaml:2:1: end of map flow not found");

  ConfigError g = parseErr("router:\n  id: x\n - bad\n");
  EXPECT_EQ(g.toString(), "test.yaml:3:2: end of map not found");

  ConfigError h = parseErr("listeners: [{name: a}\n");
  EXPECT_EQ(h.field, "");
  EXPECT_GT(h.line, 0);
  EXPECT_GT(h.column, 0);
  EXPECT_FALSE(h.message.empty());
}

TEST(ConfigErrors, MultipleDocuments) {
  expectError("router: {id: a}\n---\nrouter: {id: b}\n", 2, 1, "",
              "multiple YAML documents are not supported");
  // Content after leading empty documents is a second document too.
  expectError("---\n---\nrouter: {id: b}\n", 2, 1, "", "multiple YAML documents");
  // A header comment and explicit start/end markers are one document.
  EXPECT_EQ(parseOk("# header\n---\nrouter: {id: x}\n...\n").router.id, "x");
}

TEST(ConfigErrors, StrayTopLevelCommaIsAnError) {
  // yaml-cpp 0.7 loops forever on these when loading every document.
  expectError(",\n", 1, 1, "", "unexpected ','");
  expectError("router: {id: a}\n---\n,\n", 3, 1, "", "unexpected ','");
  expectError("!x ,\n", 1, 4, "", "unexpected ','");
  expectError("--- ,\n", 1, 5, "", "unexpected ','");
}

TEST(ConfigErrors, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = "router: " + std::string(100000, '[') + std::string(100000, ']');
  ConfigError e = parseErr(deep);
  EXPECT_FALSE(e.message.empty());
}

TEST(ConfigErrors, NoExceptionForTruncatedOrMutatedInput) {
  const std::string base =
      "router:\n  id: r\n  workers: 4\nlisteners:\n  - name: a\n    port: 1\n"
      "addresses:\n  - pattern: \"a.#\"\n    distribution: multicast\n";
  for (std::size_t n = 0; n <= base.size(); ++n) {
    EXPECT_NO_THROW(parseString(base.substr(0, n), kFile)) << n;
  }
  const char junk[] = {'\0', '{', '[', ':', '"', '\'', '&',    '*', '!', '%',
                       '@',  '`', '|', '>', '-', '\t', '\xff', '#', '?', ','};
  for (std::size_t i = 0; i < base.size(); ++i) {
    for (char j : junk) {
      std::string s = base;
      s[i] = j;
      EXPECT_NO_THROW(parseString(s, kFile)) << i;
    }
  }
}

// ---------------------------------------------------------------- toString

TEST(ConfigErrorFormat, ToString) {
  ConfigError e{"vane.yaml", 3, 5, "listeners[0].prot", "unknown field 'prot'"};
  EXPECT_EQ(e.toString(), "vane.yaml:3:5: field 'listeners[0].prot': unknown field 'prot'");
  e.field.clear();
  EXPECT_EQ(e.toString(), "vane.yaml:3:5: unknown field 'prot'");
  ConfigError n{"vane.yaml", 0, 0, "", "cannot read file: No such file or directory"};
  EXPECT_EQ(n.toString(), "vane.yaml: cannot read file: No such file or directory");
  ConfigError f{"vane.yaml", 0, 0, "router", "bad"};
  EXPECT_EQ(f.toString(), "vane.yaml: field 'router': bad");
  ConfigError c{"vane.yaml", 7, 0, "", "bad"};
  EXPECT_EQ(c.toString(), "vane.yaml:7: bad");
}

// ---------------------------------------------------------------- loadFile

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vane-config-XXXXXX").string();
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
      ADD_FAILURE() << "mkstemp failed";
      return;
    }
    ::close(fd);
    path_ = tmpl;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() {
    if (!path_.empty()) std::remove(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigLoadFile, ReadsAndParses) {
  TempFile f("router:\n  id: from-file\nlisteners:\n  - name: l1\n    port: 0\n");
  ConfigResult r = loadFile(f.path());
  ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<ConfigError>(r).toString();
  const Config& c = std::get<Config>(r);
  EXPECT_EQ(c.source, f.path());
  EXPECT_EQ(c.router.id, "from-file");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].name, "l1");
  EXPECT_EQ(c.listeners[0].port, 0);
  EXPECT_EQ(c.listeners[0].line, 4);
}

TEST(ConfigLoadFile, EmptyFileGivesDefaults) {
  TempFile f("");
  ConfigResult r = loadFile(f.path());
  ASSERT_TRUE(std::holds_alternative<Config>(r));
  ASSERT_EQ(std::get<Config>(r).listeners.size(), 1u);
}

TEST(ConfigLoadFile, ErrorNamesTheFile) {
  TempFile f("router:\n  workers: 0\n");
  ConfigResult r = loadFile(f.path());
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  const ConfigError& e = std::get<ConfigError>(r);
  EXPECT_EQ(e.file, f.path());
  EXPECT_EQ(e.toString(), f.path() +
                              ":2:12: field 'router.workers': value 0 is out of range (allowed: "
                              "1..256)");
}

TEST(ConfigLoadFile, MissingFile) {
  const std::string path = "/nonexistent-vane-dir/vane.yaml";
  ConfigResult r = loadFile(path);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  const ConfigError& e = std::get<ConfigError>(r);
  EXPECT_EQ(e.file, path);
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.column, 0);
  EXPECT_EQ(e.field, "");
  EXPECT_EQ(e.message, "cannot read file: No such file or directory");
  EXPECT_EQ(e.toString(), path + ": cannot read file: No such file or directory");
}

TEST(ConfigLoadFile, DirectoryIsAnError) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  ConfigResult r = loadFile(dir);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  EXPECT_EQ(std::get<ConfigError>(r).message, "cannot read file: Is a directory");
}

TEST(ConfigNetwork, ConnectorsCostsAndTimers) {
  Config c = parseOk(
      "router:\n  id: a\n  hello_interval_ms: 200\n  dead_interval_ms: 600\n"
      "listeners:\n  - name: inter\n    role: inter-router\n    port: 0\n    cost: 7\n    "
      "insecure: true\n"
      "connectors:\n  - name: to-b\n    host: b.example\n    port: 5673\n    cost: 3\n");
  EXPECT_EQ(c.router.hello_interval_ms, 200u);
  EXPECT_EQ(c.router.dead_interval_ms, 600u);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].cost, 7u);
  ASSERT_EQ(c.connectors.size(), 1u);
  EXPECT_EQ(c.connectors[0].name, "to-b");
  EXPECT_EQ(c.connectors[0].host, "b.example");
  EXPECT_EQ(c.connectors[0].port, 5673);
  EXPECT_EQ(c.connectors[0].role, ListenerRole::kInterRouter);
  EXPECT_EQ(c.connectors[0].cost, 3u);
  EXPECT_EQ(c.connectors[0].line, 12);
}

TEST(ConfigNetwork, ConnectorErrors) {
  expectError("connectors:\n  - name: x\n", 2, 5, "connectors[0].port",
              "missing required field 'port'");
  expectError("connectors:\n  - name: x\n    port: 1\n    cost: 0\n", 4, 11, "connectors[0].cost",
              "value 0 is out of range (allowed: 1..1000000)");
  expectError("connectors:\n  - name: x\n    port: 1\n    role: normal\n", 4, 11,
              "connectors[0].role", "invalid value 'normal' (expected one of: inter-router, edge)");
  expectError("connectors:\n  - name: x\n    port: 1\n  - name: x\n    port: 2\n", 4, 11,
              "connectors[1].name",
              "duplicate connector name 'x' (already used by connectors[0] at line 2)");
}

TEST(ConfigNetwork, RolesMustFitTheMode) {
  expectError(
      "router:\n  mode: edge\nlisteners:\n  - name: i\n    role: inter-router\n    insecure: "
      "true\n",
      4, 1, "listeners[0].role",
      "an edge router accepts only normal (client) listeners, not 'inter-router'; edge "
      "routers connect to interior routers with connectors");
  expectError("router:\n  mode: edge\nconnectors:\n  - name: c\n    port: 1\n", 4, 1,
              "connectors[0].role", "an edge router connects only with role 'edge'");
  expectError("connectors:\n  - name: c\n    port: 1\n    role: edge\n", 2, 1, "connectors[0].role",
              "role 'edge' is for connectors of edge routers (router.mode: edge); interior "
              "routers connect to each other with role 'inter-router'");
}

TEST(ConfigNetwork, IdentityKeyAndNetworkLimits) {
  Config d = parseOk("router:\n  id: a\n");
  EXPECT_EQ(d.router.key_file, "");
  EXPECT_EQ(d.router.max_routers, 1000u);
  EXPECT_EQ(d.router.max_addresses, 100000u);
  EXPECT_EQ(d.router.max_addresses_per_router, 50000u);
  EXPECT_EQ(d.router.max_updates_per_neighbor_per_second, 2000u);
  EXPECT_EQ(d.router.max_update_burst_per_neighbor, 20000u);
  Config c = parseOk(
      "router:\n  id: a\n  key_file: router-id.pem\n  max_routers: 50\n"
      "  max_addresses: 2000\n  max_addresses_per_router: 300\n"
      "  max_updates_per_neighbor_per_second: 10\n  max_update_burst_per_neighbor: 40\n");
  EXPECT_EQ(c.router.key_file, "router-id.pem");
  EXPECT_EQ(c.router.max_routers, 50u);
  EXPECT_EQ(c.router.max_addresses, 2000u);
  EXPECT_EQ(c.router.max_addresses_per_router, 300u);
  EXPECT_EQ(c.router.max_updates_per_neighbor_per_second, 10u);
  EXPECT_EQ(c.router.max_update_burst_per_neighbor, 40u);
  // A relative key_file starts at the configuration file's directory.
  resolvePaths(c, "/etc/vane");
  EXPECT_EQ(c.router.key_file, "/etc/vane/router-id.pem");
}

TEST(ConfigNetwork, IdentityKeyAndLimitErrors) {
  expectError("router:\n  key_file: \"\"\n", 2, 13, "router.key_file", "must not be empty");
  expectError("router:\n  max_routers: 0\n", 2, 16, "router.max_routers",
              "value 0 is out of range (allowed: 1..1000000)");
  expectError("router:\n  max_addresses: -1\n", 2, 18, "router.max_addresses", "out of range");
  expectError("router:\n  max_addresses_per_router: x\n", 2, 29, "router.max_addresses_per_router",
              "integer");
  expectError("router:\n  max_updates_per_neighbor_per_second: 0\n", 2, 40,
              "router.max_updates_per_neighbor_per_second",
              "value 0 is out of range (allowed: 1..10000000)");
  expectError("router:\n  max_update_burst_per_neighbor: 0\n", 2, 34,
              "router.max_update_burst_per_neighbor",
              "value 0 is out of range (allowed: 1..100000000)");
}

TEST(ConfigNetwork, DeadIntervalMustCoverTwoHellos) {
  expectError("router:\n  hello_interval_ms: 2000\n", 2, 22, "router.hello_interval_ms",
              "dead_interval_ms (3000) must be at least twice hello_interval_ms (2000), or one "
              "lost hello drops a neighbour");
}

}  // namespace
}  // namespace vane::config

namespace vane::config {
namespace {

TEST(ConfigTcp, ListenersConnectorsAndWindow) {
  Config c = parseOk(
      "router:\n  id: a\n  stream_window_bytes: 262144\n"
      "tcp_listeners:\n  - name: db-local\n    port: 15432\n    address: db\n"
      "  - name: any\n    host: 0.0.0.0\n    port: 0\n    address: orders/eu\n"
      "tcp_connectors:\n  - name: db\n    host: 10.0.0.5\n    port: 5432\n    address: db\n");
  EXPECT_EQ(c.router.stream_window_bytes, 262144u);
  ASSERT_EQ(adaptors::kTcpListeners.of(c).size(), 2u);
  EXPECT_EQ(adaptors::kTcpListeners.of(c)[0].name, "db-local");
  EXPECT_EQ(adaptors::kTcpListeners.of(c)[0].host, "127.0.0.1");
  EXPECT_EQ(adaptors::kTcpListeners.of(c)[0].port, 15432);
  EXPECT_EQ(adaptors::kTcpListeners.of(c)[0].address, "db");
  EXPECT_EQ(adaptors::kTcpListeners.of(c)[1].port, 0);
  EXPECT_EQ(adaptors::kTcpListeners.of(c)[1].address, "orders/eu");
  ASSERT_EQ(adaptors::kTcpConnectors.of(c).size(), 1u);
  EXPECT_EQ(adaptors::kTcpConnectors.of(c)[0].host, "10.0.0.5");
  EXPECT_EQ(adaptors::kTcpConnectors.of(c)[0].port, 5432);
  EXPECT_EQ(adaptors::kTcpConnectors.of(c)[0].line, 13);
  EXPECT_EQ(parseOk("router:\n  id: a\n").router.stream_window_bytes, 1u << 20);
}

TEST(ConfigTcp, Errors) {
  expectError("tcp_listeners:\n  - port: 1\n    address: a\n", 2, 5, "tcp_listeners[0].name",
              "missing required field 'name'");
  expectError("tcp_listeners:\n  - name: x\n    address: a\n", 2, 5, "tcp_listeners[0].port",
              "missing required field 'port'");
  expectError("tcp_connectors:\n  - name: x\n    port: 1\n", 2, 5, "tcp_connectors[0].address",
              "missing required field 'address'");
  expectError("tcp_connectors:\n  - name: x\n    port: 0\n    address: a\n", 3, 11,
              "tcp_connectors[0].port", "value 0 is out of range (allowed: 1..65535)");
  expectError("tcp_listeners:\n  - name: x\n    port: 1\n    address: _vane/tcp/a\n", 4, 14,
              "tcp_listeners[0].address",
              "addresses starting with '_vane/' are reserved for the router");
  expectError("tcp_listeners:\n  - name: x\n    port: 1\n    address: \"\"\n", 4, 14,
              "tcp_listeners[0].address", "must not be empty");
  expectError(
      "tcp_connectors:\n  - name: x\n    port: 1\n    address: a\n  - name: x\n    port: 2\n"
      "    address: b\n",
      5, 11, "tcp_connectors[1].name",
      "duplicate tcp connector name 'x' (already used by tcp_connectors[0] at line 2)");
  expectError("tcp_listeners:\n  - name: x\n    port: 1\n    adress: a\n", 4, 5,
              "tcp_listeners[0].adress",
              "unknown field 'adress' (expected one of: name, host, port, address)");
  expectError("router:\n  stream_window_bytes: 1000\n", 2, 24, "router.stream_window_bytes",
              "value 1000 is out of range (allowed: 65536..1073741824)");
}

}  // namespace
}  // namespace vane::config

namespace vane::config {
namespace {

TEST(ConfigManagement, ManagementAndTlsProfiles) {
  Config c = parseOk(
      "tls_profiles:\n  - name: m\n    certificate: /c.pem\n    key: /k.pem\n    ca: /ca.pem\n"
      "management:\n  port: 8672\n  tls_profile: m\n  token: 0123456789abcdef\n");
  EXPECT_TRUE(c.management.enabled);
  EXPECT_EQ(c.management.host, "127.0.0.1");
  EXPECT_EQ(c.management.port, 8672);
  EXPECT_EQ(c.management.tls_profile, "m");
  ASSERT_EQ(c.tls_profiles.size(), 1u);
  EXPECT_EQ(c.tls_profiles[0].certificate, "/c.pem");
  EXPECT_EQ(c.tls_profiles[0].ca, "/ca.pem");
  EXPECT_FALSE(parseOk("router:\n  id: a\n").management.enabled);
}

TEST(ConfigManagement, Errors) {
  expectError("management:\n  host: 127.0.0.1\n", 2, 3, "management.port",
              "missing required field 'port'");
  expectError("management:\n  port: 1\n  token: short\n", 3, 10, "management.token",
              "a token must be at least 16 characters long");
  expectError("management:\n  port: 1\n  tls_profile: nope\n", 3, 1, "management.tls_profile",
              "no tls profile named 'nope' (define it under tls_profiles)");
  expectError("tls_profiles:\n  - name: m\n    key: /k.pem\n", 2, 5, "tls_profiles[0].certificate",
              "missing required field 'certificate'");
  expectError("management:\n  host: 0.0.0.0\n  port: 1\n", 2, 3, "management.token",
              "a management API on 0.0.0.0 (not loopback) needs a token: anyone who can reach it "
              "could change the router");
  expectError("management:\n  host: 10.1.2.3\n  port: 1\n", 2, 3, "management.token",
              "a management API on 10.1.2.3 (not loopback) needs a token: anyone who can reach "
              "it could change the router");
}

TEST(ConfigRouter, MaxUnsettledPerLink) {
  EXPECT_EQ(parseOk("router:\n  id: a\n").router.max_unsettled_per_link, 1000u);
  EXPECT_EQ(parseOk("router:\n  max_unsettled_per_link: 1\n").router.max_unsettled_per_link, 1u);
  expectError("router:\n  max_unsettled_per_link: 0\n", 2, 27, "router.max_unsettled_per_link",
              "value 0 is out of range (allowed: 1..1000000)");
}

TEST(ConfigRouter, ConnectionLimits) {
  const Config d = parseOk("router:\n  id: a\n");
  EXPECT_EQ(d.router.max_sessions_per_connection, 64u);
  EXPECT_EQ(d.router.max_links_per_connection, 10000u);
  EXPECT_EQ(d.router.max_receivers_per_connection, 5000u);
  EXPECT_EQ(d.router.max_dynamic_addresses_per_connection, 1000u);
  EXPECT_EQ(d.router.max_unsettled_per_connection, 10000u);
  EXPECT_EQ(d.router.max_auth_failures_per_source, 10u);
  EXPECT_EQ(d.router.auth_failure_window_ms, 60000u);
  const Config c = parseOk(
      "router:\n  max_sessions_per_connection: 2\n  max_links_per_connection: 3\n"
      "  max_receivers_per_connection: 4\n  max_dynamic_addresses_per_connection: 0\n"
      "  max_unsettled_per_connection: 6\n  max_auth_failures_per_source: 0\n"
      "  auth_failure_window_ms: 1000\n");
  EXPECT_EQ(c.router.max_sessions_per_connection, 2u);
  EXPECT_EQ(c.router.max_links_per_connection, 3u);
  EXPECT_EQ(c.router.max_receivers_per_connection, 4u);
  EXPECT_EQ(c.router.max_dynamic_addresses_per_connection, 0u);
  EXPECT_EQ(c.router.max_unsettled_per_connection, 6u);
  EXPECT_EQ(c.router.max_auth_failures_per_source, 0u);
  EXPECT_EQ(c.router.auth_failure_window_ms, 1000u);
  expectError("router:\n  max_sessions_per_connection: 0\n", 2, 32,
              "router.max_sessions_per_connection", "value 0 is out of range (allowed: 1..1024)");
  expectError("router:\n  auth_failure_window_ms: 10\n", 2, 27, "router.auth_failure_window_ms",
              "value 10 is out of range (allowed: 1000..86400000)");
  EXPECT_EQ(d.router.max_stream_links, 16000u);
  EXPECT_EQ(parseOk("router:\n  max_stream_links: 5\n").router.max_stream_links, 5u);
  expectError("router:\n  max_stream_links: 16001\n", 2, 21, "router.max_stream_links",
              "value 16001 is out of range (allowed: 1..16000)");
}

TEST(ConfigListener, Limits) {
  const Config d = parseOk("listeners:\n  - {name: a, port: 1}\n");
  EXPECT_EQ(d.listeners[0].max_connections, 0u);
  EXPECT_EQ(d.listeners[0].handshake_timeout_ms, 10000u);
  EXPECT_FALSE(d.listeners[0].idle_timeout_ms.has_value());
  const Config c = parseOk(
      "listeners:\n  - {name: a, port: 1, max_connections: 5, handshake_timeout_ms: 500,"
      " idle_timeout_ms: 0}\n");
  EXPECT_EQ(c.listeners[0].max_connections, 5u);
  EXPECT_EQ(c.listeners[0].handshake_timeout_ms, 500u);
  EXPECT_EQ(c.listeners[0].idle_timeout_ms, 0u);
  expectError("listeners:\n  - {name: a, port: 1, idle_timeout_ms: 5}\n", 2, 41,
              "listeners[0].idle_timeout_ms",
              "value 5 is out of range (allowed: 0 or 1000..3600000)");
  expectError("listeners:\n  - {name: a, port: 1, handshake_timeout_ms: 5}\n", 2, 46,
              "listeners[0].handshake_timeout_ms", "out of range (allowed: 100..600000)");
}

TEST(ConfigManagement, HttpLimits) {
  const Config d = parseOk("management:\n  port: 1\n");
  EXPECT_EQ(d.management.limits.max_connections, 64u);
  EXPECT_EQ(d.management.limits.max_connections_per_source, 8u);
  EXPECT_EQ(d.management.limits.header_timeout_ms, 10000u);
  EXPECT_EQ(d.management.limits.idle_timeout_ms, 30000u);
  const Config c = parseOk(
      "management:\n  port: 1\n  max_connections: 3\n  max_connections_per_source: 2\n"
      "  header_timeout_ms: 200\n  idle_timeout_ms: 300\n");
  EXPECT_EQ(c.management.limits.max_connections, 3u);
  EXPECT_EQ(c.management.limits.max_connections_per_source, 2u);
  EXPECT_EQ(c.management.limits.header_timeout_ms, 200u);
  EXPECT_EQ(c.management.limits.idle_timeout_ms, 300u);
  expectError("management:\n  port: 1\n  max_connections_per_source: 0\n", 3, 31,
              "management.max_connections_per_source", "out of range (allowed: 1..100000)");
}

TEST(ConfigManagement, LoopbackNeedsNoToken) {
  for (const char* host : {"127.0.0.1", "127.8.9.10", "::1", "localhost"}) {
    EXPECT_EQ(
        parseOk(std::string("management:\n  host: '") + host + "'\n  port: 1\n").management.host,
        host);
  }
  EXPECT_EQ(parseOk("management:\n  host: 0.0.0.0\n  port: 1\n  token: 0123456789abcdef\n")
                .management.host,
            "0.0.0.0");
}

constexpr const char* kProfiles =
    "tls_profiles:\n  - {name: t, certificate: c.pem, key: k.pem, ca: ca.pem}\n"
    "  - {name: noca, certificate: c.pem, key: k.pem}\n";

TEST(ConfigSecurity, ListenersConnectorsAndClaims) {
  Config c = parseOk(std::string(kProfiles) +
                     "listeners:\n"
                     "  - {name: links, port: 1, role: inter-router, tls_profile: t}\n"
                     "  - {name: app, port: 2, tls_profile: t, sasl_mechanisms: [PLAIN, EXTERNAL],"
                     " users_file: users}\n"
                     "connectors:\n"
                     "  - {name: b, port: 3, tls_profile: t, verify_host: false}\n"
                     "claims: {port: 4, tls_profile: t, ca_certificate: ca.pem, ca_key: ca-key.pem,"
                     " state_file: tokens.json, advertise_host: b.example}\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].tls_profile, "t");
  EXPECT_EQ(c.listeners[0].sasl_mechanisms, std::vector<std::string>{"ANONYMOUS"});
  EXPECT_EQ(c.listeners[1].sasl_mechanisms, (std::vector<std::string>{"PLAIN", "EXTERNAL"}));
  EXPECT_EQ(c.listeners[1].users_file, "users");
  EXPECT_EQ(c.connectors[0].tls_profile, "t");
  EXPECT_FALSE(c.connectors[0].verify_host);
  EXPECT_TRUE(c.claims.enabled);
  EXPECT_EQ(c.claims.host, "0.0.0.0");
  EXPECT_EQ(c.claims.advertise_host, "b.example");
  // Relative file names start at the configuration file's directory.
  resolvePaths(c, "/etc/vane");
  EXPECT_EQ(c.tls_profiles[0].certificate, "/etc/vane/c.pem");
  EXPECT_EQ(c.listeners[1].users_file, "/etc/vane/users");
  EXPECT_EQ(c.claims.state_file, "/etc/vane/tokens.json");
  EXPECT_TRUE(parseOk("connectors:\n  - {name: b, port: 3}\n").connectors[0].verify_host);
}

TEST(ConfigSecurity, Errors) {
  const std::string p = kProfiles;  // 3 lines
  expectError(p + "listeners:\n  - {name: a, port: 1, sasl_mechanisms: [PLAIN]}\n", 5, 41,
              "listeners[0].sasl_mechanisms", "PLAIN needs users_file");
  expectError(p + "listeners:\n  - {name: a, port: 1, sasl_mechanisms: [PLAIN], users_file: u}\n",
              5, 41, "listeners[0].sasl_mechanisms", "set tls_profile");
  expectError(p + "listeners:\n  - {name: a, port: 1, sasl_mechanisms: [EXTERNAL]}\n", 5, 41,
              "listeners[0].sasl_mechanisms", "EXTERNAL takes the identity");
  expectError(p + "listeners:\n  - {name: a, port: 1, sasl_mechanisms: [GSSAPI]}\n", 5, 42,
              "listeners[0].sasl_mechanisms", "unknown SASL mechanism 'GSSAPI'");
  expectError(p + "listeners:\n  - {name: a, port: 1, sasl_mechanisms: []}\n", 5, 41,
              "listeners[0].sasl_mechanisms", "non-empty list");
  expectError(p + "listeners:\n  - {name: a, port: 1, role: edge, sasl_mechanisms: [ANONYMOUS]}\n",
              5, 53, "listeners[0].sasl_mechanisms", "normal (client) listeners");
  expectError(p + "listeners:\n  - {name: a, port: 1, role: inter-router, tls_profile: noca}\n", 5,
              1, "listeners[0].tls_profile", "has no 'ca'");
  // A router listener needs TLS, or says insecure.
  expectError("listeners:\n  - {name: i, port: 1, role: inter-router}\n", 2, 5,
              "listeners[0].tls_profile", "takes any peer that connects for a router");
  expectError("listeners:\n  - {name: e, port: 1, role: edge}\n", 2, 5, "listeners[0].tls_profile",
              "an edge listener without TLS");
  expectError("listeners:\n  - {name: e, port: 1, role: edge, insecure: false}\n", 2, 5,
              "listeners[0].tls_profile", "insecure: true for a test on loopback");
  EXPECT_TRUE(parseOk("listeners:\n  - {name: i, port: 1, role: inter-router, insecure: true}\n")
                  .listeners[0]
                  .insecure);
  EXPECT_FALSE(
      parseOk(p + "listeners:\n  - {name: a, port: 1, role: inter-router, tls_profile: t}\n")
          .listeners[0]
          .insecure);
  expectError("listeners:\n  - {name: a, port: 1, insecure: true}\n", 2, 34,
              "listeners[0].insecure", "insecure applies to router listeners");
  expectError(
      p + "listeners:\n  - {name: a, port: 1, role: edge, tls_profile: t, insecure: true}\n", 5, 62,
      "listeners[0].insecure", "contradict");
  expectError(p + "listeners:\n  - {name: a, port: 1, tls_profile: nope}\n", 5, 1,
              "listeners[0].tls_profile", "no tls profile named 'nope'");
  // HTTP: a listener's profile must exist; a connector's must have a ca.
  EXPECT_EQ(
      adaptors::kHttpListeners
          .of(parseOk(
              p + "http_listeners:\n  - {name: w, port: 1, address: a, tls_profile: noca}\n"))[0]
          .tls_profile,
      "noca");
  expectError(p + "http_listeners:\n  - {name: w, port: 1, address: a, tls_profile: nope}\n", 5, 1,
              "http_listeners[0].tls_profile", "no tls profile named 'nope'");
  expectError(p + "http_connectors:\n  - {name: w, port: 1, address: a, tls_profile: noca}\n", 5, 1,
              "http_connectors[0].tls_profile", "has no 'ca'");
  EXPECT_EQ(
      adaptors::kHttpConnectors
          .of(parseOk(p +
                      "http_connectors:\n  - {name: w, port: 1, address: a, tls_profile: t}\n"))[0]
          .tls_profile,
      "t");
  expectError(p + "listeners:\n  - {name: a, port: 1, verify_router_id: true}\n", 5, 42,
              "listeners[0].verify_router_id", "needs a router listener");
  EXPECT_TRUE(parseOk(p + "listeners:\n  - {name: a, port: 1, role: inter-router, tls_profile: t,"
                          " verify_router_id: true}\n")
                  .listeners[0]
                  .verify_router_id);
  expectError(p + "connectors:\n  - {name: b, port: 1, tls_profile: noca}\n", 5, 1,
              "connectors[0].tls_profile", "verify the server");
  expectError(p + "connectors:\n  - {name: b, port: 1, verify_host: yes}\n", 5, 37,
              "connectors[0].verify_host", "expected true or false");
  expectError(p + "claims: {port: 4, tls_profile: t}\n", 4, 9, "claims.ca_certificate",
              "missing required field 'ca_certificate'");
  expectError(p + "claims: {port: 4, tls_profile: x, ca_certificate: a, ca_key: b, state_file: c,"
                  " advertise_host: h}\n",
              4, 1, "claims.tls_profile", "no tls profile named 'x'");
}

}  // namespace
}  // namespace vane::config
