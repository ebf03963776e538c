// The run, start to end: the phases below, each in its own module.
//
//   output check (output_guard) -> model -> store check (descriptor_store) -> listing
//   -> featurize what the store lacks (featurize_stage), committing segments as it goes
//   -> fit the PCA on every stored descriptor of the listing (result_walk)
//   -> project them into the sinks (sink.h) -> pca.json, manifest.json -> publish
#include "orchard/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "orchard/descriptor_store.h"
#include "orchard/extractor.h"
#include "orchard/pca_io.h"
#include "orchard/sink.h"
#include "orchard/storage.h"
#include "orchard/writer.h"
#include "pipeline/featurize_stage.h"
#include "pipeline/locations.h"
#include "pipeline/manifest.h"
#include "pipeline/memory_budget.h"
#include "pipeline/output_guard.h"
#include "pipeline/result_walk.h"
#include "pipeline/spill.h"
#include "util/crash_point.h"
#include "util/json_text.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

PcaOptions PcaOptionsFrom(const PipelineOptions& options) {
  PcaOptions pca;
  pca.components = options.pca_components;
  pca.variance = options.pca_variance;
  if (pca.components == 0 && pca.variance == 0.0) pca.variance = 0.95;
  return pca;
}

StoreFingerprint FingerprintOf(const LoadedModel& loaded, const PipelineOptions& options) {
  StoreFingerprint f;
  f.model_name = loaded.spec.name;
  f.model_sha256 = loaded.spec.sha256;
  f.backend = options.backend;
  f.precision = PrecisionName(loaded.precision);
  f.feature_layer = loaded.spec.feature_layer;
  f.pooling = PoolingName(loaded.extractor_options.pooling);
  f.input_width = loaded.extractor_options.width;
  f.input_height = loaded.extractor_options.height;
  f.dim = loaded.extractor->dim();
  f.jpeg_dct_scaling = options.jpeg_dct_scaling;
  f.max_pixels = options.max_pixels;
  return f;
}

// Collects featurized batches into segments and commits them to the store: at least every
// commit_images images or commit_seconds seconds, always at a batch boundary, so that what
// is stored is always whole batches of the listing's leading images still to do.
class SegmentCommitter {
 public:
  SegmentCommitter(DescriptorStore& store, StoreIndex& index, const PipelineOptions& options,
                   int64_t dim, std::function<Status()> before_first_commit)
      : store_(store),
        index_(index),
        options_(options),
        dim_(dim),
        before_first_commit_(std::move(before_first_commit)) {
    generation_ = index.next_generation();
    Reset();
  }

  Status Add(FeaturizedBatch& batch) {
    for (ItemOutcome& o : batch.outcomes) {
      SegmentItem item{std::move(o.key), std::move(o.content_id), -1, std::move(o.stage),
                       std::move(o.message)};
      if (o.ok) item.row = rows_++;
      segment_.items.push_back(std::move(item));
    }
    segment_.descriptors.insert(segment_.descriptors.end(), batch.features.begin(),
                                batch.features.end());
    if (static_cast<int64_t>(segment_.items.size()) >= options_.commit_images ||
        SecondsSince(started_) >= options_.commit_seconds) {
      return Flush();
    }
    return Status::OK();
  }

  Status Flush() {
    if (segment_.items.empty()) return Status::OK();
    if (committed_ == 0) ORCHARD_RETURN_NOT_OK(before_first_commit_());
    segment_.name = SegmentName(generation_, sequence_++);
    ORCHARD_RETURN_NOT_OK(store_.Commit(segment_));
    CrashPoint("committed");
    index_.Add(segment_);
    ++committed_;
    Reset();
    return Status::OK();
  }

  int64_t committed() const { return committed_; }
  int64_t generation() const { return generation_; }

 private:
  void Reset() {
    segment_ = Segment{};
    segment_.dim = dim_;
    rows_ = 0;
    started_ = Clock::now();
  }

  DescriptorStore& store_;
  StoreIndex& index_;
  const PipelineOptions& options_;
  int64_t dim_;
  std::function<Status()> before_first_commit_;
  int64_t generation_ = 1;
  int64_t sequence_ = 0;
  int64_t committed_ = 0;
  Segment segment_;
  int64_t rows_ = 0;
  Clock::time_point started_;
};

