// manifest.json: what a run did (counts), with what (model, weights, options, versions) and
// how long each stage took. Built up by RunPipeline as the run goes.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "orchard/extractor.h"
#include "orchard/featurizer.h"
#include "orchard/manifest_summary.h"
#include "orchard/pca.h"
#include "orchard/pipeline.h"

namespace orchard {

// Seconds per stage. read/decode/preprocess are summed over the worker threads (CPU time
// spent), extract over the concurrent inference runs (so images / extract * runs is the
// network's own throughput); the others are wall time of the stage.
struct StageTimes {
  double list = 0, model_load = 0, read = 0, decode = 0, preprocess = 0, extract = 0,
         pca_accumulate = 0, pca_fit = 0, write = 0, total = 0;
  void Add(const StageTimes& other) {
    read += other.read;
    decode += other.decode;
    preprocess += other.preprocess;
    extract += other.extract;
  }
};

class ManifestBuilder {
 public:
  // `spec`: the loaded model's (its file is the one that runs, e.g. the int8 variant).
  ManifestBuilder(const PipelineOptions& options, const ModelSpec& spec, int threads);
  // The precision that runs, how the cores are shared by inference, and load warnings.
  void SetInference(const LoadedModel& model);
  void SetModelLoaded(int64_t dim, const std::vector<int>& feature_shape,
                      const ExtractorOptions& extractor, double seconds);
  void SetCounts(int64_t listed, int64_t processed, int64_t failed);
  void SetPca(const PcaModel& pca, const PcaOptions& options);
  void SetFailure(const std::string& reason);
  void AddWarning(const std::string& warning);
  // What the descriptor store gave and got: mode, reused and featurized images, segments.
  void SetStore(const nlohmann::json& store) { manifest_["store"] = store; }
  // The result files the manifest vouches for: name -> size and sha256, as written (names
  // with no file in `dir`, e.g. a sink that wrote nothing, are left out).
  // `orchard inspect` checks them; a result set whose files do not match is not complete.
  Status SetFiles(const std::filesystem::path& dir, const std::vector<std::string>& names);
  // Sets each key of `extra` (a front end's facts) at the top level.
  void Merge(const nlohmann::json& extra) {
    for (const auto& [key, value] : extra.items()) manifest_[key] = value;
  }
  StageTimes& times() { return times_; }
  // The model block, also copied into pca.json.
  const nlohmann::json& ModelJson() const { return model_; }
  std::string Json() const;

 private:
  nlohmann::json manifest_;
  nlohmann::json model_;
  StageTimes times_;
};

// Versions of Orchard and of the libraries it runs on, and the CPU features detected.
nlohmann::json BuildInfoJson();

}  // namespace orchard
