#include <algorithm>
#include <array>
#include <cctype>

#include "orchard/pipeline.h"

namespace orchard {

bool HasImageExtension(const std::string& key) {
  static constexpr std::array<std::string_view, 5> kExtensions = {"jpg", "jpeg", "png", "webp",
                                                                  "bmp"};
  const size_t slash = key.rfind('/');
  const size_t dot = key.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return false;
  std::string ext = key.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

std::string LabelOf(const std::string& key) {
  const size_t slash = key.rfind('/');
  if (slash == std::string::npos) return "";
  const size_t parent_start = key.rfind('/', slash - 1);
  return parent_start == std::string::npos || slash == 0
             ? key.substr(0, slash)
             : key.substr(parent_start + 1, slash - parent_start - 1);
}

}  // namespace orchard
