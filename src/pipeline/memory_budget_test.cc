#include "pipeline/memory_budget.h"

#include <gtest/gtest.h>

namespace orchard {
namespace {

LoadedModel ModelAt(int side, double peak_bytes_per_pixel, int runs) {
  LoadedModel model;
  model.preprocess.width = side;
  model.preprocess.height = side;
  model.spec.peak_bytes_per_pixel = peak_bytes_per_pixel;
  model.layout.runs = runs;
  return model;
}

constexpr uint64_t kGiB = uint64_t{1} << 30;

TEST(MemoryBudget, EstimateCountsPreparedTensorsAndRunsInFlight) {
  const InferenceMemory m = EstimateInferenceMemory(ModelAt(100, 400, 2), 10, 3);
  // Per image: 3 threads x 3 x 100 x 100 floats + 2 runs x 10,000 pixels x 400 bytes.
  EXPECT_EQ(m.per_image, uint64_t{3 * 30000 * 4 + 2 * 10000 * 400});
  EXPECT_EQ(m.bytes, 10 * m.per_image + (uint64_t{256} << 20));
  EXPECT_FALSE(m.default_rate);
  EXPECT_TRUE(EstimateInferenceMemory(ModelAt(100, 0, 1), 1, 1).default_rate);
}

TEST(MemoryBudget, DefaultRunsFitAndHugeSizesAreRefusedWithAdvice) {
  EXPECT_TRUE(
      CheckInferenceMemory(ModelAt(224, 384, 2), 16, 2, 4 * kGiB, "--batch", "--size").ok());
  const Status huge =
      CheckInferenceMemory(ModelAt(4096, 384, 2), 16, 2, 24 * kGiB, "--batch", "--size");
  ASSERT_FALSE(huge.ok());
  EXPECT_TRUE(huge.is_usage_error());
  EXPECT_NE(huge.message().find("4096x4096 with --batch 16 needs about"), std::string::npos)
      << huge.message();
  EXPECT_NE(huge.message().find("lower --batch to 1, or --size"), std::string::npos)
      << huge.message();
  const Status some =
      CheckInferenceMemory(ModelAt(1024, 384, 2), 64, 2, 24 * kGiB, "batch", "size");
  ASSERT_FALSE(some.ok());
  EXPECT_NE(some.message().find("lower batch to 27 or less"), std::string::npos) << some.message();
  const Status none =
      CheckInferenceMemory(ModelAt(4096, 1024, 4), 1, 2, 4 * kGiB, "--batch", "--size");
  EXPECT_NE(none.message().find("even one image does not fit: lower --size"), std::string::npos)
      << none.message();
  EXPECT_TRUE(CheckInferenceMemory(ModelAt(4096, 384, 2), 16, 2, 0, "--batch", "--size").ok());
}

TEST(MemoryBudget, UsableMemoryIsKnownHere) { EXPECT_GT(UsableMemoryBytes(), uint64_t{1} << 27); }

}  // namespace
}  // namespace orchard
