#include "cli/site_commands.hpp"

#include <memory>

#include "cli/links.hpp"
#include "cli/services.hpp"
#include "cli/token.hpp"

namespace vane::cli {

namespace {

constexpr const char* kFooter =
    "The site lives in $XDG_CONFIG_HOME/vane (~/.config/vane), or --dir DIR / VANE_DIR.";

CLI::App* group(CLI::App& app, const char* name, const char* help) {
  CLI::App* g = app.add_subcommand(name, help);
  g->require_subcommand(1);
  g->footer(kFooter);
  return g;
}

// Parsed values live as long as the actions that read them.
template <class T>
std::shared_ptr<T> holder() {
  return std::make_shared<T>();
}

const auto kPort = CLI::Range(1, 65535);

void addSite(CLI::App& app, const Options& o, Actions& actions) {
  CLI::App* site = group(app, "site", "create, start, stop this machine's site");

  auto init = holder<InitOptions>();
  CLI::App* c = site->add_subcommand("init", "create the site: its CA, certificates, vaned.yaml");
  c->add_option("name", init->name, "the site's name (its router id)")->required();
  c->add_option("--link-port", init->link_port, "port other sites link to")
      ->check(kPort)
      ->capture_default_str();
  c->add_option("--claim-port", init->claim_port, "port where tokens are redeemed (link port + 1)")
      ->check(kPort);
  c->add_option("--management-port", init->management_port,
                "management API on 127.0.0.1 (link port + 2)")
      ->check(kPort);
  c->add_option("--amqp-port", init->amqp_port, "AMQP clients on 127.0.0.1 (0: none)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  c->add_option("--host", init->hosts,
                "name or IP other sites reach this machine by (repeat; first is advertised; "
                "default: this machine's hostname)");
  actions.emplace_back(c, [&o, init] { return siteInit(o, *init); });

  auto start = holder<StartOptions>();
  c = site->add_subcommand("start", "run the site's router (vaned) in the background");
  c->add_flag("--foreground", start->foreground, "run vaned in this terminal instead");
  c->add_flag("--systemd", start->systemd,
              "write a systemd --user unit for the site instead of starting it");
  actions.emplace_back(c, [&o, start] { return siteStart(o, *start); });

  c = site->add_subcommand("stop", "stop the site's router");
  actions.emplace_back(c, [&o] { return siteStop(o); });
  c = site->add_subcommand("status", "whether the site's router runs (exit 3 if not)");
  actions.emplace_back(c, [&o] { return siteStatus(o); });
}

void addToken(CLI::App& app, const Options& o, Actions& actions) {
  CLI::App* token = group(app, "token", "tokens that let other sites link to this one");
  auto issue = holder<IssueOptions>();
  CLI::App* c = token->add_subcommand("issue", "write a token file for another site");
  c->add_option("--expires", issue->expires, "valid for (30s, 15m, 2h, 7d)")->capture_default_str();
  c->add_option("--uses", issue->uses, "how many sites may redeem it")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  c->add_option("-o,--output", issue->output,
                "the file to write (default SITE-token.json; - = stdout)");
  actions.emplace_back(c, [&o, issue] { return tokenIssue(o, *issue); });
  c = token->add_subcommand("list", "tokens issued by this site and their uses");
  actions.emplace_back(c, [&o] { return tokenList(o); });
}

void addLink(CLI::App& app, const Options& o, Actions& actions) {
  CLI::App* link = group(app, "link", "links from this site to other sites");
  auto create = holder<LinkCreateOptions>();
  CLI::App* c = link->add_subcommand("create", "link to the site that issued TOKEN_FILE");
  c->add_option("token", create->token_file,
                "the token file (`vane token issue` on the other site)")
      ->required();
  c->add_option("--cost", create->cost, "the link's cost for path selection")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  c->add_option("--name", create->name, "the link's name (default: the other site's name)");
  actions.emplace_back(c, [&o, create] { return linkCreate(o, *create); });

  c = link->add_subcommand("list", "this site's links: endpoint, cost, state, certificate expiry");
  actions.emplace_back(c, [&o] { return linkList(o); });

  auto name = holder<std::string>();
  c = link->add_subcommand("delete", "remove a link and its credentials");
  c->add_option("name", *name, "the link's name (see `vane link list`)")->required();
  actions.emplace_back(c, [&o, name] { return linkDelete(o, *name); });
}

void addService(CLI::App& app, const Options& o, Actions& actions, Service kind) {
  const bool expose = kind == Service::kExpose;
  CLI::App* g = group(app, expose ? "expose" : "listen",
                      expose ? "offer a local TCP or HTTP service to the network under an address"
                             : "a local TCP or HTTP port for a service anywhere in the network");
  for (const Protocol protocol : {Protocol::kTcp, Protocol::kHttp}) {
    const bool http = protocol == Protocol::kHttp;
    auto s = holder<ServiceOptions>();
    s->protocol = protocol;
    CLI::App* c = g->add_subcommand(
        http ? "http" : "tcp",
        expose ? (http ? "expose the HTTP server HOST:PORT as ADDRESS (each request balanced)"
                       : "expose HOST:PORT as ADDRESS")
               : (http ? "listen on --port for HTTP requests to ADDRESS"
                       : "listen on --port for ADDRESS"));
    c->add_option("address", s->address, "the service's address in the network")->required();
    c->add_option("--name", s->name, "the entry's name (default: the address)");
    if (expose) {
      auto to = holder<std::string>();
      c->add_option("--to", *to, "the local service, HOST:PORT")
          ->required()
          ->check([](const std::string& v) {
            std::string h;
            int p = 0;
            return splitHostPort(v, h, p) ? std::string() : "expected HOST:PORT, got " + v;
          });
      actions.emplace_back(c, [&o, s, to] {
        splitHostPort(*to, s->host, s->port);
        return serviceAdd(o, Service::kExpose, *s);
      });
    } else {
      s->host = "127.0.0.1";
      c->add_option("--port", s->port, "the local port")->required()->check(kPort);
      c->add_option("--host", s->host, "the address to bind")->capture_default_str();
      actions.emplace_back(c, [&o, s] { return serviceAdd(o, Service::kListen, *s); });
    }
  }
  CLI::App* c = g->add_subcommand("list", expose ? "exposed services" : "listeners");
  actions.emplace_back(c, [&o, kind] { return serviceList(o, kind); });
  auto name = holder<std::string>();
  auto protocol = holder<std::string>();
  c = g->add_subcommand("delete", expose ? "stop exposing a service" : "close a listener");
  c->add_option("name", *name, "its name (see list)")->required();
  c->add_option("--protocol", *protocol, "tcp or http (needed only when both have the name)")
      ->check(CLI::IsMember({"tcp", "http"}));
  actions.emplace_back(
      c, [&o, kind, name, protocol] { return serviceDelete(o, kind, *name, *protocol); });
}

}  // namespace

void addSiteCommands(CLI::App& app, const Options& options, Actions& actions) {
  addSite(app, options, actions);
  addToken(app, options, actions);
  addLink(app, options, actions);
  addService(app, options, actions, Service::kExpose);
  addService(app, options, actions, Service::kListen);
}

}  // namespace vane::cli
