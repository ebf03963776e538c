// The processing chain: list -> read -> decode -> preprocess -> extract -> PCA -> write.
// Input, output and model may each be a local path or an s3:// URL.
//
// RunPipeline streams: stages are joined by bounded queues and descriptors are spilled to a
// local work folder between the PCA fit and the projection, so memory does not grow with
// the number of images. Every listed object ends up in exactly one of features.csv and
// errors.csv. Outputs (in `output`): features.csv, features.npy, pca.json, errors.csv,
// manifest.json and, with save_raw, raw.npy; each is written atomically.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "orchard/featurizer.h"
#include "orchard/model.h"
#include "orchard/pca.h"
#include "orchard/s3.h"
#include "orchard/status.h"

namespace orchard {

struct Progress {
  int64_t total = 0;      // images to process (known once listing is done; 0 before)
  int64_t processed = 0;  // images with a descriptor
  int64_t failed = 0;     // images (and other listed files) in errors.csv
  double elapsed_seconds = 0.0;
  const char* phase = "";  // "listing", "extracting", "fitting PCA", "writing"
};

struct PipelineOptions {
  std::string input;                  // a local folder or s3://bucket/prefix
  std::string output;                 // a local folder (created if needed) or s3://bucket/prefix
  std::string model = kDefaultModel;  // preset name, or .onnx / .json path or s3:// URL
  S3Options s3;                       // endpoint, region, credentials for s3:// locations
  std::string backend = kDefaultBackend;
  Precision precision = Precision::kFp32;  // int8: see Precision in model.h
  int size = 0;                            // square input size; 0 = the model's own
  std::optional<Pooling> pooling;          // default: the model's
  int64_t pca_components = 0;              // exactly one of these two; if neither, variance 0.95
  double pca_variance = 0.0;
  int64_t max_pca_dim = kDefaultMaxPcaDim;
  int batch = 16;
  int threads = 0;        // cores for the whole run (decode and inference); 0 = all cores
  int parallel_runs = 0;  // concurrent inference calls; 0 = ChooseInferenceLayout's choice
  int64_t limit = 0;      // 0 = all images
  bool save_raw = false;
  uint64_t max_pixels = 89'478'485;
  bool jpeg_dct_scaling = kDefaultJpegDctScaling;  // see FeaturizerOptions
  std::string work_dir;  // for spill files; empty = the system temp folder
  std::function<void(const Progress&)> on_progress;  // called from the pipeline's thread
  std::function<void(const std::string&)> on_warning;
  const std::atomic<bool>* cancel = nullptr;  // set to stop the run (Ctrl-C)
};

struct RunSummary {
  int64_t listed = 0;
  int64_t processed = 0;
  int64_t failed = 0;
  int64_t dim = 0;                  // descriptor length
  int64_t k = 0;                    // PCA components kept
  double explained_variance = 0.0;  // cumulative ratio of the kept components
  double seconds = 0.0;
  double images_per_second = 0.0;
  std::string model_name;
  bool random_weights = false;
  std::string output;
};

// Checks the options without touching any file; kInvalidArgument with the reason.
Status ValidatePipelineOptions(const PipelineOptions& options);

Result<RunSummary> RunPipeline(const PipelineOptions& options);

// Extensions (lower case, without the dot) accepted as images.
bool HasImageExtension(const std::string& key);
// The label of a key: the name of its parent folder ("" for a file at the root).
std::string LabelOf(const std::string& key);

}  // namespace orchard
