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

}  // namespace orchard
