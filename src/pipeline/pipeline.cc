#include "orchard/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "orchard/csv.h"
#include "orchard/extractor.h"
#include "orchard/featurizer.h"
#include "orchard/image.h"
#include "orchard/pca_io.h"
#include "orchard/preprocess.h"
#include "orchard/storage.h"
#include "orchard/writer.h"
#include "pipeline/bounded_queue.h"
#include "pipeline/locations.h"
#include "pipeline/manifest.h"
#include "pipeline/spill.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One listed object on its way through the chain.
struct Item {
  std::string key;
  bool is_image = false;
};

// The unit of work: consecutive listed objects holding up to `batch` images, numbered in
// listing order. Output order follows `seq`, whatever thread prepared the unit.
struct WorkUnit {
  int64_t seq = 0;
  std::vector<Item> items;
};

struct ItemOutcome {
  std::string key;
  bool ok = false;
  std::string stage;  // where it failed: list, read, decode, preprocess, extract
  std::string message;
};

// A unit after reading, decoding and preprocessing, then inference: the tensor holds the
// good images only, and is replaced by their descriptors once extracted.
struct PreparedBatch {
  int64_t seq = 0;
  std::vector<ItemOutcome> outcomes;
  int good = 0;
  std::vector<float> tensor;
  std::vector<float> features;  // good x dim, after Extract
  StageTimes times;
};

// Runs a prepared batch through the model, at most `runs` batches at once across the
// workers. A failing forward pass fails its images, not the run: they go to errors.csv.
class Inference {
 public:
  Inference(const LoadedModel& model, int runs) : model_(model), slots_(runs) {}

  void Extract(PreparedBatch& batch) {
    if (batch.good == 0) return;
    batch.features.resize(static_cast<size_t>(batch.good) *
                          static_cast<size_t>(model_.extractor->dim()));
    Status status;
    {
      std::unique_lock lock(mutex_);
      free_.wait(lock, [&] { return slots_ > 0; });
      --slots_;
    }
    const auto start = Clock::now();
    try {
      status = model_.extractor->Extract(batch.good, batch.tensor.data(), batch.features.data());
    } catch (const std::exception& e) {  // a backend bug must not end the process
      status = Status::Internal(std::string("inference threw: ") + e.what());
    }
    batch.times.extract += SecondsSince(start);
    {
      std::lock_guard lock(mutex_);
      ++slots_;
    }
    free_.notify_one();
    batch.tensor = {};  // the descriptors are all that travels on
    if (!status.ok()) {
      for (ItemOutcome& o : batch.outcomes) {
        if (o.ok) o = {o.key, false, "extract", status.message()};
      }
      batch.good = 0;
      batch.features.clear();
    }
  }

 private:
  const LoadedModel& model_;
  std::mutex mutex_;
  std::condition_variable free_;
  int slots_;
};

// A stop signal shared by the stages, holding the first fatal error.
class RunState {
 public:
  explicit RunState(const std::atomic<bool>* cancel) : cancel_(cancel) {}
  void Fail(Status status) {
    std::lock_guard lock(mutex_);
    if (status_.ok()) status_ = std::move(status);
    failed_ = true;
  }
  bool stopped() const { return failed_ || (cancel_ != nullptr && cancel_->load()); }
  Status status() const {
    std::lock_guard lock(mutex_);
    if (!status_.ok()) return status_;
    if (cancel_ != nullptr && cancel_->load()) return Status::Cancelled("run cancelled");
    return Status::OK();
  }

 private:
  const std::atomic<bool>* cancel_;
  mutable std::mutex mutex_;
  Status status_;
  std::atomic<bool> failed_{false};
};

Status WriteListing(Storage& storage, const PipelineOptions& options, RecordWriter& listing,
                    int64_t* listed, int64_t* images, RunState& state) {
  const Status limit_reached = Status::Cancelled("limit reached");
  Status status = storage.List([&](const ObjectInfo& info) -> Status {
    if (state.stopped()) return state.status();
    const bool is_image = HasImageExtension(info.key);
    ORCHARD_RETURN_NOT_OK(listing.Write({info.key, is_image ? "1" : "0"}));
    ++*listed;
    if (is_image && ++*images == options.limit) return limit_reached;
    return Status::OK();
  });
  if (status.code() == StatusCode::kCancelled && status.message() == limit_reached.message()) {
    status = Status::OK();
  }
  ORCHARD_RETURN_NOT_OK(status);
  return listing.Close();
}

