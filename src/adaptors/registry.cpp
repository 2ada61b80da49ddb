#include "adaptors/registry.hpp"

#include "adaptors/http/http_adaptor.hpp"
#include "adaptors/sections.hpp"
#include "adaptors/tcp/tcp_adaptor.hpp"

namespace vane::adaptors {

const std::vector<const Adaptor*>& all() {
  addConfigSections();  // every adaptor's sections are in the schema
  static const std::vector<const Adaptor*> adaptors = {
      &tcp::adaptor(),
      &http::adaptor(),
  };
  return adaptors;
}

const std::vector<const EntityKind*>& kinds() {
  static const std::vector<const EntityKind*> list = [] {
    std::vector<const EntityKind*> out;
    for (const Adaptor* a : all()) out.insert(out.end(), a->kinds.begin(), a->kinds.end());
    return out;
  }();
  return list;
}

const EntityKind* kindByPath(std::string_view path) {
  for (const EntityKind* k : kinds()) {
    if (k->path == path) return k;
  }
  return nullptr;
}

const Adaptor* adaptorOf(std::string_view address) {
  for (const Adaptor* a : all()) {
    if (address.substr(0, a->service_prefix.size()) == a->service_prefix) return a;
  }
  return nullptr;
}

}  // namespace vane::adaptors
