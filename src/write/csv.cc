#include "orchard/csv.h"

#include <charconv>
#include <string>

namespace orchard {

std::string CsvField(std::string_view text) {
  std::string cell;
  // A spreadsheet would run "=...", "+...", "-...", "@..." (and tab/CR-led) cells as formulas
  // (CSV injection): such text gets one leading apostrophe, as OWASP advises. Text that
  // already starts with one gets another, so dropping one leading apostrophe always gives the
  // exact original back.
  if (!text.empty() && std::string_view("=+-@\t\r'").find(text.front()) != std::string_view::npos) {
    cell.push_back('\'');
  }
  cell.append(text);
  if (cell.find_first_of(",\"\r\n") == std::string::npos) return cell;
  std::string quoted = "\"";
  for (char c : cell) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string FormatFloat(float value) {
  char buffer[32];
  // Without a precision, to_chars writes the shortest text that round-trips exactly.
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::vector<std::vector<std::string>> ParseCsv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row(1);
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        row.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        row.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.emplace_back();
    } else if (c == '\n') {
      rows.push_back(std::move(row));
      row.assign(1, "");
    } else if (c != '\r') {
      row.back() += c;
    }
  }
  if (row.size() > 1 || !row[0].empty()) rows.push_back(std::move(row));
  return rows;
}

}  // namespace orchard
