// The AWS "standard" retry policy behind MakeStandardRetryPolicy(), exposed so that tests
// can check its delays with a fixed random source.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <random>

#include "orchard/s3.h"

namespace orchard::s3internal {

class StandardRetryPolicy : public RetryPolicy {
 public:
  // `uniform01` returns a number in [0, 1); by default a mutex-guarded Mersenne twister.
  StandardRetryPolicy(std::chrono::milliseconds base_delay, std::chrono::milliseconds max_delay,
                      std::function<double()> uniform01 = nullptr);

  bool ShouldRetry(const S3Error& error, int attempt) const override;
  std::chrono::milliseconds DelayBeforeNextRetry(const S3Error& error, int attempt) const override;

  // The upper bound of the jittered delay after `attempt`: min(max, base * 2^(attempt-1)).
  std::chrono::milliseconds DelayCap(int attempt) const;

 private:
  std::chrono::milliseconds base_delay_;
  std::chrono::milliseconds max_delay_;
  std::function<double()> uniform01_;
  mutable std::mutex mu_;
  mutable std::mt19937_64 rng_;
};

}  // namespace orchard::s3internal
