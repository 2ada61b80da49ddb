// Resolves an address string to its distribution using the configured
// prefix and pattern rules. Immutable after construction; safe to share
// across threads as std::shared_ptr<const AddressPolicy>.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/address_tokens.hpp"
#include "config/config.hpp"

namespace vane::routing {

class AddressPolicy {
 public:
  AddressPolicy() = default;
  explicit AddressPolicy(const std::vector<config::AddressConfig>& rules);

  // Longest matching prefix wins; otherwise the most specific matching pattern
  // (fewest '#', then fewest wildcards, then longest literal text, then
  // first configured);
  // otherwise balanced.
  config::Distribution lookup(std::string_view address) const;

 private:
  struct Pattern {
    std::vector<std::string> tokens;
    config::Distribution distribution;
    int multi_wildcards = 0;  // '#' tokens: each is less specific than any '*'
    int wildcards = 0;
    std::size_t literal_chars = 0;
  };
  struct Prefix {
    std::string prefix;
    config::Distribution distribution;
  };
  std::vector<Prefix> prefixes_;   // sorted by descending length
  std::vector<Pattern> patterns_;  // sorted by specificity
};

using config::splitAddressTokens;

// True if `address` matches the pattern tokens ('*' = one token, '#' = zero or more).
bool patternMatches(const std::vector<std::string>& pattern, std::string_view address);

}  // namespace vane::routing
