// Where a run's result rows go: one interface for every output format.
//
// The run hands each sink the rows that have a descriptor, in output order (listing order),
// in batches; failures go to an ErrorSink. A sink writes to a file of its own in the run's
// output folder (a local staging folder for s3:// outputs, uploaded after Commit). Nothing is
// visible under the final name before Commit(); a sink destroyed without Commit() leaves
// nothing behind. Sinks are called from one thread.
//
// A new output format is one new ResultSink (the Python binding accepts sinks written in
// Python, e.g. the Parquet sink of orchard.spark).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "orchard/status.h"

namespace orchard {

struct SinkContext {
  std::filesystem::path dir;  // the folder the sink writes its file in
  int64_t rows = 0;           // how many rows will be written in all
  int64_t k = 0;              // reduced (PCA) columns
  int64_t dim = 0;            // raw descriptor columns
};

// `n` consecutive result rows, starting at output row `first`.
struct ResultRows {
  int64_t first = 0;
  int64_t n = 0;
  const std::string* paths = nullptr;   // n keys
  const std::string* labels = nullptr;  // n labels
  const float* reduced = nullptr;       // n x k, row-major
  const float* raw = nullptr;           // n x dim, row-major
};

class ResultSink {
 public:
  virtual ~ResultSink() = default;
  // The file name this sink writes in SinkContext::dir, e.g. "features.csv".
  virtual std::string name() const = 0;
  virtual Status Begin(const SinkContext& context) = 0;
  virtual Status Write(const ResultRows& rows) = 0;
  // Makes the file whole under its final name.
  virtual Status Commit() = 0;
};

struct ErrorRow {
  std::string path;
  std::string stage;  // list, read, decode, preprocess, extract
  std::string message;
};

// errors.csv: "path,stage,message", one row per listed object without a descriptor.
class ErrorSink {
 public:
  static Result<std::unique_ptr<ErrorSink>> Create(const std::filesystem::path& dir);
  virtual ~ErrorSink() = default;
  virtual Status Write(const ErrorRow& row) = 0;
  virtual Status Commit() = 0;
};

// features.csv: path,label,pc_1..pc_k, floats in their shortest round-trip text.
std::unique_ptr<ResultSink> MakeFeaturesCsvSink();
// features.npy: float32 (rows, k).
std::unique_ptr<ResultSink> MakeFeaturesNpySink();
// raw.npy: float32 (rows, dim), the descriptors before PCA.
std::unique_ptr<ResultSink> MakeRawNpySink();

// The sinks of a run's standard outputs: features.csv and features.npy, and raw.npy when
// save_raw.
std::vector<std::unique_ptr<ResultSink>> StandardSinks(bool save_raw);

}  // namespace orchard
