// The processing chain: list -> read -> decode -> preprocess -> extract -> PCA -> write.
// Input, output and model may each be a local path or an s3:// URL.
//
// RunPipeline streams: stages are joined by bounded queues, descriptors are committed to the
// descriptor store in the output location (orchard/descriptor_store.h) as they are made, and
// the PCA fit and the projection read them back from there, so memory does not grow with
// the number of images and an interrupted run resumes where it stopped. Every listed object
// ends up in exactly one of features.csv and errors.csv. Outputs (in `output`):
// features.csv, features.npy, pca.json, errors.csv, manifest.json and, with save_raw,
// raw.npy (plus whatever extra sinks write); each is written atomically, manifest.json last.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/descriptor_store.h"
#include "orchard/featurizer.h"
#include "orchard/image.h"
#include "orchard/model.h"
#include "orchard/pca.h"
#include "orchard/s3.h"
#include "orchard/sink.h"
#include "orchard/status.h"

namespace orchard {

struct Progress {
  int64_t total = 0;      // images to process (known once listing is done; 0 before)
  int64_t processed = 0;  // images with a descriptor
  int64_t failed = 0;     // images (and other listed files) in errors.csv
  double elapsed_seconds = 0.0;
  const char* phase = "";  // "listing", "extracting", "fitting PCA", "writing"
};

// What a run may do with an output location that already holds something.
enum class OutputMode {
  kNew,        // the output must be empty (or missing): nothing is ever overwritten
  kResume,     // continue the run whose descriptor store is there (or start one)
  kUpdate,     // bring an earlier result up to date with the input as it is now
  kOverwrite,  // delete Orchard's files there (store and results), then run from scratch
};
const char* OutputModeName(OutputMode mode);

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
  uint64_t max_pixels = DecodeOptions{}.max_pixels;  // one default, in image.h
  bool jpeg_dct_scaling = kDefaultJpegDctScaling;    // see FeaturizerOptions
  std::string work_dir;  // for spill files; empty = the system temp folder
  OutputMode mode = OutputMode::kNew;
  // Descriptors are committed to the store at least every commit_images images or every
  // commit_seconds seconds, whichever comes first: the most work a crash can lose.
  int64_t commit_images = 4096;
  double commit_seconds = 60.0;
  // More output formats, written beside the standard ones (e.g. Parquet from Python).
  std::vector<std::shared_ptr<ResultSink>> extra_sinks;
  // Facts a front end adds to manifest.json: a JSON object whose keys are set at the top
  // level (orchard.spark records its cluster and what its executors featurized).
  std::string manifest_extra;
  std::function<void(const Progress&)> on_progress;  // called from the pipeline's thread
  std::function<void(const std::string&)> on_warning;
  const std::atomic<bool>* cancel = nullptr;  // set to stop the run (Ctrl-C)
};

struct RunSummary {
  int64_t listed = 0;
  int64_t processed = 0;
  int64_t failed = 0;
  int64_t reused = 0;               // images whose stored outcome was reused (resume, update)
  int64_t featurized = 0;           // images featurized by this run
  int64_t dim = 0;                  // descriptor length
  int64_t k = 0;                    // PCA components kept
  double explained_variance = 0.0;  // cumulative ratio of the kept components
  double seconds = 0.0;
  double images_per_second = 0.0;
  std::string model_name;
  bool random_weights = false;
  std::string output;
};

// How messages name options: "--pca-components" for the CLI, "pca_components" for Python.
enum class OptionStyle { kApi, kCli };
std::string OptionName(std::string_view name, OptionStyle style);

// Checks the options without touching any file; kInvalidArgument with the reason, naming
// options in `style`.
Status ValidatePipelineOptions(const PipelineOptions& options,
                               OptionStyle style = OptionStyle::kApi);

// Validated options: the only way into a run, so that every front end (CLI, Python, Spark)
// validates once, in one place, with the same rules.
class RunPlan {
 public:
  static Result<RunPlan> Make(PipelineOptions options, OptionStyle style);
  const PipelineOptions& options() const { return options_; }
  OptionStyle style() const { return style_; }
  std::string Name(std::string_view option) const { return OptionName(option, style_); }

 private:
  RunPlan(PipelineOptions options, OptionStyle style)
      : options_(std::move(options)), style_(style) {}
  PipelineOptions options_;
  OptionStyle style_;
};

Result<RunSummary> RunPipeline(const RunPlan& plan);
// RunPlan::Make(options, OptionStyle::kApi), then the run.
Result<RunSummary> RunPipeline(const PipelineOptions& options);

// For front ends that featurize elsewhere (orchard.spark's executors): the images the run of
// `plan` would featurize, in listing order. Prepares the output exactly as RunPipeline does
// (the mode's rules; the store's fingerprint written, or checked against the model). The
// work is then committed with CommitSegment, in segments named SegmentName(generation, i),
// and RunPipeline with OutputMode::kResume finishes the run, featurizing nothing that was
// committed.
struct PendingImages {
  std::vector<std::pair<std::string, std::string>> images;  // key, content identity
  int64_t listed = 0;                                       // listed objects (images or not)
  int64_t reused = 0;      // images whose outcome the store has already
  int64_t generation = 0;  // for the names of the segments committed for this work
  int64_t dim = 0;
};
Result<PendingImages> FindPendingImages(const RunPlan& plan);

// Commits one segment to the descriptor store of `output` (a folder or s3:// prefix) whose
// fingerprint FindPendingImages wrote. Safe to call from many processes at once with
// distinct names; committing the same name twice (a retried task) replaces it whole.
Status CommitSegment(const std::string& output, const S3Options& s3, const Segment& segment);

// Extensions (lower case, without the dot) accepted as images.
bool HasImageExtension(const std::string& key);
// The label of a key: the name of its parent folder ("" for a file at the root).
std::string LabelOf(const std::string& key);

}  // namespace orchard
