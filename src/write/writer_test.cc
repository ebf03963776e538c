#include "orchard/writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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

TEST(AtomicFile, TwoWritersOfOnePathCoexistAndTheLastCloseWins) {
  ScratchDir dir;
  const std::string path = (dir.path() / "out.txt").string();
  auto first = AtomicFile::Create(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = AtomicFile::Create(path);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE((*first)->Append("first").ok());
  ASSERT_TRUE((*second)->Append("2nd").ok());
  ASSERT_TRUE((*first)->Close().ok());
  auto bytes = ReadFileBytes(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "first");
  ASSERT_TRUE((*second)->Close().ok());
  bytes = ReadFileBytes(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "2nd");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(AtomicFile, TemporaryNamesAreUniqueAndKeepTheMarker) {
  ScratchDir dir;
  const std::string path = (dir.path() / "out.txt").string();
  auto first = AtomicFile::Create(path);
  ASSERT_TRUE(first.ok());
  auto second = AtomicFile::Create(path);
  ASSERT_TRUE(second.ok());
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    names.push_back(entry.path().filename().string());
  }
  ASSERT_EQ(names.size(), 2u);
  EXPECT_NE(names[0], names[1]);
  for (const std::string& name : names) {
    // The run removes leftovers by this marker.
    EXPECT_EQ(name.rfind("out.txt.tmp-", 0), 0u) << name;
    // Not the bare pid: that name is known in advance to any local user.
    EXPECT_NE(name, "out.txt.tmp-" + std::to_string(::getpid()));
    struct stat st {};
    ASSERT_EQ(::lstat((dir.path() / name).c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
  }
}

TEST(AtomicFile, DoesNotWriteThroughPlantedLinks) {
  ScratchDir dir;
  const fs::path victim = dir.path() / "victim";
  ASSERT_TRUE(WriteFileAtomically(victim.string(), "keep").ok());
  const std::string path = (dir.path() / "out.txt").string();
  // A link at the name the temporary file used to have (path + ".tmp-" + pid)...
  fs::create_symlink(victim, path + ".tmp-" + std::to_string(::getpid()));
  // ...and one at the destination, which the rename replaces rather than follows.
  fs::create_symlink(victim, path);
  ASSERT_TRUE(WriteFileAtomically(path, "new").ok());
  auto bytes = ReadFileBytes(victim);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "keep");
  EXPECT_FALSE(fs::is_symlink(path));
  bytes = ReadFileBytes(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "new");
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
  // Formula-looking text is neutralized, reversibly.
  EXPECT_EQ(CsvField("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
  EXPECT_EQ(CsvField("+1"), "'+1");
  EXPECT_EQ(CsvField("-apple"), "'-apple");
  EXPECT_EQ(CsvField("@sum"), "'@sum");
  EXPECT_EQ(CsvField("'quoted"), "''quoted");
  EXPECT_EQ(CsvField("a=b"), "a=b");
  EXPECT_EQ(CsvField(""), "");
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