// Reads the listing and cuts it into work units of up to `batch` images.
void Dispatch(const fs::path& listing_path, int batch, BoundedQueue<WorkUnit>& units,
              RunState& state) {
  auto reader = RecordReader::Open(listing_path);
  if (!reader.ok()) {
    state.Fail(reader.status());
    units.Close();
    return;
  }
  WorkUnit unit;
  int images = 0;
  std::vector<std::string> fields;
  while (!state.stopped()) {
    auto more = (*reader)->Next(&fields);
    if (!more.ok()) {
      state.Fail(more.status());
      break;
    }
    if (!*more) break;
    Item item{fields.at(0), fields.at(1) == "1"};
    images += item.is_image;
    unit.items.push_back(std::move(item));
    if (images == batch) {
      const int64_t next = unit.seq + 1;
      if (!units.Push(std::move(unit), 0)) break;
      unit = WorkUnit{next, {}};
      images = 0;
    }
  }
  if (!unit.items.empty() && !state.stopped()) units.Push(std::move(unit), 0);
  units.Close();
}

class Preparer {
 public:
  Preparer(Storage& storage, const PreprocessSpec& spec, const DecodeOptions& decode)
      : storage_(storage), spec_(spec), decode_(decode) {}

  PreparedBatch Prepare(WorkUnit unit) const {
    PreparedBatch batch;
    batch.seq = unit.seq;
    const size_t elements = TensorElements(spec_);
    int images = 0;
    for (const Item& item : unit.items) images += item.is_image;
    batch.tensor.resize(elements * static_cast<size_t>(images));
    for (Item& item : unit.items) {
      ItemOutcome outcome{std::move(item.key), false, "", ""};
      if (!item.is_image) {
        outcome.stage = "list";
        outcome.message = "not an image file name (accepted: .jpg .jpeg .png .webp .bmp)";
      } else {
        Status status = PrepareOne(outcome.key, batch.tensor.data() + elements * batch.good,
                                   batch.times, &outcome.stage);
        outcome.ok = status.ok();
        if (status.ok()) {
          ++batch.good;
        } else {
          outcome.message = status.message();
        }
      }
      batch.outcomes.push_back(std::move(outcome));
    }
    batch.tensor.resize(elements * static_cast<size_t>(batch.good));
    return batch;
  }

 private:
  Status PrepareOne(const std::string& key, float* out, StageTimes& times,
                    std::string* stage) const {
    auto start = Clock::now();
    *stage = "read";
    auto bytes = storage_.Read(key);
    times.read += SecondsSince(start);
    if (!bytes.ok()) return bytes.status();
    start = Clock::now();
    *stage = "decode";
    auto image = DecodeImage(*bytes, decode_);
    times.decode += SecondsSince(start);
    if (!image.ok()) return image.status();
    start = Clock::now();
    *stage = "preprocess";
    Status status = Preprocess(*image, spec_, out);
    times.preprocess += SecondsSince(start);
    return status;
  }

  Storage& storage_;
  const PreprocessSpec& spec_;
  const DecodeOptions& decode_;
};

PcaOptions PcaOptionsFrom(const PipelineOptions& options) {
  PcaOptions pca;
  pca.components = options.pca_components;
  pca.variance = options.pca_variance;
  if (pca.components == 0 && pca.variance == 0.0) pca.variance = 0.95;
  return pca;
}

}  // namespace

