// Where images are read from: one interface for local disk (and, later, S3).
//
// Keys are paths relative to the storage root with '/' separators. Listing is streamed to
// a visitor in byte order of the whole key (the order S3 lists in), so a local run and an
// S3 run over the same files see the same sequence. Implementations are safe for
// concurrent Read() calls from several threads; List() is called from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "orchard/status.h"

namespace orchard {

struct ObjectInfo {
  std::string key;    // relative to the root, '/'-separated, no leading '/'
  uint64_t size = 0;  // bytes
};

class Storage {
 public:
  virtual ~Storage() = default;

  // Calls `visit` for every object below the root, recursively, in byte order of the key.
  // Stops early and returns the visitor's status if it is not OK.
  virtual Status List(const std::function<Status(const ObjectInfo&)>& visit) = 0;

  // Reads one whole object. A missing key is kNotFound; a permission problem is kIOError.
  virtual Result<std::vector<uint8_t>> Read(const std::string& key) = 0;

  // A human-readable location for messages, e.g. "/data/fruits/Training/Apple/1.jpg".
  virtual std::string Describe(const std::string& key) const = 0;
};

// The folder `root` on the local file system; kNotFound if it does not exist, and
// kInvalidArgument if it is not a directory. Symbolic links to files are followed;
// links to directories are not (no cycles).
Result<std::unique_ptr<Storage>> OpenLocalStorage(const std::string& root);

// An in-memory storage for tests: objects are kept in a sorted map.
class MemoryStorage : public Storage {
 public:
  void Put(const std::string& key, std::vector<uint8_t> bytes);
  Status List(const std::function<Status(const ObjectInfo&)>& visit) override;
  Result<std::vector<uint8_t>> Read(const std::string& key) override;
  std::string Describe(const std::string& key) const override { return "memory:" + key; }

 private:
  std::vector<std::pair<std::string, std::vector<uint8_t>>> objects_;  // sorted by key
};

}  // namespace orchard
