// The parts of Storage shared by every implementation: content identity and the defaults of
// the write side for read-only storages.
#include "orchard/storage.h"

namespace orchard {

std::string ContentIdentity(const ObjectInfo& info) {
  // append() rather than operator+: GCC 12 warns (-Wrestrict) on chains of temporaries.
  std::string id = std::to_string(info.size);
  if (!info.etag.empty()) {
    id.append(":").append(info.etag);
  } else if (info.mtime_ns != 0 || info.inode != 0) {
    id.append(":").append(std::to_string(info.mtime_ns));
    id.append(":").append(std::to_string(info.inode));
  }
  return id;
}

Status Storage::Write(const std::string& key, std::string_view) {
  return Status::Unsupported("cannot write " + Describe(key) + ": this storage is read-only");
}

Status Storage::Delete(const std::string& key) {
  return Status::Unsupported("cannot delete " + Describe(key) + ": this storage is read-only");
}

std::string Storage::LocalPath(const std::string&) const { return ""; }

}  // namespace orchard
