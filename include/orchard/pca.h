// Exact, streaming, mergeable PCA.
//
// Layout contract (as in Faiss): a matrix of n vectors of dimension d is a row-major float
// array, component j of vector i at x[i * d + j].
//
// PcaAccumulator keeps the count, the mean and the co-moment matrix (sum of outer products
// of centred vectors) in double, updated batch by batch with the pairwise formula of Chan,
// Golub & LeVeque, so accumulators filled by different threads or machines Merge() into the
// same statistics as one pass. Memory is O(d^2) doubles, independent of n.
// An accumulator is not thread-safe; use one per thread and Merge().
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "orchard/status.h"

namespace orchard {

// Largest dimension fitted exactly by default: the co-moment matrix is d*d doubles
// (8192 -> 512 MiB). VGG16 flatten at 224x224 (d = 25088) would need 5 GiB.
inline constexpr int64_t kDefaultMaxPcaDim = 8192;

class PcaAccumulator {
 public:
  // Returns kResourceExhausted for dim > max_dim, with a hint to pool or shrink the input.
  static Result<PcaAccumulator> Create(int64_t dim, int64_t max_dim = kDefaultMaxPcaDim);

  // Adds n row-major vectors of dim() floats. Non-finite values are kInvalidArgument.
  Status Accumulate(int64_t n, const float* x);
  // Adds everything `other` has seen. Dimensions must match.
  Status Merge(const PcaAccumulator& other);

  int64_t dim() const { return dim_; }
  int64_t count() const { return count_; }
  const std::vector<double>& mean() const { return mean_; }
  // Co-moment matrix, d*d row-major (symmetric; both triangles valid).
  std::vector<double> CoMoment() const;

  // Portable little-endian serialization (for Spark's treeAggregate and checkpoints).
  std::vector<uint8_t> Serialize() const;
  static Result<PcaAccumulator> Deserialize(std::span<const uint8_t> bytes);

 private:
  PcaAccumulator(int64_t dim) : dim_(dim) {}
  int64_t dim_ = 0;
  int64_t count_ = 0;
  std::vector<double> mean_;
  std::vector<double> comoment_;  // upper triangle kept current; see CoMoment()
};

struct PcaOptions {
  // Exactly one of the two is set: a fixed number of components, or the smallest k whose
  // cumulative explained-variance ratio reaches `variance` (0 < variance <= 1).
  int64_t components = 0;
  double variance = 0.0;
};

struct PcaModel {
  int64_t dim = 0;
  int64_t k = 0;
  int64_t n_samples = 0;
  std::vector<double> mean;                      // dim
  std::vector<double> components;                // k * dim, row-major, unit rows
  std::vector<double> explained_variance;        // k eigenvalues of the covariance (n - 1)
  std::vector<double> explained_variance_ratio;  // k, each over the total variance
  double total_variance = 0.0;                   // trace of the covariance

  // out (n * k floats, row-major) = (x - mean) * components^T, computed in double.
  Status Transform(int64_t n, const float* x, float* out) const;
};

// Eigen-decomposes the covariance with LAPACK dsyevr. Components are sorted by decreasing
// eigenvalue; each is signed so that its entry of largest magnitude is positive (first such
// entry on ties), which makes the result deterministic. Needs count >= 2.
Result<PcaModel> FitPca(const PcaAccumulator& acc, const PcaOptions& options);

}  // namespace orchard
