// The S3 client against a real S3-compatible server (SeaweedFS, which verifies signatures,
// from scripts/s3-test-server), plus moto for a second implementation and the fault proxy
// (tests/s3/fault_proxy.py) for injected failures. Skipped, with a message, when no server
// is configured; CI always configures one.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "orchard/s3.h"
#include "orchard/storage.h"
#include "storage/s3_internal.h"
#include "storage/s3_test_util.h"

namespace orchard {
namespace {

using testing::S3TestServer;
using testing::ScratchDir;

std::string RandomHex(int n) {
  static std::mt19937_64 rng(std::random_device{}());
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(kDigits[rng() % 16]);
  return s;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng() & 0xFF);
  return s;
}

std::string Text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

S3Options OptionsFor(const std::string& endpoint, const std::string& region,
                     const std::string& key_id, const std::string& secret) {
  S3Options o;
  o.endpoint = endpoint;
  o.region = region;
  AwsCredentials c;
  c.access_key_id = key_id;
  c.secret_access_key = secret;
  c.source = "test";
  o.credentials = MakeStaticCredentialsProvider(c);
  o.retry = MakeStandardRetryPolicy(std::chrono::milliseconds(0));
  o.connect_timeout_s = 5;
  o.request_timeout_s = 20;
  return o;
}

Status CreateBucket(S3Client& client, const std::string& bucket) {
  s3internal::S3Request r;
  r.operation = "CreateBucket";
  r.method = "PUT";
  r.bucket = bucket;
  r.bucket_level = true;
  auto response = client.impl()->Send(r);
  return response.ok() ? Status::OK() : response.status();
}

void DeleteBucketAndContents(S3Client& client, const std::string& bucket) {
  std::vector<std::string> keys;
  (void)client.ListObjects(bucket, "", [&](const ObjectInfo& info) {
    keys.push_back(info.key);
    return Status::OK();
  });
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (size_t i; (i = next++) < keys.size();) (void)client.DeleteObject({bucket, keys[i]});
    });
  }
  for (auto& t : threads) t.join();
  if (auto uploads = client.impl()->ListMultipartUploads(bucket, ""); uploads.ok()) {
    EXPECT_TRUE(uploads->empty()) << "unfinished multipart uploads left in " << bucket;
  }
  s3internal::S3Request r;
  r.operation = "DeleteBucket";
  r.method = "DELETE";
  r.bucket = bucket;
  r.bucket_level = true;
  (void)client.impl()->Send(r);
}

// Runs fn(i) for i in [0, n) on `threads` threads.
void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < n;) fn(i);
    });
  }
  for (auto& t : pool) t.join();
}

void ExpectNoSecret(const Status& st, const std::string& secret) {
  EXPECT_EQ(st.message().find(secret), std::string::npos) << st.message();
}

