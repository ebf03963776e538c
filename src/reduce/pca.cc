#include "orchard/pca.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "reduce/pca_internal.h"
#include "util/human_bytes.h"

namespace orchard {

namespace {

Status LapackStatus(const char* routine, lapack_int info) {
  if (info == 0) return Status::OK();
  if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR) {
    return Status::ResourceExhausted(std::string("out of memory for LAPACK ") + routine);
  }
  return Status::Internal(std::string("LAPACK ") + routine + " failed (info " +
                          std::to_string(info) + ")");
}

}  // namespace

namespace pca_internal {

uint64_t SerialChecksum(std::span<const uint8_t> bytes) {
  // Each step, h -> (h ^ w) * odd and h -> h ^ (h >> 32), is a bijection of h and of w.
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0xCBF29CE484222325ull ^ bytes.size();
  size_t i = 0;
  while (i < bytes.size()) {
    uint64_t w = 0;
    for (size_t b = 0; b < 8 && i + b < bytes.size(); ++b) {
      w |= uint64_t{bytes[i + b]} << (8 * b);
    }
    h = (h ^ w) * kMul;
    h ^= h >> 32;
    i += 8;
  }
  return h;
}

int64_t ArgMaxAbs(const double* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (std::fabs(v[i]) > std::fabs(v[best])) best = i;
  }
  return best;
}

namespace {

// dstebz writes up to d eigenvalues, so they go to a d-sized buffer first.
Status TopEigenpairsByBisection(int d, const double* diag, const double* off, int k,
                                std::vector<double>* w, std::vector<double>* z) {
  std::vector<double> all_w(static_cast<size_t>(d));
  std::vector<lapack_int> block(static_cast<size_t>(d)), split(static_cast<size_t>(d));
  std::vector<lapack_int> failed(static_cast<size_t>(k));
  lapack_int found = 0, splits = 0;
  ORCHARD_RETURN_NOT_OK(LapackStatus(
      "dstebz", LAPACKE_dstebz('I', 'B', d, 0.0, 0.0, d - k + 1, d, 2 * LAPACKE_dlamch('S'), diag,
                               off, &found, &splits, all_w.data(), block.data(), split.data())));
  if (found != k) {
    return Status::Internal("LAPACK dstebz found " + std::to_string(found) + " of " +
                            std::to_string(k) + " eigenvalues");
  }
  z->assign(static_cast<size_t>(k) * d, 0.0);
  double* zd = z->data();
  // LAPACKE's NaN check reads all d entries of dstein's w.
  ORCHARD_RETURN_NOT_OK(
      LapackStatus("dstein", LAPACKE_dstein(LAPACK_COL_MAJOR, d, diag, off, k, all_w.data(),
                                            block.data(), split.data(), zd, d, failed.data())));
  // dstebz orders by split-off block first; sort the pairs by eigenvalue (selection sort with
  // column swaps, as dsyevr does, to avoid a second d x k buffer).
  for (int i = 0; i < k; ++i) {
    int smallest = i;
    for (int j = i + 1; j < k; ++j) {
      if (all_w[j] < all_w[smallest]) smallest = j;
    }
    if (smallest != i) {
      std::swap(all_w[i], all_w[smallest]);
      std::swap_ranges(zd + static_cast<size_t>(i) * d, zd + static_cast<size_t>(i + 1) * d,
                       zd + static_cast<size_t>(smallest) * d);
    }
  }
  w->assign(all_w.begin(), all_w.begin() + k);
  return Status::OK();
}

}  // namespace

