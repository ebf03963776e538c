// The run's result, replayed from its listing and the descriptor store: every listed object
// in listing order, the images with a descriptor in chunks (for the PCA and the sinks), the
// others as error rows. Both passes of a run (fit, then project and write) walk the same
// way, so they see the same rows whatever happened before: one uninterrupted run, a run
// resumed five times, or an update.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "orchard/descriptor_store.h"
#include "orchard/sink.h"
#include "orchard/status.h"

namespace orchard {

// A chunk of consecutive images with a descriptor.
struct DescriptorChunk {
  int64_t first = 0;  // output row of the first one
  int64_t n = 0;
  std::vector<std::string> paths;
  std::vector<std::string> labels;
  std::vector<float> raw;  // n x dim
};

// Rows per chunk: the PCA accumulates and the sinks write this many rows at once. Fixed, so
// that the accumulator sees the same blocks (and gives the same bits) in every run.
inline constexpr int64_t kResultChunkRows = 256;

struct WalkCounts {
  int64_t processed = 0;  // images with a descriptor
  int64_t failed = 0;     // listed objects without one
};

// `listing`: the run's listing spill ([key, is_image, content id] records). Every image in it
// must be in `index` with the same content id (the featurize stage saw to it); anything else
// is kInternal. `on_error` may be empty (the chunk pass of the projection).
Result<WalkCounts> WalkResults(const std::filesystem::path& listing, const StoreIndex& index,
                               DescriptorStore& store, int64_t dim,
                               const std::function<Status(const DescriptorChunk&)>& on_chunk,
                               const std::function<Status(const ErrorRow&)>& on_error);

}  // namespace orchard
