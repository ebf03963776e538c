// A file whose first bytes condemn it is refused after one small read, never read whole.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "orchard/image.h"
#include "orchard/storage.h"
#include "test_util.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;

// Bytes this process has read through read(2) so far (/proc/self/io "rchar").
uint64_t BytesReadSoFar() {
  std::ifstream io("/proc/self/io");
  std::string name;
  uint64_t value = 0;
  while (io >> name >> value) {
    if (name == "rchar:") return value;
  }
  return 0;
}

TEST(HeaderFirstRead, GigapixelJpegInALargeFileCostsOneSmallRead) {
  testing::ScratchDir dir;
  // A real JPEG's first bytes with the frame header patched to 60000x60000, then 400 MB of
  // holes: a sparse file, nothing on disk.
  std::vector<uint8_t> jpeg =
      testing::ReadFileBytes(testing::FruitsMiniDir() / "Training" / "Cherry 3" / "r0_0.jpg");
  size_t sof = 0;
  for (size_t i = 2; i + 9 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0) {
      sof = i + 4;  // after the marker and the length
      break;
    }
  }
  ASSERT_GT(sof, 0u);
  jpeg[sof + 1] = 60000 >> 8;
  jpeg[sof + 2] = 60000 & 0xff;
  jpeg[sof + 3] = 60000 >> 8;
  jpeg[sof + 4] = 60000 & 0xff;
  testing::WriteFileBytes(dir.path() / "bomb.jpg", jpeg);
  fs::resize_file(dir.path() / "bomb.jpg", uint64_t{400} << 20);

  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();
  const DecodeOptions options;
  const uint64_t before = BytesReadSoFar();
  auto read = (*storage)->ReadChecked("bomb.jpg", 256 << 10,
                                      [&](std::span<const uint8_t> prefix, uint64_t size) {
                                        return CheckImagePrefix(prefix, size, options);
                                      });
  const uint64_t read_bytes = BytesReadSoFar() - before;
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kResourceExhausted) << read.status().ToString();
  EXPECT_NE(read.status().message().find("60000x60000"), std::string::npos);
  EXPECT_LE(read_bytes, uint64_t{1} << 20) << "read " << read_bytes << " bytes";

  // The same file under a valid header is read whole.
  jpeg[sof + 1] = 0;
  jpeg[sof + 2] = 100;
  jpeg[sof + 3] = 0;
  jpeg[sof + 4] = 100;
  testing::WriteFileBytes(dir.path() / "ok.jpg", jpeg);
  auto ok =
      (*storage)->ReadChecked("ok.jpg", 16, [&](std::span<const uint8_t> prefix, uint64_t size) {
        EXPECT_EQ(prefix.size(), 16u);
        return CheckImagePrefix(prefix, size, options);
      });
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, jpeg);
}

}  // namespace
}  // namespace orchard
