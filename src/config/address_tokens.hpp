// The token syntax of addresses and address patterns: tokens separated by
// '.' or '/'. Part of the configuration language (patterns in `addresses`
// are checked against each other when a file is read) and of the routing
// that matches addresses against them at run time; neither allocates.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace vane::config {

constexpr bool isAddressSeparator(char c) {
  return c == '.' || c == '/';
}

// Walks the tokens of an address without allocating. A non-empty address of
// n separators has n + 1 tokens (some possibly empty, e.g. "a." -> "a", "");
// the empty address has no tokens. A cursor is the offset where a token
// starts; `end()` (size + 1) means no token is left.
class TokenCursor {
 public:
  explicit constexpr TokenCursor(std::string_view s) : s_(s) {}

  constexpr std::size_t begin() const { return s_.empty() ? end() : 0; }
  constexpr std::size_t end() const { return s_.size() + 1; }

  // The token starting at `pos` (pos != end()).
  constexpr std::string_view token(std::size_t pos) const {
    return s_.substr(pos, stop(pos) - pos);
  }

  // The start of the token after the one starting at `pos`.
  constexpr std::size_t next(std::size_t pos) const {
    return stop(pos) + 1;  // past the separator, or end() if there was none
  }

 private:
  constexpr std::size_t stop(std::size_t pos) const {
    while (pos < s_.size() && !isAddressSeparator(s_[pos])) ++pos;
    return pos;
  }
  std::string_view s_;
};

// Splits an address into its tokens (views into `address`).
inline std::vector<std::string_view> splitAddressTokens(std::string_view address) {
  std::vector<std::string_view> out;
  TokenCursor cur(address);
  for (std::size_t pos = cur.begin(); pos != cur.end(); pos = cur.next(pos)) {
    out.push_back(cur.token(pos));
  }
  return out;
}

}  // namespace vane::config
