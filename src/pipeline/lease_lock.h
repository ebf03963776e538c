// The lock of an output where there is no flock (S3): a lease object created with a
// conditional PUT (Storage::CreateIfAbsent, If-None-Match: *), so that of two runs starting
// together exactly one gets it, renewed while the run lives and deleted when it ends.
//
// A run killed without releasing it leaves the object behind: the next run takes it over
// when its holder is a dead process on this machine, or when its last renewal is older than
// the lease (another machine that stopped renewing). Clocks of different machines must agree
// within the lease (two minutes by default; ORCHARD_LOCK_LEASE_SECONDS changes it).
// Advisory, as every S3 lock: taking over a stale lease has a window of one round trip.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "orchard/status.h"
#include "orchard/storage.h"

namespace orchard {

class LeaseLock {
 public:
  // nullptr when `storage` cannot create conditionally (kUnsupported): no lock to be had.
  // kInvalidArgument naming the holder (host, pid, last renewal) when a live run holds it.
  static Result<std::unique_ptr<LeaseLock>> Acquire(
      Storage& storage, const std::string& key, const std::string& location,
      const std::function<void(const std::string&)>& warn);
  // Stops renewing and deletes the lease if it is still this run's.
  ~LeaseLock();
  LeaseLock(const LeaseLock&) = delete;
  LeaseLock& operator=(const LeaseLock&) = delete;

  // The lease length: ORCHARD_LOCK_LEASE_SECONDS, else 120 s.
  static std::chrono::seconds LeaseLength();

 private:
  LeaseLock(Storage& storage, std::string key, std::string token, std::chrono::seconds lease);
  std::string Body() const;
  void RenewUntilStopped();

  Storage& storage_;
  const std::string key_;
  const std::string token_;
  const std::chrono::seconds lease_;
  std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stop_ = false;
  std::thread renewer_;
};

}  // namespace orchard
