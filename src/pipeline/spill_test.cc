#include "pipeline/spill.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_util.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using testing::ReadFileBytes;
using testing::ScratchDir;
using testing::WriteFileBytes;

std::string ReadText(const fs::path& path) {
  const auto bytes = ReadFileBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

TEST(WorkDir, IsPrivateAndUnpredictable) {
  ScratchDir dir;
  auto a = WorkDir::Create(dir.path().string());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = WorkDir::Create(dir.path().string());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (const auto* work : {a->get(), b->get()}) {
    EXPECT_EQ(work->path().parent_path(), dir.path());
    struct stat st {};
    ASSERT_EQ(::lstat(work->path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u) << work->path();
    const std::string name = work->path().filename().string();
    EXPECT_EQ(name.rfind("orchard-", 0), 0u) << name;
    // Another local user must not be able to guess the name from the process id.
    const std::string by_pid = "orchard-" + std::to_string(::getpid()) + "-";
    EXPECT_NE(name.rfind(by_pid, 0), 0u) << name;
  }
  EXPECT_NE((*a)->path(), (*b)->path());
  const fs::path gone = (*a)->path();
  a->reset();
  EXPECT_FALSE(fs::exists(gone));
}

TEST(WorkDir, CreatesAMissingParent) {
  ScratchDir dir;
  auto work = WorkDir::Create((dir.path() / "x/y").string());
  ASSERT_TRUE(work.ok()) << work.status().ToString();
  EXPECT_EQ((*work)->path().parent_path(), dir.path() / "x/y");
}

TEST(WorkDir, SpillFilesDoNotFollowPlantedLinks) {
  ScratchDir dir;
  auto work = WorkDir::Create(dir.path().string());
  ASSERT_TRUE(work.ok()) << work.status().ToString();
  const fs::path victim = dir.path() / "victim";
  WriteFileBytes(victim, {'k', 'e', 'e', 'p'});
  const fs::path absent = dir.path() / "absent";
  fs::create_symlink(victim, (*work)->path() / "listing");
  fs::create_symlink(absent, (*work)->path() / "todo");
  fs::create_symlink(victim, (*work)->path() / "rows");

  EXPECT_FALSE(RecordWriter::Create((*work)->path() / "listing").ok());
  EXPECT_FALSE(RecordWriter::Create((*work)->path() / "todo").ok());
  EXPECT_FALSE(FloatSpill::Create((*work)->path() / "rows", 4).ok());
  EXPECT_EQ(ReadText(victim), "keep");
  EXPECT_FALSE(fs::exists(absent));

  // A file already there (planted or stale) is refused too, never truncated or reused.
  WriteFileBytes((*work)->path() / "stale", {'o', 'l', 'd'});
  EXPECT_FALSE(RecordWriter::Create((*work)->path() / "stale").ok());
  EXPECT_EQ(ReadText((*work)->path() / "stale"), "old");
}

TEST(WorkDir, SpillFilesArePrivateAndRoundTrip) {
  ScratchDir dir;
  auto work = WorkDir::Create(dir.path().string());
  ASSERT_TRUE(work.ok()) << work.status().ToString();
  const fs::path records = (*work)->path() / "records";
  {
    auto writer = RecordWriter::Create(records);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    ASSERT_TRUE((*writer)->Write({"a\nb", ""}).ok());
    ASSERT_TRUE((*writer)->Write({"c"}).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }
  struct stat st {};
  ASSERT_EQ(::stat(records.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto reader = RecordReader::Open(records);
  ASSERT_TRUE(reader.ok());
  std::vector<std::string> fields;
  ASSERT_TRUE(*(*reader)->Next(&fields));
  EXPECT_EQ(fields, (std::vector<std::string>{"a\nb", ""}));
  ASSERT_TRUE(*(*reader)->Next(&fields));
  EXPECT_EQ(fields, (std::vector<std::string>{"c"}));
  EXPECT_FALSE(*(*reader)->Next(&fields));

  auto spill = FloatSpill::Create((*work)->path() / "rows", 2);
  ASSERT_TRUE(spill.ok()) << spill.status().ToString();
  const float rows[] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE((*spill)->Append(3, rows).ok());
  ASSERT_TRUE((*spill)->Rewind().ok());
  float out[6] = {};
  auto got = (*spill)->Read(3, out);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 3);
  EXPECT_EQ(std::vector<float>(out, out + 6), std::vector<float>(rows, rows + 6));
}

}  // namespace
}  // namespace orchard
