#include "pipeline/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "orchard/preprocess.h"
#include "util/human_bytes.h"

namespace orchard {
namespace {

// For a model whose sidecar does not say: VGG16's measured rate (the largest of the bundled
// backbones) rounded up, so that an unknown model is not assumed small.
constexpr double kDefaultBytesPerPixel = 1024.0;
// The model's weights, the runtime and the rest of the run, besides the batches.
constexpr uint64_t kBaseBytes = uint64_t{256} << 20;

// The first number in `path`, or 0 when it is missing or says "max" (no limit).
uint64_t ReadLimit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

uint64_t UsableMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  uint64_t usable = pages > 0 && page_size > 0
                        ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)
                        : 0;
  for (const char* limit_file :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const uint64_t limit = ReadLimit(limit_file);
    // cgroup v1 reports "no limit" as a huge number, which the min below ignores anyway.
    if (limit > 0 && (usable == 0 || limit < usable)) usable = limit;
  }
  return usable;
}

InferenceMemory EstimateInferenceMemory(const LoadedModel& model, int batch, int threads) {
  InferenceMemory m;
  const double pixels = double(model.preprocess.width) * double(model.preprocess.height);
  m.default_rate = !(model.spec.peak_bytes_per_pixel > 0);
  m.bytes_per_pixel = m.default_rate ? kDefaultBytesPerPixel : model.spec.peak_bytes_per_pixel;
  const double tensor = double(TensorElements(model.preprocess)) * sizeof(float);
  const double per_image = double(std::max(threads, 1)) * tensor +
                           double(model.layout.runs) * pixels * m.bytes_per_pixel;
  m.per_image = static_cast<uint64_t>(std::min(per_image, 1e18));
  m.bytes = static_cast<uint64_t>(std::min(per_image * batch + double(kBaseBytes), 1e18));
  return m;
}

Status CheckInferenceMemory(const LoadedModel& model, int batch, int threads, uint64_t usable_bytes,
                            const std::string& batch_option, const std::string& size_option) {
  if (usable_bytes == 0) return Status::OK();  // unknown: nothing to compare with
  const InferenceMemory need = EstimateInferenceMemory(model, batch, threads);
  const uint64_t budget = usable_bytes / 10 * 9;
  if (need.bytes <= budget) return Status::OK();
  const uint64_t room = budget > kBaseBytes ? budget - kBaseBytes : 0;
  const uint64_t fits = need.per_image > 0 ? room / need.per_image : 0;
  std::string advice;
  if (fits == 1) {
    advice = "lower " + batch_option + " to 1, or " + size_option;
  } else if (fits > 1) {
    advice = "lower " + batch_option + " to " + std::to_string(std::min<uint64_t>(fits, 4096)) +
             " or less, or " + size_option;
  } else {
    advice = "even one image does not fit: lower " + size_option;
  }
  std::string rate = std::to_string(static_cast<long long>(std::lround(need.bytes_per_pixel)));
  rate += need.default_rate
              ? " bytes per pixel, a default: the sidecar gives no peak_bytes_per_pixel"
              : " bytes per pixel per image";
  return Status::Usage(
      "inference at " + std::to_string(model.preprocess.width) + "x" +
          std::to_string(model.preprocess.height) + " with " + batch_option + " " +
          std::to_string(batch) + " needs about " + HumanBytes(double(need.bytes)) + " (" +
          std::to_string(model.layout.runs) + " inference runs at once, " + rate + "), more than " +
          "the " + HumanBytes(double(budget)) + " this machine allows (90% of " +
          HumanBytes(double(usable_bytes)) + "): " + advice,
      StatusCode::kResourceExhausted);
}

}  // namespace orchard
