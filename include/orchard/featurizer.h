// Descriptors for images already in memory: model loading shared by the CLI pipeline, the
// Python binding and Spark executors.
//
// A Featurizer owns one loaded network and is NOT thread-safe (one per thread or process);
// Featurize() itself decodes and preprocesses on `threads` threads, then runs the network
// as the model's InferenceLayout says.
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

inline constexpr char kDefaultModel[] = "mobilenet_v2";
inline constexpr bool kDefaultJpegDctScaling = true;

struct FeaturizerOptions {
  std::string model = kDefaultModel;  // preset name, or a local .onnx / .json path
  std::string backend = kDefaultBackend;
  Precision precision = Precision::kFp32;
  int size = 0;                    // square input size; 0 = the model's own
  std::optional<Pooling> pooling;  // default: the model's
  int threads = 0;                 // all cores the run may use; 0 = all cores
  int parallel_runs = 0;           // concurrent inference calls; 0 = ChooseInferenceLayout's
  uint64_t max_pixels = DecodeOptions{}.max_pixels;
  // Decode JPEGs scaled down by 1/2, 1/4 or 1/8 in the DCT domain when they stay 1.5 times
  // the model's input (ScaledDecodeMinimums); see docs/models.md "JPEG DCT scaling".
  bool jpeg_dct_scaling = kDefaultJpegDctScaling;
};

// How `threads` cores are shared by inference: `runs` Extract() calls at once, each with
// `threads_per_run` intra-op threads (runs * threads_per_run <= threads).
struct InferenceLayout {
  int runs = 1;
  int threads_per_run = 1;
};
// The layout for a backend: `requested_runs` (> 0) when given, else one single-threaded run
// per core for onnxruntime (measured fastest for every bundled model, docs/benchmarks.md
// "Threads": no synchronisation between kernels, and decoding interleaves on every core),
// and one run on all cores for opencv-dnn (its network is not re-entrant).
InferenceLayout ChooseInferenceLayout(const std::string& backend, int threads, int requested_runs);

// The precision that will run: `requested`, unless it is int8 and the model has no int8
// variant or the CPU has no VNNI, in which case fp32 and a warning saying why.
struct PrecisionChoice {
  Precision precision = Precision::kFp32;
  std::string warning;  // empty when `requested` is honoured
};
PrecisionChoice ChoosePrecision(Precision requested, const ModelSpec& spec, bool cpu_has_vnni);

// A model loaded for a run: its spec (sha256 checked; `file` is the one that runs, the int8
// variant's when int8 was chosen), the preprocessing at the chosen size, and the backend's
// extractor.
struct LoadedModel {
  ModelSpec spec;
  Precision precision = Precision::kFp32;  // what runs
  std::vector<std::string> warnings;       // to show the user (e.g. an int8 fallback)
  PreprocessSpec preprocess;
  DecodeOptions decode;  // pixel limit, and the scaled-decode hint when enabled
  ExtractorOptions extractor_options;
  InferenceLayout layout;
  std::unique_ptr<FeatureExtractor> extractor;
};
Result<LoadedModel> LoadModel(const FeaturizerOptions& options);
// Runs `n` preprocessed images through `model` as its layout says: split in up to
// layout.runs contiguous chunks extracted concurrently. `out`: n * dim floats.
Status ExtractWithLayout(const LoadedModel& model, int n, const float* batch, float* out);
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