Status ValidatePipelineOptions(const PipelineOptions& options) {
  if (options.input.empty()) return Status::InvalidArgument("--input is required");
  if (options.output.empty()) return Status::InvalidArgument("--output is required");
  if (options.pca_components != 0 && options.pca_variance != 0.0) {
    return Status::InvalidArgument("give either --pca-components or --pca-variance, not both");
  }
  if (options.pca_components < 0)
    return Status::InvalidArgument("--pca-components must be positive");
  if (options.pca_variance < 0.0 || options.pca_variance > 1.0) {
    return Status::InvalidArgument("--pca-variance must be in (0, 1]");
  }
  if (options.batch < 1 || options.batch > 4096)
    return Status::InvalidArgument("--batch must be in 1..4096");
  if (options.threads < 0 || options.threads > 1024)
    return Status::InvalidArgument("--threads must be in 0..1024");
  if (options.parallel_runs < 0 || options.parallel_runs > 1024)
    return Status::InvalidArgument("--parallel-runs must be in 0..1024");
  if (options.size < 0 || options.size > 4096)
    return Status::InvalidArgument("--size must be in 1..4096");
  if (options.limit < 0) return Status::InvalidArgument("--limit must be positive");
  if (options.max_pixels == 0) return Status::InvalidArgument("--max-pixels must be positive");
  return Status::OK();
}

