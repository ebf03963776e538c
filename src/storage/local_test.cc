#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include "orchard/s3.h"
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

// Reads `key` on another thread, so that a Read() that blocks fails the test instead of
// hanging it; a blocked FIFO open is released by opening the FIFO for writing.
Result<std::vector<uint8_t>> ReadWithin5Seconds(Storage& storage, const std::string& key,
                                                const std::filesystem::path& fifo = {}) {
  auto read = std::async(std::launch::async, [&] { return storage.Read(key); });
  if (read.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "Read(" << key << ") blocked";
    if (!fifo.empty()) {
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
    }
  }
  return read.get();
}

TEST(LocalStorage, ReadsOnlyRegularFiles) {
  ScratchDir dir;
  const std::filesystem::path fifo = dir.path() / "x.jpg";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::filesystem::create_directory(dir.path() / "y.jpg");
  std::filesystem::create_symlink("/dev/null", dir.path() / "null.jpg");
  std::filesystem::create_symlink(fifo, dir.path() / "to-fifo.jpg");
  const std::filesystem::path socket_path = dir.path() / "s.jpg";
  const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.string().size(), sizeof(address.sun_path));
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok());
  for (const char* key : {"x.jpg", "to-fifo.jpg", "y.jpg", "null.jpg", "s.jpg"}) {
    auto bytes = ReadWithin5Seconds(**storage, key, fifo);
    ASSERT_FALSE(bytes.ok()) << key;
    EXPECT_EQ(bytes.status().code(), StatusCode::kIOError) << key;
    EXPECT_NE(bytes.status().message().find("is not a regular file"), std::string::npos)
        << bytes.status().ToString();
  }
  ::close(sock);
}

TEST(LocalStorage, FollowsLinksToRegularFiles) {
  ScratchDir dir;
  WriteFileBytes(dir.path() / "real.jpg", {4, 5});
  std::filesystem::create_symlink(dir.path() / "real.jpg", dir.path() / "link.jpg");
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok());
  auto bytes = (*storage)->Read("link.jpg");
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(*bytes, (std::vector<uint8_t>{4, 5}));
}

TEST(LocalStorage, RefusesFilesOverTheSizeLimitBeforeReading) {
  ScratchDir dir;
  // Sparse: no disk space used, and the limit is the S3 client's.
  const uint64_t limit = S3Options{}.max_object_bytes;
  const std::filesystem::path big = dir.path() / "big.jpg";
  const int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(limit + 1)), 0);
  ::close(fd);
  WriteFileBytes(dir.path() / "small.jpg", {1});
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok());
  auto bytes = ReadWithin5Seconds(**storage, "big.jpg");
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(bytes.status().message().find(std::to_string(limit + 1) + " bytes"), std::string::npos)
      << bytes.status().ToString();
  EXPECT_TRUE((*storage)->Read("small.jpg").ok());
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

// ---- CreateIfAbsent ------------------------------------------------------------------------

std::string Text(const Result<std::vector<uint8_t>>& bytes) {
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : bytes.status().ToString();
}

// `writers` threads race to create each of `rounds` keys: exactly one wins each, and the
// key holds the winner's bytes, whole.
void ExpectOneWinnerPerKey(Storage& storage, int rounds, int writers) {
  for (int round = 0; round < rounds; ++round) {
    const std::string key = "race/" + std::to_string(round) + ".lock";
    std::atomic<int> ready{0};
    std::vector<int> won(writers, 0);
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        ++ready;
        while (ready.load() < writers) std::this_thread::yield();
        // Large enough that a partial file would be visible to a racing reader.
        auto created = storage.CreateIfAbsent(key, std::string(100000, static_cast<char>('a' + w)));
        if (!created.ok()) {
          ADD_FAILURE() << created.status().ToString();
          return;
        }
        won[w] = *created ? 1 : 0;
      });
    }
    for (auto& t : threads) t.join();
    int winners = 0;
    int winner = -1;
    for (int w = 0; w < writers; ++w) {
      if (won[w] != 0) {
        ++winners;
        winner = w;
      }
    }
    ASSERT_EQ(winners, 1) << key;
    EXPECT_EQ(Text(storage.Read(key)), std::string(100000, static_cast<char>('a' + winner)));
  }
}

TEST(LocalStorage, CreateIfAbsentCreatesOnceAtomicallyAndLeavesNoTemporaryFiles) {
  ScratchDir dir;
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok());
  auto created = (*storage)->CreateIfAbsent("out/_orchard/run.lock", "token-A");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(*created);
  auto again = (*storage)->CreateIfAbsent("out/_orchard/run.lock", "token-B");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(Text((*storage)->Read("out/_orchard/run.lock")), "token-A");
  // An existing name of any kind counts as taken, a dangling link included.
  std::filesystem::create_symlink(dir.path() / "nowhere", dir.path() / "dangling");
  EXPECT_FALSE(*(*storage)->CreateIfAbsent("dangling", "x"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "nowhere"));
  EXPECT_TRUE(*(*storage)->CreateIfAbsent("empty", ""));
  EXPECT_EQ(std::filesystem::file_size(dir.path() / "empty"), 0u);

  ExpectOneWinnerPerKey(**storage, 20, 4);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}

TEST(LocalStorage, CreateIfAbsentReportsAnUnwritableFolder) {
  ScratchDir dir;
  auto storage = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(storage.ok());
  WriteFileBytes(dir.path() / "file", {1});
  auto created = (*storage)->CreateIfAbsent("file/below-a-file", "x");  // parent is a file
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kIOError);
}

TEST(MemoryStorage, CreateIfAbsent) {
  MemoryStorage storage;
  storage.Put("taken", {1});
  EXPECT_FALSE(*storage.CreateIfAbsent("taken", "x"));
  EXPECT_EQ(*storage.Read("taken"), std::vector<uint8_t>{1});
  EXPECT_TRUE(*storage.CreateIfAbsent("new", "abc"));
  EXPECT_FALSE(*storage.CreateIfAbsent("new", "def"));
  EXPECT_EQ(Text(storage.Read("new")), "abc");
  ASSERT_EQ(ListAll(storage).size(), 2u);
  ExpectOneWinnerPerKey(storage, 50, 4);
}

TEST(Storage, CreateIfAbsentIsUnsupportedByDefault) {
  class ReadOnly : public Storage {
   public:
    Status List(const std::function<Status(const ObjectInfo&)>&) override { return Status::OK(); }
    Result<std::vector<uint8_t>> Read(const std::string& key) override {
      return Status::NotFound(key);
    }
    std::string Describe(const std::string& key) const override { return "ro:" + key; }
  } storage;
  auto created = storage.CreateIfAbsent("k", "x");
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(created.status().message().find("ro:k"), std::string::npos);
}

}  // namespace
}  // namespace orchard
