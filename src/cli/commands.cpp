#include "cli/commands.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace vane::cli {

namespace {

using Expect = ManagementClient::Expect;
using Align = Table::Align;

// ---- reading the answers: never throws, whatever the JSON holds

const Json& member(const Json& obj, const char* key) {
  static const Json kNull;
  if (!obj.is_object()) return kNull;
  const auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

const Json& list(const Json& obj, const char* key) {
  static const Json kEmpty = Json::array();
  const Json& v = key == nullptr ? obj : member(obj, key);
  return v.is_array() ? v : kEmpty;
}

std::string text(const Json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>().empty() ? "-" : v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_null()) return "-";
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string text(const Json& obj, const char* key) {
  return text(member(obj, key));
}

// A number of zero or more (whole part), or nothing for anything else.
bool number(const Json& v, std::uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<std::uint64_t>();
    return true;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d >= 0 && d < 1.8e19)) return false;  // also false for NaN
    out = static_cast<std::uint64_t>(d);
    return true;
  }
  return false;
}

// ---- units

std::string bytes(const Json& v) {
  std::uint64_t n = 0;
  if (!number(v, n)) return text(v);
  if (n < 1024) return std::to_string(n) + " B";
  constexpr std::array<const char*, 5> kUnits = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(n) / 1024;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string duration(std::int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return std::to_string(ms) + "ms";
  const std::int64_t s = ms / 1000;
  auto two = [](std::int64_t a, const char* ua, std::int64_t b, const char* ub) {
    return std::to_string(a) + ua + " " + std::to_string(b) + ub;
  };
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return two(s / 60, "m", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", s / 60 % 60, "m");
  return two(s / 86400, "d", s / 3600 % 24, "h");
}

std::string hostPort(const Json& obj) {
  std::string host = text(obj, "host");
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + text(obj, "port");
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

Tone toneOf(const std::string& state) {
  return state == "no" || state == "failing" || state == "reset" ? Tone::kBad : Tone::kPlain;
}

// ---- one renderer per command

// One section per table: a title, then the table indented, or `none`.
void section(std::ostream& out, const Style& style, const std::string& title, const Table& table,
             const char* none = "none") {
  out << '\n' << style.bold(title + ":");
  if (table.empty()) {
    out << ' ' << none << '\n';
    return;
  }
  out << '\n';
  table.print(out, style, "  ");
}

void field(std::ostream& out, const Style& style, const char* label, const std::string& value) {
  std::string l = std::string(label) + ":";
  l.resize(12, ' ');
  out << style.bold(l) << printable(value) << '\n';
}

// Router, mode, version, uptime, how many routers are reachable.
void renderRouterFields(const Json& answer, std::ostream& out, const Style& style) {
  const Json& router = member(answer, "router");
  std::size_t reachable = 0;
  for (const auto& r : list(member(answer, "routers"), "routers")) {
    reachable += member(r, "self") != true;
  }
  std::uint64_t uptime = 0;
  const bool known = number(member(router, "uptime_seconds"), uptime);
  field(out, style, "Router", text(router, "id"));
  field(out, style, "Mode", text(router, "mode"));
  field(out, style, "Version", text(router, "version"));
  field(out, style, "Uptime", known ? duration(static_cast<std::int64_t>(uptime * 1000)) : "-");
  field(out, style, "Reachable", plural(reachable, "router", "routers"));
}

void renderLinks(const Json& answer, std::ostream& out, const Style& style) {
  const Json& links = list(member(answer, "routers"), "links");
  std::size_t up = 0;
  for (const auto& l : links) up += member(l, "up") == true;
  Table linkTable({{"PEER"}, {"ROLE"}, {"COST", Align::kRight}, {"UP"}});
  for (const auto& l : links) {
    const std::string isUp = text(l, "up");
    linkTable.add({text(l, "peer"), text(l, "role"), text(l, "cost"), {isUp, toneOf(isUp)}});
  }
  section(out, style,
          "Links (" + std::to_string(up) + " of " + std::to_string(links.size()) + " up)",
          linkTable);
}

void renderTcp(const Json& answer, std::ostream& out, const Style& style, const char* key,
               const std::string& title, const char* lastTitle, const char* lastCounter) {
  Table t({{"NAME"},
           {"ADDRESS"},
           {"HOST:PORT"},
           {"STATE"},
           {"ACTIVE", Align::kRight},
           {"OPENED", Align::kRight},
           {"FAILED", Align::kRight},
           {lastTitle, Align::kRight}});
  for (const auto& e : list(answer, key)) {
    const Json& c = member(e, "counters");
    const std::string state = text(e, "state");
    t.add({text(e, "name"),
           text(e, "address"),
           hostPort(e),
           {state, toneOf(state)},
           text(c, "flows_active"),
           text(c, "flows_opened"),
           text(c, "flows_failed"),
           text(c, lastCounter)});
  }
  section(out, style, title, t);
}

// HTTP listeners or connectors, if there are any: requests active and
// served, answers by class, the router's own error answers.
void renderHttp(const Json& answer, std::ostream& out, const Style& style, const char* key,
                const std::string& title) {
  if (list(answer, key).empty()) return;
  Table t({{"NAME"},
           {"ADDRESS"},
           {"HOST:PORT"},
           {"STATE"},
           {"ACTIVE", Align::kRight},
           {"REQUESTS", Align::kRight},
           {"2XX", Align::kRight},
           {"4XX", Align::kRight},
           {"5XX", Align::kRight}});
  for (const auto& e : list(answer, key)) {
    const Json& h = member(e, "http");
    const Json& r = member(h, "responses");
    const std::string state = text(e, "state");
    t.add({text(e, "name"),
           text(e, "address"),
           hostPort(e),
           {state, toneOf(state)},
           text(h, "requests_active"),
           text(member(e, "counters"), "flows_opened"),
           text(r, "2xx"),
           text(r, "4xx"),
           text(r, "5xx")});
  }
  section(out, style, title, t);
}

void renderStatus(const Json& answer, std::ostream& out, const Style& style, std::int64_t) {
  renderRouterFields(answer, out, style);
  renderLinks(answer, out, style);
  renderTcp(answer, out, style, "tcp_listeners", "TCP listeners", "REFUSED", "refused");
  renderTcp(answer, out, style, "tcp_connectors", "TCP connectors", "CONNECT FAILURES",
            "connect_failures");
  renderHttp(answer, out, style, "http_listeners", "HTTP listeners");
  renderHttp(answer, out, style, "http_connectors", "HTTP connectors");
}

// The status of a site: the site, the router, its links (all of them, then
// the ones it makes), every router, the addresses, and its tcp services.
void renderSiteStatus(const Json& answer, std::ostream& out, const Style& style, std::int64_t) {
  const Json& site = member(answer, "site");
  std::string line = text(site, "name") + " (running";
  if (member(site, "pid").is_number()) line += ", pid " + text(site, "pid");
  line += "; " + text(site, "directory") + ")";
  field(out, style, "Site", line);
  renderRouterFields(answer, out, style);
  renderLinks(answer, out, style);

  Table connectors({{"NAME"}, {"ENDPOINT"}, {"COST", Align::kRight}, {"STATE"}});
  for (const auto& c : list(answer, "connectors")) {
    const std::string state = text(c, "state");
    connectors.add({text(c, "name"),
                    hostPort(c),
                    text(c, "cost"),
                    {state, state == "connected" ? Tone::kPlain : Tone::kBad}});
  }
  section(out, style, "Links made by this site", connectors,
          "none (`vane link create TOKEN_FILE` makes one)");

  Table routers({{"ROUTER"}, {"COST", Align::kRight}, {"NEXT HOP"}});
  for (const bool self : {true, false}) {
    for (const auto& r : list(member(answer, "routers"), "routers")) {
      if ((member(r, "self") == true) != self) continue;
      routers.add({text(r, "id") + (self ? " (self)" : ""), text(r, "cost"), text(r, "next_hop")});
    }
  }
  section(out, style, "Routers", routers);

  Table addresses({{"ADDRESS"}, {"KIND"}, {"LOCAL", Align::kRight}, {"REMOTE ROUTERS"}});
  for (const auto& a : list(answer, "addresses")) {
    std::string remote;
    for (const auto& r : list(a, "remote_routers"))
      remote += (remote.empty() ? "" : ", ") + text(r);
    addresses.add({text(a, "address"), text(a, "kind"), text(a, "local_consumers"),
                   remote.empty() ? "-" : remote});
  }
  section(out, style, "Addresses", addresses);
  renderTcp(answer, out, style, "tcp_connectors", "Exposed here (vane expose)", "CONNECT FAILURES",
            "connect_failures");
  renderTcp(answer, out, style, "tcp_listeners", "Listening here (vane listen)", "REFUSED",
            "refused");
  renderHttp(answer, out, style, "http_connectors", "HTTP exposed here (vane expose http)");
  renderHttp(answer, out, style, "http_listeners", "HTTP listening here (vane listen http)");
}

void renderRouters(const Json& answer, std::ostream& out, const Style& style, std::int64_t) {
  Table t({{"ROUTER"}, {"COST", Align::kRight}, {"NEXT HOP"}});
  // This router first, then the others in the API's order.
  for (const bool self : {true, false}) {
    for (const auto& r : list(answer, "routers")) {
      if ((member(r, "self") == true) != self) continue;
      t.add({text(r, "id") + (self ? " (self)" : ""), text(r, "cost"), text(r, "next_hop")});
    }
  }
  t.print(out, style);
}

void renderAddresses(const Json& answer, std::ostream& out, const Style& style, std::int64_t) {
  if (list(answer, nullptr).empty()) {
    out << "No address has consumers.\n";
    return;
  }
  Table t({{"ADDRESS"},
           {"KIND"},
           {"DISTRIBUTION"},
           {"LOCAL CONSUMERS", Align::kRight},
           {"REMOTE ROUTERS"}});
  for (const auto& a : list(answer, nullptr)) {
    std::string remote;
    for (const auto& r : list(a, "remote_routers"))
      remote += (remote.empty() ? "" : ", ") + text(r);
    t.add({text(a, "address"), text(a, "kind"), text(a, "distribution"), text(a, "local_consumers"),
           remote.empty() ? "-" : remote});
  }
  t.print(out, style);
}

void renderFlows(const Json& answer, std::ostream& out, const Style& style, std::int64_t now_ms) {
  if (list(answer, nullptr).empty()) {
    out << "No flows.\n";
    return;
  }
  Table t({{"SIDE"},
           {"NAME"},
           {"ADDRESS"},
           {"PEER ROUTER"},
           {"ENDPOINT"},
           {"IN", Align::kRight},
           {"OUT", Align::kRight},
           {"STATE"},
           {"DURATION", Align::kRight},
           {"STATUS", Align::kRight},
           {"REQUEST"}});
  for (const auto& f : list(answer, nullptr)) {
    std::uint64_t start = 0;
    std::uint64_t end = static_cast<std::uint64_t>(now_ms);
    std::string age = "-";
    if (number(member(f, "start_ms"), start)) {
      number(member(f, "end_ms"), end);  // null while open: until now
      age = duration(static_cast<std::int64_t>(end) - static_cast<std::int64_t>(start));
    }
    const std::string state = text(f, "state");
    // An HTTP request: METHOD host/path; a TCP connection: "-".
    std::string request = "-";
    if (member(f, "method").is_string()) {
      request = text(f, "method") + " " + text(f, "host") + text(f, "path");
    }
    t.add({text(f, "side"),
           text(f, "name"),
           text(f, "address"),
           text(f, "peer_router"),
           text(f, "endpoint"),
           bytes(member(f, "bytes_in")),
           bytes(member(f, "bytes_out")),
           {state, toneOf(state)},
           age,
           text(f, "status"),
           request});
  }
  t.print(out, style);
}

// ---- the command table

struct Query {
  const char* key;  // in the combined answer; nullptr: the answer itself
  const char* path;
  Expect expect;
};

struct Spec {
  Command command;
  std::vector<Query> queries;
  void (*render)(const Json&, std::ostream&, const Style&, std::int64_t);
};

const std::vector<Spec>& specs() {
  static const std::vector<Spec> kSpecs = {
      {Command::kStatus,
       {{"router", "router", Expect::kObject},
        {"routers", "routers", Expect::kObject},
        {"tcp_listeners", "tcp-listeners", Expect::kArray},
        {"tcp_connectors", "tcp-connectors", Expect::kArray},
        {"http_listeners", "http-listeners", Expect::kArray},
        {"http_connectors", "http-connectors", Expect::kArray}},
       renderStatus},
      {Command::kSiteStatus,
       {{"router", "router", Expect::kObject},
        {"routers", "routers", Expect::kObject},
        {"connectors", "connectors", Expect::kArray},
        {"addresses", "addresses", Expect::kArray},
        {"tcp_listeners", "tcp-listeners", Expect::kArray},
        {"tcp_connectors", "tcp-connectors", Expect::kArray},
        {"http_listeners", "http-listeners", Expect::kArray},
        {"http_connectors", "http-connectors", Expect::kArray}},
       renderSiteStatus},
      {Command::kRouters, {{nullptr, "routers", Expect::kObject}}, renderRouters},
      {Command::kAddresses, {{nullptr, "addresses", Expect::kArray}}, renderAddresses},
      {Command::kFlows, {{nullptr, "flows", Expect::kArray}}, renderFlows},
  };
  return kSpecs;
}

const Spec& specOf(Command command) {
  for (const auto& s : specs()) {
    if (s.command == command) return s;
  }
  std::abort();  // every Command has a row
}

}  // namespace

std::variant<Json, Failure> fetch(Command command, const ManagementClient& client) {
  Json combined = Json::object();
  for (const auto& q : specOf(command).queries) {
    auto answer = client.get(q.path, q.expect);
    if (auto* failure = std::get_if<Failure>(&answer)) return std::move(*failure);
    if (q.key == nullptr) return std::move(std::get<Json>(answer));
    combined[q.key] = std::move(std::get<Json>(answer));
  }
  return combined;
}

void render(Command command, const Json& answer, std::ostream& out, const Style& style,
            std::int64_t now_ms) {
  specOf(command).render(answer, out, style, now_ms);
}

}  // namespace vane::cli