Status TopTridiagonalEigenpairs(int d, const double* diag, const double* off, int k,
                                std::vector<double>* w, std::vector<double>* z,
                                TridiagonalSolver solver) {
  if (solver == TridiagonalSolver::kMrrr) {
    // dstemr's subset mode costs about three times as much per eigenvector as computing all of
    // them (measured at d = 1280 and 4608), so beyond d / 3 vectors everything is computed and
    // the top k kept. The top k are the last k columns, moved to the front in place.
    const bool all = 3 * static_cast<int64_t>(k) > d;
    const int columns = all ? d : k;
    // dstemr overwrites its inputs, uses off[d - 1] as work space and writes up to d values.
    std::vector<double> dcopy(diag, diag + d);
    std::vector<double> ecopy(static_cast<size_t>(d), 0.0);
    std::copy(off, off + (d - 1), ecopy.begin());
    std::vector<double> all_w(static_cast<size_t>(d));
    std::vector<lapack_int> support(2 * static_cast<size_t>(columns));
    z->assign(static_cast<size_t>(columns) * d, 0.0);
    lapack_int found = 0;
    lapack_logical try_relative_accuracy = 1;
    const lapack_int info = LAPACKE_dstemr(
        LAPACK_COL_MAJOR, 'V', all ? 'A' : 'I', d, dcopy.data(), ecopy.data(), 0.0, 0.0, d - k + 1,
        d, &found, all_w.data(), z->data(), d, columns, support.data(), &try_relative_accuracy);
    if (info == 0 && found == columns) {
      const size_t skip = static_cast<size_t>(columns - k);
      w->assign(all_w.begin() + skip, all_w.begin() + columns);
      if (skip > 0) {
        std::copy(z->begin() + skip * d, z->end(), z->begin());
        z->resize(static_cast<size_t>(k) * d);
      }
      return Status::OK();
    }
    if (info == LAPACK_WORK_MEMORY_ERROR) return LapackStatus("dstemr", info);
  }
  return TopEigenpairsByBisection(d, diag, off, k, w, z);
}

}  // namespace pca_internal

namespace {

using pca_internal::ArgMaxAbs;
using pca_internal::kMaxSerialDim;
using pca_internal::kSerialChecksumBytes;
using pca_internal::kSerialHeaderBytes;
using pca_internal::kSerialMagic;
using pca_internal::kSerialVersion;
using pca_internal::SerialChecksum;
using pca_internal::SerialSize;
using pca_internal::TopTridiagonalEigenpairs;

// BLAS and LAPACK take 32-bit sizes.
constexpr int64_t kMaxBlasDim = std::numeric_limits<int>::max();

std::string FormatDouble(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

Status DimTooLarge(int64_t dim, int64_t max_dim) {
  const double bytes = static_cast<double>(dim) * static_cast<double>(dim) * 8.0;
  return Status::ResourceExhausted(
      "descriptor dimension " + std::to_string(dim) + " needs a " + HumanBytes(bytes) +
      " co-moment matrix for exact PCA, over the limit of " + std::to_string(max_dim) +
      " dims (--max-pca-dim); use --pooling avg or max, a smaller --size, or raise the limit");
}

Status OutOfMemory(const std::string& what) {
  return Status::ResourceExhausted("out of memory allocating " + what);
}

// Position of the first non-finite value of a row-major block.
struct NonFinite {
  int64_t row = -1;  // -1: every value is finite
  int64_t column = 0;
  float value = 0.0f;
};

NonFinite FindNonFinite(int64_t n, int64_t d, const float* x) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    for (int64_t j = 0; j < d; ++j) {
      if (!std::isfinite(row[j])) return {i, j, row[j]};
    }
  }
  return {};
}

std::string DescribeValue(const NonFinite& bad) {
  return "a non-finite value (" + FormatDouble("%g", bad.value) + ") at column " +
         std::to_string(bad.column);
}

void PutU32(uint8_t* p, uint32_t v) {
  for (int b = 0; b < 4; ++b) p[b] = static_cast<uint8_t>(v >> (8 * b));
}
void PutU64(uint8_t* p, uint64_t v) {
  for (int b = 0; b < 8; ++b) p[b] = static_cast<uint8_t>(v >> (8 * b));
}
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int b = 0; b < 4; ++b) v |= uint32_t{p[b]} << (8 * b);
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int b = 0; b < 8; ++b) v |= uint64_t{p[b]} << (8 * b);
  return v;
}
double GetF64(const uint8_t* p) { return std::bit_cast<double>(GetU64(p)); }

