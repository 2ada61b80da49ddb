#include "cli/table.hpp"

#include <algorithm>
#include <cstdio>

namespace vane::cli {

namespace {

constexpr std::string_view kBold = "\033[1m";
constexpr std::string_view kRed = "\033[31m";
constexpr std::string_view kReset = "\033[0m";

// Terminal columns of UTF-8 text: one per code point (wide characters are
// rare in router names and addresses; they only misalign their own row).
std::size_t width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace

std::string Style::bold(std::string_view text) const {
  if (!color) return std::string(text);
  return std::string(kBold) + std::string(text) + std::string(kReset);
}

std::string Style::paint(std::string_view text, Tone tone) const {
  if (!color || tone == Tone::kPlain) return std::string(text);
  return std::string(kRed) + std::string(text) + std::string(kReset);
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void Table::print(std::ostream& out, const Style& style, std::string_view indent) const {
  std::vector<std::size_t> widths;
  for (const auto& c : columns_) widths.push_back(width(c.title));
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < widths.size() && i < row.size(); ++i) {
      widths[i] = std::max(widths[i], width(row[i].text));
    }
  }
  // Pads outside the colour codes, so alignment ignores them.
  auto line = [&](auto cellText, auto decorate) {
    std::string s(indent);
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      const std::string text = cellText(i);
      const std::size_t pad = widths[i] - width(text);
      const bool last = i + 1 == columns_.size();
      if (i > 0) s += "  ";
      if (columns_[i].align == Align::kRight) s.append(pad, ' ');
      s += decorate(i, text);
      if (columns_[i].align == Align::kLeft && !last) s.append(pad, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << '\n';
  };
  line([&](std::size_t i) { return columns_[i].title; },
       [&](std::size_t, const std::string& t) { return style.bold(t); });
  for (const auto& row : rows_) {
    line([&](std::size_t i) { return i < row.size() ? row[i].text : std::string(); },
         [&](std::size_t i, const std::string& t) {
           return i < row.size() ? style.paint(t, row[i].tone) : t;
         });
  }
}

}  // namespace vane::cli
