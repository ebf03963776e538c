// The manifest.json reader behind `orchard inspect` (ParseManifest, src/pipeline/manifest.h).
// Invariants: it never throws; what it accepts is a JSON object whose every listed result
// file is a plain name (inspect opens dir / name) with the size and sha256 the text holds.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_util.h"
#include "pipeline/manifest.h"

using namespace orchard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Result<ManifestSummary> summary = ParseManifest(fuzz::AsText(data, size));
  const nlohmann::json j =
      nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (!summary.ok()) {
    FUZZ_CHECK(summary.status().code() == StatusCode::kCorruptData);
    return 0;
  }
  FUZZ_CHECK(j.is_object());
  const auto status = j.find("status");
  FUZZ_CHECK(
      summary->status ==
      (status != j.end() && status->is_string() ? status->get<std::string>() : std::string("?")));
  if (!summary->files) return 0;
  const nlohmann::json& files = j.at("files");
  FUZZ_CHECK(files.is_object() && files.size() == summary->files->size());
  for (const auto& [name, file] : *summary->files) {
    FUZZ_CHECK(!name.empty() && name != "." && name != "..");
    FUZZ_CHECK(name.find('/') == std::string::npos && name.find('\0') == std::string::npos);
    FUZZ_CHECK(files.at(name).at("bytes").get<uint64_t>() == file.bytes);
    FUZZ_CHECK(files.at(name).at("sha256").get<std::string>() == file.sha256);
  }
  return 0;
}