// Lists the input into `listing` ([key, is_image, content id]) and the images the store has
// no outcome for (or an outcome for other content) into `todo` ([key, content id]).
struct ListCounts {
  int64_t listed = 0;
  int64_t images = 0;
  int64_t reused = 0;
  int64_t reused_failed = 0;
};

// Where a folder the run writes (its output, its work folder) lies inside the input, the
// keys to leave out of the listing, so that a run never reads its own results or store:
// "out/" for --output IN/out. kInvalidArgument when the output is the input itself.
Result<std::vector<std::string>> KeysToSkip(const PipelineOptions& options,
                                            const fs::path& work_dir) {
  std::vector<std::string> skip;
  auto inside = [&](const std::string& root, const std::string& inner, const char* what) -> Status {
    std::string prefix;
    if (IsS3Url(root) && IsS3Url(inner)) {
      ORCHARD_ASSIGN_OR_RETURN(S3Url in, ParseS3Url(root));
      ORCHARD_ASSIGN_OR_RETURN(S3Url out, ParseS3Url(inner));
      if (in.bucket != out.bucket) return Status::OK();
      if (!in.key.empty() && in.key.back() != '/') in.key.push_back('/');
      if (!out.key.empty() && out.key.back() != '/') out.key.push_back('/');
      if (out.key.rfind(in.key, 0) != 0) return Status::OK();
      prefix = out.key.substr(in.key.size());
    } else if (!IsS3Url(root) && !IsS3Url(inner)) {
      std::error_code ec;
      const fs::path rel =
          fs::weakly_canonical(inner, ec).lexically_relative(fs::weakly_canonical(root, ec));
      if (ec || rel.empty() || *rel.begin() == "..") return Status::OK();
      prefix = rel == "." ? "" : rel.generic_string() + "/";
    } else {
      return Status::OK();
    }
    if (prefix.empty()) {
      return Status::Usage(std::string("the ") + what + " " + inner +
                           " is the input folder: choose a folder outside it, or a "
                           "subfolder (which the listing then leaves out)");
    }
    skip.push_back(prefix);
    return Status::OK();
  };
  ORCHARD_RETURN_NOT_OK(inside(options.input, options.output, "output"));
  ORCHARD_RETURN_NOT_OK(inside(options.input, work_dir.string(), "work folder"));
  return skip;
}

Status ListInput(Storage& input, const PipelineOptions& options, const StoreIndex& index,
                 const std::vector<std::string>& skip, const fs::path& listing_path,
                 const fs::path& todo_path, RunState& state, ListCounts* counts) {
  ORCHARD_ASSIGN_OR_RETURN(auto listing, RecordWriter::Create(listing_path));
  ORCHARD_ASSIGN_OR_RETURN(auto todo, RecordWriter::Create(todo_path));
  const Status limit_reached = Status::Cancelled("limit reached");
  Status status = input.List([&](const ObjectInfo& info) -> Status {
    if (state.stopped()) return state.status();
    CrashPoint("list");
    for (const std::string& prefix : skip) {
      if (info.key.rfind(prefix, 0) == 0) return Status::OK();  // the run's own files
    }
    const bool is_image = HasImageExtension(info.key);
    const std::string content_id = ContentIdentity(info);
    ORCHARD_RETURN_NOT_OK(listing->Write({info.key, is_image ? "1" : "0", content_id}));
    ++counts->listed;
    if (!is_image) return Status::OK();
    const StoreIndex::Entry* stored = index.Find(info.key);
    if (stored != nullptr && stored->content_id == content_id) {
      ++counts->reused;
      counts->reused_failed += stored->row < 0;
    } else {
      ORCHARD_RETURN_NOT_OK(todo->Write({info.key, content_id}));
    }
    if (++counts->images == options.limit) return limit_reached;
    return Status::OK();
  });
  if (status.code() == StatusCode::kCancelled && status.message() == limit_reached.message()) {
    status = Status::OK();
  }
  ORCHARD_RETURN_NOT_OK(status);
  ORCHARD_RETURN_NOT_OK(listing->Close());
  return todo->Close();
}

