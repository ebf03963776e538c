#include <algorithm>

#include "orchard/storage.h"

namespace orchard {

void MemoryStorage::Put(const std::string& key, std::vector<uint8_t> bytes) {
  auto it =
      std::lower_bound(objects_.begin(), objects_.end(), key,
                       [](const auto& entry, const std::string& k) { return entry.first < k; });
  if (it != objects_.end() && it->first == key) {
    it->second = std::move(bytes);
  } else {
    objects_.insert(it, {key, std::move(bytes)});
  }
}

Status MemoryStorage::List(const std::function<Status(const ObjectInfo&)>& visit) {
  for (const auto& [key, bytes] : objects_) {
    ORCHARD_RETURN_NOT_OK(visit(ObjectInfo{key, bytes.size()}));
  }
  return Status::OK();
}

Result<std::vector<uint8_t>> MemoryStorage::Read(const std::string& key) {
  auto it =
      std::lower_bound(objects_.begin(), objects_.end(), key,
                       [](const auto& entry, const std::string& k) { return entry.first < k; });
  if (it == objects_.end() || it->first != key) return Status::NotFound("no such object: " + key);
  return it->second;
}

}  // namespace orchard
