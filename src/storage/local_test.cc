#include <gtest/gtest.h>

#include <filesystem>

#include "orchard/storage.h"
#include "test_util.h"

namespace orchard {
namespace {

using testing::ScratchDir;
using testing::WriteFileBytes;

std::vector<ObjectInfo> ListAll(Storage& storage) {
  std::vector<ObjectInfo> all;
  EXPECT_TRUE(storage
                  .List([&](const ObjectInfo& info) {
                    all.push_back(info);
                    return Status::OK();
                  })
                  .ok());
  return all;
}

TEST(LocalStorage, ListsRecursivelyInByteOrderOfTheWholeKey) {
  ScratchDir dir;
  // "Cherry 3/" sorts before "Cherry/" in byte order (' ' < '/'), as S3 lists them.
  for (const char* key :
       {"Cherry/b.jpg", "Cherry 3/a.jpg", "Cherry/a.jpg", "Apple/x/deep.png", "top.jpg"}) {
    WriteFileBytes(dir.path() / key, {1, 2, 3});
  }
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();
  std::vector<std::string> keys;
  for (const auto& info : ListAll(**storage)) {
    keys.push_back(info.key);
    EXPECT_EQ(info.size, 3u);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"Apple/x/deep.png", "Cherry 3/a.jpg", "Cherry/a.jpg",
                                            "Cherry/b.jpg", "top.jpg"}));
}

TEST(LocalStorage, ReadsBytesAndReportsMissingKeys) {
  ScratchDir dir;
  WriteFileBytes(dir.path() / "a b/c.jpg", {9, 8, 7});
  WriteFileBytes(dir.path() / "empty.jpg", {});
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok());
  auto bytes = (*storage)->Read("a b/c.jpg");
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, (std::vector<uint8_t>{9, 8, 7}));
  auto empty = (*storage)->Read("empty.jpg");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto missing = (*storage)->Read("nope.jpg");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(LocalStorage, RefusesMissingRootAndFiles) {
  ScratchDir dir;
  EXPECT_EQ(OpenLocalStorage((dir.path() / "absent").string()).status().code(),
            StatusCode::kNotFound);
  WriteFileBytes(dir.path() / "file", {1});
  EXPECT_EQ(OpenLocalStorage((dir.path() / "file").string()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(LocalStorage, DoesNotFollowDirectoryLinks) {
  ScratchDir dir;
  WriteFileBytes(dir.path() / "real/a.jpg", {1});
  std::filesystem::create_directory_symlink(dir.path(), dir.path() / "real/loop");
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok());
  const auto all = ListAll(**storage);
  // The link is listed as an entry (and will fail to read as an image), never walked.
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key, "real/a.jpg");
  EXPECT_EQ(all[1].key, "real/loop");
}

TEST(MemoryStorage, KeepsKeysSortedAndReadsThemBack) {
  MemoryStorage storage;
  storage.Put("b", {2});
  storage.Put("a", {1});
  storage.Put("b", {3});
  const auto all = ListAll(storage);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key, "a");
  EXPECT_EQ(*storage.Read("b"), std::vector<uint8_t>{3});
  EXPECT_EQ(storage.Read("c").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace orchard
