#include "routing/address_policy.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace vane::routing {
namespace {

using config::AddressConfig;
using config::Distribution;

std::vector<std::string> pat(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view t : splitAddressTokens(text)) out.emplace_back(t);
  return out;
}

bool matches(std::string_view pattern, std::string_view address) {
  return patternMatches(pat(pattern), address);
}

AddressConfig prefix(std::string p, Distribution d) {
  AddressConfig a;
  a.prefix = std::move(p);
  a.distribution = d;
  return a;
}

AddressConfig pattern(std::string p, Distribution d) {
  AddressConfig a;
  a.pattern = std::move(p);
  a.distribution = d;
  return a;
}

// ---------------------------------------------------------------- splitting

TEST(SplitAddressTokens, Basics) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(splitAddressTokens(""), V{});
  EXPECT_EQ(splitAddressTokens("a"), V{"a"});
  EXPECT_EQ(splitAddressTokens("a.b/c"), (V{"a", "b", "c"}));
  EXPECT_EQ(splitAddressTokens("orders.eu"), (V{"orders", "eu"}));
  EXPECT_EQ(splitAddressTokens("a."), (V{"a", ""}));
  EXPECT_EQ(splitAddressTokens("/a"), (V{"", "a"}));
  EXPECT_EQ(splitAddressTokens("a..b"), (V{"a", "", "b"}));
  EXPECT_EQ(splitAddressTokens("."), (V{"", ""}));
  EXPECT_EQ(splitAddressTokens("a*b.#"), (V{"a*b", "#"}));
}

// ---------------------------------------------------------------- matching

TEST(PatternMatches, Literals) {
  EXPECT_TRUE(matches("a.b.c", "a.b.c"));
  EXPECT_TRUE(matches("a.b.c", "a/b/c"));  // separators are interchangeable
  EXPECT_TRUE(matches("a/b.c", "a.b/c"));
  EXPECT_FALSE(matches("a.b.c", "a.b"));
  EXPECT_FALSE(matches("a.b", "a.b.c"));
  EXPECT_FALSE(matches("a.b.c", "a.b.d"));
  EXPECT_FALSE(matches("a.b", "a.bc"));
  EXPECT_FALSE(matches("abc", "ab"));
}

TEST(PatternMatches, Star) {
  EXPECT_TRUE(matches("orders.*.eu", "orders.123.eu"));
  EXPECT_TRUE(matches("orders.*.eu", "orders/x/eu"));
  EXPECT_FALSE(matches("orders.*.eu", "orders.eu"));
  EXPECT_FALSE(matches("orders.*.eu", "orders.a.b.eu"));
  EXPECT_TRUE(matches("*", "a"));
  EXPECT_FALSE(matches("*", "a.b"));
  EXPECT_FALSE(matches("*", ""));
  EXPECT_TRUE(matches("*.*", "a.b"));
  EXPECT_TRUE(matches("a.*", "a."));  // the empty token after the dot
  EXPECT_FALSE(matches("a.*", "a"));
}

TEST(PatternMatches, Hash) {
  EXPECT_TRUE(matches("a.#.z", "a.z"));
  EXPECT_TRUE(matches("a.#.z", "a.b.z"));
  EXPECT_TRUE(matches("a.#.z", "a.b.c.z"));
  EXPECT_FALSE(matches("a.#.z", "a.b"));
  EXPECT_FALSE(matches("a.#.z", "a.z.b"));
  EXPECT_TRUE(matches("a.#.z", "a.z.z"));
  EXPECT_TRUE(matches("a.#.z", "a.z.b.z"));
  EXPECT_TRUE(matches("#", ""));
  EXPECT_TRUE(matches("#", "a"));
  EXPECT_TRUE(matches("#", "a.b/c.d"));
  EXPECT_TRUE(matches("a/#", "a"));
  EXPECT_TRUE(matches("a/#", "a/b"));
  EXPECT_TRUE(matches("a/#", "a.b.c"));
  EXPECT_FALSE(matches("a/#", "b"));
  EXPECT_FALSE(matches("a/#", "ab"));
  EXPECT_TRUE(matches("#.z", "z"));
  EXPECT_TRUE(matches("#.z", "a.b.z"));
  EXPECT_FALSE(matches("#.z", "a.b.zz"));
  EXPECT_TRUE(matches("#.#", ""));
  EXPECT_TRUE(matches("#.#", "a.b"));
}

TEST(PatternMatches, HashBacktracking) {
  EXPECT_TRUE(matches("#.a.#.b", "x.a.y.a.b"));
  EXPECT_TRUE(matches("#.a.*.b", "a.a.x.b"));
  EXPECT_TRUE(matches("#.a.*.b", "a.a.b"));
  EXPECT_FALSE(matches("#.a.*.b", "a.b"));
  EXPECT_FALSE(matches("#.a.*.b", "x.a.b.c"));
  EXPECT_TRUE(matches("a.#.*", "a.b"));
  EXPECT_FALSE(matches("a.#.*", "a"));
  EXPECT_TRUE(matches("#.*.#", "x"));
  EXPECT_FALSE(matches("#.*.#", ""));
  EXPECT_TRUE(matches("a.#.b.#.c", "a.b.c"));
  EXPECT_TRUE(matches("a.#.b.#.c", "a.x.b.b.y.c.c"));
  EXPECT_FALSE(matches("a.#.b.#.c", "a.x.c.b"));
}

