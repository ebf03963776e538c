#include "pipeline/output_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "orchard/descriptor_store.h"

namespace orchard {
namespace {

const std::string kLockKey = std::string(kStoreFolder) + "lock";

bool IsOurs(const std::string& key) {
  if (key == kLockKey) return false;  // never deleted: another run may hold it
  if (key.rfind(kStoreFolder, 0) == 0) return true;
  const auto& names = ResultFileNames();
  return std::any_of(names.begin(), names.end(), [&](const std::string& name) {
    return key == name || key.rfind(name + ".tmp-", 0) == 0;
  });
}

bool IsTemporary(const std::string& key) { return key.find(".tmp-") != std::string::npos; }

}  // namespace

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

Result<std::unique_ptr<OutputLock>> LockOutput(
    Storage& output, const std::string& location,
    const std::function<void(const std::string&)>& warn) {
  const std::string path = output.LocalPath(kLockKey);
  if (path.empty()) {
    ORCHARD_ASSIGN_OR_RETURN(auto lease, LeaseLock::Acquire(output, kLockKey, location, warn));
    if (!lease) return std::unique_ptr<OutputLock>();
    return std::unique_ptr<OutputLock>(new OutputLock(std::move(lease)));
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Status::IOError("cannot create " + path + ": " + ec.message());
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  std::unique_ptr<OutputLock> lock(new OutputLock(fd));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd, holder, sizeof(holder) - 1, 0);
    const std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "?";
    return Status::InvalidArgument("output " + location +
                                   " is in use by another orchard run (pid " + pid +
                                   "); wait for it to end, or choose another output");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    return Status::IOError("cannot write " + path + ": " + std::strerror(errno));
  }
  return lock;
}

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
  // The lock file alone does not make an output non-empty.
  const bool has_lock_file = std::erase(keys, kLockKey) > 0;
  if (mode == OutputMode::kUpdate && !state.has_store) {
    return Status::Usage("nothing to update in " + location + ": it holds no descriptor store (" +
                         kStoreFolder + "store.json); make it with a run first");
  }
  if (mode == OutputMode::kNew && !keys.empty()) {
    // Another run at work there is the better explanation (probing opens, never creates).
    if (has_lock_file) {
      ORCHARD_RETURN_NOT_OK(LockOutput(output, location, plan.options().on_warning).status());
    }
    std::string example = keys.front();
    for (const std::string& key : keys) {
      if (key == "manifest.json") example = key;
    }
    return Status::Usage(
        "output " + location + " is not empty (it holds " + example +
        (keys.size() > 1 ? " and " + std::to_string(keys.size() - 1) + " other files" : "") +
        "); nothing was changed. Pass " + plan.Name("resume") +
        " to continue the run that wrote it, " + plan.Name("overwrite") +
        " to replace its results, use update to add new images to them, or choose an empty "
        "output");
  }
  // From here on the run writes: it holds the lock until it ends.
  ORCHARD_ASSIGN_OR_RETURN(state.lock, LockOutput(output, location, plan.options().on_warning));
  for (const std::string& key : keys) {
    const bool remove =
        (mode == OutputMode::kOverwrite && IsOurs(key)) || (IsTemporary(key) && IsOurs(key));
    if (remove) ORCHARD_RETURN_NOT_OK(output.Delete(key));
  }
  if (mode == OutputMode::kOverwrite) state.has_store = false;
  return state;
}

}  // namespace orchard
