// Where images are read from and results are written to: one interface for local disk, S3
// and memory.
//
// Keys are paths relative to the storage root with '/' separators. Listing is streamed to
// a visitor in byte order of the whole key (the order S3 lists in), so a local run and an
// S3 run over the same files see the same sequence. Implementations are safe for
// concurrent Read() and Write() calls from several threads; List() is called from one
// thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/status.h"

namespace orchard {

struct ObjectInfo {
  std::string key;       // relative to the root, '/'-separated, no leading '/'
  uint64_t size = 0;     // bytes
  std::string etag;      // S3: the listed ETag without its quotes; empty elsewhere
  int64_t mtime_ns = 0;  // local disk: modification time (ns since the epoch); 0 elsewhere
  uint64_t inode = 0;    // local disk: the file's inode; 0 elsewhere
};

// A short text that changes when the object's content does, as far as the listing tells
// without reading the object: "<size>:<etag>" on S3 (the ETag is the content's MD5, or a
// hash of the parts for multipart uploads), "<size>:<mtime_ns>:<inode>" on local disk (an
// edit in place changes the mtime, a replacement by rename the inode), "<size>" elsewhere.
std::string ContentIdentity(const ObjectInfo& info);

class Storage {
 public:
  virtual ~Storage() = default;

  // Calls `visit` for every object below the root, recursively, in byte order of the key.
  // Stops early and returns the visitor's status if it is not OK.
  virtual Status List(const std::function<Status(const ObjectInfo&)>& visit) = 0;

  // Reads one whole object. A missing key is kNotFound; a permission problem is kIOError.
  virtual Result<std::vector<uint8_t>> Read(const std::string& key) = 0;

  // Checks the object's first bytes (up to `prefix_bytes`) and total size with `check`
  // before reading the rest, and returns check's error without reading further: a 3 GB file
  // named .jpg, or a header declaring a gigapixel image, costs one small read. Local files
  // read the prefix first; elsewhere (S3: one GET, capped by its max_object_bytes) the default
  // reads the whole object and checks it before returning it.
  using PrefixCheck = std::function<Status(std::span<const uint8_t> prefix, uint64_t size)>;
  virtual Result<std::vector<uint8_t>> ReadChecked(const std::string& key, size_t prefix_bytes,
                                                   const PrefixCheck& check);

  // A human-readable location for messages, e.g. "/data/fruits/Training/Apple/1.jpg".
  virtual std::string Describe(const std::string& key) const = 0;

  // Creates or replaces `key` atomically: a reader sees the old content or the new one,
  // never a part, and a crash leaves no partial object under `key`. Durable when it returns
  // (local files are fsync'ed with their folder). Parent folders are created as needed.
  virtual Status Write(const std::string& key, std::string_view bytes);
  // Creates `key` with `bytes` only if no object has that key, atomically with respect to
  // other CreateIfAbsent calls (for a lock or an "output taken" marker): true if this call
  // created it, false if the key already existed (another writer won). Like Write(), a
  // reader never sees a partial object. Callers should put a unique token in `bytes` (S3
  // compares the stored bytes to tell racing writers apart). kUnsupported by default
  // (read-only storages). Local: a temporary file hard-linked to the key (link(2) fails if
  // it exists). Memory: under the lock. S3: see S3Client::PutObjectIfAbsent.
  virtual Result<bool> CreateIfAbsent(const std::string& key, std::string_view bytes);
  // Removes `key`; a missing key is not an error (S3 semantics).
  virtual Status Delete(const std::string& key);
  // The local file holding `key` when the storage is a local folder (for streaming reads of
  // large objects without a copy); empty elsewhere.
  virtual std::string LocalPath(const std::string& key) const;
};

// The folder `root` on the local file system; kNotFound if it does not exist, and
// kInvalidArgument if it is not a directory (with create_missing, a missing folder is
// created instead). Symbolic links to files are followed;
// links to directories are not (no cycles).
Result<std::unique_ptr<Storage>> OpenLocalStorage(const std::string& root,
                                                  bool create_missing = false);

// An in-memory storage for tests: objects are kept in a sorted map.
class MemoryStorage : public Storage {
 public:
  void Put(const std::string& key, std::vector<uint8_t> bytes);
  Status List(const std::function<Status(const ObjectInfo&)>& visit) override;
  Result<std::vector<uint8_t>> Read(const std::string& key) override;
  std::string Describe(const std::string& key) const override { return "memory:" + key; }
  Status Write(const std::string& key, std::string_view bytes) override;
  Result<bool> CreateIfAbsent(const std::string& key, std::string_view bytes) override;
  Status Delete(const std::string& key) override;

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> objects_;  // sorted by key
};

}  // namespace orchard
