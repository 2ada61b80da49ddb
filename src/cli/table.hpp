// Aligned text tables for the read commands, with colour only on a terminal.
//
// Cells may hold text that came from the network (addresses, names): control
// characters are shown escaped, so they cannot move the cursor or recolour
// the user's terminal.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace vane::cli {

enum class Tone { kPlain, kBad };

// How to decorate output: ANSI colour when stdout is a terminal.
struct Style {
  bool color = false;

  std::string bold(std::string_view text) const;
  std::string paint(std::string_view text, Tone tone) const;
};

// Text safe to print: control characters become \xNN.
std::string printable(std::string_view text);

struct Cell {
  Cell(std::string t, Tone tone = Tone::kPlain) : text(printable(t)), tone(tone) {}
  Cell(const char* t) : Cell(std::string(t)) {}

  std::string text;
  Tone tone;
};

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string title;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // Missing trailing cells print empty; extra cells are ignored.
  void add(std::vector<Cell> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }

  // A header line and one line per row, columns two spaces apart, each line
  // after `indent`; no trailing blanks.
  void print(std::ostream& out, const Style& style, std::string_view indent = "") const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<Cell>> rows_;
};

}  // namespace vane::cli
