// What a run may do with its output location, decided before any work and before anything
// is written there: a new run never overwrites, --resume and update need (or make) a store,
// --overwrite removes Orchard's own files first.
#pragma once

#include <string>
#include <vector>

#include "orchard/pipeline.h"
#include "orchard/storage.h"

namespace orchard {

// The names of the result files a run publishes (besides the _orchard/ store).
const std::vector<std::string>& ResultFileNames();

struct OutputState {
  bool has_store = false;  // _orchard/store.json is there
};

// Lists `output` and applies `mode`'s rule. Refusals (kInvalidArgument) change nothing.
// With kOverwrite, deletes the store and the result files (other files stay). With any
// mode, removes temporary files an interrupted run left (their names end in .tmp-<pid>).
Result<OutputState> PrepareOutput(Storage& output, const std::string& location,
                                  const RunPlan& plan);

}  // namespace orchard