// Everything a run needs before it lists: work folder, locations, the output checked, the
// model loaded, the store's fingerprint checked (or written) and its index read.
struct RunSetup {
  std::unique_ptr<WorkDir> work;
  std::unique_ptr<RunLocations> locations;
  LoadedModel loaded;
  std::unique_ptr<ManifestBuilder> manifest;
  std::unique_ptr<DescriptorStore> store;
  StoreIndex index;
  StoreFingerprint fingerprint;
  std::unique_ptr<OutputLock> lock;  // held until the run ends
  std::vector<std::string> skip;     // input keys that are the run's own files
  // Whether store.json is there. It is written before the first segment, not before: a run
  // that fails before featurizing anything (a missing bucket) leaves the output as it was.
  bool has_store = false;
  int threads = 1;
  int64_t dim = 0;

  Status DescribeStore() {
    if (has_store) return Status::OK();
    ORCHARD_RETURN_NOT_OK(store->WriteFingerprint(fingerprint));
    has_store = true;
    return Status::OK();
  }
};

Result<std::unique_ptr<RunSetup>> SetUp(const RunPlan& plan,
                                        const std::function<void(const std::string&)>& warn) {
  const PipelineOptions& options = plan.options();
  auto setup = std::make_unique<RunSetup>();
  setup->threads = EffectiveThreads(options.threads);
  ORCHARD_ASSIGN_OR_RETURN(setup->work, WorkDir::Create(options.work_dir));
  ORCHARD_ASSIGN_OR_RETURN(setup->skip, KeysToSkip(options, setup->work->path()));
  ORCHARD_ASSIGN_OR_RETURN(setup->locations, RunLocations::Open(options, setup->work->path()));
  // What is in the output decides what the run may do, before anything is written there.
  ORCHARD_ASSIGN_OR_RETURN(OutputState output_state,
                           PrepareOutput(setup->locations->output(), options.output, plan));

  // The model next: a wrong model or a too large descriptor fails before any image is read.
  FeaturizerOptions model_options;
  ORCHARD_ASSIGN_OR_RETURN(model_options.model, setup->locations->LocalModel(options.model));
  model_options.backend = options.backend;
  model_options.precision = options.precision;
  model_options.size = options.size;
  model_options.pooling = options.pooling;
  model_options.threads = setup->threads;
  model_options.parallel_runs = options.parallel_runs;
  model_options.max_pixels = options.max_pixels;
  model_options.jpeg_dct_scaling = options.jpeg_dct_scaling;
  auto setup_start = Clock::now();
  ORCHARD_ASSIGN_OR_RETURN(setup->loaded, LoadModel(model_options));
  const LoadedModel& loaded = setup->loaded;
  setup->manifest = std::make_unique<ManifestBuilder>(options, loaded.spec, setup->threads);
  setup->manifest->SetInference(loaded);
  if (loaded.spec.random_weights()) warn(RandomWeightsWarning(loaded.spec));
  for (const std::string& warning : loaded.warnings) warn(warning);
  setup->dim = loaded.extractor->dim();
  ORCHARD_RETURN_NOT_OK(CheckInferenceMemory(loaded, options.batch, setup->threads,
                                             UsableMemoryBytes(), plan.Name("batch"),
                                             plan.Name("size")));
  if (options.backend == "opencv-dnn" &&
      double(TensorElements(loaded.preprocess)) * options.batch > double(INT32_MAX)) {
    return Status::Usage("opencv-dnn indexes a batch with 32-bit integers: " + plan.Name("batch") +
                         " " + std::to_string(options.batch) + " at " +
                         std::to_string(loaded.preprocess.width) + "x" +
                         std::to_string(loaded.preprocess.height) + " is too large for it; lower " +
                         plan.Name("batch") + " or use the onnxruntime backend");
  }
  if (options.pca_components > setup->dim) {
    return Status::Usage(plan.Name("pca_components") + " " +
                         std::to_string(options.pca_components) +
                         " is more than the descriptor dimension " + std::to_string(setup->dim));
  }
  if (setup->dim > options.max_pca_dim) {  // the accumulator's own message says what to do
    const Status too_large = PcaAccumulator::Create(setup->dim, options.max_pca_dim).status();
    if (!too_large.ok()) return Status::Usage(too_large.message(), too_large.code());
  }
  setup->manifest->SetModelLoaded(setup->dim, loaded.extractor->feature_shape(),
                                  loaded.extractor_options, SecondsSince(setup_start));

  // The store: descriptors made with other settings are never mixed with this run's.
  setup->store = std::make_unique<DescriptorStore>(setup->locations->output(),
                                                   setup->work->path() / "segments");
  const StoreFingerprint fingerprint = FingerprintOf(loaded, options);
  if (output_state.has_store) {
    ORCHARD_ASSIGN_OR_RETURN(StoreFingerprint stored, setup->store->ReadFingerprint());
    const std::vector<std::string> differences = fingerprint.Differences(stored);
    if (!differences.empty()) {
      std::string list;
      for (const std::string& d : differences) list += "\n  " + d;
      return Status::Usage(
          "the descriptors stored in " + options.output +
          " were made with other settings, and mixing them would be wrong:" + list +
          "\nRun with the same model and options, or pass " + plan.Name("overwrite") +
          " to recompute everything (nothing was changed)");
    }
  }
  setup->has_store = output_state.has_store;
  setup->lock = std::move(output_state.lock);
  setup->fingerprint = fingerprint;
  ORCHARD_ASSIGN_OR_RETURN(setup->index, setup->store->LoadIndex(setup->dim));
  return setup;
}

}  // namespace

