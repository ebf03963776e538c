#include <algorithm>

#include "orchard/storage.h"

namespace orchard {

void MemoryStorage::Put(const std::string& key, std::vector<uint8_t> bytes) {
  std::lock_guard lock(mutex_);
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
  std::vector<ObjectInfo> listed;  // a snapshot: the visitor may write to this storage
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, bytes] : objects_) {
      ObjectInfo info;
      info.key = key;
      info.size = bytes.size();
      listed.push_back(std::move(info));
    }
  }
  for (const ObjectInfo& info : listed) ORCHARD_RETURN_NOT_OK(visit(info));
  return Status::OK();
}

Result<std::vector<uint8_t>> MemoryStorage::Read(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it =
      std::lower_bound(objects_.begin(), objects_.end(), key,
                       [](const auto& entry, const std::string& k) { return entry.first < k; });
  if (it == objects_.end() || it->first != key) return Status::NotFound("no such object: " + key);
  return it->second;
}

Status MemoryStorage::Write(const std::string& key, std::string_view bytes) {
  Put(key, std::vector<uint8_t>(bytes.begin(), bytes.end()));
  return Status::OK();
}

Result<bool> MemoryStorage::CreateIfAbsent(const std::string& key, std::string_view bytes) {
  std::lock_guard lock(mutex_);
  auto it =
      std::lower_bound(objects_.begin(), objects_.end(), key,
                       [](const auto& entry, const std::string& k) { return entry.first < k; });
  if (it != objects_.end() && it->first == key) return false;
  objects_.insert(it, {key, std::vector<uint8_t>(bytes.begin(), bytes.end())});
  return true;
}

Status MemoryStorage::Delete(const std::string& key) {
  std::lock_guard lock(mutex_);
  std::erase_if(objects_, [&](const auto& entry) { return entry.first == key; });
  return Status::OK();
}

}  // namespace orchard
