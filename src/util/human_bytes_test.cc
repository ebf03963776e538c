#include "util/human_bytes.h"

#include <gtest/gtest.h>

namespace orchard {
namespace {

TEST(HumanBytes, NeverRoundsToZeroAndPicksTheUnit) {
  EXPECT_EQ(HumanBytes(0), "0 bytes");
  EXPECT_EQ(HumanBytes(1023), "1023 bytes");
  EXPECT_EQ(HumanBytes(1024), "1.00 KiB");
  EXPECT_EQ(HumanBytes(1280.0 * 1280 * 8), "12.5 MiB");  // once printed as "0.0 GiB"
  EXPECT_EQ(HumanBytes(2.25 * (1 << 30)), "2.25 GiB");
  EXPECT_EQ(HumanBytes(198.0 * (1 << 30)), "198 GiB");
  EXPECT_EQ(HumanBytes(1e30), "867361737988 EiB");
}

}  // namespace
}  // namespace orchard