TEST(PatternMatches, WildcardCharactersInsideTokensAreLiteral) {
  EXPECT_TRUE(matches("a*", "a*"));
  EXPECT_FALSE(matches("a*", "ab"));
  EXPECT_TRUE(matches("x.#y", "x.#y"));
  EXPECT_FALSE(matches("x.#y", "x.y"));
  EXPECT_FALSE(matches("x.#y", "x.a.y"));
}

TEST(PatternMatches, EmptyPatternAndEmptyTokens) {
  EXPECT_TRUE(patternMatches({}, ""));
  EXPECT_FALSE(patternMatches({}, "a"));
  EXPECT_TRUE(matches("a..b", "a..b"));
  EXPECT_TRUE(matches("a.*.b", "a..b"));
  EXPECT_FALSE(matches("a..b", "a.b"));
}

// Reference matcher: plain recursion over token vectors.
bool referenceMatch(const std::vector<std::string>& p, std::size_t i,
                    const std::vector<std::string_view>& a, std::size_t j) {
  if (i == p.size()) return j == a.size();
  if (p[i] == "#") {
    for (std::size_t k = j; k <= a.size(); ++k) {
      if (referenceMatch(p, i + 1, a, k)) return true;
    }
    return false;
  }
  if (j == a.size()) return false;
  if (p[i] != "*" && p[i] != a[j]) return false;
  return referenceMatch(p, i + 1, a, j + 1);
}

TEST(PatternMatches, AgreesWithReferenceOnRandomInputs) {
  std::mt19937 rng(12345);
  const char* pattern_tokens[] = {"a", "b", "*", "#"};
  const char* address_tokens[] = {"a", "b", "c"};
  for (int iter = 0; iter < 20000; ++iter) {
    std::string p;
    const int np = static_cast<int>(rng() % 6);
    for (int i = 0; i < np; ++i) {
      if (i > 0) p += (rng() % 2) ? '.' : '/';
      p += pattern_tokens[rng() % 4];
    }
    std::string a;
    const int na = static_cast<int>(rng() % 7);
    for (int i = 0; i < na; ++i) {
      if (i > 0) a += '.';
      a += address_tokens[rng() % 3];
    }
    const std::vector<std::string> tokens = pat(p);
    const bool expected = referenceMatch(tokens, 0, splitAddressTokens(a), 0);
    ASSERT_EQ(patternMatches(tokens, a), expected) << "pattern '" << p << "' address '" << a << "'";
  }
}

TEST(PatternMatches, ManyHashesOnLongAddressIsFast) {
  std::string address;
  for (int i = 0; i < 2000; ++i) address += "x.";
  address += "y";
  // Would be exponential with naive backtracking.
  EXPECT_FALSE(matches("#.x.#.x.#.x.#.x.#.z", address));
  EXPECT_TRUE(matches("#.x.#.x.#.x.#.x.#.y", address));
}

// ------------------------------------------------------------------ lookup

TEST(AddressPolicy, DefaultIsBalanced) {
  AddressPolicy empty;
  EXPECT_EQ(empty.lookup("anything"), Distribution::kBalanced);
  EXPECT_EQ(empty.lookup(""), Distribution::kBalanced);
  AddressPolicy p({prefix("mc/", Distribution::kMulticast)});
  EXPECT_EQ(p.lookup("queue1"), Distribution::kBalanced);
}

