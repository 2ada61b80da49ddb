#include "cli/site_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/errors.hpp"
#include "config/config.hpp"

namespace vane::cli {

namespace {

using OrderedJson = nlohmann::ordered_json;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

int intField(const OrderedJson& j, const char* key, const fs::path& file) {
  if (!j.contains(key) || !j[key].is_number_integer()) {
    throw UserError(file.string() + " has no valid '" + key + "'; fix the file or create the " +
                    "site again with `vane site init`");
  }
  return j[key].get<int>();
}

std::string stringField(const OrderedJson& j, const char* key, const fs::path& file) {
  if (!j.contains(key) || !j[key].is_string()) {
    throw UserError(file.string() + " has no valid '" + key + "'; fix the file or create the " +
                    "site again with `vane site init`");
  }
  return j[key].get<std::string>();
}

}  // namespace

SiteDir SiteDir::locate(const std::string& dir_option) {
  if (!dir_option.empty()) return SiteDir(fs::weakly_canonical(fs::absolute(dir_option)));
  const std::string xdg = env("XDG_CONFIG_HOME");
  if (!xdg.empty()) return SiteDir(fs::weakly_canonical(fs::absolute(fs::path(xdg) / "vane")));
  const std::string home = env("HOME");
  if (home.empty()) {
    throw UserError("neither XDG_CONFIG_HOME nor HOME is set, so vane does not know where the " +
                    std::string("site lives; give its directory with --dir DIR or VANE_DIR"));
  }
  return SiteDir(fs::weakly_canonical(fs::path(home) / ".config" / "vane"));
}

bool SiteDir::exists() const {
  std::error_code ec;
  return fs::exists(siteJson(), ec);
}

SiteInfo SiteDir::load() const {
  if (!exists()) {
    throw UserError("there is no site in " + dir_.string() +
                    "; create one with `vane site init NAME` (or pick another with --dir DIR)");
  }
  const fs::path file = siteJson();
  const OrderedJson j = OrderedJson::parse(readFile(file), nullptr, false);
  if (!j.is_object()) {
    throw UserError(file.string() + " is not valid JSON; fix it, or remove the directory and " +
                    "create the site again with `vane site init`");
  }
  SiteInfo info;
  info.name = stringField(j, "name", file);
  info.link_port = intField(j, "link_port", file);
  info.claim_port = intField(j, "claim_port", file);
  info.management_port = intField(j, "management_port", file);
  info.amqp_port = intField(j, "amqp_port", file);
  info.management_token = stringField(j, "management_token", file);
  if (j.contains("hosts") && j["hosts"].is_array()) {
    for (const auto& h : j["hosts"]) {
      if (h.is_string()) info.hosts.push_back(h.get<std::string>());
    }
  }
  if (info.hosts.empty()) info.hosts.push_back("127.0.0.1");
  return info;
}

void SiteDir::save(const SiteInfo& info) const {
  OrderedJson j = {{"name", info.name},
                   {"hosts", info.hosts},
                   {"link_port", info.link_port},
                   {"claim_port", info.claim_port},
                   {"management_port", info.management_port},
                   {"amqp_port", info.amqp_port},
                   {"management_token", info.management_token}};
  writeFile(siteJson(), j.dump(2) + "\n", 0600);  // holds the management token
}

std::string SiteDir::managementUrl(const SiteInfo& info) {
  return "http://127.0.0.1:" + std::to_string(info.management_port);
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw UserError("cannot read " + path.string() + " (" + std::strerror(errno) +
                    "); check that the file exists and that you may read it");
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void writeFile(const fs::path& path, const std::string& content, unsigned mode) {
  auto fail = [&](const char* what) {
    throw UserError("cannot " + std::string(what) + " " + path.string() + " (" +
                    std::strerror(errno) + "); check the directory's permissions and free space");
  };
  std::error_code ec;
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path(), ec);
  if (ec) {
    errno = ec.value();
    fail("create the directory of");
  }
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) fail("write");
  ::fchmod(fd, mode);  // also when the temporary file existed with other bits
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) fail("write");
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("replace");
}

bool validName(const std::string& name) {
  // "." and ".." would name directories outside links/ when used in paths.
  return config::isValidName(name) && name != "." && name != "..";
}

bool splitHostPort(const std::string& text, std::string& host, int& port) {
  std::size_t colon;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    host = text.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    if (host.find(':') != std::string::npos) return false;  // a bare IPv6 literal
  }
  const std::string digits = text.substr(colon + 1);
  if (host.empty() || digits.empty() || digits.size() > 5) return false;
  port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port >= 1 && port <= 65535;
}

std::string joinHostPort(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace vane::cli
