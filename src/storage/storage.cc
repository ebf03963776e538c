// The parts of Storage shared by every implementation: content identity and the defaults of
// the write side for read-only storages.
#include "orchard/storage.h"

#include <algorithm>

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

Result<bool> Storage::CreateIfAbsent(const std::string& key, std::string_view) {
  return Status::Unsupported("cannot create " + Describe(key) +
                             " if absent: this storage does not support it");
}

Status Storage::Delete(const std::string& key) {
  return Status::Unsupported("cannot delete " + Describe(key) + ": this storage is read-only");
}

std::string Storage::LocalPath(const std::string&) const { return ""; }

Result<std::vector<uint8_t>> Storage::ReadChecked(const std::string& key, size_t prefix_bytes,
                                                  const PrefixCheck& check) {
  ORCHARD_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, Read(key));
  const std::span<const uint8_t> all(bytes);
  ORCHARD_RETURN_NOT_OK(check(all.first(std::min(prefix_bytes, all.size())), all.size()));
  return bytes;
}

}  // namespace orchard