Status CheckOptions(const PcaOptions& options, int64_t dim) {
  const bool has_components = options.components != 0;
  const bool has_variance = options.variance != 0.0;  // NaN counts as set, then fails below
  if (has_components == has_variance) {
    return Status::InvalidArgument(
        "PCA options must set exactly one of components and variance (got components=" +
        std::to_string(options.components) + ", variance=" + FormatDouble("%g", options.variance) +
        ")");
  }
  if (has_components && (options.components < 1 || options.components > dim)) {
    return Status::InvalidArgument("PCA components must be in 1.." + std::to_string(dim) +
                                   ", got " + std::to_string(options.components));
  }
  if (has_variance && !(options.variance > 0.0 && options.variance <= 1.0)) {
    return Status::InvalidArgument("PCA variance must be in (0, 1], got " +
                                   FormatDouble("%g", options.variance));
  }
  return Status::OK();
}

// dsyevr's scaling step: a factor that brings the largest |entry| of a symmetric matrix into
// [sqrt(safe_min / eps), min(sqrt(1 / (safe_min / eps)), safe_min^(-1/4))], where the
// tridiagonal solvers cannot overflow or underflow; 1.0 (no change) when it is already there.
// Only covariances of float data near FLT_MAX reach the upper bound.
double EigenSolverScaling(const std::vector<double>& a) {
  const double safe_min = LAPACKE_dlamch('S');
  const double small = safe_min / LAPACKE_dlamch('P');
  const double lower = std::sqrt(small);
  const double upper = std::min(std::sqrt(1.0 / small), 1.0 / std::sqrt(std::sqrt(safe_min)));
  double norm = 0.0;
  for (double v : a) norm = std::max(norm, std::fabs(v));
  if (norm > 0.0 && norm < lower) return lower / norm;
  if (norm > upper) return upper / norm;
  return 1.0;
}

}  // namespace

Result<PcaAccumulator> PcaAccumulator::Create(int64_t dim, int64_t max_dim) {
  if (dim <= 0) {
    return Status::InvalidArgument("PCA dimension must be positive, got " + std::to_string(dim));
  }
  if (dim > max_dim || dim > kMaxBlasDim) return DimTooLarge(dim, std::min(max_dim, kMaxBlasDim));
  try {
    PcaAccumulator acc(dim);
    acc.mean_.assign(static_cast<size_t>(dim), 0.0);
    acc.comoment_.assign(static_cast<size_t>(dim) * static_cast<size_t>(dim), 0.0);
    return acc;
  } catch (const std::bad_alloc&) {
    return OutOfMemory("a " + std::to_string(dim) + "x" + std::to_string(dim) +
                       " co-moment matrix");
  } catch (const std::length_error&) {
    return OutOfMemory("a " + std::to_string(dim) + "x" + std::to_string(dim) +
                       " co-moment matrix");
  }
}

void PcaAccumulator::Combine(int64_t nb, const double* mean_b, double* delta) {
  const int d = static_cast<int>(dim_);
  if (count_ == 0) {
    std::copy(mean_b, mean_b + d, mean_.begin());
    count_ = nb;
    return;
  }
  const double na = static_cast<double>(count_);
  const double nbd = static_cast<double>(nb);
  const double n = na + nbd;
  const double weight = nbd / n;
  for (int j = 0; j < d; ++j) {
    delta[j] = mean_b[j] - mean_[j];
    mean_[j] += delta[j] * weight;
  }
  cblas_dsyr(CblasRowMajor, CblasUpper, d, na * nbd / n, delta, 1, comoment_.data(), d);
  count_ += nb;
}

