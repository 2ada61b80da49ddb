// Address -> distribution lookup. Construction sorts the rules once so that a
// lookup is a linear scan that stops at the first hit; matching works on
// string_views of the address and never allocates.
#include "routing/address_policy.hpp"

#include <algorithm>
#include <utility>

namespace vane::routing {

using config::TokenCursor;

bool patternMatches(const std::vector<std::string>& pattern, std::string_view address) {
  // Glob matching over tokens: '#' behaves like a glob '*' (any run of
  // tokens) and '*' like a glob '?' (exactly one token). Remembering only the
  // most recent '#' is enough: a later '#' can absorb anything an earlier one
  // would have, so backtracking to older ones never finds a new match.
  TokenCursor cur(address);
  const std::size_t n = pattern.size();
  std::size_t p = 0;
  std::size_t a = cur.begin();
  std::size_t hash_p = n;  // index of the last '#' seen, n if none
  std::size_t hash_a = 0;  // address token where that '#' match ends so far
  while (a != cur.end()) {
    if (p < n && pattern[p] == "#") {
      hash_p = p++;
      hash_a = a;  // try '#' matching zero tokens first
    } else if (p < n && (pattern[p] == "*" || pattern[p] == cur.token(a))) {
      ++p;
      a = cur.next(a);
    } else if (hash_p != n) {
      // Let the last '#' swallow one more token and retry from there.
      p = hash_p + 1;
      hash_a = cur.next(hash_a);
      a = hash_a;
    } else {
      return false;
    }
  }
  while (p < n && pattern[p] == "#") ++p;
  return p == n;
}

AddressPolicy::AddressPolicy(const std::vector<config::AddressConfig>& rules) {
  // A rule with neither prefix nor pattern is invalid (the parser rejects
  // it) and is ignored here rather than matching everything.
  for (const config::AddressConfig& r : rules) {
    if (!r.pattern.empty()) {
      Pattern pat;
      pat.distribution = r.distribution;
      for (std::string_view t : splitAddressTokens(r.pattern)) {
        if (t == "*" || t == "#") {
          ++pat.wildcards;
          if (t == "#") ++pat.multi_wildcards;
        } else {
          pat.literal_chars += t.size();
        }
        pat.tokens.emplace_back(t);
      }
      patterns_.push_back(std::move(pat));
    } else if (!r.prefix.empty()) {
      prefixes_.push_back(Prefix{r.prefix, r.distribution});
    }
  }
  // Stable sorts keep configuration order among equals ("first configured wins").
  std::stable_sort(prefixes_.begin(), prefixes_.end(), [](const Prefix& x, const Prefix& y) {
    return x.prefix.size() > y.prefix.size();
  });
  std::stable_sort(patterns_.begin(), patterns_.end(), [](const Pattern& x, const Pattern& y) {
    if (x.multi_wildcards != y.multi_wildcards) return x.multi_wildcards < y.multi_wildcards;
    if (x.wildcards != y.wildcards) return x.wildcards < y.wildcards;
    return x.literal_chars > y.literal_chars;
  });
}

config::Distribution AddressPolicy::lookup(std::string_view address) const {
  // The router's own addresses (TCP services, flows, replies) are anycast
  // whatever the rules say.
  if (address.substr(0, 6) == "_vane/") return config::Distribution::kBalanced;
  for (const Prefix& p : prefixes_) {
    if (address.substr(0, p.prefix.size()) == p.prefix) return p.distribution;
  }
  for (const Pattern& p : patterns_) {
    if (patternMatches(p.tokens, address)) return p.distribution;
  }
  return config::Distribution::kBalanced;
}

}  // namespace vane::routing