class S3ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new S3TestServer(S3TestServer::FromEnvironment());
    if (server_->endpoint.empty()) return;
    auto client = S3Client::Make(AdminOptions());
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = new std::shared_ptr<S3Client>(*client);
    bucket_ = new std::string("orchard-test-" + RandomHex(12));
    const Status st = CreateBucket(**client_, *bucket_);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  static void TearDownTestSuite() {
    if (client_ != nullptr) DeleteBucketAndContents(**client_, *bucket_);
    delete client_;
    delete bucket_;
    delete server_;
    client_ = nullptr;
    bucket_ = nullptr;
    server_ = nullptr;
  }

  void SetUp() override {
    if (server_ == nullptr || server_->endpoint.empty())
      GTEST_SKIP() << testing::kNoS3ServerMessage;
    ASSERT_NE(client_, nullptr);
  }

  static S3Options AdminOptions() {
    return OptionsFor(server_->endpoint, server_->region, server_->access_key_id,
                      server_->secret_access_key);
  }
  static S3Client& client() { return **client_; }
  static const std::string& bucket() { return *bucket_; }
  static std::string Url(const std::string& key) { return "s3://" + bucket() + "/" + key; }

  // Uploads `objects` (key -> bytes) with 8 threads.
  static void PutAll(const std::vector<std::pair<std::string, std::string>>& objects) {
    std::atomic<int> failures{0};
    ParallelFor(objects.size(), 8, [&](size_t i) {
      const Status st = client().PutObject({bucket(), objects[i].first}, objects[i].second);
      if (!st.ok()) {
        ++failures;
        ADD_FAILURE() << st.ToString();
      }
    });
    ASSERT_EQ(failures.load(), 0);
  }

  static std::vector<ObjectInfo> ListAll(Storage& storage) {
    std::vector<ObjectInfo> out;
    const Status st = storage.List([&](const ObjectInfo& info) {
      out.push_back(info);
      return Status::OK();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  static S3TestServer* server_;
  static std::shared_ptr<S3Client>* client_;
  static std::string* bucket_;
};

S3TestServer* S3ServerTest::server_ = nullptr;
std::shared_ptr<S3Client>* S3ServerTest::client_ = nullptr;
std::string* S3ServerTest::bucket_ = nullptr;

TEST_F(S3ServerTest, ListsMoreThan1000KeysInByteOrderAndFetchesThemWith8Threads) {
  constexpr int kObjects = 1234;
  std::vector<std::pair<std::string, std::string>> objects;
  for (int i = 0; i < kObjects; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "many/class-%02d/img-%05d.jpg", i % 7, i);
    objects.emplace_back(name, RandomBytes(100 + (i * 37) % 3000, i));
  }
  PutAll(objects);
  std::sort(objects.begin(), objects.end());

  auto storage = OpenS3Storage(Url("many"), *client_);
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<ObjectInfo> listed = ListAll(**storage);
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ(listed.size(), objects.size());
  for (size_t i = 0; i < listed.size(); ++i) {
    ASSERT_EQ("many/" + listed[i].key, objects[i].first) << i;
    ASSERT_EQ(listed[i].size, objects[i].second.size()) << listed[i].key;
  }

  std::atomic<int> mismatches{0};
  ParallelFor(listed.size(), 8, [&](size_t i) {
    auto bytes = (*storage)->Read(listed[i].key);
    if (!bytes.ok() || Text(*bytes) != objects[i].second) ++mismatches;
  });
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(mismatches.load(), 0);

  const double list_s = std::chrono::duration<double>(t1 - t0).count();
  const double fetch_s = std::chrono::duration<double>(t2 - t1).count();
  const double total_s = std::chrono::duration<double>(t2 - t0).count();
  std::printf(
      "[   PERF   ] %d objects (100-3100 B) at %s: list %.3f s (%.0f keys/s, %d pages); "
      "GET with 8 threads %.3f s (%.0f objects/s); list+GET %.0f objects/s\n",
      kObjects, server_->endpoint.c_str(), list_s, kObjects / list_s, (kObjects + 999) / 1000,
      fetch_s, kObjects / fetch_s, kObjects / total_s);
  RecordProperty("list_plus_get_objects_per_second", static_cast<int>(kObjects / total_s));
}

TEST_F(S3ServerTest, AwkwardKeysRoundTripAndListInLocalStorageOrder) {
  const std::vector<std::string> names = {
      "with space.jpg",
      "plus+sign.jpg",
      "percent%20literal.jpg",
      "percent%.jpg",
      "tilde~name.jpg",
      "unicode-\xC3\xBC\xE2\x82\xAC-\xF0\x9F\x8D\x8E.jpg",  // ü € 🍎 (NFC)
      "nfd-u\xCC\x88.jpg",                                  // ü as u + combining diaeresis
      "xml&amp<lt>gt\"quote'apos.jpg",
      "eq=semi;colon:comma,.jpg",
      "question?hash#.jpg",
      "star*paren()bang!.jpg",
      "caret^brackets[]{}|.jpg",
      "Cherry 3/x.jpg",  // sorts before "Cherry/" in byte order, as local storage walks it
      "Cherry/x.jpg",
      "deep/a/b/c/d.jpg",
  };
  std::vector<std::pair<std::string, std::string>> objects;
  for (size_t i = 0; i < names.size(); ++i) {
    objects.emplace_back("awkward/" + names[i], "bytes of " + names[i] + RandomBytes(64, i));
  }
  PutAll(objects);
  for (const auto& [key, bytes] : objects) {
    auto got = client().GetObject({bucket(), key});
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
    EXPECT_EQ(Text(*got), bytes) << key;
    auto exists = client().ObjectExists({bucket(), key});
    ASSERT_TRUE(exists.ok());
    EXPECT_TRUE(*exists) << key;
  }

  auto storage = OpenS3Storage(Url("awkward/"), *client_);
  ASSERT_TRUE(storage.ok());
  std::vector<std::string> listed;
  for (const ObjectInfo& info : ListAll(**storage)) listed.push_back(info.key);

  // The same names as local files list in the same order.
  ScratchDir dir;
  for (const std::string& name : names) {
    testing::WriteFileBytes(dir.path() / name, {'x'});
  }
  auto local = OpenLocalStorage(dir.path().string());
  ASSERT_TRUE(local.ok());
  std::vector<std::string> local_listed;
  for (const ObjectInfo& info : ListAll(**local)) local_listed.push_back(info.key);
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(listed, sorted);
  EXPECT_EQ(listed, local_listed);

  EXPECT_EQ((*storage)->Describe("with space.jpg"), Url("awkward/with space.jpg"));
}

TEST_F(S3ServerTest, GetObjectIsByteExact) {
  const std::vector<std::pair<std::string, std::string>> objects = {
      {"exact/empty", ""},
      {"exact/one", "\x00"},
      {"exact/binary-1MiB", RandomBytes(1 << 20, 42)},
      {"exact/crlf", "a\r\nb\n\r\0\xff"},
  };
  PutAll(objects);
  for (const auto& [key, bytes] : objects) {
    auto got = client().GetObject({bucket(), key});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->size(), bytes.size()) << key;
    EXPECT_TRUE(Text(*got) == bytes) << key;
  }
}

TEST_F(S3ServerTest, DownloadFileInRangesIsByteExactAndAtomic) {
  const std::string data = RandomBytes((3 << 20) + 17, 11);
  ASSERT_TRUE(client().PutObject({bucket(), "download/model.onnx"}, data).ok());
  ASSERT_TRUE(client().PutObject({bucket(), "download/empty"}, "").ok());
  ScratchDir dir;
  const auto path = dir.path() / "model.onnx";
  S3Options options = AdminOptions();
  options.part_size = 1 << 20;  // four ranges: 1 + 1 + 1 MiB + 17 bytes
  auto ranged = S3Client::Make(options);
  ASSERT_TRUE(ranged.ok());
  std::atomic<int> gets{0};
  // The second range fails once with a retryable 503: only that range is fetched again.
  (*ranged)->impl()->fault_injector = [&](const s3internal::S3Request& r,
                                          int attempt) -> std::optional<S3Error> {
    if (r.operation != "GetObject") return std::nullopt;
    ++gets;
    if (r.headers.at(0).second == "bytes=1048576-2097151" && attempt == 1) {
      S3Error e;
      e.http_status = 503;
      e.code = "SlowDown";
      return e;
    }
    return std::nullopt;
  };
  Status st = (*ranged)->DownloadFile({bucket(), "download/model.onnx"}, path.string());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(gets.load(), 5);
  const std::vector<uint8_t> got = testing::ReadFileBytes(path);
  EXPECT_TRUE(Text(got) == data);

  st = DownloadFile(Url("download/empty"), (dir.path() / "empty").string(), AdminOptions());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(std::filesystem::file_size(dir.path() / "empty"), 0u);

  st = DownloadFile(Url("download/missing"), (dir.path() / "missing").string(), AdminOptions());
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.ToString();

  // The object is replaced between two ranges: the download fails and writes nothing,
  // rather than stitching a file from two versions.
  (*ranged)->impl()->fault_injector = [&](const s3internal::S3Request& r,
                                          int) -> std::optional<S3Error> {
    if (r.operation == "GetObject" && r.headers.at(0).second == "bytes=2097152-3145727") {
      EXPECT_TRUE(
          client().PutObject({bucket(), "download/model.onnx"}, RandomBytes(data.size(), 12)).ok());
    }
    return std::nullopt;
  };
  const auto replaced = dir.path() / "replaced.onnx";
  st = (*ranged)->DownloadFile({bucket(), "download/model.onnx"}, replaced.string());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("replaced while it was being read"), std::string::npos)
      << st.ToString();
  // Only the two complete downloads: no partial or temporary file is left.
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"empty", "model.onnx"}));
}