Status PcaAccumulator::Accumulate(int64_t n, const float* x) {
  if (n < 0) return Status::InvalidArgument("row count must be >= 0, got " + std::to_string(n));
  if (n == 0) return Status::OK();
  if (x == nullptr) return Status::InvalidArgument("null data pointer for a non-empty batch");
  // Validate everything first so that a bad row leaves the accumulator unchanged.
  if (const NonFinite bad = FindNonFinite(n, dim_, x); bad.row >= 0) {
    return Status::InvalidArgument("row " + std::to_string(bad.row) + " of the batch (row " +
                                   std::to_string(count_ + bad.row) + " overall) has " +
                                   DescribeValue(bad));
  }
  const int d = static_cast<int>(dim_);
  try {
    const int64_t block = std::min(n, kPcaBlockRows);
    std::vector<double> centred(static_cast<size_t>(block * d));
    std::vector<double> mean_b(static_cast<size_t>(d));
    std::vector<double> delta(static_cast<size_t>(d));
    for (int64_t start = 0; start < n; start += kPcaBlockRows) {
      const int rows = static_cast<int>(std::min(kPcaBlockRows, n - start));
      const float* xb = x + start * d;
      std::fill(mean_b.begin(), mean_b.end(), 0.0);
      for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < d; ++j) mean_b[j] += xb[static_cast<int64_t>(i) * d + j];
      }
      for (int j = 0; j < d; ++j) mean_b[j] /= rows;
      for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < d; ++j) {
          const int64_t at = static_cast<int64_t>(i) * d + j;
          centred[at] = xb[at] - mean_b[j];
        }
      }
      // comoment_ += centred^T * centred (upper triangle): the block's own co-moment.
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, rows, 1.0, centred.data(), d, 1.0,
                  comoment_.data(), d);
      Combine(rows, mean_b.data(), delta.data());
    }
  } catch (const std::bad_alloc&) {
    // Only the scratch allocations above can throw, before any state change.
    return OutOfMemory("PCA batch scratch space");
  }
  return Status::OK();
}

Status PcaAccumulator::Merge(const PcaAccumulator& other) {
  if (other.dim_ != dim_) {
    return Status::InvalidArgument("cannot merge PCA accumulators of dimension " +
                                   std::to_string(dim_) + " and " + std::to_string(other.dim_));
  }
  if (other.count_ == 0) return Status::OK();
  const int64_t d = dim_;
  std::vector<double> delta;
  try {
    delta.resize(static_cast<size_t>(d));
  } catch (const std::bad_alloc&) {
    return OutOfMemory("PCA merge scratch space");
  }
  // Element-wise, so this is also correct when &other == this.
  for (int64_t i = 0; i < d; ++i) {
    double* dst = comoment_.data() + i * d;
    const double* src = other.comoment_.data() + i * d;
    for (int64_t j = i; j < d; ++j) dst[j] += src[j];
  }
  Combine(other.count_, other.mean_.data(), delta.data());
  return Status::OK();
}

std::vector<double> PcaAccumulator::CoMoment() const {
  const int64_t d = dim_;
  std::vector<double> full(comoment_.size());
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = i; j < d; ++j) {
      full[i * d + j] = comoment_[i * d + j];
      full[j * d + i] = comoment_[i * d + j];
    }
  }
  return full;
}

std::vector<uint8_t> PcaAccumulator::Serialize() const {
  const int64_t d = dim_;
  std::vector<uint8_t> out(SerialSize(d));
  uint8_t* p = out.data();
  PutU32(p, kSerialMagic);
  PutU32(p + 4, kSerialVersion);
  PutU64(p + 8, static_cast<uint64_t>(d));
  PutU64(p + 16, static_cast<uint64_t>(count_));
  p += kSerialHeaderBytes;
  for (int64_t j = 0; j < d; ++j, p += 8) PutU64(p, std::bit_cast<uint64_t>(mean_[j]));
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = i; j < d; ++j, p += 8) {
      PutU64(p, std::bit_cast<uint64_t>(comoment_[i * d + j]));
    }
  }
  const size_t body = out.size() - kSerialChecksumBytes;
  PutU64(p, SerialChecksum(std::span<const uint8_t>(out.data(), body)));
  return out;
}

