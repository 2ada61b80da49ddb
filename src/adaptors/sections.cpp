#include "adaptors/sections.hpp"

#include "adaptors/http/http_config.hpp"
#include "adaptors/tcp/tcp_config.hpp"
#include "config/section.hpp"

namespace vane::adaptors {

void addConfigSections() {
  static const bool added = [] {
    for (const config::SectionType* t : tcpSections()) config::addSection(*t);
    for (const config::SectionType* t : httpSections()) config::addSection(*t);
    return true;
  }();
  (void)added;
}

}  // namespace vane::adaptors