TEST_F(S3ServerTest, MultipartUploadOf20MiBIsByteExact) {
  const std::string data = RandomBytes((20 << 20) + 12345, 7);
  ScratchDir dir;
  const auto path = dir.path() / "big.bin";
  testing::WriteFileBytes(path, std::vector<uint8_t>(data.begin(), data.end()));

  S3Options options = AdminOptions();
  options.part_size = 8 << 20;  // three parts: 8 + 8 + 4 MiB
  options.multipart_threshold = 8 << 20;
  auto small_parts = S3Client::Make(options);
  ASSERT_TRUE(small_parts.ok());
  EXPECT_EQ((*small_parts)->impl()->PartSize(data.size()), 8u << 20);

  std::atomic<int> part_requests{0};
  (*small_parts)->impl()->fault_injector = [&](const s3internal::S3Request& r, int) {
    if (r.operation.rfind("UploadPart", 0) == 0) ++part_requests;
    return std::optional<S3Error>();
  };
  Status st = (*small_parts)->UploadFile(path.string(), {bucket(), "multipart/from-file.bin"});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(part_requests.load(), 3);
  auto got = client().GetObject({bucket(), "multipart/from-file.bin"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), data.size());
  EXPECT_TRUE(Text(*got) == data);

  st = (*small_parts)->PutObject({bucket(), "multipart/from-memory.bin"}, data);
  ASSERT_TRUE(st.ok()) << st.ToString();
  got = client().GetObject({bucket(), "multipart/from-memory.bin"});
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(Text(*got) == data);

  // The one-shot helper, with the default 16 MiB parts.
  st = UploadFile(path.string(), Url("multipart/helper.bin"), AdminOptions());
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto helper = GetObject(Url("multipart/helper.bin"), AdminOptions());
  ASSERT_TRUE(helper.ok());
  EXPECT_TRUE(Text(*helper) == data);

  auto uploads = client().impl()->ListMultipartUploads(bucket(), "multipart/");
  ASSERT_TRUE(uploads.ok()) << uploads.status().ToString();
  EXPECT_TRUE(uploads->empty());
}

TEST_F(S3ServerTest, FailedMultipartUploadIsAbortedAndLeavesNoObject) {
  const std::string data = RandomBytes((16 << 20) + 1, 9);
  S3Options options = AdminOptions();
  options.part_size = 8 << 20;
  options.multipart_threshold = 8 << 20;
  options.upload_concurrency = 2;
  auto client2 = S3Client::Make(options);
  ASSERT_TRUE(client2.ok());
  // Part 2 is refused (not retryable): the upload must be aborted.
  (*client2)->impl()->fault_injector = [](const s3internal::S3Request& r,
                                          int) -> std::optional<S3Error> {
    if (r.operation.rfind("UploadPart 2/", 0) == 0) {
      S3Error e;
      e.http_status = 403;
      e.code = "AccessDenied";
      e.message = "injected";
      return e;
    }
    return std::nullopt;
  };
  const std::string key = "abort/never-visible.bin";
  Status st = (*client2)->PutObject({bucket(), key}, data);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("UploadPart 2/3"), std::string::npos) << st.message();
  auto exists = client().ObjectExists({bucket(), key});
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(*exists);
  auto uploads = client().impl()->ListMultipartUploads(bucket(), key);
  ASSERT_TRUE(uploads.ok()) << uploads.status().ToString();
  EXPECT_TRUE(uploads->empty()) << uploads->size() << " unfinished uploads";

  // Replacing an existing object: a failed upload leaves the old version whole.
  ASSERT_TRUE(client().PutObject({bucket(), "abort/existing.bin"}, "old version").ok());
  st = (*client2)->PutObject({bucket(), "abort/existing.bin"}, data);
  ASSERT_FALSE(st.ok());
  auto old = client().GetObject({bucket(), "abort/existing.bin"});
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(Text(*old), "old version");
}

TEST_F(S3ServerTest, WrongCredentialsGiveAClearPermissionError) {
  ASSERT_TRUE(client().PutObject({bucket(), "creds/x.jpg"}, "x").ok());
  const std::string bad_secret = "definitelyNotTheSecret0123456789abcdefXYZ";
  for (const auto& [key_id, code] :
       {std::pair<std::string, std::string>{server_->access_key_id, "SignatureDoesNotMatch"},
        std::pair<std::string, std::string>{"AKIDUNKNOWNUNKNOWN", "InvalidAccessKeyId"}}) {
    S3Options options = OptionsFor(server_->endpoint, server_->region, key_id, bad_secret);
    auto storage = OpenS3Storage(Url("creds"), options);
    ASSERT_TRUE(storage.ok());
    const Status st = (*storage)->List([](const ObjectInfo&) { return Status::OK(); });
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kIOError) << st.ToString();
    EXPECT_NE(st.message().find("permission denied"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(bucket()), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("403"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(code), std::string::npos) << st.message();
    ExpectNoSecret(st, bad_secret);
    const Status read = (*storage)->Read("x.jpg").status();
    EXPECT_EQ(read.code(), StatusCode::kIOError);
    EXPECT_NE(read.message().find(Url("creds/x.jpg")), std::string::npos) << read.message();
    ExpectNoSecret(read, bad_secret);
  }
}

TEST_F(S3ServerTest, MissingBucketAndKeyAreNotFound) {
  const std::string missing = "orchard-missing-" + RandomHex(10);
  auto storage = OpenS3Storage("s3://" + missing + "/prefix", *client_);
  ASSERT_TRUE(storage.ok());
  const Status st = (*storage)->List([](const ObjectInfo&) { return Status::OK(); });
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.ToString();
  EXPECT_NE(st.message().find("bucket '" + missing + "' does not exist"), std::string::npos)
      << st.message();

  auto got = client().GetObject({bucket(), "no/such/key.jpg"});
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound) << got.status().ToString();
  EXPECT_NE(got.status().message().find(Url("no/such/key.jpg")), std::string::npos);
  auto exists = client().ObjectExists({bucket(), "no/such/key.jpg"});
  ASSERT_TRUE(exists.ok()) << exists.status().ToString();
  EXPECT_FALSE(*exists);
}