Result<PcaAccumulator> PcaAccumulator::Deserialize(std::span<const uint8_t> bytes) {
  const std::string what = "PCA accumulator bytes: ";
  if (bytes.size() < kSerialHeaderBytes + kSerialChecksumBytes) {
    return Status::CorruptData(what + "truncated (" + std::to_string(bytes.size()) + " bytes)");
  }
  const uint8_t* p = bytes.data();
  if (GetU32(p) != kSerialMagic) return Status::CorruptData(what + "bad magic");
  const uint32_t version = GetU32(p + 4);
  if (version != kSerialVersion) {
    return Status::Unsupported(what + "unsupported version " + std::to_string(version) +
                               " (expected " + std::to_string(kSerialVersion) + ")");
  }
  const int64_t dim = static_cast<int64_t>(GetU64(p + 8));
  const int64_t count = static_cast<int64_t>(GetU64(p + 16));
  if (dim < 1 || dim > kMaxSerialDim) {
    return Status::CorruptData(what + "invalid dimension " + std::to_string(dim));
  }
  if (bytes.size() != SerialSize(dim)) {
    return Status::CorruptData(what + "length " + std::to_string(bytes.size()) +
                               " does not match dimension " + std::to_string(dim) + " (expected " +
                               std::to_string(SerialSize(dim)) + ")");
  }
  const size_t body = bytes.size() - kSerialChecksumBytes;
  if (GetU64(p + body) != SerialChecksum(bytes.first(body))) {
    return Status::CorruptData(what + "checksum mismatch");
  }
  if (count < 0) return Status::CorruptData(what + "negative count " + std::to_string(count));

  ORCHARD_ASSIGN_OR_RETURN(PcaAccumulator acc,
                           Create(dim, /*max_dim=*/std::numeric_limits<int64_t>::max()));
  acc.count_ = count;
  const uint8_t* q = p + kSerialHeaderBytes;
  for (int64_t j = 0; j < dim; ++j, q += 8) {
    const double v = GetF64(q);
    if (!std::isfinite(v)) return Status::CorruptData(what + "non-finite mean");
    if (count == 0 && v != 0.0) return Status::CorruptData(what + "non-zero mean with count 0");
    acc.mean_[j] = v;
  }
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = i; j < dim; ++j, q += 8) {
      const double v = GetF64(q);
      if (!std::isfinite(v)) return Status::CorruptData(what + "non-finite co-moment");
      if (i == j && v < 0.0) return Status::CorruptData(what + "negative co-moment diagonal");
      // With at most one row every centred vector is exactly 0.
      if (count <= 1 && v != 0.0) {
        return Status::CorruptData(what + "non-zero co-moment with count " + std::to_string(count));
      }
      acc.comoment_[i * dim + j] = v;
    }
  }
  return acc;
}

Result<PcaModel> FitPca(const PcaAccumulator& acc, const PcaOptions& options) {
  const int64_t dim = acc.dim();
  ORCHARD_RETURN_NOT_OK(CheckOptions(options, dim));
  if (acc.count() < 2) {
    return Status::InvalidArgument("PCA needs at least 2 images, got " +
                                   std::to_string(acc.count()));
  }
  const int d = static_cast<int>(dim);
  PcaModel model;
  try {
    // Row-major upper triangle == column-major lower triangle: LAPACK reads it in place.
    std::vector<double> cov = acc.CoMoment();
    const double scale = 1.0 / static_cast<double>(acc.count() - 1);
    for (double& v : cov) v *= scale;
    double total = 0.0;
    for (int i = 0; i < d; ++i) total += cov[static_cast<size_t>(i) * d + i];
    if (!std::isfinite(total)) return Status::InvalidArgument("PCA covariance is not finite");

    // Reduce to tridiagonal form T = Q^T C Q once; all eigenvalues of T are cheap and pick k,
    // then only the k eigenvectors needed are computed and transformed back by Q. This is
    // dsyevr's algorithm without the cost of the unused d - k eigenvectors.
    const double scaling = EigenSolverScaling(cov);
    if (scaling != 1.0) {
      for (double& v : cov) v *= scaling;
    }
    std::vector<double> diag(static_cast<size_t>(d)), off(static_cast<size_t>(d));
    std::vector<double> tau(static_cast<size_t>(d));
    ORCHARD_RETURN_NOT_OK(
        LapackStatus("dsytrd", LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', d, cov.data(), d, diag.data(),
                                              off.data(), tau.data())));
    std::vector<double> ascending = diag;
    std::vector<double> scratch = off;
    ORCHARD_RETURN_NOT_OK(
        LapackStatus("dsterf", LAPACKE_dsterf(d, ascending.data(), scratch.data())));
    std::vector<double> eigenvalues(static_cast<size_t>(d));
    for (int r = 0; r < d; ++r) eigenvalues[r] = std::max(0.0, ascending[d - 1 - r] / scaling);

    int k = 1;
    if (options.components != 0) {
      k = static_cast<int>(options.components);
    } else if (total > 0.0) {
      const double tolerance = 16.0 * d * DBL_EPSILON;
      double cumulative = 0.0;
      k = d;
      for (int r = 0; r < d; ++r) {
        cumulative += eigenvalues[r];
        if (cumulative / total >= options.variance - tolerance) {
          k = r + 1;
          break;
        }
      }
    }

    std::vector<double> w, z;
    ORCHARD_RETURN_NOT_OK(TopTridiagonalEigenpairs(d, diag.data(), off.data(), k, &w, &z));
    ORCHARD_RETURN_NOT_OK(
        LapackStatus("dormtr", LAPACKE_dormtr(LAPACK_COL_MAJOR, 'L', 'L', 'N', d, k, cov.data(), d,
                                              tau.data(), z.data(), d)));
    cov = {};  // release before allocating the model

    model.dim = dim;
    model.k = k;
    model.n_samples = acc.count();
    model.mean = acc.mean();
    model.total_variance = total;
    model.components.resize(static_cast<size_t>(k) * d);
    model.explained_variance.assign(eigenvalues.begin(), eigenvalues.begin() + k);
    model.explained_variance_ratio.resize(static_cast<size_t>(k));
    for (int r = 0; r < k; ++r) {
      // Column k - 1 - r of z holds the r-th largest eigenvalue's eigenvector.
      const double* src = z.data() + static_cast<size_t>(k - 1 - r) * d;
      double* dst = model.components.data() + static_cast<size_t>(r) * d;
      const double sign = src[ArgMaxAbs(src, d)] < 0.0 ? -1.0 : 1.0;
      for (int j = 0; j < d; ++j) dst[j] = sign * src[j];
      model.explained_variance_ratio[r] = total > 0.0 ? eigenvalues[r] / total : 0.0;
    }
  } catch (const std::bad_alloc&) {
    return OutOfMemory("PCA eigen-decomposition work space for dimension " + std::to_string(d));
  }
  return model;
}

