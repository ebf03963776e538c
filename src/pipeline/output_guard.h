// What a run may do with its output location, decided before any work and before anything
// is written there: a new run never overwrites, --resume and update need (or make) a store,
// --overwrite removes Orchard's own files first.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "orchard/pipeline.h"
#include "orchard/storage.h"

namespace orchard {

// The names of the result files a run publishes (besides the _orchard/ store).
const std::vector<std::string>& ResultFileNames();

// Held for the whole run: a second run on the same local output refuses instead of mixing
// its files with this one's. An flock on _orchard/lock (released by the kernel when the
// process dies, even by kill -9, so no stale lock is ever left). S3 outputs are not locked
// (docs/descriptor-store.md).
class OutputLock {
 public:
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  friend Result<std::unique_ptr<OutputLock>> LockOutput(Storage& output,
                                                        const std::string& location);
  explicit OutputLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};
// Takes the lock of a local output (nullptr for other storages); kInvalidArgument, naming
// the other run's pid, when it is held.
Result<std::unique_ptr<OutputLock>> LockOutput(Storage& output, const std::string& location);

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