TEST_F(S3ServerTest, ReadOnlyIdentityCanListAndReadButNotWrite) {
  if (server_->readonly_access_key_id.empty()) GTEST_SKIP() << "no read-only identity configured";
  ASSERT_TRUE(client().PutObject({bucket(), "ro/a.jpg"}, "original").ok());
  S3Options options =
      OptionsFor(server_->endpoint, server_->region, server_->readonly_access_key_id,
                 server_->readonly_secret_access_key);
  auto ro = S3Client::Make(options);
  ASSERT_TRUE(ro.ok());
  int listed = 0;
  ASSERT_TRUE((*ro)
                  ->ListObjects(bucket(), "ro/",
                                [&](const ObjectInfo&) {
                                  ++listed;
                                  return Status::OK();
                                })
                  .ok());
  EXPECT_EQ(listed, 1);
  auto got = (*ro)->GetObject({bucket(), "ro/a.jpg"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Text(*got), "original");

  const Status put = (*ro)->PutObject({bucket(), "ro/a.jpg"}, "overwritten");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.code(), StatusCode::kIOError);
  EXPECT_NE(put.message().find("permission denied"), std::string::npos) << put.message();
  EXPECT_NE(put.message().find("AccessDenied"), std::string::npos) << put.message();
  ExpectNoSecret(put, server_->readonly_secret_access_key);
  EXPECT_FALSE((*ro)->DeleteObject({bucket(), "ro/a.jpg"}).ok());
  EXPECT_FALSE((*ro)->PutObject({bucket(), "ro/big.bin"}, std::string(9 << 20, 'x')).ok());
  got = client().GetObject({bucket(), "ro/a.jpg"});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Text(*got), "original");
}