Status PcaModel::Transform(int64_t n, const float* x, float* out) const {
  if (dim < 1 || dim > kMaxBlasDim || k < 1 || k > dim || mean.size() != static_cast<size_t>(dim) ||
      components.size() != static_cast<size_t>(k) * static_cast<size_t>(dim)) {
    return Status::InvalidArgument("inconsistent PCA model: dim " + std::to_string(dim) + ", k " +
                                   std::to_string(k) + ", mean size " +
                                   std::to_string(mean.size()) + ", components size " +
                                   std::to_string(components.size()));
  }
  if (n < 0) return Status::InvalidArgument("row count must be >= 0, got " + std::to_string(n));
  if (n == 0) return Status::OK();
  if (x == nullptr || out == nullptr) {
    return Status::InvalidArgument("null data pointer for a non-empty batch");
  }
  const int d = static_cast<int>(dim);
  const int kk = static_cast<int>(k);
  try {
    const int64_t block = std::min(n, kPcaBlockRows);
    std::vector<double> centred(static_cast<size_t>(block * d));
    std::vector<double> projected(static_cast<size_t>(block * kk));
    for (int64_t start = 0; start < n; start += kPcaBlockRows) {
      const int rows = static_cast<int>(std::min(kPcaBlockRows, n - start));
      const float* xb = x + start * d;
      if (const NonFinite bad = FindNonFinite(rows, d, xb); bad.row >= 0) {
        return Status::InvalidArgument("row " + std::to_string(start + bad.row) + " has " +
                                       DescribeValue(bad));
      }
      for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < d; ++j) {
          const int64_t at = static_cast<int64_t>(i) * d + j;
          centred[at] = xb[at] - mean[j];
        }
      }
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kk, d, 1.0, centred.data(), d,
                  components.data(), d, 0.0, projected.data(), kk);
      float* ob = out + start * kk;
      for (int64_t i = 0; i < static_cast<int64_t>(rows) * kk; ++i) {
        ob[i] = static_cast<float>(projected[i]);
      }
    }
  } catch (const std::bad_alloc&) {
    return OutOfMemory("PCA transform scratch space");
  }
  return Status::OK();
}

}  // namespace orchard