TEST(AddressPolicy, PrefixIsPlainStringPrefix) {
  AddressPolicy p({prefix("mc", Distribution::kMulticast)});
  EXPECT_EQ(p.lookup("mc"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("mcast.x"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("m"), Distribution::kBalanced);
  EXPECT_EQ(p.lookup("xmc"), Distribution::kBalanced);
}

TEST(AddressPolicy, LongestPrefixWinsRegardlessOfOrder) {
  const std::vector<AddressConfig> rules = {
      prefix("a/", Distribution::kMulticast),
      prefix("a/b/c/", Distribution::kBalanced),
      prefix("a/b/", Distribution::kClosest),
  };
  AddressPolicy p(rules);
  EXPECT_EQ(p.lookup("a/x"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("a/b/x"), Distribution::kClosest);
  EXPECT_EQ(p.lookup("a/b/c/x"), Distribution::kBalanced);
  AddressPolicy reversed({rules.rbegin(), rules.rend()});
  EXPECT_EQ(reversed.lookup("a/x"), Distribution::kMulticast);
  EXPECT_EQ(reversed.lookup("a/b/x"), Distribution::kClosest);
  EXPECT_EQ(reversed.lookup("a/b/c/x"), Distribution::kBalanced);
}

TEST(AddressPolicy, PrefixBeatsEvenAnExactPattern) {
  AddressPolicy p({
      pattern("mc.news", Distribution::kClosest),
      prefix("mc.", Distribution::kMulticast),
  });
  EXPECT_EQ(p.lookup("mc.news"), Distribution::kMulticast);
}

TEST(AddressPolicy, FewestWildcardsWins) {
  AddressPolicy p({
      pattern("orders.*.*", Distribution::kClosest),
      pattern("orders.*.eu", Distribution::kMulticast),
  });
  EXPECT_EQ(p.lookup("orders.1.eu"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("orders.1.us"), Distribution::kClosest);
  EXPECT_EQ(p.lookup("other"), Distribution::kBalanced);
}

TEST(AddressPolicy, HashIsLessSpecificThanAnyStar) {
  // A pattern with fewer '#' wins first, so a catch-all "#" never beats
  // "orders.*.*" although it has fewer wildcards.
  AddressPolicy p({
      pattern("#", Distribution::kMulticast),
      pattern("orders.*.*", Distribution::kClosest),
  });
  EXPECT_EQ(p.lookup("orders.1.us"), Distribution::kClosest);
  EXPECT_EQ(p.lookup("other"), Distribution::kMulticast);
}

TEST(AddressPolicy, StarBeatsHashWhateverTheOrder) {
  // "a.*" has no '#', so it is more specific than "a.#" in either order.
  AddressPolicy p({
      pattern("a.#", Distribution::kClosest),
      pattern("a.*", Distribution::kMulticast),
  });
  EXPECT_EQ(p.lookup("a.b"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("a.b.c"), Distribution::kClosest);
  AddressPolicy q({
      pattern("a.*", Distribution::kMulticast),
      pattern("a.#", Distribution::kClosest),
  });
  EXPECT_EQ(q.lookup("a.b"), Distribution::kMulticast);
  EXPECT_EQ(q.lookup("a.b.c"), Distribution::kClosest);
}

TEST(AddressPolicy, MoreLiteralCharactersWinsOnEqualWildcards) {
  AddressPolicy p({
      pattern("*.eu", Distribution::kClosest),
      pattern("orders.*", Distribution::kMulticast),
  });
  EXPECT_EQ(p.lookup("orders.eu"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("stock.eu"), Distribution::kClosest);
}

TEST(AddressPolicy, FirstConfiguredWinsOnTies) {
  AddressPolicy p({
      pattern("a.*", Distribution::kClosest),
      pattern("*.b", Distribution::kMulticast),
  });
  EXPECT_EQ(p.lookup("a.b"), Distribution::kClosest);
  AddressPolicy q({
      pattern("*.b", Distribution::kMulticast),
      pattern("a.*", Distribution::kClosest),
  });
  EXPECT_EQ(q.lookup("a.b"), Distribution::kMulticast);
}

TEST(AddressPolicy, ExactPatternBeatsWildcards) {
  AddressPolicy p({
      pattern("a.#", Distribution::kMulticast),
      pattern("a.b", Distribution::kClosest),
  });
  EXPECT_EQ(p.lookup("a.b"), Distribution::kClosest);
  EXPECT_EQ(p.lookup("a/b"), Distribution::kClosest);
  EXPECT_EQ(p.lookup("a.c"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("a"), Distribution::kMulticast);
}

// The "Which rule wins" example in docs/configuration.md.
TEST(AddressPolicy, DocumentedPrecedenceExample) {
  AddressPolicy p({
      prefix("orders/priority/", Distribution::kBalanced),
      pattern("orders.*.eu", Distribution::kMulticast),
      pattern("orders.#", Distribution::kClosest),
  });
  EXPECT_EQ(p.lookup("orders/priority/eu"), Distribution::kBalanced);
  EXPECT_EQ(p.lookup("orders.1.eu"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("orders.1.us"), Distribution::kClosest);
  EXPECT_EQ(p.lookup("stock.1"), Distribution::kBalanced);
}

TEST(AddressPolicy, RuleWithNeitherPrefixNorPatternIsIgnored) {
  AddressPolicy p({AddressConfig{"", "", Distribution::kMulticast, 0}});
  EXPECT_EQ(p.lookup("x"), Distribution::kBalanced);
}

TEST(AddressPolicy, FromParsedConfig) {
  config::ConfigResult r = config::parseString(
      "addresses:\n"
      "  - prefix: mc/\n"
      "    distribution: multicast\n"
      "  - pattern: \"orders.*.eu\"\n"
      "    distribution: closest\n"
      "  - pattern: \"logs/#\"\n"
      "    distribution: multicast\n",
      "t.yaml");
  ASSERT_TRUE(std::holds_alternative<config::Config>(r));
  AddressPolicy p(std::get<config::Config>(r).addresses);
  EXPECT_EQ(p.lookup("mc/news"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("orders.7.eu"), Distribution::kClosest);
  EXPECT_EQ(p.lookup("orders.7.us"), Distribution::kBalanced);
  EXPECT_EQ(p.lookup("logs"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("logs/app/err"), Distribution::kMulticast);
  EXPECT_EQ(p.lookup("queue"), Distribution::kBalanced);
}

}  // namespace
}  // namespace vane::routing