TEST_F(S3ServerTest, PrefixesAreFoldersAndAnEmptyPrefixListsNothing) {
  PutAll({{"folder/a.jpg", "a"},
          {"folder/sub/b.jpg", "b"},
          {"folder-old/c.jpg", "c"},
          {"folderx", "d"},
          {"folder/marker/", ""}});
  auto storage = OpenS3Storage(Url("folder"), *client_);
  ASSERT_TRUE(storage.ok());
  std::vector<std::string> keys;
  for (const ObjectInfo& info : ListAll(**storage)) keys.push_back(info.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a.jpg", "sub/b.jpg"}));
  auto read = (*storage)->Read("sub/b.jpg");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(Text(*read), "b");

  auto empty = OpenS3Storage(Url("nothing-here/at-all"), *client_);
  ASSERT_TRUE(empty.ok());
  int visits = 0;
  EXPECT_TRUE((*empty)
                  ->List([&](const ObjectInfo&) {
                    ++visits;
                    return Status::OK();
                  })
                  .ok());
  EXPECT_EQ(visits, 0);
}

TEST_F(S3ServerTest, VisitorErrorStopsTheListing) {
  std::vector<std::pair<std::string, std::string>> objects;
  for (int i = 0; i < 20; ++i) objects.emplace_back("stop/" + std::to_string(100 + i), "x");
  PutAll(objects);
  int visits = 0;
  const Status st = client().ListObjects(bucket(), "stop/", [&](const ObjectInfo&) {
    return ++visits == 5 ? Status::Cancelled("enough") : Status::OK();
  });
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_EQ(visits, 5);
}

TEST_F(S3ServerTest, EightThreadsGetTheSameObjectsConcurrently) {
  std::vector<std::pair<std::string, std::string>> objects;
  for (int i = 0; i < 64; ++i) {
    objects.emplace_back("shared/" + std::to_string(i) + ".bin", RandomBytes(1000 + i * 500, i));
  }
  PutAll(objects);
  auto storage = OpenS3Storage(Url("shared"), *client_);
  ASSERT_TRUE(storage.ok());
  std::atomic<int> ok{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 4; ++round) {
        for (size_t i = 0; i < objects.size(); ++i) {
          const auto& [key, bytes] = objects[(i + t * 8) % objects.size()];
          auto got = (*storage)->Read(key.substr(std::string("shared/").size()));
          (got.ok() && Text(*got) == bytes) ? ++ok : ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(ok.load(), 8 * 4 * 64);
}

TEST_F(S3ServerTest, ExistsAndDelete) {
  const S3Url url{bucket(), "del/x.jpg"};
  ASSERT_TRUE(client().PutObject(url, "x").ok());
  EXPECT_TRUE(*client().ObjectExists(url));
  EXPECT_TRUE(*ObjectExists(url.ToString(), AdminOptions()));
  ASSERT_TRUE(DeleteObject(url.ToString(), AdminOptions()).ok());
  EXPECT_FALSE(*client().ObjectExists(url));
  EXPECT_TRUE(client().DeleteObject(url).ok());  // deleting a missing key is fine
  EXPECT_EQ(client().GetObject(url).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(PutObject(url.ToString(), "again", AdminOptions()).ok());
  EXPECT_EQ(Text(*GetObject(url.ToString(), AdminOptions())), "again");
}

// Exactly one of `writers` threads racing for each of `rounds` keys wins, and the stored
// bytes are the winner's token.
void ExpectOneWinnerPerKey(Storage& storage, const std::string& prefix, int rounds, int writers) {
  for (int round = 0; round < rounds; ++round) {
    const std::string key = prefix + std::to_string(round);
    std::atomic<int> ready{0};
    std::vector<int> won(writers, 0);
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        ++ready;
        while (ready.load() < writers) std::this_thread::yield();
        auto created = storage.CreateIfAbsent(key, "writer-" + std::to_string(w));
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
    auto stored = storage.Read(key);
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    EXPECT_EQ(Text(*stored), "writer-" + std::to_string(winner)) << key;
  }
}

TEST_F(S3ServerTest, CreateIfAbsentCreatesOnceAndRacingWritersHaveOneWinner) {
  auto storage = OpenS3Storage(Url("cia"), *client_);
  ASSERT_TRUE(storage.ok());
  auto first = (*storage)->CreateIfAbsent("run.lock", "token-A");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(*first);
  auto second = (*storage)->CreateIfAbsent("run.lock", "token-B");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(*second);
  EXPECT_EQ(Text(*(*storage)->Read("run.lock")), "token-A");
  ExpectOneWinnerPerKey(**storage, "race/", 10, 4);
}

TEST_F(S3ServerTest, SeaweedFsHonoursIfNoneMatch) {
  // The raw conditional PUT, without CreateIfAbsent's HEAD and read-back: a store that
  // ignored the header would answer 200 and overwrite.
  ASSERT_TRUE(client().PutObject({bucket(), "inm/k"}, "first").ok());
  s3internal::S3Request r =
      s3internal::S3Request::ForObject("PutObject", "PUT", {bucket(), "inm/k"});
  r.headers = {{"If-None-Match", "*"}};
  r.body = "second";
  r.answer_statuses = {412};
  auto response = client().impl()->Send(r);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 412);
  EXPECT_EQ(Text(*client().GetObject({bucket(), "inm/k"})), "first");
}

// ---- Through the fault proxy ---------------------------------------------------------------

std::string PythonForTests() {
  const auto venv = testing::SourceDir() / ".venv" / "bin" / "python";
  return std::filesystem::exists(venv) ? venv.string() : "python3";
}

TEST_F(S3ServerTest, SurvivesInjectedFaultsThroughTheFaultProxy) {
  const auto proxy_script = testing::SourceDir() / "tests" / "s3" / "fault_proxy.py";
  if (!std::filesystem::exists(proxy_script)) GTEST_SKIP() << "no " << proxy_script;
  testing::ChildProcess proxy(
      {PythonForTests(), proxy_script.string(), "--upstream", server_->endpoint, "--listen-port",
       "0", "--max-seconds", "300", "--stall-seconds", "30",
       // Every kind of failure. The first matching rule that fires decides, so the one-off
       // stall comes first. About a quarter of the requests fail; counters are shared by the
       // 8 threads, so which request a fault hits varies from run to run, and the cap of 5
       // faults per target keeps every request within its 10 attempts whatever the order.
       "--max-faults-per-target", "5", "--fault", "stall:first=1,method=GET,path=/stall-me",
       "--fault", "slowdown:every=10", "--fault", "500:every=9,method=PUT", "--fault",
       "reset:every=15,method=GET", "--fault", "truncate:every=20,method=GET", "--fault",
       "503:every=25"});
  const std::string port = proxy.ReadLine(20);
  ASSERT_FALSE(port.empty()) << "the fault proxy did not start";
  S3Options options = AdminOptions();
  options.endpoint = "http://127.0.0.1:" + port;
  options.request_timeout_s = 2;  // the stalled request is abandoned after 2 s
  options.max_attempts = 10;
  auto proxied = S3Client::Make(options);
  ASSERT_TRUE(proxied.ok());

  std::vector<std::pair<std::string, std::string>> objects;
  for (int i = 0; i < 60; ++i) {
    objects.emplace_back("faults/" + std::to_string(1000 + i) + ".jpg", RandomBytes(5000 + i, i));
  }
  std::atomic<int> failures{0};
  ParallelFor(objects.size(), 4, [&](size_t i) {
    const Status st = (*proxied)->PutObject({bucket(), objects[i].first}, objects[i].second);
    if (!st.ok()) {
      ++failures;
      ADD_FAILURE() << st.ToString();
    }
  });
  ASSERT_EQ(failures.load(), 0);

  auto storage = OpenS3Storage(Url("faults"), *proxied);
  ASSERT_TRUE(storage.ok());
  for (int pass = 0; pass < 3; ++pass) {
    const std::vector<ObjectInfo> listed = ListAll(**storage);
    ASSERT_EQ(listed.size(), objects.size());
    ParallelFor(listed.size(), 8, [&](size_t i) {
      auto got = (*storage)->Read(listed[i].key);
      if (!got.ok() || Text(*got) != objects[i].second) {
        ++failures;
        ADD_FAILURE() << listed[i].key << ": "
                      << (got.ok() ? "wrong bytes" : got.status().ToString());
      }
    });
  }
  EXPECT_EQ(failures.load(), 0);

  // A stalled response is abandoned after request_timeout_s and retried.
  ASSERT_TRUE(client().PutObject({bucket(), "stall-me"}, "patience").ok());
  const auto start = std::chrono::steady_clock::now();
  auto stalled = (*proxied)->GetObject({bucket(), "stall-me"});
  ASSERT_TRUE(stalled.ok()) << stalled.status().ToString();
  EXPECT_EQ(Text(*stalled), "patience");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));

  // The proxy really injected each kind of fault.
  s3internal::HttpClient http({});
  s3internal::HttpRequest counts_request;
  counts_request.url = options.endpoint + "/__fault_proxy__/counts";
  const auto counts = http.Perform(counts_request);
  ASSERT_TRUE(counts.ok);
  const std::string json(counts.response.BodyText());
  const auto parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(parsed.is_object()) << json;
  for (const char* kind : {"slowdown", "500", "reset", "truncate", "503", "stall"}) {
    EXPECT_GT(parsed.value(kind, 0), 0) << kind << " never injected: " << json;
  }
  std::printf("[   INFO   ] fault proxy counts: %s\n", json.c_str());
}

// ---- ListObjectsV2 parsing, against a fake server (no real server needed) ------------------

// Serves `pages` in order; page i answers the request whose continuation-token is "tok<i>".
testing::FakeHttpServer::Handler ListPages(std::vector<std::string> pages) {
  return [pages](const testing::FakeRequest& r) {
    size_t page = 0;
    const std::string q = r.Query();
    const size_t at = q.find("continuation-token=tok");
    if (at != std::string::npos) page = std::stoul(q.substr(at + 22));
    return testing::FakeResponse::Ok(page < pages.size() ? pages[page] : "");
  };
}

std::string Page(const std::vector<std::string>& raw_keys, const std::string& next_token,
                 bool url_encoded) {
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult "
      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/</Prefix>"
      "<KeyCount>" +
      std::to_string(raw_keys.size()) + "</KeyCount><MaxKeys>1000</MaxKeys>";
  if (url_encoded) xml += "<EncodingType>url</EncodingType>";
  xml += next_token.empty() ? "<IsTruncated>false</IsTruncated>"
                            : "<IsTruncated>true</IsTruncated><NextContinuationToken>" +
                                  next_token + "</NextContinuationToken>";
  for (const std::string& k : raw_keys) {
    xml += "<Contents><Key>" + k +
           "</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;x&quot;"
           "</ETag><Size>7</Size><Owner><ID>o</ID></Owner><StorageClass>STANDARD</StorageClass>"
           "</Contents>";
  }
  return xml + "</ListBucketResult>";
}

std::vector<std::string> ListKeys(const std::string& endpoint, Status* status) {
  auto client = S3Client::Make(OptionsFor(endpoint, "us-east-1", "AKIDFAKEFAKE", "secret"));
  std::vector<std::string> keys;
  *status = (*client)->ListObjects("bucket", "p/", [&](const ObjectInfo& info) {
    EXPECT_EQ(info.size, 7u);
    keys.push_back(info.key);
    return Status::OK();
  });
  return keys;
}

TEST(S3ListParsingTest, UrlEncodedKeysAcrossPages) {
  // S3's encoding-type=url form: spaces as '+', '+' as %2B, UTF-8 percent-encoded.
  testing::FakeHttpServer server(
      ListPages({Page({"p/a+b%2Bc.jpg", "p/z%26%3C%3E.jpg"}, "tok1", true),
                 Page({"p/%C3%BC%20x.jpg"}, "", true)}));
  Status st;
  const auto keys = ListKeys(server.endpoint(), &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(keys, (std::vector<std::string>{"p/a b+c.jpg", "p/z&<>.jpg", "p/\xC3\xBC x.jpg"}));
  const auto requests = server.received();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].Query(), "encoding-type=url&list-type=2&max-keys=1000&prefix=p%2F");
  EXPECT_NE(requests[1].Query().find("continuation-token=tok1"), std::string::npos);
}

