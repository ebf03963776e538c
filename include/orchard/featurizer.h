// Descriptors for images already in memory: model loading shared by the CLI pipeline, the
// Python binding and Spark executors.
//
// A Featurizer owns one loaded network and is NOT thread-safe (one per thread or process);
// Featurize() itself decodes and preprocesses on `threads` threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "orchard/extractor.h"
#include "orchard/image.h"
#include "orchard/model.h"

namespace orchard {

struct FeaturizerOptions {
  std::string model = "mobilenet_v2";  // preset name, or a local .onnx / .json path
  std::string backend = "opencv-dnn";
  int size = 0;                    // square input size; 0 = the model's own
  std::optional<Pooling> pooling;  // default: the model's
  int threads = 0;                 // 0 = all cores
  uint64_t max_pixels = DecodeOptions{}.max_pixels;
};

// A model loaded for a run: its spec (sha256 checked), the preprocessing at the chosen
// size, and the backend's extractor.
struct LoadedModel {
  ModelSpec spec;
  PreprocessSpec preprocess;
  ExtractorOptions extractor_options;
  std::unique_ptr<FeatureExtractor> extractor;
};
Result<LoadedModel> LoadModel(const FeaturizerOptions& options);
// The warning every run with seeded random weights prints.
std::string RandomWeightsWarning(const ModelSpec& spec);
// Threads to use for `requested` (0 = all cores).
int EffectiveThreads(int requested);

// Why one image has no descriptor: index in the batch, stage (decode, preprocess, extract)
// and a one-line message.
struct ImageError {
  int64_t index = 0;
  std::string stage;
  std::string message;
};

struct FeaturizeResult {
  std::vector<int64_t> indices;  // batch positions of the images that have a descriptor
  std::vector<float> features;   // indices.size() x dim, row-major, in the order of indices
  std::vector<ImageError> errors;
};

class Featurizer {
 public:
  static Result<std::unique_ptr<Featurizer>> Create(const FeaturizerOptions& options);
  int64_t dim() const { return model_.extractor->dim(); }
  const ModelSpec& spec() const { return model_.spec; }
  const LoadedModel& model() const { return model_; }

  // Every image ends up in exactly one of indices and errors; a bad image never fails the
  // batch. Returns an error only for a failure of the whole call.
  Result<FeaturizeResult> Featurize(const std::vector<std::span<const uint8_t>>& images);

 private:
  Featurizer(LoadedModel model, FeaturizerOptions options)
      : model_(std::move(model)), options_(std::move(options)) {}
  LoadedModel model_;
  FeaturizerOptions options_;
};

}  // namespace orchard
