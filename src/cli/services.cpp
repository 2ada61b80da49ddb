#include "cli/services.hpp"

#include <cstdint>
#include <iostream>
#include <optional>
#include <utility>

#include "cli/errors.hpp"
#include "cli/router_config.hpp"

namespace vane::cli {

namespace {

struct Kind {
  const char* section;   // in vaned.yaml
  const char* api;       // /api/v1/<api>
  const char* command;   // vane <command>
  const char* noun;      // in messages
  const char* article;   // "a" or "an" before noun
  const char* protocol;  // "tcp", "http"
};

const Kind& kindOf(Service s, Protocol p) {
  static const Kind kExposeTcp{
      "tcp_connectors", "tcp-connectors", "expose", "exposed service", "an", "tcp"};
  static const Kind kListenTcp{"tcp_listeners", "tcp-listeners", "listen", "listener", "a", "tcp"};
  static const Kind kExposeHttp{
      "http_connectors", "http-connectors", "expose", "exposed service", "an", "http"};
  static const Kind kListenHttp{
      "http_listeners", "http-listeners", "listen", "listener", "a", "http"};
  if (p == Protocol::kHttp) return s == Service::kExpose ? kExposeHttp : kListenHttp;
  return s == Service::kExpose ? kExposeTcp : kListenTcp;
}

constexpr Protocol kProtocols[] = {Protocol::kTcp, Protocol::kHttp};

// The entry for vaned.yaml and the router: a connector (expose) or listener
// (listen) entry of the tcp or http adaptor.
template <typename Entry>
Entry entryOf(const ServiceOptions& s) {
  Entry e;
  e.name = s.name;
  e.host = s.host;
  e.port = static_cast<std::uint16_t>(s.port);  // 1..65535, checked by the option
  e.address = s.address;
  return e;
}

// UserError with vaned's reason if it would refuse the entry. `named`: the
// name was given (else it is the address).
template <typename Entry>
void check(const Entry& entry, const Kind& kind, bool named) {
  std::optional<config::ConfigError> error = config::validate(entry);
  if (!error) return;
  if (error->field == "name" && !named) {
    // The name is the address: if vaned refuses the address too, that is
    // the thing to fix.
    Entry other = entry;
    other.name = "address";
    if (auto e = config::validate(other)) error = std::move(e);
  }
  std::string message =
      std::string("cannot add ") + kind.noun + " '" + entry.name + "': " + error->detail();
  if (error->field == "name") {
    message += named ? "; give another --name"
                     : "; the name defaults to the address: give another with --name";
  }
  throw UserError(message);
}

// A row of `list` from an entry of vaned.yaml, as the file has it.
Json rowOf(const YAML::Node& entry) {
  const std::string host = field(entry, "host");
  return {{"name", field(entry, "name")},
          {"host", host.empty() ? adaptors::TcpConnectorConfig{}.host : host},
          {"port", std::atoi(field(entry, "port").c_str())},
          {"address", field(entry, "address")}};
}

// The router's entities of this kind by name, when the site runs.
Json liveEntities(const Site& site, const Kind& kind) {
  if (!site.running) return Json::object();
  auto answer = site.client().get(kind.api, ManagementClient::Expect::kArray);
  Json byName = Json::object();
  if (auto* list = std::get_if<Json>(&answer)) {
    for (const auto& e : *list) byName[e.value("name", "")] = e;
  }
  return byName;
}

template <typename Entry>
int addService(const Options& options, Service which, ServiceOptions s) {
  const Kind& kind = kindOf(which, s.protocol);
  const bool named = !s.name.empty();
  if (!named) s.name = s.address;
  const Entry entry = entryOf<Entry>(s);
  check(entry, kind, named);
  const Json body = Json::parse(config::toJson(entry));
  const Site site = openSite(options);
  RouterConfig config = RouterConfig::load(site.dir.config());
  if (!config.find(kind.section, s.name).IsNull()) {
    throw UserError(std::string(kind.article) + " " + kind.noun + " named '" + s.name +
                    "' already exists; delete it first with `vane " + kind.command + " delete " +
                    s.name + " --protocol " + kind.protocol +
                    "`, or give another name with --name");
  }
  if (site.running) {
    apiCall(site.client(), "POST", kind.api, body,
            std::string("cannot add ") + kind.noun + " '" + s.name + "' to site '" +
                site.info.name + "'");
  }
  config.add(entry);
  config.save(site.dir.config());
  const std::string endpoint = joinHostPort(s.host, s.port);
  const bool http = s.protocol == Protocol::kHttp;
  if (which == Service::kExpose) {
    std::cout << "exposed " << (http ? "HTTP server " : "") << endpoint << " as address '"
              << s.address << "' (name '" << s.name << "')" << site.whenStopped() << "\n";
  } else {
    std::cout << "listening on " << endpoint << (http ? " for HTTP requests to" : " for")
              << " address '" << s.address << "' (name '" << s.name << "')" << site.whenStopped()
              << "\n";
  }
  return 0;
}

}  // namespace

int serviceAdd(const Options& options, Service which, ServiceOptions s) {
  const bool http = s.protocol == Protocol::kHttp;
  if (which == Service::kExpose) {
    return http ? addService<adaptors::HttpConnectorConfig>(options, which, std::move(s))
                : addService<adaptors::TcpConnectorConfig>(options, which, std::move(s));
  }
  return http ? addService<adaptors::HttpListenerConfig>(options, which, std::move(s))
              : addService<adaptors::TcpListenerConfig>(options, which, std::move(s));
}

int serviceList(const Options& options, Service which) {
  const Site site = openSite(options);
  const RouterConfig config = RouterConfig::load(site.dir.config());
  Json rows = Json::array();
  for (const Protocol p : kProtocols) {
    const Kind& kind = kindOf(which, p);
    const Json live = liveEntities(site, kind);
    for (const auto& e : config.entries(kind.section)) {
      const std::string name = field(e, "name");
      Json row = rowOf(e);
      row["protocol"] = kind.protocol;
      row["state"] = site.running ? "-" : "not running";
      row["flows_active"] = nullptr;
      if (live.contains(name)) {
        row["state"] = live[name].value("state", "-");
        if (live[name].contains("counters")) {
          row["flows_active"] = live[name]["counters"].value("flows_active", Json());
        }
      }
      rows.push_back(row);
    }
  }
  if (options.json) {
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  if (rows.empty()) {
    std::cout << (which == Service::kExpose ? "No exposed services; add one with `vane expose "
                                              "tcp|http ADDRESS --to HOST:PORT`.\n"
                                            : "No listeners; add one with `vane listen tcp|http "
                                              "ADDRESS --port PORT`.\n");
    return 0;
  }
  Table t({{"NAME"},
           {"ADDRESS"},
           {which == Service::kExpose ? "SERVICE" : "LISTENING ON"},
           {"STATE"},
           {"ACTIVE", Table::Align::kRight},
           {"PROTOCOL"}});
  for (const auto& r : rows) {
    const std::string state = r["state"].get<std::string>();
    const bool bad = state == "failing" || state == "not running";
    t.add({r["name"].get<std::string>(),
           r["address"].get<std::string>(),
           joinHostPort(r["host"].get<std::string>(), r["port"].get<int>()),
           {state, bad ? Tone::kBad : Tone::kPlain},
           r["flows_active"].is_null() ? "-" : r["flows_active"].dump(),
           r["protocol"].get<std::string>()});
  }
  t.print(std::cout, options.style);
  return 0;
}

int serviceDelete(const Options& options, Service which, const std::string& name,
                  const std::string& protocol) {
  const Site site = openSite(options);
  RouterConfig config = RouterConfig::load(site.dir.config());
  const Kind* found = nullptr;
  for (const Protocol p : kProtocols) {
    const Kind& kind = kindOf(which, p);
    if (!protocol.empty() && protocol != kind.protocol) continue;
    if (config.find(kind.section, name).IsNull()) continue;
    if (found) {
      throw UserError(std::string("there is a tcp and an http ") + kind.noun + " named '" + name +
                      "'; say which with --protocol tcp or --protocol http");
    }
    found = &kind;
  }
  const Kind& any = kindOf(which, Protocol::kTcp);
  if (!found) {
    throw UserError(std::string("there is no ") + (protocol.empty() ? "" : protocol + " ") +
                    any.noun + " named '" + name + "'; see them with `vane " + any.command +
                    " list`");
  }
  if (site.running) {
    apiCall(site.client(), "DELETE", std::string(found->api) + "/" + name, nullptr,
            std::string("cannot delete ") + found->noun + " '" + name + "'", 404);
  }
  config.remove(found->section, name);
  config.save(site.dir.config());
  std::cout << "deleted " << (found == &any ? "" : "http ") << found->noun << " '" << name << "'"
            << site.whenStopped() << "\n";
  return 0;
}

}  // namespace vane::cli