Result<RunSummary> RunPipeline(const PipelineOptions& options) {
  ORCHARD_ASSIGN_OR_RETURN(RunPlan plan, RunPlan::Make(options, OptionStyle::kApi));
  return RunPipeline(plan);
}

Result<PendingImages> FindPendingImages(const RunPlan& plan) {
  ORCHARD_ASSIGN_OR_RETURN(auto setup, SetUp(plan, [](const std::string&) {}));
  RunState state(plan.options().cancel);
  ListCounts listed;
  const fs::path listing_path = setup->work->path() / "listing";
  const fs::path todo_path = setup->work->path() / "todo";
  ORCHARD_RETURN_NOT_OK(ListInput(setup->locations->input(), plan.options(), setup->index,
                                  setup->skip, listing_path, todo_path, state, &listed));
  // Other processes commit the work: the store must be described first.
  ORCHARD_RETURN_NOT_OK(setup->DescribeStore());
  PendingImages pending;
  pending.listed = listed.listed;
  pending.reused = listed.reused;
  pending.generation = setup->index.next_generation();
  pending.dim = setup->dim;
  ORCHARD_ASSIGN_OR_RETURN(auto todo, RecordReader::Open(todo_path));
  std::vector<std::string> fields;
  for (;;) {
    ORCHARD_ASSIGN_OR_RETURN(bool more, todo->Next(&fields));
    if (!more) break;
    pending.images.emplace_back(std::move(fields.at(0)), std::move(fields.at(1)));
  }
  return pending;
}

Status CommitSegment(const std::string& output, const S3Options& s3, const Segment& segment) {
  std::unique_ptr<Storage> storage;
  if (IsS3Url(output)) {
    ORCHARD_ASSIGN_OR_RETURN(storage, OpenS3Storage(output, s3));
  } else {
    ORCHARD_ASSIGN_OR_RETURN(storage, OpenLocalStorage(output, /*create_missing=*/true));
  }
  DescriptorStore store(*storage, std::filesystem::temp_directory_path());
  return store.Commit(segment);
}

