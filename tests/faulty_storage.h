// A Storage wrapper for tests that fails or slows down on demand, as Arrow's SlowFileSystem
// and fault-injecting file systems do: the code under test sees real errors at chosen moments.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

#include "orchard/storage.h"

namespace orchard::testing {

class FaultyStorage : public Storage {
 public:
  explicit FaultyStorage(Storage& inner) : inner_(inner) {}

  // Writes after the first `n` fail with kIOError ("No space left on device"), until reset.
  void FailWritesAfter(int64_t n) { writes_left_ = n; }
  void StopFailing() { writes_left_ = -1; }
  // Every operation sleeps this long first.
  void SetDelay(std::chrono::milliseconds delay) { delay_ = delay; }
  int64_t writes() const { return writes_; }

  Status List(const std::function<Status(const ObjectInfo&)>& visit) override {
    Pause();
    return inner_.List(visit);
  }
  Result<std::vector<uint8_t>> Read(const std::string& key) override {
    Pause();
    return inner_.Read(key);
  }
  std::string Describe(const std::string& key) const override { return inner_.Describe(key); }
  Status Write(const std::string& key, std::string_view bytes) override {
    Pause();
    ++writes_;
    if (writes_left_ >= 0 && writes_left_-- == 0) {
      writes_left_ = 0;  // stays full
      return Status::IOError("cannot write " + Describe(key) + ": No space left on device");
    }
    return inner_.Write(key, bytes);
  }
  Status Delete(const std::string& key) override {
    Pause();
    return inner_.Delete(key);
  }

 private:
  void Pause() const {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
  }
  Storage& inner_;
  std::atomic<int64_t> writes_left_{-1};
  std::atomic<int64_t> writes_{0};
  std::chrono::milliseconds delay_{0};
};

}  // namespace orchard::testing
