// What a run may do with its output location, decided before any work and before anything
// is written there: a new run never overwrites, --resume and update need (or make) a store,
// --overwrite removes Orchard's own files first.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "orchard/pipeline.h"
#include "orchard/storage.h"
#include "pipeline/lease_lock.h"

namespace orchard {

// The names of the result files a run publishes (besides the _orchard/ store).
const std::vector<std::string>& ResultFileNames();

// Held for the whole run: a second run on the same output refuses instead of mixing its
// files with this one's. Locally an flock on _orchard/lock (released by the kernel when the
// process dies, even by kill -9, so no stale lock is ever left); on S3 a lease object at the
// same key (pipeline/lease_lock.h).
class OutputLock {
 public:
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  friend Result<std::unique_ptr<OutputLock>> LockOutput(
      Storage& output, const std::string& location,
      const std::function<void(const std::string&)>& warn);
  explicit OutputLock(int fd) : fd_(fd) {}
  explicit OutputLock(std::unique_ptr<LeaseLock> lease) : lease_(std::move(lease)) {}
  int fd_ = -1;
  std::unique_ptr<LeaseLock> lease_;
};
// Takes the lock of an output (nullptr for storages that can hold none); kInvalidArgument,
// naming the other run, when it is held. `warn` hears of a stale lease taken over.
Result<std::unique_ptr<OutputLock>> LockOutput(
    Storage& output, const std::string& location,
    const std::function<void(const std::string&)>& warn = nullptr);

struct OutputState {
  bool has_store = false;  // _orchard/store.json is there
  std::unique_ptr<OutputLock> lock;
};

// Lists `output` and applies `mode`'s rule. Refusals (kInvalidArgument) change nothing.
// With kOverwrite, deletes the store and the result files (other files stay). With any
// mode, removes temporary files an interrupted run left (their names hold ".tmp-").
Result<OutputState> PrepareOutput(Storage& output, const std::string& location,
                                  const RunPlan& plan);

}  // namespace orchard
