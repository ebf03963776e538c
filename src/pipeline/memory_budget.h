// Whether a run's inference fits in memory, decided before any image is read: a --size or
// --batch that cannot fit is refused with the reason instead of being killed by the kernel
// halfway through.
#pragma once

#include <cstdint>
#include <string>

#include "orchard/featurizer.h"
#include "orchard/status.h"

namespace orchard {

// What the process may use: the smaller of the machine's physical memory and the limit of its
// cgroup (v2 memory.max, or v1 memory.limit_in_bytes), as containers and YARN set them.
uint64_t UsableMemoryBytes();

struct InferenceMemory {
  uint64_t bytes = 0;      // the estimate for the whole run
  uint64_t per_image = 0;  // the part each image of a batch adds
  double bytes_per_pixel = 0;
  bool default_rate = false;  // the sidecar gives no peak_bytes_per_pixel
};

// Peak memory of preparing and running batches of `batch` images through `model` with
// `threads` preparing threads: every thread may hold a prepared batch (float32 tensors), and
// model.layout.runs batches may be inside the network at once (peak_bytes_per_pixel each).
InferenceMemory EstimateInferenceMemory(const LoadedModel& model, int batch, int threads);

// A usage error naming the estimate, the limit and the largest --batch that fits, when the
// estimate exceeds 90% of `usable_bytes`. `batch_option` and `size_option` are the option
// names in the caller's style (--batch / batch).
Status CheckInferenceMemory(const LoadedModel& model, int batch, int threads, uint64_t usable_bytes,
                            const std::string& batch_option, const std::string& size_option);

}  // namespace orchard
