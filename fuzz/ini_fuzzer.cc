// The AWS shared credentials/config file parser (ParseIni, src/storage/s3_internal.h).
// Invariants, from its contract: keys are lower-case and trimmed, values trimmed, section
// names trimmed with single inner spaces, nothing holds a line break; the result written
// back as INI parses to itself; CRLF line ends read as LF; profile lookup agrees with it.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "storage/s3_internal.h"

using namespace orchard;
using namespace orchard::s3internal;

namespace {

bool Trimmed(std::string_view s) {
  return s.empty() || (!std::isspace(static_cast<unsigned char>(s.front())) &&
                       !std::isspace(static_cast<unsigned char>(s.back())));
}

std::string Write(const IniFile& ini) {
  std::string text;
  for (const auto& [section, keys] : ini) {
    text += "[" + section + "]\n";
    for (const auto& [key, value] : keys)
      text += key + "=" + value + "\n";  // no space: a key may be empty
  }
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = fuzz::AsText(data, size);
  const IniFile ini = ParseIni(text);
  for (const auto& [section, keys] : ini) {
    FUZZ_CHECK(Trimmed(section));
    FUZZ_CHECK(section.find(']') == std::string::npos && section.find('\n') == std::string::npos);
    for (size_t i = 0; i < section.size(); ++i) {
      const auto c = static_cast<unsigned char>(section[i]);
      FUZZ_CHECK(!std::isspace(c) || (c == ' ' && section[i + 1] != ' '));
    }
    for (const auto& [key, value] : keys) {
      FUZZ_CHECK(Trimmed(key) && Trimmed(value));
      FUZZ_CHECK(key.find('=') == std::string::npos && key.find('\n') == std::string::npos);
      FUZZ_CHECK(value.find('\n') == std::string::npos);
      for (const char c : key) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    }
  }

  FUZZ_CHECK(ParseIni(Write(ini)) == ini);

  std::string crlf;
  for (const char c : text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  FUZZ_CHECK(ParseIni(crlf) == ini);

  for (const auto& [section, keys] : ini) {
    if (section.rfind("profile ", 0) == 0) {
      const auto* profile = ConfigProfile(ini, section.substr(8));
      FUZZ_CHECK(profile == &keys);
    }
  }
  const auto* fallback = ConfigProfile(ini, "default");
  const auto profile_default = ini.find("profile default");
  const auto plain_default = ini.find("default");
  FUZZ_CHECK(fallback == (profile_default != ini.end() ? &profile_default->second
                          : plain_default != ini.end() ? &plain_default->second
                                                       : nullptr));
  return 0;
}
