#include "orchard/cpu.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace orchard {
namespace {

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// cpuid + XGETBV against the compiler's own detection, for the features both know.
TEST(CpuFeatures, AgreesWithTheCompilersDetection) {
  const CpuFeatures& f = DetectCpuFeatures();
  __builtin_cpu_init();
  EXPECT_EQ(f.avx2, __builtin_cpu_supports("avx2") != 0);
  EXPECT_EQ(f.fma, __builtin_cpu_supports("fma") != 0);
  EXPECT_EQ(f.avx512f, __builtin_cpu_supports("avx512f") != 0);
  EXPECT_EQ(f.avx512_vnni, __builtin_cpu_supports("avx512vnni") != 0);
  EXPECT_EQ(Has(f.names(), "avx2"), f.avx2);
  EXPECT_EQ(f.has_vnni(), f.avx512_vnni || f.avx_vnni || f.amx);
  EXPECT_EQ(&DetectCpuFeatures(), &f);  // detected once
}

// The BLAS kernel is reported, and a better one is only proposed for AVX-512 CPUs that
// OpenBLAS put on a non-AVX-512 kernel.
TEST(BlasKernel, ProposesAvx512KernelsOnlyWhereTheyRun) {
  const BlasKernel kernel = InspectBlasKernel();
  EXPECT_FALSE(kernel.picked.empty());
  if (!DetectCpuFeatures().avx512_skx) {
    EXPECT_TRUE(kernel.better.empty()) << kernel.better;
  }
  if (!kernel.better.empty()) {
    EXPECT_EQ(kernel.better, "SkylakeX");
  }
}

}  // namespace
}  // namespace orchard
