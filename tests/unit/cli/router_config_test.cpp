// The vaned.yaml the CLI writes, read by vaned's parser: the file of
// `vane site init` and every entry the commands add.
#include "cli/router_config.hpp"

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "adaptors/http/http_config.hpp"
#include "adaptors/sections.hpp"
#include "adaptors/tcp/tcp_config.hpp"
#include "cli/errors.hpp"
#include "config/config.hpp"

// The schema these tests read has the adaptors' sections too.
[[maybe_unused]] static const bool kAdaptorSections = (vane::adaptors::addConfigSections(), true);

namespace vane::cli {
namespace {

SiteInfo site() {
  SiteInfo s;
  s.name = "a";
  s.hosts = {"a.example.org", "10.0.0.1"};
  s.link_port = 55671;
  s.claim_port = 55672;
  s.management_port = 55673;
  s.amqp_port = 5672;
  s.management_token = "0123456789abcdef0123456789abcdef";
  return s;
}

config::Config parse(const RouterConfig& file) {
  const std::string text = file.text();
  config::ConfigResult r = config::parseString(text, "vaned.yaml");
  if (const auto* e = std::get_if<config::ConfigError>(&r)) {
    ADD_FAILURE() << e->toString() << "\nin:\n" << text;
    return {};
  }
  return std::get<config::Config>(r);
}

TEST(RouterConfigFile, InitialIsWhatVanedReads) {
  const config::Config c = parse(RouterConfig::initial(site()));
  EXPECT_EQ(c.router.id, "a");
  EXPECT_EQ(c.router.key_file, "identity-key.pem");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].name, "links");
  EXPECT_EQ(c.listeners[0].port, 55671);
  EXPECT_EQ(c.listeners[0].role, config::ListenerRole::kInterRouter);
  EXPECT_TRUE(c.listeners[0].verify_router_id);
  EXPECT_EQ(c.listeners[1].port, 5672);
  EXPECT_TRUE(c.management.enabled);
  EXPECT_EQ(c.management.port, 55673);
  ASSERT_EQ(c.tls_profiles.size(), 1u);
  config::TlsProfileConfig profile = c.tls_profiles[0];
  profile.line = 0;
  EXPECT_TRUE(profile == (config::TlsProfileConfig{.name = "site",
                                                   .ca = "ca.pem",
                                                   .certificate = "router.pem",
                                                   .key = "router-key.pem",
                                                   .key_password_file = ""}));
  EXPECT_TRUE(c.claims.enabled);
  EXPECT_EQ(c.claims.advertise_host, "a.example.org");
  EXPECT_TRUE(c.connectors.empty());
  EXPECT_TRUE(adaptors::kTcpConnectors.of(c).empty());
  EXPECT_TRUE(adaptors::kTcpListeners.of(c).empty());

  SiteInfo no_amqp = site();
  no_amqp.amqp_port = 0;
  EXPECT_EQ(parse(RouterConfig::initial(no_amqp)).listeners.size(), 1u);
}

TEST(RouterConfigFile, AddedEntriesAreWhatVanedReads) {
  RouterConfig file = RouterConfig::initial(site());
  const config::TlsProfileConfig profile{.name = "link-b",
                                         .ca = "links/b/ca.pem",
                                         .certificate = "links/b/cert.pem",
                                         .key = "links/b/key.pem",
                                         .key_password_file = ""};
  const config::ConnectorConfig connector{
      .name = "b", .host = "b.example.org", .port = 55681, .cost = 3, .tls_profile = "link-b"};
  const adaptors::TcpConnectorConfig exposed{
      .name = "echo", .host = "10.0.0.7", .port = 7, .address = "svc/echo"};
  const adaptors::TcpListenerConfig listener{
      .name = "echo-in", .host = "0.0.0.0", .port = 9007, .address = "svc/echo"};
  file.add(profile);
  file.add(connector);
  file.add(exposed);
  file.add(listener);
  const config::Config c = parse(file);

  ASSERT_EQ(c.tls_profiles.size(), 2u);
  auto p = c.tls_profiles[1];
  p.line = 0;
  EXPECT_TRUE(p == profile);
  ASSERT_EQ(c.connectors.size(), 1u);
  auto k = c.connectors[0];
  k.line = 0;
  EXPECT_TRUE(k == connector);
  ASSERT_EQ(adaptors::kTcpConnectors.of(c).size(), 1u);
  auto e = adaptors::kTcpConnectors.of(c)[0];
  e.line = 0;
  EXPECT_TRUE(e == exposed);
  ASSERT_EQ(adaptors::kTcpListeners.of(c).size(), 1u);
  auto l = adaptors::kTcpListeners.of(c)[0];
  l.line = 0;
  EXPECT_TRUE(l == listener);

  // The entries by name, as the list and delete commands find them.
  EXPECT_EQ(field(file.find("connectors", "b"), "cost"), "3");
  EXPECT_EQ(field(file.find("tcp_listeners", "echo-in"), "host"), "0.0.0.0");
  EXPECT_TRUE(file.remove("tcp_listeners", "echo-in"));
  EXPECT_TRUE(adaptors::kTcpListeners.of(parse(file)).empty());
}

TEST(RouterConfigFile, AnEntryVanedWouldRefuseIsNotWritten) {
  RouterConfig file = RouterConfig::initial(site());
  const std::string before = file.text();
  adaptors::TcpListenerConfig listener{.name = "x", .port = 9007, .address = "_vane/x"};
  try {
    file.add(listener);
    ADD_FAILURE() << "added";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot write the tcp_listeners entry 'x': field 'address': addresses starting "
              "with '_vane/' are reserved for the router");
  }
  EXPECT_EQ(file.text(), before);
}

}  // namespace
}  // namespace vane::cli
