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

// Rows per BLAS call in Accumulate() and Transform(); bounds their scratch memory to
// kPcaBlockRows * d doubles.
inline constexpr int64_t kPcaBlockRows = 256;

class PcaAccumulator {
 public:
  // An empty accumulator of dimension `dim`. Returns kInvalidArgument for dim <= 0 and
  // kResourceExhausted for dim > max_dim (with a hint to pool or shrink the input), or when
  // the d*d co-moment matrix cannot be allocated.
  static Result<PcaAccumulator> Create(int64_t dim, int64_t max_dim = kDefaultMaxPcaDim);

  // Adds n >= 0 row-major vectors of dim() floats. Rows are processed in blocks of at most
  // kPcaBlockRows, so scratch memory is bounded independently of n. A non-finite value is
  // kInvalidArgument naming its row and column; on any error the accumulator is unchanged.
  Status Accumulate(int64_t n, const float* x);
  // Adds everything `other` has seen (other may be *this). Dimensions must match
  // (kInvalidArgument otherwise).
  Status Merge(const PcaAccumulator& other);

  int64_t dim() const { return dim_; }
  int64_t count() const { return count_; }
  // Mean of the rows seen so far; all zeros while count() == 0.
  const std::vector<double>& mean() const { return mean_; }
  // Co-moment matrix sum_i (x_i - mean)(x_i - mean)^T, d*d row-major, both triangles valid.
  // Returns a fresh copy (d*d doubles).
  std::vector<double> CoMoment() const;

  // Portable little-endian serialization (for Spark's treeAggregate and checkpoints): magic,
  // version, dim, count, mean, the packed upper triangle of the co-moment, and a 64-bit
  // checksum. Deserialize() never reads outside `bytes`; bad magic, length, checksum or
  // contents are kCorruptData, an unknown version is kUnsupported.
  std::vector<uint8_t> Serialize() const;
  static Result<PcaAccumulator> Deserialize(std::span<const uint8_t> bytes);

 private:
  explicit PcaAccumulator(int64_t dim) : dim_(dim) {}
  // Folds a block of nb rows with mean mean_b into count_/mean_, assuming their centred
  // co-moment has already been added to comoment_ (Chan et al.'s pairwise update).
  // delta is dim() doubles of scratch. Does not allocate.
  void Combine(int64_t nb, const double* mean_b, double* delta);

  int64_t dim_ = 0;
  int64_t count_ = 0;
  std::vector<double> mean_;
  // d*d row-major; only the upper triangle (j >= i) is maintained, the rest stays 0.
  std::vector<double> comoment_;
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

  // out (n * k floats, row-major) = (x - mean) * components^T, computed in double and
  // rounded to float. x is n * dim floats. kInvalidArgument if the model's shapes are
  // inconsistent or x holds a non-finite value; the contents of out are then unspecified.
  // Thread-safe: the model is only read.
  Status Transform(int64_t n, const float* x, float* out) const;
};

// Eigen-decomposes the covariance M / (n - 1) in double with LAPACK, following dsyevr's
// steps (tridiagonal reduction, MRRR) but computing only the k eigenvectors kept; all d
// eigenvalues are computed to pick k. Components are sorted by decreasing eigenvalue; each is
// signed so that its entry of largest magnitude is positive (first such entry on ties), which makes
// the result deterministic. Eigenvalues that rounding made slightly negative are reported as 0.
// With `variance`, cumulative ratios within rounding (16 * dim * DBL_EPSILON) of the target count
// as reaching it, so variance = 1 picks the numerical rank; if the total variance is 0, k = 1.
// Errors (kInvalidArgument): count < 2, not exactly one of components/variance set,
// components outside 1..dim, variance outside (0, 1]. kResourceExhausted if the work space
// (a d*d copy of the covariance plus d*k eigenvector doubles, d*d when k > d/3) cannot be
// allocated, kInternal if LAPACK fails.
Result<PcaModel> FitPca(const PcaAccumulator& acc, const PcaOptions& options);

}  // namespace orchard
