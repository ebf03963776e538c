#include "pipeline/output_guard.h"

#include <algorithm>

#include "orchard/descriptor_store.h"

namespace orchard {
namespace {

bool IsOurs(const std::string& key) {
  if (key.rfind(kStoreFolder, 0) == 0) return true;
  const auto& names = ResultFileNames();
  return std::any_of(names.begin(), names.end(), [&](const std::string& name) {
    return key == name || key.rfind(name + ".tmp-", 0) == 0;
  });
}

bool IsTemporary(const std::string& key) { return key.find(".tmp-") != std::string::npos; }

}  // namespace

const std::vector<std::string>& ResultFileNames() {
  static const std::vector<std::string> names = {"features.csv", "features.npy", "features.parquet",
                                                 "raw.npy",      "pca.json",     "errors.csv",
                                                 "manifest.json"};
  return names;
}

Result<OutputState> PrepareOutput(Storage& output, const std::string& location,
                                  const RunPlan& plan) {
  OutputState state;
  std::vector<std::string> keys;
  ORCHARD_RETURN_NOT_OK(output.List([&](const ObjectInfo& info) -> Status {
    keys.push_back(info.key);
    if (info.key == std::string(kStoreFolder) + "store.json") state.has_store = true;
    return Status::OK();
  }));
  const OutputMode mode = plan.options().mode;
  if (mode == OutputMode::kNew && !keys.empty()) {
    std::string example = keys.front();
    for (const std::string& key : keys) {
      if (key == "manifest.json") example = key;
    }
    return Status::InvalidArgument(
        "output " + location + " is not empty (it holds " + example +
        (keys.size() > 1 ? " and " + std::to_string(keys.size() - 1) + " other files" : "") +
        "); nothing was changed. Pass " + plan.Name("resume") +
        " to continue the run that wrote it, " + plan.Name("overwrite") +
        " to replace its results, use update to add new images to them, or choose an empty "
        "output");
  }
  if (mode == OutputMode::kUpdate && !state.has_store) {
    return Status::InvalidArgument("nothing to update in " + location +
                                   ": it holds no descriptor store (" + kStoreFolder +
                                   "store.json); make it with a run first");
  }
  for (const std::string& key : keys) {
    const bool remove =
        (mode == OutputMode::kOverwrite && IsOurs(key)) || (IsTemporary(key) && IsOurs(key));
    if (remove) ORCHARD_RETURN_NOT_OK(output.Delete(key));
  }
  if (mode == OutputMode::kOverwrite) state.has_store = false;
  return state;
}

}  // namespace orchard
