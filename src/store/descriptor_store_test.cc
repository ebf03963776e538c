#include "orchard/descriptor_store.h"

#include <gtest/gtest.h>

#include "faulty_storage.h"
#include "orchard/storage.h"

namespace orchard {
namespace {

Segment MakeSegment(const std::string& name, const std::vector<std::string>& keys, int64_t dim) {
  Segment s;
  s.name = name;
  s.dim = dim;
  int64_t row = 0;
  for (const std::string& key : keys) {
    if (key.find("bad") != std::string::npos) {
      s.items.push_back({key, "1:2", -1, "decode", "not an image: " + key});
    } else {
      s.items.push_back({key, "10:" + key, row, "", ""});
      for (int64_t j = 0; j < dim; ++j) s.descriptors.push_back(static_cast<float>(row * 10 + j));
      ++row;
    }
  }
  return s;
}

StoreFingerprint Fingerprint() {
  StoreFingerprint f;
  f.model_name = "m";
  f.model_sha256 = "abc";
  f.backend = "onnxruntime";
  f.precision = "fp32";
  f.feature_layer = "pool";
  f.pooling = "avg";
  f.input_width = f.input_height = 224;
  f.dim = 3;
  f.jpeg_dct_scaling = true;
  f.max_pixels = 100;
  return f;
}

TEST(DescriptorStore, CommitsAreReadBackAndLaterCommitsWin) {
  MemoryStorage storage;
  DescriptorStore store(storage, ::testing::TempDir());
  EXPECT_EQ(store.ReadFingerprint().status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store.WriteFingerprint(Fingerprint()).ok());
  auto fingerprint = store.ReadFingerprint();
  ASSERT_TRUE(fingerprint.ok());
  EXPECT_TRUE(fingerprint->Differences(Fingerprint()).empty());

  ASSERT_TRUE(
      store.Commit(MakeSegment(SegmentName(1, 0), {"a/1.jpg", "a/bad.jpg", "b/2.jpg"}, 3)).ok());
  ASSERT_TRUE(store.Commit(MakeSegment(SegmentName(2, 0), {"b/2.jpg"}, 3)).ok());
  // An interrupted commit: descriptors without their record are not part of the store.
  ASSERT_TRUE(storage.Write("_orchard/segments/00000002-00000001.npy", "partial").ok());

  DescriptorStore reopened(storage, ::testing::TempDir());
  auto index = reopened.LoadIndex(3);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ(index->size(), 3u);
  EXPECT_EQ(index->next_generation(), 3);
  const auto* bad = index->Find("a/bad.jpg");
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ(bad->row, -1);
  EXPECT_EQ(bad->stage, "decode");
  EXPECT_EQ(bad->message, "not an image: a/bad.jpg");
  const auto* b = index->Find("b/2.jpg");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(index->segment_names().at(b->segment), SegmentName(2, 0));  // the later commit
  std::vector<float> row(3);
  ASSERT_TRUE(reopened.ReadRows(SegmentName(1, 0), 1, 1, 3, row.data()).ok());
  EXPECT_EQ(row, (std::vector<float>{10, 11, 12}));
  EXPECT_EQ(reopened.ReadRows(SegmentName(1, 0), 1, 5, 3, row.data()).code(),
            StatusCode::kCorruptData);
}

TEST(DescriptorStore, KeysThatAreNotUtf8SurviveExactly) {
  MemoryStorage storage;
  DescriptorStore store(storage, ::testing::TempDir());
  const std::string latin1 =
      "caf\xe9/p\xea"
      "che.jpg";
  const std::string broken = "x/\xff\xfe bad.jpg";
  ASSERT_TRUE(store.Commit(MakeSegment(SegmentName(1, 0), {latin1, broken}, 2)).ok());
  auto index = store.LoadIndex(2);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  ASSERT_NE(index->Find(latin1), nullptr);
  ASSERT_NE(index->Find(broken), nullptr);
  EXPECT_EQ(index->Find(broken)->message, "not an image: " + broken);
}

TEST(DescriptorStore, DamageIsDetectedAndNamed) {
  MemoryStorage storage;
  DescriptorStore store(storage, ::testing::TempDir());
  ASSERT_TRUE(store.Commit(MakeSegment(SegmentName(1, 0), {"a.jpg", "b.jpg"}, 2)).ok());
  // A flipped byte in the descriptors: the sha256 of the record catches it.
  std::string npy_key;
  ASSERT_TRUE(storage
                  .List([&](const ObjectInfo& info) {
                    if (info.key.size() > 4 && info.key.substr(info.key.size() - 4) == ".npy") {
                      npy_key = info.key;
                    }
                    return Status::OK();
                  })
                  .ok());
  ASSERT_EQ(npy_key.rfind("_orchard/segments/00000001-00000000-", 0), 0u) << npy_key;
  auto npy = storage.Read(npy_key);
  ASSERT_TRUE(npy.ok());
  npy->back() ^= 1;
  storage.Put(npy_key, *npy);
  DescriptorStore reopened(storage, ::testing::TempDir() + "/damage");
  auto index = reopened.LoadIndex(2);
  ASSERT_TRUE(index.ok());
  std::vector<float> row(2);
  const Status status = reopened.ReadRows(SegmentName(1, 0), 0, 1, 2, row.data());
  EXPECT_EQ(status.code(), StatusCode::kCorruptData);
  EXPECT_NE(status.message().find("sha256"), std::string::npos);
  // A record of the wrong dimension, or not JSON at all.
  EXPECT_EQ(reopened.LoadIndex(3).status().code(), StatusCode::kCorruptData);
  storage.Put("_orchard/segments/00000001-00000000.json", {'{', 'x'});
  const Status garbled = reopened.LoadIndex(2).status();
  EXPECT_EQ(garbled.code(), StatusCode::kCorruptData);
  EXPECT_NE(garbled.message().find("00000001-00000000.json"), std::string::npos);
}

TEST(DescriptorStore, TwoAttemptsAtOneSegmentNeverMixTheirFiles) {
  // A retried or speculative task commits the same segment again, with other bits (another
  // CPU): each attempt's record names its own descriptors, so the last record is whole.
  MemoryStorage storage;
  DescriptorStore first(storage, ::testing::TempDir()), second(storage, ::testing::TempDir());
  Segment a = MakeSegment(SegmentName(3, 7), {"a.jpg", "b.jpg"}, 2);
  Segment b = a;
  b.descriptors[0] += 1e-6f;
  ASSERT_TRUE(first.Commit(a).ok());
  ASSERT_TRUE(second.Commit(b).ok());
  DescriptorStore reader(storage, ::testing::TempDir());
  auto index = reader.LoadIndex(2);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ(index->size(), 2u);
  std::vector<float> row(2);
  ASSERT_TRUE(reader.ReadRows(SegmentName(3, 7), 0, 1, 2, row.data()).ok());
  EXPECT_EQ(row[0], b.descriptors[0]);
}

TEST(DescriptorStore, FingerprintDifferencesNameEachField) {
  StoreFingerprint now = Fingerprint();
  now.model_sha256 = "def";
  now.input_width = now.input_height = 100;
  const auto differences = now.Differences(Fingerprint());
  ASSERT_EQ(differences.size(), 2u);
  EXPECT_EQ(differences[0], "model sha256: abc in the store, def now");
  EXPECT_EQ(differences[1], "input size: 224x224 in the store, 100x100 now");
  EXPECT_EQ(StoreFingerprint::FromJson("{}").status().code(), StatusCode::kCorruptData);
  auto parsed = StoreFingerprint::FromJson(now.ToJson());
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->Differences(now).empty());
}

TEST(DescriptorStore, AFailedCommitLeavesNoSegmentAndTheNextOneSucceeds) {
  MemoryStorage memory;
  testing::FaultyStorage storage(memory);
  DescriptorStore store(storage, ::testing::TempDir());
  ASSERT_TRUE(store.Commit(MakeSegment(SegmentName(1, 0), {"a.jpg"}, 2)).ok());
  // The disk fills between a segment's descriptors and its record.
  storage.FailWritesAfter(1);
  const Status full = store.Commit(MakeSegment(SegmentName(1, 1), {"b.jpg"}, 2));
  EXPECT_EQ(full.code(), StatusCode::kIOError);
  EXPECT_NE(full.message().find("No space left"), std::string::npos);
  auto index = store.LoadIndex(2);
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(index->size(), 1u);  // b.jpg's descriptors without a record are not committed
  EXPECT_EQ(index->Find("b.jpg"), nullptr);
  storage.StopFailing();
  ASSERT_TRUE(store.Commit(MakeSegment(SegmentName(1, 1), {"b.jpg"}, 2)).ok());
  index = store.LoadIndex(2);
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(index->size(), 2u);
  std::vector<float> row(2);
  EXPECT_TRUE(store.ReadRows(SegmentName(1, 1), 0, 1, 2, row.data()).ok());
}

TEST(Storage, ContentIdentityChangesWithTheContent) {
  ObjectInfo s3;
  s3.size = 10;
  s3.etag = "9b2cf535f27731c974343645a3985328";
  EXPECT_EQ(ContentIdentity(s3), "10:9b2cf535f27731c974343645a3985328");
  ObjectInfo local;
  local.size = 10;
  local.mtime_ns = 1700000000123456789;
  local.inode = 42;
  EXPECT_EQ(ContentIdentity(local), "10:1700000000123456789:42");
  ObjectInfo memory;
  memory.size = 3;
  EXPECT_EQ(ContentIdentity(memory), "3");
}

}  // namespace
}  // namespace orchard
