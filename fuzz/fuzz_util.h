// Helpers shared by the fuzz targets.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

// An invariant of the code under test: when it does not hold, the input is a finding, so
// abort (libFuzzer then saves the input as a crash).
#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace orchard::fuzz {

// Whether `part` lies inside `whole` (an empty span anywhere counts as inside).
template <typename T>
bool Within(std::span<const T> part, std::span<const T> whole) {
  if (part.empty()) return true;
  const auto* begin = whole.data();
  const auto* end = whole.data() + whole.size();
  return part.data() >= begin && part.data() <= end &&
         part.size() <= static_cast<size_t>(end - part.data());
}

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace orchard::fuzz
