// CSV as Orchard writes it (RFC 4180): fields quoted only when they hold a comma, a quote
// or a line break; quotes doubled inside quoted fields.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace orchard {

// One text field, quoted when needed. Text starting with '=', '+', '-', '@', a tab, a CR or
// an apostrophe gets one leading apostrophe first, so that spreadsheets do not run it as a
// formula; drop one leading apostrophe to get the exact text back. Numbers are written with
// FormatFloat, not through this.
std::string CsvField(std::string_view text);

// The shortest decimal text that reads back as exactly the same float ("0.1", "-2.5e-07").
std::string FormatFloat(float value);

// Splits CSV text into rows of fields (quoted fields may span lines).
std::vector<std::vector<std::string>> ParseCsv(std::string_view text);

}  // namespace orchard