Result<RunSummary> RunPipeline(const PipelineOptions& options) {
  ORCHARD_RETURN_NOT_OK(ValidatePipelineOptions(options));
  const auto run_start = Clock::now();
  RunState state(options.cancel);
  auto warn = [&](const std::string& message) {
    if (options.on_warning) options.on_warning(message);
  };
  auto progress = [&](Progress p) {
    p.elapsed_seconds = SecondsSince(run_start);
    if (options.on_progress) options.on_progress(p);
  };
  const int threads = EffectiveThreads(options.threads);

  ORCHARD_ASSIGN_OR_RETURN(auto work, WorkDir::Create(options.work_dir));
  ORCHARD_ASSIGN_OR_RETURN(auto locations, RunLocations::Open(options, work->path()));
  Storage& storage = locations->input();
  const fs::path out_dir = locations->output_dir();

  // The model next: a wrong model or a too large descriptor fails before any image is read.
  FeaturizerOptions model_options;
  ORCHARD_ASSIGN_OR_RETURN(model_options.model, locations->LocalModel(options.model));
  model_options.backend = options.backend;
  model_options.precision = options.precision;
  model_options.size = options.size;
  model_options.pooling = options.pooling;
  model_options.threads = threads;
  model_options.parallel_runs = options.parallel_runs;
  model_options.max_pixels = options.max_pixels;
  model_options.jpeg_dct_scaling = options.jpeg_dct_scaling;
  auto setup_start = Clock::now();
  ORCHARD_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(model_options));
  const ModelSpec& spec = loaded.spec;
  const PreprocessSpec& preprocess = loaded.preprocess;
  FeatureExtractor* extractor = loaded.extractor.get();
  ManifestBuilder manifest(options, spec, threads);
  manifest.SetInference(loaded);
  if (spec.random_weights()) warn(RandomWeightsWarning(spec));
  for (const std::string& warning : loaded.warnings) warn(warning);
  const int64_t dim = extractor->dim();
  ORCHARD_ASSIGN_OR_RETURN(PcaAccumulator accumulator,
                           PcaAccumulator::Create(dim, options.max_pca_dim));
  const PcaOptions pca_options = PcaOptionsFrom(options);
  if (pca_options.components > dim) {
    return Status::InvalidArgument("--pca-components " + std::to_string(pca_options.components) +
                                   " is more than the descriptor dimension " + std::to_string(dim));
  }
  manifest.SetModelLoaded(dim, extractor->feature_shape(), loaded.extractor_options,
                          SecondsSince(setup_start));

  // Pass 0: list into a spill file, so the total is known and memory stays flat.
  progress({0, 0, 0, 0.0, "listing"});
  auto list_start = Clock::now();
  int64_t listed = 0, images = 0;
  {
    ORCHARD_ASSIGN_OR_RETURN(auto listing, RecordWriter::Create(work->path() / "listing"));
    ORCHARD_RETURN_NOT_OK(WriteListing(storage, options, *listing, &listed, &images, state));
  }
  manifest.times().list = SecondsSince(list_start);

  // Pass 1: descriptors, PCA statistics and the error report, in listing order.
  ORCHARD_ASSIGN_OR_RETURN(auto errors_file, AtomicFile::Create((out_dir / "errors.csv").string()));
  ORCHARD_RETURN_NOT_OK(errors_file->Append("path,stage,message\n"));
  ORCHARD_ASSIGN_OR_RETURN(auto raw_spill, FloatSpill::Create(work->path() / "descriptors", dim));
  ORCHARD_ASSIGN_OR_RETURN(auto rows_spill, RecordWriter::Create(work->path() / "rows"));

  const DecodeOptions& decode_options = loaded.decode;
  const size_t batch_bytes =
      TensorElements(preprocess) * sizeof(float) * static_cast<size_t>(options.batch);
  BoundedQueue<WorkUnit> units(static_cast<size_t>(2 * threads), SIZE_MAX);
  // Two batches per decode thread are enough to keep the model busy; more only costs memory.
  BoundedQueue<PreparedBatch> prepared(static_cast<size_t>(threads + 1),
                                       std::max(batch_bytes * 2, size_t{64} << 20));
  Preparer preparer(storage, preprocess, decode_options);
  Inference inference(loaded, loaded.layout.runs);

  std::thread dispatcher(Dispatch, work->path() / "listing", options.batch, std::ref(units),
                         std::ref(state));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      while (auto unit = units.Pop()) {
        if (state.stopped()) break;
        PreparedBatch batch = preparer.Prepare(std::move(*unit));
        inference.Extract(batch);
        const size_t bytes = batch.features.size() * sizeof(float);
        if (!prepared.Push(std::move(batch), bytes)) break;
      }
    });
  }
  // The last worker to leave closes the queue; simpler: join them on a helper thread.
  std::thread closer([&] {
    for (auto& w : workers) w.join();
    prepared.Close();
  });

  int64_t processed = 0, failed = 0;
  std::map<int64_t, PreparedBatch> pending;  // bounded by the units in flight
  int64_t next_seq = 0;
  auto consume = [&](PreparedBatch& batch) -> Status {
    manifest.times().Add(batch.times);
    if (batch.good > 0) {
      const auto start = Clock::now();
      ORCHARD_RETURN_NOT_OK(accumulator.Accumulate(batch.good, batch.features.data()));
      manifest.times().pca_accumulate += SecondsSince(start);
      ORCHARD_RETURN_NOT_OK(raw_spill->Append(batch.good, batch.features.data()));
    }
    for (const ItemOutcome& o : batch.outcomes) {
      if (o.ok) {
        ORCHARD_RETURN_NOT_OK(rows_spill->Write({o.key, LabelOf(o.key)}));
        ++processed;
      } else {
        ORCHARD_RETURN_NOT_OK(errors_file->Append(CsvField(o.key) + "," + o.stage + "," +
                                                  CsvField(o.message) + "\n"));
        ++failed;
      }
    }
    return Status::OK();
  };
  while (auto batch = prepared.Pop()) {
    if (state.stopped()) continue;  // drain so that producers can exit
    pending.emplace(batch->seq, std::move(*batch));
    for (auto it = pending.find(next_seq); it != pending.end(); it = pending.find(next_seq)) {
      Status status = consume(it->second);
      pending.erase(it);
      ++next_seq;
      if (!status.ok()) {
        state.Fail(status);
        units.Close();
        prepared.Close();
        break;
      }
      progress({images, processed, failed, 0.0, "extracting"});
    }
  }
  units.Close();
  dispatcher.join();
  closer.join();
  ORCHARD_RETURN_NOT_OK(state.status());
  ORCHARD_RETURN_NOT_OK(rows_spill->Close());
  ORCHARD_RETURN_NOT_OK(errors_file->Close());

  RunSummary summary;
  summary.listed = listed;
  summary.processed = processed;
  summary.failed = failed;
  summary.dim = dim;
  summary.model_name = spec.name;
  summary.random_weights = spec.random_weights();
  summary.output = options.output;
  manifest.SetCounts(listed, processed, failed);

  if (processed < 2) {
    manifest.SetFailure(processed == 0 ? "no image could be processed"
                                       : "PCA needs at least 2 images");
    manifest.times().total = SecondsSince(run_start);
    ORCHARD_RETURN_NOT_OK(
        WriteFileAtomically((out_dir / "manifest.json").string(), manifest.Json()));
    ORCHARD_RETURN_NOT_OK(locations->Publish({"errors.csv", "manifest.json"}));
    if (listed == 0)
      return Status::NotFound("no file found in " + options.input + ": nothing to process");
    return Status::InvalidArgument(
        (processed == 0 ? "no image could be processed"
                        : "only 1 image could be processed; PCA needs at least 2") +
        std::string(" (") + std::to_string(listed) + " listed, " + std::to_string(failed) +
        " failed: see errors.csv in " + options.output + ")");
  }

  progress({images, processed, failed, 0.0, "fitting PCA"});
  auto fit_start = Clock::now();
  ORCHARD_ASSIGN_OR_RETURN(PcaModel pca, FitPca(accumulator, pca_options));
  manifest.times().pca_fit = SecondsSince(fit_start);
  summary.k = pca.k;
  for (double r : pca.explained_variance_ratio) summary.explained_variance += r;

  // Pass 2: project the spilled descriptors and write the matrix.
  progress({images, processed, failed, 0.0, "writing"});
  auto write_start = Clock::now();
  ORCHARD_RETURN_NOT_OK(raw_spill->Rewind());
  ORCHARD_ASSIGN_OR_RETURN(auto rows_reader, RecordReader::Open(work->path() / "rows"));
  ORCHARD_ASSIGN_OR_RETURN(auto csv, AtomicFile::Create((out_dir / "features.csv").string()));
  ORCHARD_ASSIGN_OR_RETURN(auto npy, NpyWriter::Create((out_dir / "features.npy").string(), pca.k));
  std::unique_ptr<NpyWriter> raw_npy;
  if (options.save_raw) {
    ORCHARD_ASSIGN_OR_RETURN(raw_npy, NpyWriter::Create((out_dir / "raw.npy").string(), dim));
  }
  std::string header = "path,label";
  for (int64_t j = 1; j <= pca.k; ++j) header += ",pc_" + std::to_string(j);
  ORCHARD_RETURN_NOT_OK(csv->Append(header + "\n"));
  constexpr int64_t kChunk = 256;
  std::vector<float> raw(static_cast<size_t>(kChunk * dim));
  std::vector<float> reduced(static_cast<size_t>(kChunk * pca.k));
  std::vector<std::string> fields;
  std::string text;
  for (;;) {
    ORCHARD_ASSIGN_OR_RETURN(int64_t n, raw_spill->Read(kChunk, raw.data()));
    if (n == 0) break;
    ORCHARD_RETURN_NOT_OK(pca.Transform(n, raw.data(), reduced.data()));
    text.clear();
    for (int64_t i = 0; i < n; ++i) {
      ORCHARD_ASSIGN_OR_RETURN(bool more, rows_reader->Next(&fields));
      if (!more) return Status::Internal("descriptor and row spill files disagree");
      text += CsvField(fields[0]) + "," + CsvField(fields[1]);
      for (int64_t j = 0; j < pca.k; ++j)
        text += "," + FormatFloat(reduced[static_cast<size_t>(i * pca.k + j)]);
      text += "\n";
    }
    ORCHARD_RETURN_NOT_OK(csv->Append(text));
    ORCHARD_RETURN_NOT_OK(npy->Append(n, reduced.data()));
    if (raw_npy) ORCHARD_RETURN_NOT_OK(raw_npy->Append(n, raw.data()));
  }
  ORCHARD_RETURN_NOT_OK(csv->Close());
  ORCHARD_RETURN_NOT_OK(npy->Close());
  if (raw_npy) ORCHARD_RETURN_NOT_OK(raw_npy->Close());
  nlohmann::json pca_json = PcaModelToJson(pca);
  pca_json["model"] = manifest.ModelJson();
  ORCHARD_RETURN_NOT_OK(
      WriteFileAtomically((out_dir / "pca.json").string(), pca_json.dump(1) + "\n"));
  manifest.times().write = SecondsSince(write_start);

  summary.seconds = SecondsSince(run_start);
  summary.images_per_second =
      summary.seconds > 0 ? static_cast<double>(processed) / summary.seconds : 0.0;
  manifest.times().total = summary.seconds;
  manifest.SetPca(pca, pca_options);
  ORCHARD_RETURN_NOT_OK(WriteFileAtomically((out_dir / "manifest.json").string(), manifest.Json()));
  // The manifest goes last: whoever sees it sees a complete result.
  ORCHARD_RETURN_NOT_OK(locations->Publish(
      {"features.csv", "features.npy", "raw.npy", "pca.json", "errors.csv", "manifest.json"}));
  return summary;
}

}  // namespace orchard
