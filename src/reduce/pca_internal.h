// Private to src/reduce, shared with the tests: the serialized layout of a PcaAccumulator (so
// that tests can forge payloads with a valid checksum but invalid contents) and the pieces of
// FitPca that are worth testing on their own.
//
// Layout, every field little-endian:
//   offset 0   u32  kSerialMagic ("OPCA")
//   offset 4   u32  kSerialVersion
//   offset 8   i64  dim
//   offset 16  i64  count
//   offset 24  f64  mean[dim]
//   ...        f64  co-moment upper triangle, row by row: (0,0..d-1), (1,1..d-1), ...
//   end - 8    u64  SerialChecksum() of every preceding byte
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "orchard/status.h"

namespace orchard::pca_internal {

inline constexpr uint32_t kSerialMagic = 0x4143504F;  // bytes 'O' 'P' 'C' 'A'
inline constexpr uint32_t kSerialVersion = 1;
inline constexpr size_t kSerialHeaderBytes = 24;
inline constexpr size_t kSerialChecksumBytes = 8;
// Upper bound on a serialized dim, so that size arithmetic cannot overflow; far beyond any
// matrix that fits in memory.
inline constexpr int64_t kMaxSerialDim = int64_t{1} << 24;

// Total serialized size for dimension dim (1 <= dim <= kMaxSerialDim).
inline size_t SerialSize(int64_t dim) {
  const size_t d = static_cast<size_t>(dim);
  return kSerialHeaderBytes + 8 * d + 8 * (d * (d + 1) / 2) + kSerialChecksumBytes;
}

// 64-bit checksum over little-endian 8-byte words (the tail zero-padded), each folded in by
// bijective steps, so any change confined to one word is always detected.
uint64_t SerialChecksum(std::span<const uint8_t> bytes);

// Index of the entry of largest magnitude, the first one on ties (the sign convention).
int64_t ArgMaxAbs(const double* v, int64_t n);

enum class TridiagonalSolver {
  kMrrr,       // LAPACK dstemr, falling back to kBisection if it fails, as dsyevr does
  kBisection,  // LAPACK dstebz + dstein
};

// The k largest eigenpairs (1 <= k <= d) of the symmetric tridiagonal matrix with diagonal
// diag[0..d) and off-diagonal off[0..d-1). On success w holds the k eigenvalues and z the k
// eigenvectors (d x k, column-major), both in ascending order of eigenvalue. kInternal if LAPACK
// fails, kResourceExhausted if its work space cannot be allocated.
Status TopTridiagonalEigenpairs(int d, const double* diag, const double* off, int k,
                                std::vector<double>* w, std::vector<double>* z,
                                TridiagonalSolver solver = TridiagonalSolver::kMrrr);

}  // namespace orchard::pca_internal
