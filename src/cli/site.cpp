#include "cli/site.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/errors.hpp"
#include "cli/process.hpp"
#include "cli/router_config.hpp"
#include "pki/pki.hpp"

namespace vane::cli {

namespace {

using namespace std::chrono_literals;

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

bool isIp(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool validHostName(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string thisHostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "127.0.0.1";
  return buf;
}

// The management API of the site, with its token; failures speak of the site.
ManagementClient clientFor(const SiteDir& dir, const SiteInfo& info, Timeouts timeouts = {}) {
  auto url = parseUrl(SiteDir::managementUrl(info));
  ManagementClient client(std::get<Url>(url), info.management_token, timeouts);
  client.forSite(info.name, dir.logFile().string());
  return client;
}

// Something answers on the site's management port as this site's router.
bool answersAsSite(const SiteDir& dir, const SiteInfo& info) {
  const auto client = clientFor(dir, info, Timeouts{1000ms, 2000ms});
  const auto answer = client.get("router", ManagementClient::Expect::kObject);
  const auto* router = std::get_if<Json>(&answer);
  return router != nullptr && router->value("id", "") == info.name;
}

void checkPort(int port, const char* what, bool allow_zero) {
  if ((allow_zero && port == 0) || (port >= 1 && port <= 65535)) return;
  throw UserError(std::string("the ") + what + " port " + std::to_string(port) +
                  " is not a port number; give one from 1 to 65535");
}

// ---- site init

void checkInit(const InitOptions& init) {
  if (!validName(init.name)) {
    throw UserError("the site name " + quoted(init.name) +
                    " is not valid; use 1 to 64 letters, digits, '.', '_' or '-'");
  }
  checkPort(init.link_port, "link", false);
  checkPort(init.claim_port, "claim", false);
  checkPort(init.management_port, "management", false);
  checkPort(init.amqp_port, "amqp", true);
  const int ports[] = {init.link_port, init.claim_port, init.management_port, init.amqp_port};
  for (int i = 0; i < 4; ++i) {
    for (int j = i + 1; j < 4; ++j) {
      if (ports[i] != 0 && ports[i] == ports[j]) {
        throw UserError("port " + std::to_string(ports[i]) +
                        " is given twice; the link, claim, management and amqp ports must differ");
      }
    }
  }
  for (const auto& host : init.hosts) {
    if (!isIp(host) && !validHostName(host)) {
      throw UserError("--host " + quoted(host) +
                      " is neither an IP address nor a host name; give the name or address " +
                      "other sites reach this machine by");
    }
  }
}

void writeCertificates(const SiteDir& dir, const SiteInfo& info) {
  const pki::CertAndKey ca = pki::makeCa("Vane site " + info.name + " CA", 24h * 365 * 10);
  pki::IssueOptions opts;
  opts.common_name = info.name;
  for (const auto& host : info.hosts) {
    (isIp(host) ? opts.ip_addresses : opts.dns_names).push_back(host);
  }
  opts.dns_names.push_back("localhost");
  opts.ip_addresses.push_back("127.0.0.1");
  opts.ip_addresses.push_back("::1");
  const std::string key = pki::generateKey();
  const std::string cert = pki::issueCertificate(ca, key, opts);
  writeFile(dir.file("ca-key.pem"), ca.key, 0600);
  writeFile(dir.file("ca.pem"), ca.certificate);
  writeFile(dir.file("router-key.pem"), key, 0600);
  writeFile(dir.file("router.pem"), cert);
}

// ---- site start

// Binding fails now: vaned would fail the same way, with a less direct message.
void checkPortFree(int port, const char* host, const char* what) {
  if (port == 0) return;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, host, &addr.sin_addr);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  const int err = errno;
  ::close(fd);
  if (!bound && err == EADDRINUSE) {
    throw UserError("port " + std::to_string(port) + " (the site's " + what +
                    " port) is in use by another program; stop that program, or create the " +
                    "site with other ports (`vane site init --link-port P --amqp-port Q`)");
  }
}

// The log's last non-empty line written after `from`.
std::string lastLogLine(const fs::path& log, std::uintmax_t from) {
  std::ifstream in(log, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(from));
  std::string line;
  std::string last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

std::string systemdQuote(const std::string& s) {
  if (s.find_first_of(" \t\"'\\") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int writeSystemdUnit(const Site& site) {
  const fs::path vaned = fs::absolute(findVaned());
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  fs::path base =
      xdg != nullptr && *xdg != '\0' ? fs::path(xdg) : fs::path(home ? home : ".") / ".config";
  const std::string unit_name = "vane-" + site.info.name + ".service";
  const fs::path unit = base / "systemd" / "user" / unit_name;
  const std::string text =
      "[Unit]\n"
      "Description=Vane router of site " +
      site.info.name +
      "\n\n"
      "[Service]\n"
      "ExecStart=" +
      systemdQuote(vaned.string()) + " --config " + systemdQuote(site.dir.config().string()) +
      "\n"
      "WorkingDirectory=" +
      systemdQuote(site.dir.dir().string()) +
      "\n"
      "Restart=on-failure\n"
      "RestartSec=2\n\n"
      "[Install]\n"
      "WantedBy=default.target\n";
  writeFile(unit, text);
  std::cout << "wrote " << unit.string() << "\n"
            << "start it now and at every login with:\n"
            << "  systemctl --user daemon-reload && systemctl --user enable --now " << unit_name
            << "\n"
            << "(and `loginctl enable-linger $USER` to keep it running while you are logged out;"
            << " do not also run `vane site start`)\n";
  return 0;
}

int startForeground(const Site& site) {
  const fs::path vaned = findVaned();
  writeFile(site.dir.pidFile(), std::to_string(::getpid()) + "\n");
  const std::string binary = vaned.string();
  const std::string config = site.dir.config().string();
  const char* argv[] = {binary.c_str(), "--config", config.c_str(), nullptr};
  ::execv(binary.c_str(), const_cast<char* const*>(argv));
  std::error_code ec;
  fs::remove(site.dir.pidFile(), ec);
  throw UserError("cannot run " + binary + " (" + std::strerror(errno) +
                  "); check the file, or set VANE_VANED to a working vaned");
}

// Polls /readyz until the router is ready, it exits, or 10 s pass.
void waitReady(const Site& site, pid_t pid, std::uintmax_t log_from) {
  auto url = std::get<Url>(parseUrl(SiteDir::managementUrl(site.info)));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  const std::string log = site.dir.logFile().string();
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (childExited(pid, status)) {
      std::error_code ec;
      fs::remove(site.dir.pidFile(), ec);
      std::string last = lastLogLine(site.dir.logFile(), log_from);
      if (last.empty()) last = "no output";
      throw UserError("site '" + site.info.name + "' did not start: vaned exited (" + last +
                      "); fix what it says (the whole log is " + log + ") and run " +
                      "`vane site start` again");
    }
    auto res = httpGet(url, "/readyz", "", Timeouts{500ms, 1000ms});
    if (auto* r = std::get_if<HttpResponse>(&res); r != nullptr && r->status == 200) return;
    std::this_thread::sleep_for(100ms);
  }
  throw UserError("site '" + site.info.name + "' started (pid " + std::to_string(pid) +
                  ") but its router is not ready after 10 s; see " + log +
                  ", or stop it with `vane site stop`");
}

std::string describePorts(const SiteInfo& info) {
  std::string s = "links on port " + std::to_string(info.link_port) + ", claims on " +
                  std::to_string(info.claim_port) + ", management on " +
                  std::to_string(info.management_port);
  if (info.amqp_port != 0) s += ", amqp on 127.0.0.1:" + std::to_string(info.amqp_port);
  return s;
}

}  // namespace

// ---- Site

ManagementClient Site::client() const {
  return clientFor(dir, info);
}

ManagementClient Site::requireRunning() const {
  if (!running) {
    throw UserError("site '" + info.name + "' is not running; start it with `vane site start`");
  }
  return client();
}

std::string Site::whenStopped() const {
  if (running) return "";
  return "; site '" + info.name + "' is not running, so this takes effect at `vane site start`";
}

Site openSite(const Options& options) {
  Site site{SiteDir::locate(options.dir), {}, std::nullopt, false};
  site.info = site.dir.load();
  site.pid = runningPid(site.dir.pidFile(), site.dir.config());
  site.running = site.pid.has_value() || answersAsSite(site.dir, site.info);
  return site;
}

Reply apiCall(const ManagementClient& client, const std::string& method, const std::string& path,
              const Json& body, const std::string& what, unsigned allowed) {
  auto answer = client.send(method, path, body);
  if (auto* failure = std::get_if<Failure>(&answer)) {
    throw UserError(what + ": " + failure->message);
  }
  Reply reply = std::get<Reply>(answer);
  if (!reply.ok() && reply.status != allowed) {
    throw UserError(what + ": the router says " + reply.error() + " (HTTP " +
                    std::to_string(reply.status) + ")");
  }
  return reply;
}

// ---- commands

int siteInit(const Options& options, InitOptions init) {
  if (init.claim_port == 0) init.claim_port = init.link_port + 1;
  if (init.management_port == 0) init.management_port = init.link_port + 2;
  if (init.hosts.empty()) init.hosts.push_back(thisHostName());
  checkInit(init);
  const SiteDir dir = SiteDir::locate(options.dir);
  if (dir.exists()) {
    std::string existing = "a site";
    try {
      existing = "site '" + dir.load().name + "'";
    } catch (const UserError&) {
    }
    throw UserError(existing + " already exists in " + dir.dir().string() +
                    "; use it, or create the new one in another directory with --dir DIR");
  }
  SiteInfo info{init.name,           init.hosts,           init.link_port,
                init.claim_port,     init.management_port, init.amqp_port,
                pki::randomToken(24)};
  writeCertificates(dir, info);
  RouterConfig::initial(info).save(dir.config());
  dir.save(info);  // last: a site exists once this file does
  std::cout << "created site '" << info.name << "' in " << dir.dir().string() << "\n"
            << "  other sites reach it at " << joinHostPort(info.hosts.front(), info.link_port)
            << " (links) and " << joinHostPort(info.hosts.front(), info.claim_port)
            << " (token claims)\n"
            << "  management API: " << SiteDir::managementUrl(info) << "\n";
  if (info.amqp_port != 0) {
    std::cout << "  AMQP clients: 127.0.0.1:" << info.amqp_port << "\n";
  }
  std::cout << "next: `vane site start`\n";
  return 0;
}

int siteStart(const Options& options, const StartOptions& start) {
  const Site site = openSite(options);
  if (start.systemd) return writeSystemdUnit(site);
  if (site.running) {
    std::cout << "site '" << site.info.name << "' is already running"
              << (site.pid ? " (pid " + std::to_string(*site.pid) + ")" : std::string()) << "\n";
    return 0;
  }
  checkPortFree(site.info.link_port, "0.0.0.0", "link");
  checkPortFree(site.info.claim_port, "0.0.0.0", "claim");
  checkPortFree(site.info.management_port, "127.0.0.1", "management");
  checkPortFree(site.info.amqp_port, "127.0.0.1", "amqp");
  if (start.foreground) return startForeground(site);

  const fs::path vaned = findVaned();
  std::error_code ec;
  const std::uintmax_t log_from =
      fs::exists(site.dir.logFile(), ec) ? fs::file_size(site.dir.logFile(), ec) : 0;
  const pid_t pid = spawnVaned(vaned, site.dir.config(), site.dir.logFile());
  writeFile(site.dir.pidFile(), std::to_string(pid) + "\n");
  waitReady(site, pid, ec ? 0 : log_from);
  std::cout << "site '" << site.info.name << "' is running (pid " << pid << "; "
            << describePorts(site.info) << ")\n"
            << "log: " << site.dir.logFile().string() << "\n";
  return 0;
}

int siteStop(const Options& options) {
  const Site site = openSite(options);
  std::error_code ec;
  if (!site.pid) {
    if (site.running) {
      throw UserError("site '" + site.info.name + "' was not started by `vane site start` (" +
                      "no vaned.pid); stop it the way it was started, e.g. `systemctl --user " +
                      "stop vane-" + site.info.name + "`");
    }
    fs::remove(site.dir.pidFile(), ec);
    std::cout << "site '" << site.info.name << "' is not running\n";
    return 0;
  }
  if (!stopProcess(*site.pid, site.dir.config(), 10s)) {
    throw UserError("site '" + site.info.name + "' (pid " + std::to_string(*site.pid) +
                    ") did not stop, even after SIGKILL; check `ps " + std::to_string(*site.pid) +
                    "` and whether you own the process");
  }
  fs::remove(site.dir.pidFile(), ec);
  std::cout << "site '" << site.info.name << "' stopped\n";
  return 0;
}

int siteStatus(const Options& options) {
  const Site site = openSite(options);
  if (options.json) {
    Json j = {{"site", site.info.name},
              {"directory", site.dir.dir().string()},
              {"running", site.running},
              {"pid", site.pid ? Json(*site.pid) : Json(nullptr)},
              {"hosts", site.info.hosts},
              {"link_port", site.info.link_port},
              {"claim_port", site.info.claim_port},
              {"management_port", site.info.management_port},
              {"amqp_port", site.info.amqp_port}};
    std::cout << j.dump(2) << "\n";
    return site.running ? 0 : 3;
  }
  if (!site.running) {
    std::cout << "site '" << site.info.name << "' is not running; start it with `vane site start`"
              << "\n";
    return 3;
  }
  std::cout << "site '" << site.info.name << "' is running ("
            << (site.pid ? "pid " + std::to_string(*site.pid) : std::string("not started by vane"))
            << "; " << describePorts(site.info) << ")\n"
            << "directory: " << site.dir.dir().string() << "\n";
  return 0;
}

}  // namespace vane::cli
