#include "cli/router_config.hpp"

#include "cli/errors.hpp"

namespace vane::cli {

namespace {

constexpr const char* kHeader =
    "# The router configuration of this Vane site (docs/configuration.md).\n"
    "# Written by `vane site init`; `vane link`, `vane expose` and `vane listen`\n"
    "# edit it. Hand edits are kept, comments are not.\n";

// Sections whose entries print one per line in flow style.
constexpr const char* kLists[] = {"listeners",      "connectors",    "tls_profiles",
                                  "tcp_connectors", "tcp_listeners", "http_connectors",
                                  "http_listeners", "addresses"};

YAML::Node flowMap() {
  YAML::Node node(YAML::NodeType::Map);
  node.SetStyle(YAML::EmitterStyle::Flow);
  return node;
}

YAML::Node emptyList() {
  YAML::Node node(YAML::NodeType::Sequence);
  node.SetStyle(YAML::EmitterStyle::Flow);
  return node;
}

}  // namespace

RouterConfig RouterConfig::initial(const SiteInfo& site) {
  YAML::Node root(YAML::NodeType::Map);
  YAML::Node router = flowMap();
  router["id"] = site.name;
  router["mode"] = "interior";
  // The router's identity key (created by vaned at its first start, in the
  // site directory): a restarted site keeps its identity in the network.
  router["key_file"] = "identity-key.pem";
  root["router"] = router;

  YAML::Node listeners(YAML::NodeType::Sequence);
  YAML::Node links = flowMap();
  links["name"] = "links";
  links["host"] = "0.0.0.0";
  links["port"] = site.link_port;
  links["role"] = "inter-router";
  links["tls_profile"] = "site";
  // Certificates issued for links name the site: a linked site cannot
  // announce another site's router id.
  links["verify_router_id"] = true;
  listeners.push_back(links);
  if (site.amqp_port != 0) {
    YAML::Node amqp = flowMap();
    amqp["name"] = "amqp";
    amqp["host"] = "127.0.0.1";
    amqp["port"] = site.amqp_port;
    amqp["role"] = "normal";
    listeners.push_back(amqp);
  }
  root["listeners"] = listeners;

  YAML::Node management = flowMap();
  management["host"] = "127.0.0.1";
  management["port"] = site.management_port;
  management["token"] = site.management_token;
  root["management"] = management;

  config::TlsProfileConfig profile;
  profile.name = "site";
  profile.certificate = "router.pem";
  profile.key = "router-key.pem";
  profile.ca = "ca.pem";
  YAML::Node profiles(YAML::NodeType::Sequence);
  profiles.push_back(YAML::Load(config::toYaml(profile)));
  root["tls_profiles"] = profiles;

  YAML::Node claims(YAML::NodeType::Map);
  claims["host"] = "0.0.0.0";
  claims["port"] = site.claim_port;
  claims["tls_profile"] = "site";
  claims["ca_certificate"] = "ca.pem";
  claims["ca_key"] = "ca-key.pem";
  claims["state_file"] = "tokens.json";
  claims["advertise_host"] = site.hosts.front();
  root["claims"] = claims;

  root["connectors"] = emptyList();
  root["tcp_connectors"] = emptyList();
  root["tcp_listeners"] = emptyList();
  return RouterConfig(root);
}

RouterConfig RouterConfig::load(const fs::path& file) {
  const std::string text = readFile(file);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UserError(file.string() + " is not valid YAML (line " + std::to_string(e.mark.line + 1) +
                    ": " + e.msg + "); fix the file by hand");
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    throw UserError(file.string() + " is not a YAML mapping of sections; fix the file by hand");
  }
  return RouterConfig(root);
}

std::string RouterConfig::text() const {
  for (const char* section : kLists) {
    YAML::Node list = root_[section];
    if (!list.IsDefined() || !list.IsSequence()) continue;
    if (list.size() == 0)
      list.SetStyle(YAML::EmitterStyle::Flow);
    else
      list.SetStyle(YAML::EmitterStyle::Block);
    for (auto entry : list) {
      if (entry.IsMap()) entry.SetStyle(YAML::EmitterStyle::Flow);
    }
  }
  YAML::Emitter out;
  out << root_;
  return std::string(kHeader) + out.c_str() + "\n";
}

void RouterConfig::save(const fs::path& file) const {
  writeFile(file, text(), 0600);  // holds the management token
}

std::vector<YAML::Node> RouterConfig::entries(const std::string& section) const {
  std::vector<YAML::Node> out;
  const YAML::Node list = root_[section];
  if (!list.IsDefined() || !list.IsSequence()) return out;
  for (const auto& entry : list) out.push_back(entry);
  return out;
}

YAML::Node RouterConfig::find(const std::string& section, const std::string& name) const {
  for (const auto& entry : entries(section)) {
    if (field(entry, "name") == name) return entry;
  }
  return YAML::Node(YAML::NodeType::Null);
}

template <typename Entry>
void RouterConfig::addEntry(const std::string& section, const Entry& entry) {
  if (const auto error = config::validate(entry)) {
    throw UserError("cannot write the " + section + " entry '" + entry.name +
                    "': " + error->detail());
  }
  if (!root_[section].IsSequence()) root_[section] = YAML::Node(YAML::NodeType::Sequence);
  root_[section].push_back(YAML::Load(config::toYaml(entry)));
}

void RouterConfig::add(const config::ConnectorConfig& entry) {
  addEntry("connectors", entry);
}
void RouterConfig::add(const config::TlsProfileConfig& entry) {
  addEntry("tls_profiles", entry);
}
void RouterConfig::add(const adaptors::TcpConnectorConfig& entry) {
  addEntry("tcp_connectors", entry);
}
void RouterConfig::add(const adaptors::TcpListenerConfig& entry) {
  addEntry("tcp_listeners", entry);
}
void RouterConfig::add(const adaptors::HttpConnectorConfig& entry) {
  addEntry("http_connectors", entry);
}
void RouterConfig::add(const adaptors::HttpListenerConfig& entry) {
  addEntry("http_listeners", entry);
}

bool RouterConfig::remove(const std::string& section, const std::string& name) {
  const YAML::Node list = root_[section];
  if (!list.IsDefined() || !list.IsSequence()) return false;
  YAML::Node kept(YAML::NodeType::Sequence);
  bool found = false;
  for (const auto& entry : list) {
    if (field(entry, "name") == name) {
      found = true;
    } else {
      kept.push_back(entry);
    }
  }
  if (found) root_[section] = kept;
  return found;
}

std::string field(const YAML::Node& entry, const char* key) {
  if (!entry.IsMap()) return "";
  const YAML::Node value = entry[key];
  return value.IsDefined() && value.IsScalar() ? value.Scalar() : "";
}

}  // namespace vane::cli
