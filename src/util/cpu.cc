#include "orchard/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cblas.h>
#include <strings.h>

#include <cstdint>
#include <cstdlib>

namespace orchard {
namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx >> 27) & 1;
  if (!osxsave) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;          // SSE and AVX state
  const bool os_avx512 = (xcr0 & 0xe6) == 0xe6;     // plus opmask and upper ZMM state
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // tile config and tile data
  f.fma = os_avx && ((ecx >> 12) & 1);
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  f.avx2 = os_avx && ((ebx >> 5) & 1);
  f.avx512f = os_avx512 && ((ebx >> 16) & 1);
  constexpr unsigned kSkx = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
  f.avx512_skx = os_avx512 && (ebx & kSkx) == kSkx;
  f.avx512_vnni = os_avx512 && ((ecx >> 11) & 1);
  f.amx = os_amx && ((edx >> 25) & 1);  // AMX-INT8
  const unsigned max_subleaf = eax;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    f.avx_vnni = os_avx && ((eax >> 4) & 1);
    f.avx512_bf16 = os_avx512 && ((eax >> 5) & 1);
  }
  return f;
}
#else
CpuFeatures Detect() { return {}; }
#endif

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  if (avx2) out.emplace_back("avx2");
  if (fma) out.emplace_back("fma");
  if (avx512f) out.emplace_back("avx512f");
  if (avx512_vnni) out.emplace_back("avx512_vnni");
  if (avx_vnni) out.emplace_back("avx_vnni");
  if (avx512_bf16) out.emplace_back("avx512_bf16");
  if (amx) out.emplace_back("amx_int8");
  return out;
}

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

BlasKernel InspectBlasKernel() {
  BlasKernel kernel;
  const char* name = openblas_get_corename();
  kernel.picked = name != nullptr ? name : "";
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  kernel.overridden = env != nullptr && *env != '\0';
  const CpuFeatures& cpu = DetectCpuFeatures();
  if (!cpu.avx512_skx) return kernel;  // AVX2 CPUs: every OpenBLAS since 0.3.10 knows them
  for (const char* avx512 : {"SkylakeX", "Cooperlake", "SapphireRapids"}) {
    if (strcasecmp(kernel.picked.c_str(), avx512) == 0) return kernel;
  }
  kernel.better = "SkylakeX";  // sgemm/dgemm kernels are the same in its successors
  return kernel;
}

}  // namespace orchard
