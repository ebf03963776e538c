// Status and Result<T>: how every fallible Orchard call reports failure.
//
// A Status is a small value: a code plus a human-readable, one-line message. Functions that
// produce a value return Result<T>, which holds either the value or a non-OK Status.
// Exceptions do not cross module boundaries; library code returns Status instead.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace orchard {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is wrong (options, shapes, a bad image)
  kNotFound,           // a file, key, model or layer does not exist
  kIOError,            // reading or writing failed
  kCorruptData,        // bytes are not what they claim to be (bad image, bad model file)
  kUnsupported,        // valid input that Orchard does not handle (format, dimension too large)
  kResourceExhausted,  // a configured limit was hit (pixel limit, memory bound)
  kCancelled,          // the run was stopped
  kInternal,           // a bug or an unexpected library failure
};

// Stable lower-case name of a code, e.g. "invalid_argument"; used in errors.csv and logs.
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  // An invalid argument that makes the command unusable as written (an option out of range
  // for this model, an output that needs --resume or --overwrite): the CLI exits 2 for it,
  // where a failure of the run itself exits 1. Same code as InvalidArgument otherwise.
  static Status Usage(std::string m, StatusCode code = StatusCode::kInvalidArgument) {
    Status s(code, std::move(m));
    s.usage_ = true;
    return s;
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status CorruptData(std::string m) { return {StatusCode::kCorruptData, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  bool is_usage_error() const { return usage_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: <message>", or "ok".
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  bool usage_ = false;
};

// Holds a T or a non-OK Status. Accessing the value of an error Result is a bug (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) status_ = Status::Internal("Result constructed from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T&& MoveValue() { return std::move(*value_); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace orchard

#define ORCHARD_CONCAT_IMPL(a, b) a##b
#define ORCHARD_CONCAT(a, b) ORCHARD_CONCAT_IMPL(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define ORCHARD_RETURN_NOT_OK(expr)            \
  do {                                         \
    ::orchard::Status _orchard_st = (expr);    \
    if (!_orchard_st.ok()) return _orchard_st; \
  } while (0)

#define ORCHARD_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                  \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(*tmp)

// `ORCHARD_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its error.
#define ORCHARD_ASSIGN_OR_RETURN(lhs, rexpr) \
  ORCHARD_ASSIGN_OR_RETURN_IMPL(ORCHARD_CONCAT(_orchard_result_, __LINE__), lhs, rexpr)
