// Reading back a result folder's manifest.json: what `orchard inspect` reports and checks
// (each result file's size and sha256) before it calls a result complete.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "orchard/status.h"

namespace orchard {

// What a manifest.json says, as `orchard inspect` reads it back. A field that is absent or
// not of the type ManifestBuilder writes keeps the default below ("?", 0, false).
struct ManifestSummary {
  struct File {
    uint64_t bytes = 0;
    std::string sha256;
  };
  std::string status = "?";  // "ok" or "failed"
  int64_t listed = 0, processed = 0, failed = 0;
  std::string model_name = "?", model_weights = "?", model_pooling = "?";
  bool random_weights = false;
  int64_t descriptor_dim = 0;
  // The result files the manifest vouches for; nullopt when it lists none (written before
  // Orchard checked them).
  std::optional<std::map<std::string, File>> files;
  bool has_pca = false;
  int64_t pca_k = 0;
  double pca_variance_ratio_sum = 0;
  bool has_store = false;
  std::string store_mode = "?";
  int64_t store_reused = 0, store_featurized = 0, store_segments = 0;
  std::optional<double> total_seconds;
};

// Reads manifest.json text. A pure function of the bytes that never throws, whatever they
// hold: kCorruptData when they are not a JSON object, or when "files" holds an entry that
// is not a plain file name (empty, ".", "..", or with '/' or NUL: inspect would look outside
// the folder) mapped to {"bytes": unsigned integer, "sha256": string}; kResourceExhausted
// when memory runs out.
Result<ManifestSummary> ParseManifest(std::string_view text);

}  // namespace orchard
