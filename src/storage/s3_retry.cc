#include "storage/s3_retry.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace orchard {

namespace {

// S3 and AWS error codes that mean "try again later" (throttling, transient server state).
constexpr std::array<std::string_view, 20> kRetryableCodes = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "ServiceUnavailable",
    "IDPCommunicationError",
    "OperationAborted",
};

}  // namespace

std::string S3Error::ToString() const {
  std::string out;
  if (transport == Transport::kNone) {
    out = "HTTP " + std::to_string(http_status);
    if (!code.empty()) out += " " + code;
  } else {
    out = code;
  }
  if (!message.empty()) out += ": " + message;
  if (!request_id.empty()) out += " (request id " + request_id + ")";
  return out;
}

bool IsRetryableS3Error(const S3Error& error) {
  using T = S3Error::Transport;
  switch (error.transport) {
    case T::kConnectFailed:
    case T::kReset:
    case T::kTimeout:
    case T::kTruncated:
      return true;
    case T::kDnsFailed:  // a typo in the endpoint should fail fast
    case T::kTooLarge:
    case T::kTls:
    case T::kOther:
      return false;
    case T::kNone:
      break;
  }
  if (std::find(kRetryableCodes.begin(), kRetryableCodes.end(), error.code) !=
      kRetryableCodes.end()) {
    return true;
  }
  return error.http_status >= 500 || error.http_status == 429;
}

std::shared_ptr<RetryPolicy> MakeStandardRetryPolicy(std::chrono::milliseconds base_delay,
                                                     std::chrono::milliseconds max_delay) {
  return std::make_shared<s3internal::StandardRetryPolicy>(base_delay, max_delay);
}

namespace s3internal {

StandardRetryPolicy::StandardRetryPolicy(std::chrono::milliseconds base_delay,
                                         std::chrono::milliseconds max_delay,
                                         std::function<double()> uniform01)
    : base_delay_(std::max(std::chrono::milliseconds(0), base_delay)),
      max_delay_(std::max(std::chrono::milliseconds(0), max_delay)),
      uniform01_(std::move(uniform01)),
      rng_(std::random_device{}()) {}

bool StandardRetryPolicy::ShouldRetry(const S3Error& error, int /*attempt*/) const {
  return IsRetryableS3Error(error);
}

std::chrono::milliseconds StandardRetryPolicy::DelayCap(int attempt) const {
  const int doublings = std::clamp(attempt - 1, 0, 30);
  const double cap =
      static_cast<double>(base_delay_.count()) * static_cast<double>(1ull << doublings);
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::min(cap, static_cast<double>(max_delay_.count()))));
}

std::chrono::milliseconds StandardRetryPolicy::DelayBeforeNextRetry(const S3Error& /*error*/,
                                                                    int attempt) const {
  const auto cap = DelayCap(attempt);
  if (cap.count() <= 0) return std::chrono::milliseconds(0);
  double r;
  if (uniform01_) {
    r = uniform01_();
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }
  r = std::clamp(r, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(r * static_cast<double>(cap.count())));
}

}  // namespace s3internal
}  // namespace orchard
