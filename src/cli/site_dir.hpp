// A site's directory: where it is, what site.json says, and the files in it.
//
// One site per directory: $VANE_DIR or --dir, else $XDG_CONFIG_HOME/vane
// (default ~/.config/vane). Files:
//   site.json              this file's SiteInfo
//   vaned.yaml             the router's configuration (router_config.hpp)
//   ca.pem, ca-key.pem     the site CA (the key 0600)
//   router.pem, router-key.pem   the router's certificate and key (0600)
//   links/NAME/{ca,cert,key}.pem  credentials for a link to site NAME
//   vaned.pid, vaned.log   the router started by `vane site start`
//   tokens.json            written by vaned: issued tokens and their uses
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace vane::cli {

namespace fs = std::filesystem;

struct SiteInfo {
  std::string name;
  std::vector<std::string> hosts;  // names/IPs other sites reach this machine by; first advertised
  int link_port = 55671;
  int claim_port = 55672;
  int management_port = 55673;
  int amqp_port = 5672;  // 0: none
  std::string management_token;
};

class SiteDir {
 public:
  explicit SiteDir(fs::path dir) : dir_(std::move(dir)) {}

  // --dir (or VANE_DIR, already folded in by the caller when given), else
  // $XDG_CONFIG_HOME/vane, else ~/.config/vane.
  static SiteDir locate(const std::string& dir_option);

  const fs::path& dir() const { return dir_; }
  fs::path file(const std::string& name) const { return dir_ / name; }
  fs::path siteJson() const { return file("site.json"); }
  fs::path config() const { return file("vaned.yaml"); }
  fs::path pidFile() const { return file("vaned.pid"); }
  fs::path logFile() const { return file("vaned.log"); }
  fs::path linkDir(const std::string& site) const { return dir_ / "links" / site; }

  bool exists() const;
  // The site, or UserError "no site in DIR; create one with `vane site init NAME`".
  SiteInfo load() const;
  void save(const SiteInfo& info) const;

  // http://127.0.0.1:MGMT
  static std::string managementUrl(const SiteInfo& info);

 private:
  fs::path dir_;
};

// ---- files

// The whole file, or UserError naming it.
std::string readFile(const fs::path& path);
// Writes through a temporary file and a rename, with `mode` (e.g. 0600 for
// keys) set before any byte is written; creates missing parent directories.
void writeFile(const fs::path& path, const std::string& content, unsigned mode = 0644);

// The 1..64 characters of [A-Za-z0-9._-] that router ids and entity names
// are made of.
bool validName(const std::string& name);

// "HOST:PORT" or "[V6]:PORT"; false if malformed.
bool splitHostPort(const std::string& text, std::string& host, int& port);
std::string joinHostPort(const std::string& host, int port);

}  // namespace vane::cli
