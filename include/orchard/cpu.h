// What the CPU this process runs on can do, detected at run time (cpuid plus the OS's
// XSAVE state, so an instruction set the kernel does not enable counts as absent).
// Thread-safe; detected once.
#pragma once

#include <string>
#include <vector>

namespace orchard {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512_skx = false;   // F + CD + BW + DQ + VL: what AVX-512 GEMM kernels need
  bool avx512_vnni = false;  // int8 dot products on 512-bit vectors
  bool avx_vnni = false;     // the same on 256-bit vectors (Alder Lake and later, Zen 5)
  bool avx512_bf16 = false;
  bool amx = false;  // AMX tiles with int8 (Sapphire Rapids and later)

  // int8 matrix products run faster than fp32 ones only with one of these.
  bool has_vnni() const { return avx512_vnni || avx_vnni || amx; }
  // The names of the features present, e.g. {"avx2", "fma", "avx512f", "avx512_vnni"}.
  std::vector<std::string> names() const;
};

const CpuFeatures& DetectCpuFeatures();

// The BLAS (OpenBLAS, built for many CPUs) picks its kernels from a table of CPU models it
// knows; a release older than the CPU falls back to older kernels (Debian 12's 0.3.21 runs
// AVX2 kernels on AVX-512 Zen 4/5, about half the speed). These say which kernel it picked
// and which one this CPU could run.
struct BlasKernel {
  std::string picked;       // openblas_get_corename(), e.g. "Zen", "Haswell", "SkylakeX"
  std::string better;       // an OPENBLAS_CORETYPE with faster kernels, or "" if none
  bool overridden = false;  // OPENBLAS_CORETYPE was set by the user: their choice stands
};
BlasKernel InspectBlasKernel();

}  // namespace orchard