Result<RunSummary> RunPipeline(const RunPlan& plan) {
  const PipelineOptions& options = plan.options();
  const auto run_start = Clock::now();
  RunState state(options.cancel);
  auto warn = [&](const std::string& message) {
    if (options.on_warning) options.on_warning(message);
  };
  auto progress = [&](Progress p) {
    p.elapsed_seconds = SecondsSince(run_start);
    if (options.on_progress) options.on_progress(p);
  };
  ORCHARD_ASSIGN_OR_RETURN(auto setup, SetUp(plan, warn));
  const int threads = setup->threads;
  const int64_t dim = setup->dim;
  const LoadedModel& loaded = setup->loaded;
  const ModelSpec& spec = loaded.spec;
  ManifestBuilder& manifest = *setup->manifest;
  DescriptorStore& store = *setup->store;
  StoreIndex& index = setup->index;
  RunLocations* locations = setup->locations.get();
  WorkDir* work = setup->work.get();
  Storage& input = locations->input();
  const fs::path out_dir = locations->output_dir();
  ORCHARD_ASSIGN_OR_RETURN(PcaAccumulator accumulator,
                           PcaAccumulator::Create(dim, options.max_pca_dim));
  const PcaOptions pca_options = PcaOptionsFrom(options);

  // Listing: what there is, and what the store does not have yet.
  progress({0, 0, 0, 0.0, "listing"});
  auto list_start = Clock::now();
  ListCounts listed;
  const fs::path listing_path = work->path() / "listing";
  const fs::path todo_path = work->path() / "todo";
  ORCHARD_RETURN_NOT_OK(
      ListInput(input, options, index, setup->skip, listing_path, todo_path, state, &listed));
  manifest.times().list = SecondsSince(list_start);

  // Featurize what is missing, committing segments as they fill.
  int64_t done = listed.reused - listed.reused_failed;
  int64_t failed = listed.reused_failed;
  SegmentCommitter committer(store, index, options, dim,
                             [&setup] { return setup->DescribeStore(); });
  FeaturizeStageOptions stage_options{threads, options.batch};
  progress({listed.images, done, failed, 0.0, "extracting"});
  const Status featurized = FeaturizeStage(
      todo_path, input, loaded, stage_options, state, [&](FeaturizedBatch& batch) -> Status {
        manifest.times().Add(batch.times);
        done += batch.good;
        failed += static_cast<int64_t>(batch.outcomes.size()) - batch.good;
        ORCHARD_RETURN_NOT_OK(committer.Add(batch));
        progress({listed.images, done, failed, 0.0, "extracting"});
        return Status::OK();
      });
  // Stopped by Ctrl-C: what was featurized is still committed, so that --resume keeps it.
  if (featurized.code() == StatusCode::kCancelled) ORCHARD_RETURN_NOT_OK(committer.Flush());
  ORCHARD_RETURN_NOT_OK(featurized);
  ORCHARD_RETURN_NOT_OK(committer.Flush());

  // Pass 1: the PCA statistics of every descriptor of the listing, and errors.csv.
  progress({listed.images, done, failed, 0.0, "fitting PCA"});
  auto accumulate_start = Clock::now();
  ORCHARD_ASSIGN_OR_RETURN(auto errors, ErrorSink::Create(out_dir));
  // From the first result file written until the new manifest, the output has no manifest:
  // a reader can never take a mix of this run's files and an earlier run's as complete.
  ORCHARD_RETURN_NOT_OK(locations->output().Delete("manifest.json"));
  ORCHARD_ASSIGN_OR_RETURN(WalkCounts counts,
                           WalkResults(
                               listing_path, index, store, dim,
                               [&](const DescriptorChunk& chunk) {
                                 CrashPoint("accumulate");
                                 return accumulator.Accumulate(chunk.n, chunk.raw.data());
                               },
                               [&](const ErrorRow& row) { return errors->Write(row); }));
  ORCHARD_RETURN_NOT_OK(errors->Commit());
  manifest.times().pca_accumulate = SecondsSince(accumulate_start);

  RunSummary summary;
  summary.listed = listed.listed;
  summary.processed = counts.processed;
  summary.failed = counts.failed;
  summary.reused = listed.reused;
  summary.featurized = listed.images - listed.reused;
  summary.dim = dim;
  summary.model_name = spec.name;
  summary.random_weights = spec.random_weights();
  summary.output = options.output;
  manifest.SetCounts(listed.listed, counts.processed, counts.failed);
  manifest.SetStore({{"mode", OutputModeName(options.mode)},
                     {"reused", summary.reused},
                     {"featurized", summary.featurized},
                     {"segments_committed", committer.committed()},
                     {"generation", committer.generation()},
                     {"segments_total", index.segment_names().size()}});
  if (!options.manifest_extra.empty()) {
    manifest.Merge(nlohmann::json::parse(options.manifest_extra));  // an object: RunPlan checked
  }

  if (counts.processed < 2) {
    manifest.SetFailure(counts.processed == 0 ? "no image could be processed"
                                              : "PCA needs at least 2 images");
    manifest.times().total = SecondsSince(run_start);
    ORCHARD_RETURN_NOT_OK(manifest.SetFiles(out_dir, {"errors.csv"}));
    ORCHARD_RETURN_NOT_OK(
        WriteFileAtomically((out_dir / "manifest.json").string(), manifest.Json()));
    ORCHARD_RETURN_NOT_OK(locations->Publish({"errors.csv", "manifest.json"}));
    if (listed.listed == 0)
      return Status::NotFound("no file found in " + options.input + ": nothing to process");
    return Status::InvalidArgument(
        (counts.processed == 0 ? "no image could be processed"
                               : "only 1 image could be processed; PCA needs at least 2") +
        std::string(" (") + std::to_string(listed.listed) + " listed, " +
        std::to_string(counts.failed) + " failed: see errors.csv in " + options.output + ")");
  }

  CrashPoint("fit");
  auto fit_start = Clock::now();
  PcaOptions fit_options = pca_options;
  // n centred rows span at most n - 1 directions: more components would be noise presented
  // as data. Kept to the rank, loudly.
  if (fit_options.components > counts.processed - 1) {
    fit_options.components = counts.processed - 1;
    const std::string warning =
        plan.Name("pca_components") + " " + std::to_string(pca_options.components) +
        " is more than " + std::to_string(counts.processed) + " images can give (" +
        std::to_string(counts.processed - 1) + " independent directions): kept " +
        std::to_string(fit_options.components);
    warn(warning);
    manifest.AddWarning(warning);
  }
  ORCHARD_ASSIGN_OR_RETURN(PcaModel pca, FitPca(accumulator, fit_options));
  if (!(pca.total_variance > 0.0)) {
    const std::string warning =
        "every descriptor is the same (zero variance): the PCA components are arbitrary; is "
        "the collection made of one image, or is the model broken?";
    warn(warning);
    manifest.AddWarning(warning);
  }
  manifest.times().pca_fit = SecondsSince(fit_start);
  summary.k = pca.k;
  for (double r : pca.explained_variance_ratio) summary.explained_variance += r;

  // Pass 2: project every descriptor into the sinks.
  progress({listed.images, done, failed, 0.0, "writing"});
  auto write_start = Clock::now();
  std::vector<std::unique_ptr<ResultSink>> own = StandardSinks(options.save_raw);
  std::vector<ResultSink*> sinks;
  for (auto& sink : own) sinks.push_back(sink.get());
  for (const auto& sink : options.extra_sinks) sinks.push_back(sink.get());
  const SinkContext context{out_dir, counts.processed, pca.k, dim};
  for (ResultSink* sink : sinks) ORCHARD_RETURN_NOT_OK(sink->Begin(context));
  std::vector<float> reduced(static_cast<size_t>(kResultChunkRows * pca.k));
  ORCHARD_RETURN_NOT_OK(
      WalkResults(
          listing_path, index, store, dim,
          [&](const DescriptorChunk& chunk) -> Status {
            CrashPoint("write");
            ORCHARD_RETURN_NOT_OK(pca.Transform(chunk.n, chunk.raw.data(), reduced.data()));
            const ResultRows rows{chunk.first,         chunk.n,        chunk.paths.data(),
                                  chunk.labels.data(), reduced.data(), chunk.raw.data()};
            for (ResultSink* sink : sinks) {
              ORCHARD_RETURN_NOT_OK(sink->Write(rows));
            }
            return Status::OK();
          },
          nullptr)
          .status());
  for (ResultSink* sink : sinks) ORCHARD_RETURN_NOT_OK(sink->Commit());
  nlohmann::json pca_json = PcaModelToJson(pca);
  pca_json["model"] = manifest.ModelJson();
  ORCHARD_RETURN_NOT_OK(
      WriteFileAtomically((out_dir / "pca.json").string(), DumpJson(pca_json, 1) + "\n"));
  manifest.times().write = SecondsSince(write_start);

  summary.seconds = SecondsSince(run_start);
  summary.images_per_second =
      summary.seconds > 0 ? static_cast<double>(summary.featurized) / summary.seconds : 0.0;
  manifest.times().total = summary.seconds;
  manifest.SetPca(pca, pca_options);
  std::vector<std::string> names;
  for (ResultSink* sink : sinks) names.push_back(sink->name());
  for (const char* name : {"pca.json", "errors.csv"}) names.push_back(name);
  ORCHARD_RETURN_NOT_OK(manifest.SetFiles(out_dir, names));
  ORCHARD_RETURN_NOT_OK(WriteFileAtomically((out_dir / "manifest.json").string(), manifest.Json()));
  // The manifest goes last: whoever sees it sees a complete result.
  names.push_back("manifest.json");
  ORCHARD_RETURN_NOT_OK(locations->Publish(names));
  // A result an earlier run left in this output that this one did not write (raw.npy from
  // a run with save_raw, before an update without it) would be stale: it goes.
  for (const std::string& name : ResultFileNames()) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      ORCHARD_RETURN_NOT_OK(locations->output().Delete(name));
    }
  }
  return summary;
}

}  // namespace orchard
