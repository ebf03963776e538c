#include "orchard/writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "orchard/csv.h"
#include "test_util.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using testing::ReadFileBytes;
using testing::ScratchDir;

TEST(AtomicFile, AppearsOnlyOnCloseAndCloseIsIdempotent) {
  ScratchDir dir;
  const std::string path = (dir.path() / "sub/out.txt").string();
  auto file = AtomicFile::Create(path);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append("hello ").ok());
  ASSERT_TRUE((*file)->Append("world").ok());
  EXPECT_FALSE(fs::exists(path));
  ASSERT_TRUE((*file)->Close().ok());
  ASSERT_TRUE((*file)->Close().ok());
  const auto bytes = ReadFileBytes(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "hello world");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path() / "sub"), fs::directory_iterator()), 1);
}

TEST(AtomicFile, AbortedOrDestroyedLeavesNothingAndKeepsTheOldFile) {
  ScratchDir dir;
  const std::string path = (dir.path() / "out.txt").string();
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  {
    auto file = AtomicFile::Create(path);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Append("new, half written").ok());
  }  // destroyed without Close()
  const auto bytes = ReadFileBytes(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(AtomicFile, ReportsAnUnwritableFolder) {
  auto file = AtomicFile::Create("/proc/orchard-cannot-write-here/x");
  EXPECT_FALSE(file.ok());
}

TEST(Npy, HeaderIsFixedSizeAndDescribesTheArray) {
  const std::string header = NpyHeader(12345, 7);
  ASSERT_EQ(header.size(), kNpyHeaderBytes);
  EXPECT_EQ(header.substr(0, 6), "\x93NUMPY");
  EXPECT_EQ(header.back(), '\n');
  EXPECT_NE(header.find("'shape': (12345, 7)"), std::string::npos);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos);
}

TEST(Npy, WriterPatchesTheRowCount) {
  ScratchDir dir;
  const std::string path = (dir.path() / "m.npy").string();
  auto npy = NpyWriter::Create(path, 3);
  ASSERT_TRUE(npy.ok());
  const float rows[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE((*npy)->Append(1, rows).ok());
  ASSERT_TRUE((*npy)->Append(1, rows + 3).ok());
  ASSERT_TRUE((*npy)->Close().ok());
  ASSERT_TRUE((*npy)->Close().ok());
  const auto bytes = ReadFileBytes(path);
  ASSERT_EQ(bytes.size(), kNpyHeaderBytes + sizeof(rows));
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + kNpyHeaderBytes), NpyHeader(2, 3));
  float back[6];
  std::memcpy(back, bytes.data() + kNpyHeaderBytes, sizeof(back));
  EXPECT_EQ(0, std::memcmp(back, rows, sizeof(rows)));
}

TEST(Csv, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(CsvField("Training/Cherry 3/r0_1.jpg"), "Training/Cherry 3/r0_1.jpg");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("line\nbreak"), "\"line\nbreak\"");
}

TEST(Csv, FloatsRoundTripExactly) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 100000; ++i) {
    uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, sizeof(f));
    if (!std::isfinite(f)) continue;
    const std::string text = FormatFloat(f);
    EXPECT_EQ(std::strtof(text.c_str(), nullptr), f) << text;
  }
  EXPECT_EQ(FormatFloat(0.1f), "0.1");
  EXPECT_EQ(FormatFloat(-2.5f), "-2.5");
}

}  // namespace
}  // namespace orchard

namespace orchard {
namespace {

TEST(Csv, ParsesWhatItWrites) {
  const std::vector<std::string> fields = {"plain", "with,comma", "with \"quote\"", "multi\nline",
                                           ""};
  std::string line;
  for (const auto& f : fields) line += (line.empty() ? "" : ",") + CsvField(f);
  const auto rows = ParseCsv(line + "\n" + "a,b\r\n");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], fields);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace orchard
