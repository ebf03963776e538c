#include <charconv>
#include <string>

#include "orchard/writer.h"

namespace orchard {

std::string CsvField(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (char c : text) {
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

}  // namespace orchard
