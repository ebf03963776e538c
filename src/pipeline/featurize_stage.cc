#include "pipeline/featurize_stage.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <thread>

#include "orchard/extractor.h"
#include "orchard/image.h"
#include "orchard/preprocess.h"
#include "pipeline/bounded_queue.h"
#include "pipeline/spill.h"
#include "util/catch_all.h"
#include "util/crash_point.h"

namespace orchard {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The unit of work: up to `batch` consecutive images of the todo list, numbered in order.
struct WorkUnit {
  int64_t seq = 0;
  std::vector<std::pair<std::string, std::string>> images;  // key, content id
};

// Runs a prepared batch through the model, at most `runs` batches at once across the
// workers. A failing forward pass fails its images, not the run: they go to errors.csv.
class Inference {
 public:
  Inference(const LoadedModel& model, int runs) : model_(model), slots_(runs) {}

  void Extract(FeaturizedBatch& batch) {
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
        if (o.ok) o = {o.key, o.content_id, false, "extract", status.message()};
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

// Reads the todo list and cuts it into work units of `batch` images.
void Dispatch(const std::filesystem::path& todo, int batch, BoundedQueue<WorkUnit>& units,
              RunState& state) {
  auto reader = RecordReader::Open(todo);
  if (!reader.ok()) {
    state.Fail(reader.status());
    units.Close();
    return;
  }
  WorkUnit unit;
  std::vector<std::string> fields;
  while (!state.stopped()) {
    auto more = (*reader)->Next(&fields);
    if (!more.ok()) {
      state.Fail(more.status());
      break;
    }
    if (!*more) break;
    unit.images.emplace_back(std::move(fields.at(0)), std::move(fields.at(1)));
    if (static_cast<int>(unit.images.size()) == batch) {
      const int64_t next = unit.seq + 1;
      if (!units.Push(std::move(unit), 0)) break;
      unit = WorkUnit{next, {}};
    }
  }
  if (!unit.images.empty() && !state.stopped()) units.Push(std::move(unit), 0);
  units.Close();
}

class Preparer {
 public:
  Preparer(Storage& storage, const PreprocessSpec& spec, const DecodeOptions& decode)
      : storage_(storage), spec_(spec), decode_(decode) {}

  FeaturizedBatch Prepare(WorkUnit unit) const {
    FeaturizedBatch batch;
    batch.seq = unit.seq;
    const size_t elements = TensorElements(spec_);
    batch.tensor.resize(elements * unit.images.size());
    for (auto& [key, content_id] : unit.images) {
      ItemOutcome outcome{std::move(key), std::move(content_id), false, "", ""};
      Status status;
      try {  // a library that throws (OpenCV, an allocation) fails the image, not the process
        status = PrepareOne(outcome.key, batch.tensor.data() + elements * batch.good, batch.times,
                            &outcome.stage);
      } catch (const std::exception& e) {
        status = Status::Internal(std::string("unexpected error: ") + e.what());
      }
      outcome.ok = status.ok();
      if (status.ok()) {
        ++batch.good;
      } else {
        outcome.message = status.message();
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
    // The header is checked before the file is read whole (local files): a huge file or a
    // gigapixel header is refused after one small read. 256 KiB holds a JPEG's frame header
    // behind the usual metadata (EXIF, ICC, XMP); where it does not, the decode checks again.
    constexpr size_t kHeaderBytes = size_t{256} << 10;
    bool condemned = false;  // by its content: a decode error, reported as such
    auto bytes = storage_.ReadChecked(key, kHeaderBytes,
                                      [&](std::span<const uint8_t> prefix, uint64_t size) {
                                        Status verdict = CheckImagePrefix(prefix, size, decode_);
                                        condemned = !verdict.ok();
                                        return verdict;
                                      });
    times.read += SecondsSince(start);
    if (condemned) *stage = "decode";
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

}  // namespace

void RunState::Fail(Status status) {
  std::lock_guard lock(mutex_);
  if (status_.ok()) status_ = std::move(status);
  failed_ = true;
}

Status RunState::status() const {
  std::lock_guard lock(mutex_);
  if (!status_.ok()) return status_;
  if (cancel_ != nullptr && cancel_->load()) return Status::Cancelled("run cancelled");
  return Status::OK();
}

Status FeaturizeStage(const std::filesystem::path& todo, Storage& input, const LoadedModel& model,
                      const FeaturizeStageOptions& options, RunState& state,
                      const std::function<Status(FeaturizedBatch&)>& consume) {
  const int threads = options.threads;
  const size_t batch_bytes =
      TensorElements(model.preprocess) * sizeof(float) * static_cast<size_t>(options.batch);
  BoundedQueue<WorkUnit> units(static_cast<size_t>(2 * threads), SIZE_MAX);
  // Two batches per decode thread are enough to keep the model busy; more only costs memory.
  BoundedQueue<FeaturizedBatch> done(static_cast<size_t>(threads + 1),
                                     std::max(batch_bytes * 2, size_t{64} << 20));
  Preparer preparer(input, model.preprocess, model.decode);
  Inference inference(model, model.layout.runs);

  // Every thread body ends in CatchAll: an exception (an allocation, a library) fails the
  // run with a message, and the queues close so that the other threads end too.
  auto fail = [&](Status status) {
    if (status.ok()) return;
    state.Fail(std::move(status));
    units.Close();
    done.Close();
  };
  auto dispatch = [&] {
    fail(CatchAll("listing reader", [&] {
      Dispatch(todo, options.batch, units, state);
      return Status::OK();
    }));
    units.Close();
  };
  auto work = [&] {
    fail(CatchAll("featurize worker", [&] {
      while (auto unit = units.Pop()) {
        if (state.stopped()) break;
        FeaturizedBatch batch = preparer.Prepare(std::move(*unit));
        inference.Extract(batch);
        CrashPoint("extract");
        const size_t bytes = batch.features.size() * sizeof(float);
        if (!done.Push(std::move(batch), bytes)) break;
      }
      return Status::OK();
    }));
  };
  std::thread dispatcher;
  std::vector<std::thread> workers;
  std::thread closer;
  // A machine that cannot start a thread (ulimit -u, memory) fails the run, not the process
  // (a std::thread left joinable by the exception would call std::terminate).
  const Status started = CatchAll("starting threads", [&] {
    dispatcher = std::thread(dispatch);
    for (int t = 0; t < threads; ++t) workers.emplace_back(work);
    closer = std::thread([&] {
      for (auto& w : workers) w.join();
      done.Close();
    });
    return Status::OK();
  });
  if (!started.ok()) {
    fail(started);
    if (dispatcher.joinable()) dispatcher.join();
    for (auto& w : workers) w.join();
    return state.status();
  }

  std::map<int64_t, FeaturizedBatch> pending;  // bounded by the units in flight
  int64_t next_seq = 0;
  fail(CatchAll("committing descriptors", [&] {
    while (auto batch = done.Pop()) {
      if (state.stopped()) continue;  // drain so that producers can exit
      pending.emplace(batch->seq, std::move(*batch));
      for (auto it = pending.find(next_seq); it != pending.end() && !state.stopped();
           it = pending.find(next_seq)) {
        Status status = consume(it->second);
        pending.erase(it);
        ++next_seq;
        if (!status.ok()) {
          fail(status);
          break;
        }
      }
    }
    return Status::OK();
  }));
  // After a failure here, the workers may be blocked on a closed queue: drain what is left.
  while (done.Pop()) {
  }
  units.Close();
  dispatcher.join();
  closer.join();
  return state.status();
}

}  // namespace orchard
