// The parallel part of a run: images are read, decoded, preprocessed and run through the
// model by `threads` workers, and handed back in listing order to one consumer.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "orchard/featurizer.h"
#include "orchard/status.h"
#include "orchard/storage.h"
#include "pipeline/manifest.h"

namespace orchard {

// A stop signal shared by the stages, holding the first fatal error.
class RunState {
 public:
  explicit RunState(const std::atomic<bool>* cancel) : cancel_(cancel) {}
  void Fail(Status status);
  bool stopped() const { return failed_ || (cancel_ != nullptr && cancel_->load()); }
  Status status() const;

 private:
  const std::atomic<bool>* cancel_;
  mutable std::mutex mutex_;
  Status status_;
  std::atomic<bool> failed_{false};
};

struct ItemOutcome {
  std::string key;
  std::string content_id;
  bool ok = false;
  std::string stage;  // where it failed: read, decode, preprocess, extract
  std::string message;
};

// A batch of up to `batch` images after inference: the outcomes in listing order and the
// descriptors of the good ones (good x dim).
struct FeaturizedBatch {
  int64_t seq = 0;
  std::vector<ItemOutcome> outcomes;
  int good = 0;
  std::vector<float> features;
  std::vector<float> tensor;  // the preprocessed input, dropped after inference
  StageTimes times;
};

struct FeaturizeStageOptions {
  int threads = 1;
  int batch = 16;
};

// Featurizes the images of `todo` (a record file of [key, content id] rows, in listing
// order), `batch` images per inference call, and calls `consume` with every batch in `seq`
// order, on the calling thread. Stops at the first error `consume` returns, or when `state`
// is stopped. Failing images are outcomes, not errors.
Status FeaturizeStage(const std::filesystem::path& todo, Storage& input, const LoadedModel& model,
                      const FeaturizeStageOptions& options, RunState& state,
                      const std::function<Status(FeaturizedBatch&)>& consume);

}  // namespace orchard
