// `vane link create|list|delete`: links from this site to other sites.
//
// `link create TOKEN` redeems a token (token.hpp) at the issuing site's claim
// port: a new key, a certificate request with this site's name, and the
// answer, a client certificate signed by that site's CA. The credentials go
// to links/NAME/, and a tls profile `link-NAME` plus a connector `NAME` to the
// token's link endpoint go into vaned.yaml, and into the running router.
#pragma once

#include <string>

#include "cli/site.hpp"

namespace vane::cli {

struct LinkCreateOptions {
  std::string token_file;
  int cost = 1;
  std::string name;  // "" = the token's site
};
int linkCreate(const Options& options, const LinkCreateOptions& create);
int linkList(const Options& options);
int linkDelete(const Options& options, const std::string& name);

}  // namespace vane::cli