TEST(S3ListParsingTest, PlainXmlKeysAreEntityDecoded) {
  // A store that ignores encoding-type=url sends keys as XML text.
  testing::FakeHttpServer server(
      ListPages({Page({"p/a+b &amp; c&#38;&lt;&#x1F34E;.jpg", "p/plain%20.jpg"}, "", false)}));
  Status st;
  const auto keys = ListKeys(server.endpoint(), &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(keys, (std::vector<std::string>{"p/a+b & c&<\xF0\x9F\x8D\x8E.jpg", "p/plain%20.jpg"}));
}

TEST(S3ListParsingTest, BrokenServersAreReportedNotLoopedOn) {
  {
    // A page that repeats itself: keys go backwards.
    testing::FakeHttpServer server(
        ListPages({Page({"p/a", "p/b"}, "tok1", true), Page({"p/a", "p/b"}, "tok2", true)}));
    Status st;
    ListKeys(server.endpoint(), &st);
    EXPECT_EQ(st.code(), StatusCode::kCorruptData) << st.ToString();
  }
  {
    // Truncated, but no token to continue with.
    testing::FakeHttpServer truncated([](const testing::FakeRequest&) {
      return testing::FakeResponse::Ok(
          "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
    });
    Status st;
    ListKeys(truncated.endpoint(), &st);
    EXPECT_EQ(st.code(), StatusCode::kCorruptData) << st.ToString();
  }
  {
    testing::FakeHttpServer html([](const testing::FakeRequest&) {
      return testing::FakeResponse::Ok("<html>captive portal</html>");
    });
    Status st;
    ListKeys(html.endpoint(), &st);
    EXPECT_EQ(st.code(), StatusCode::kCorruptData) << st.ToString();
  }
}

TEST(S3ListParsingTest, MalformedEntriesNameTheListing) {
  testing::FakeHttpServer server([](const testing::FakeRequest&) {
    return testing::FakeResponse::Ok(
        "<ListBucketResult><Contents><Key>p/a</Key><Size>-5</Size></Contents>"
        "</ListBucketResult>");
  });
  Status st;
  ListKeys(server.endpoint(), &st);
  EXPECT_EQ(st.code(), StatusCode::kCorruptData) << st.ToString();
  EXPECT_NE(st.message().find("ListObjectsV2 s3://bucket/p/: "), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("'p/a' has a <Size> that is negative"), std::string::npos)
      << st.message();
}

// ---- Error bodies, against a fake server --------------------------------------------------

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";
constexpr char kToken[] = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENxyz";

S3Options FakeOptions(const std::string& endpoint) {
  S3Options o = OptionsFor(endpoint, "us-east-1", "AKIDFAKEFAKEFAKE", kSecret);
  AwsCredentials c;
  c.access_key_id = "AKIDFAKEFAKEFAKE";
  c.secret_access_key = kSecret;
  c.session_token = kToken;
  c.source = "test";
  o.credentials = MakeStaticCredentialsProvider(c);
  o.max_attempts = 2;
  return o;
}

Status GetFrom(const testing::FakeHttpServer& server) {
  auto client = S3Client::Make(FakeOptions(server.endpoint()));
  EXPECT_TRUE(client.ok());
  return (*client)->GetObject({"bucket", "k.jpg"}).status();
}

TEST(S3ErrorBodyTest, S3ErrorDocumentsGiveCodeMessageAndRequestId) {
  testing::FakeHttpServer server([](const testing::FakeRequest&) {
    return testing::FakeResponse::S3Error(403, "AccessDenied", "Access Denied");
  });
  const Status st = GetFrom(server);
  EXPECT_EQ(st.code(), StatusCode::kIOError);
  EXPECT_NE(st.message().find("permission denied: GetObject s3://bucket/k.jpg (HTTP 403 "
                              "AccessDenied: Access Denied (request id FAKE123))"),
            std::string::npos)
      << st.message();
  EXPECT_EQ(server.requests(), 1);  // not retried
}

TEST(S3ErrorBodyTest, AProxyPageGivesTheStatusAndAShortSanitisedExcerpt) {
  // A proxy's HTML error page that echoes the request headers, secrets included.
  testing::FakeHttpServer server([](const testing::FakeRequest& r) {
    testing::FakeResponse response;
    response.status = 502;
    response.headers = {{"Content-Type", "text/html"}};
    response.body =
        "<html><head><title>502 Bad Gateway</title></head><body>\n<h1>Bad Gateway"
        "</h1><pre>x-amz-security-token: " +
        r.Header("x-amz-security-token") + "\nsecret " + kSecret + "\n</pre>" +
        std::string(3000, ' ') + "<p>proxy</p>" + std::string(2000, 'z') + "</body></html>";
    return response;
  });
  const Status st = GetFrom(server);
  EXPECT_EQ(st.code(), StatusCode::kIOError);
  EXPECT_NE(st.message().find("GetObject s3://bucket/k.jpg failed: HTTP 502: unexpected response "
                              "\"502 Bad Gateway Bad Gateway x-amz-security-token: [redacted]"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("gave up after 2 attempts"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find(kSecret), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find(kToken), std::string::npos) << st.message();
  EXPECT_LT(st.message().size(), 600u) << st.message();
}

TEST(S3ErrorBodyTest, ShortSecretsEchoedInPlainTextAreRedactedToo) {
  // Below the length at which token-like runs are redacted, the client still removes its
  // own secret and token from whatever the server says.
  testing::FakeHttpServer server([](const testing::FakeRequest&) {
    testing::FakeResponse response;
    response.status = 403;
    response.body = std::string("denied for ") + kSecret + " / " + kToken + " by proxy";
    return response;
  });
  const Status st = GetFrom(server);
  EXPECT_NE(st.message().find("permission denied: GetObject s3://bucket/k.jpg (HTTP 403: "
                              "unexpected response \"denied for "),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("by proxy"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find(kSecret), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find(kToken), std::string::npos) << st.message();
}

// ---- Conditional create, against a fake S3 -----------------------------------------------

// A tiny S3 (HEAD, GET, PUT of objects) that honours If-None-Match unless told not to, and
// can answer the first `conflicts` conditional PUTs with 409 ConditionalRequestConflict.
struct FakeS3 {
  std::mutex mu;
  std::map<std::string, std::string> objects;
  bool honour_if_none_match = true;
  int conflicts = 0;
  std::atomic<int> conditional_puts{0};
  // Called between the PUT and the read-back GET, to let "another writer" in.
  std::function<void(const std::string& path)> after_put;

  testing::FakeResponse operator()(const testing::FakeRequest& r) {
    const std::string path = r.Path();
    std::unique_lock<std::mutex> lock(mu);
    auto it = objects.find(path);
    if (r.method == "HEAD" || r.method == "GET") {
      if (it == objects.end()) return testing::FakeResponse::S3Error(404, "NoSuchKey", "no");
      return testing::FakeResponse::Ok(it->second);
    }
    if (r.method == "PUT") {
      if (r.Header("if-none-match") == "*") {
        ++conditional_puts;
        if (conflicts > 0) {
          --conflicts;
          return testing::FakeResponse::S3Error(409, "ConditionalRequestConflict", "retry");
        }
        if (honour_if_none_match && it != objects.end()) {
          return testing::FakeResponse::S3Error(412, "PreconditionFailed", "exists");
        }
      }
      objects[path] = r.body;
      if (after_put) {
        lock.unlock();
        after_put(path);
      }
      return testing::FakeResponse::Ok("");
    }
    return testing::FakeResponse::S3Error(405, "MethodNotAllowed", r.method);
  }
};

class S3CreateIfAbsentFakeTest : public ::testing::Test {
 protected:
  Storage& storage() {
    if (!storage_) {
      auto client = S3Client::Make(FakeOptions(server_.endpoint()));
      EXPECT_TRUE(client.ok());
      auto storage = OpenS3Storage("s3://bucket/locks", *client);
      EXPECT_TRUE(storage.ok());
      storage_ = std::move(*storage);
    }
    return *storage_;
  }
  std::shared_ptr<FakeS3> s3_ = std::make_shared<FakeS3>();
  testing::FakeHttpServer server_{[s3 = s3_](const testing::FakeRequest& r) { return (*s3)(r); }};
  std::unique_ptr<Storage> storage_;
};

TEST_F(S3CreateIfAbsentFakeTest, SendsIfNoneMatchAndReadsBack) {
  auto created = storage().CreateIfAbsent("run.lock", "token-A");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(*created);
  const auto requests = server_.received();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "HEAD");
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].Path(), "/bucket/locks/run.lock");
  EXPECT_EQ(requests[1].Header("if-none-match"), "*");
  // The condition is signed, so a proxy cannot strip it unnoticed.
  EXPECT_NE(requests[1].Header("authorization").find("if-none-match"), std::string::npos);
  EXPECT_EQ(requests[2].method, "GET");

  auto again = storage().CreateIfAbsent("run.lock", "token-B");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(s3_->objects["/bucket/locks/run.lock"], "token-A");
}

TEST_F(S3CreateIfAbsentFakeTest, PreconditionFailedMeansAnotherWriterWon) {
  // The object appears between the HEAD and the PUT: the server's 412 decides.
  s3_->objects.clear();
  std::atomic<bool> planted{false};
  testing::FakeHttpServer racing([s3 = s3_, &planted](const testing::FakeRequest& r) {
    if (r.method == "PUT" && !planted.exchange(true)) {
      std::lock_guard<std::mutex> lock(s3->mu);
      s3->objects[r.Path()] = "the other writer";
    }
    return (*s3)(r);
  });
  auto client = S3Client::Make(FakeOptions(racing.endpoint()));
  ASSERT_TRUE(client.ok());
  auto created = (*client)->PutObjectIfAbsent({"bucket", "k"}, "mine");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_FALSE(*created);
  EXPECT_EQ(s3_->objects["/bucket/k"], "the other writer");
}

TEST_F(S3CreateIfAbsentFakeTest, ConditionalRequestConflictIsRetriedOnceThenLost) {
  s3_->conflicts = 1;
  auto created = storage().CreateIfAbsent("a.lock", "token-A");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(*created);
  EXPECT_EQ(s3_->conditional_puts.load(), 2);

  s3_->conflicts = 2;
  s3_->conditional_puts = 0;
  auto lost = storage().CreateIfAbsent("b.lock", "token-B");
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  EXPECT_FALSE(*lost);
  EXPECT_EQ(s3_->conditional_puts.load(), 2);
  EXPECT_EQ(s3_->objects.count("/bucket/locks/b.lock"), 0u);
}

TEST_F(S3CreateIfAbsentFakeTest, AStoreThatIgnoresIfNoneMatchIsCaughtByTheChecks) {
  s3_->honour_if_none_match = false;
  // Sequential writers: the HEAD sees the first writer's object, which is not overwritten.
  ASSERT_TRUE(*storage().CreateIfAbsent("run.lock", "token-A"));
  auto second = storage().CreateIfAbsent("run.lock", "token-B");
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(*second);
  EXPECT_EQ(s3_->objects["/bucket/locks/run.lock"], "token-A");
  // A writer that raced past the HEAD overwrites ours before we read back: we lost.
  // A plain pointer: the FakeS3 owning this function outlives it (a shared_ptr would be a
  // cycle, which LeakSanitizer reports).
  s3_->after_put = [s3 = s3_.get()](const std::string& path) {
    std::lock_guard<std::mutex> lock(s3->mu);
    s3->objects[path] = "token-C";
  };
  auto raced = storage().CreateIfAbsent("other.lock", "token-D");
  ASSERT_TRUE(raced.ok());
  EXPECT_FALSE(*raced);
}

TEST_F(S3CreateIfAbsentFakeTest, OtherFailuresAreErrors) {
  testing::FakeHttpServer denied([](const testing::FakeRequest& r) {
    if (r.method == "HEAD") return testing::FakeResponse::S3Error(404, "NoSuchKey", "no");
    return testing::FakeResponse::S3Error(403, "AccessDenied", "Access Denied");
  });
  auto client = S3Client::Make(FakeOptions(denied.endpoint()));
  ASSERT_TRUE(client.ok());
  auto st = (*client)->PutObjectIfAbsent({"bucket", "k"}, "x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kIOError);
  EXPECT_NE(st.status().message().find("AccessDenied"), std::string::npos);

  testing::FakeHttpServer other_conflict([](const testing::FakeRequest& r) {
    if (r.method == "HEAD") return testing::FakeResponse::S3Error(404, "NoSuchKey", "no");
    return testing::FakeResponse::S3Error(409, "OperationAborted", "busy bucket");
  });
  client = S3Client::Make(FakeOptions(other_conflict.endpoint()));
  ASSERT_TRUE(client.ok());
  st = (*client)->PutObjectIfAbsent({"bucket", "k"}, "x");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("HTTP 409 OperationAborted"), std::string::npos)
      << st.status().message();
}

// ---- moto: a second S3 implementation --------------------------------------------------------

TEST(S3MotoTest, PaginationAndAwkwardKeys) {
  const S3TestServer server = S3TestServer::FromEnvironment();
  if (server.moto_endpoint.empty()) GTEST_SKIP() << testing::kNoS3ServerMessage;
  auto client =
      S3Client::Make(OptionsFor(server.moto_endpoint, server.region, "AKIDMOTOMOTO", "motosecret"));
  ASSERT_TRUE(client.ok());
  const std::string bucket = "orchard-moto-" + RandomHex(10);
  ASSERT_TRUE(CreateBucket(**client, bucket).ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 1005; ++i) keys.push_back("p/" + std::to_string(10000 + i));
  for (const char* k : {"p/a b+c%d~e.jpg", "p/\xC3\xBC\xE2\x82\xAC.jpg", "p/x&y<z>.jpg",
                        "p/double//slash.jpg", "p/dot/./seg.jpg", "p/dotdot/../seg.jpg"}) {
    keys.push_back(k);
  }
  std::atomic<int> failures{0};
  ParallelFor(keys.size(), 8, [&](size_t i) {
    if (!(*client)->PutObject({bucket, keys[i]}, keys[i]).ok()) ++failures;
  });
  ASSERT_EQ(failures.load(), 0);
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> listed;
  ASSERT_TRUE((*client)
                  ->ListObjects(bucket, "p/",
                                [&](const ObjectInfo& info) {
                                  listed.push_back(info.key);
                                  return Status::OK();
                                })
                  .ok());
  EXPECT_EQ(listed, keys);

  // Conditional create: moto honours If-None-Match too.
  auto storage = OpenS3Storage("s3://" + bucket + "/cia", *client);
  ASSERT_TRUE(storage.ok());
  EXPECT_TRUE(*(*storage)->CreateIfAbsent("run.lock", "token-A"));
  EXPECT_FALSE(*(*storage)->CreateIfAbsent("run.lock", "token-B"));
  ExpectOneWinnerPerKey(**storage, "race/", 5, 4);

  for (const std::string& k :
       {keys.front(), keys.back(), std::string("p/double//slash.jpg"),
        std::string("p/dot/./seg.jpg"), std::string("p/dotdot/../seg.jpg")}) {
    auto got = (*client)->GetObject({bucket, k});
    ASSERT_TRUE(got.ok()) << k << ": " << got.status().ToString();
    EXPECT_EQ(Text(*got), k);
  }
  DeleteBucketAndContents(**client, bucket);
}

}  // namespace
}  // namespace orchard
