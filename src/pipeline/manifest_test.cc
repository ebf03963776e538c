#include "pipeline/manifest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "orchard/model.h"
#include "orchard/pipeline.h"
#include "orchard/status.h"
#include "test_util.h"

namespace orchard {
namespace {

TEST(ParseManifest, ReadsWhatManifestBuilderWrites) {
  PipelineOptions options;
  ModelSpec spec;
  spec.name = "mobilenet_v2";
  spec.weights = "random";
  ManifestBuilder builder(options, spec, 1);
  builder.SetCounts(11, 9, 2);
  ExtractorOptions extractor;
  extractor.pooling = Pooling::kAvg;
  builder.SetModelLoaded(1280, {1280, 7, 7}, extractor, 0.5);
  builder.SetStore({{"mode", "update"}, {"reused", 9}, {"featurized", 1}, {"segments_total", 2}});
  const testing::ScratchDir scratch;
  const std::filesystem::path& dir = scratch.path();
  std::ofstream(dir / "errors.csv") << "path,stage,message\n";
  ASSERT_TRUE(builder.SetFiles(dir, {"errors.csv", "features.csv"}).ok());
  builder.times().total = 1.25;

  const auto s = ParseManifest(builder.Json());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->status, "ok");
  EXPECT_EQ(s->listed, 11);
  EXPECT_EQ(s->processed, 9);
  EXPECT_EQ(s->failed, 2);
  EXPECT_EQ(s->model_name, "mobilenet_v2");
  EXPECT_EQ(s->model_weights, "random");
  EXPECT_TRUE(s->random_weights);
  EXPECT_EQ(s->model_pooling, "avg");
  EXPECT_EQ(s->descriptor_dim, 1280);
  ASSERT_TRUE(s->files.has_value());
  ASSERT_EQ(s->files->size(), 1u);  // features.csv was not written
  EXPECT_EQ(s->files->at("errors.csv").bytes, 19u);
  EXPECT_EQ(s->files->at("errors.csv").sha256.size(), 64u);
  EXPECT_FALSE(s->has_pca);
  EXPECT_TRUE(s->has_store);
  EXPECT_EQ(s->store_mode, "update");
  EXPECT_EQ(s->store_reused, 9);
  EXPECT_EQ(s->store_featurized, 1);
  EXPECT_EQ(s->store_segments, 2);
  ASSERT_TRUE(s->total_seconds.has_value());
  EXPECT_DOUBLE_EQ(*s->total_seconds, 1.25);
}

// `orchard inspect` read the manifest with nlohmann's value(), which throws on a document
// that is not an object or a field of another type: the process ended with SIGABRT.
TEST(ParseManifest, AnyJsonOfTheWrongShapeIsAStatusNeverAnException) {
  for (const char* text : {"", "{", "[]", "3", "null", "\"ok\"", "{\"a\":1}x", "\xff"}) {
    const auto s = ParseManifest(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.status().code(), StatusCode::kCorruptData) << text;
  }
  // Fields of another type keep their defaults; 1e300 is not cast to an integer (UB).
  const auto s = ParseManifest(
      R"({"status": 1, "counts": {"listed": "x", "processed": 1e300, "failed": -3},
          "model": [], "pca": {"k": "3", "explained_variance_ratio_sum": true},
          "store": 7, "timings_seconds": {"total": "slow"}})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->status, "?");
  EXPECT_EQ(s->listed, 0);
  EXPECT_EQ(s->processed, 0);
  EXPECT_EQ(s->failed, -3);
  EXPECT_EQ(s->model_name, "?");
  EXPECT_FALSE(s->files.has_value());
  EXPECT_TRUE(s->has_pca);
  EXPECT_EQ(s->pca_k, 0);
  EXPECT_EQ(s->pca_variance_ratio_sum, 0.0);
  EXPECT_FALSE(s->has_store);
  ASSERT_TRUE(s->total_seconds.has_value());
  EXPECT_EQ(*s->total_seconds, 0.0);
}

TEST(ParseManifest, ResultFilesMustBePlainNamesWithSizeAndSha256) {
  const std::string sha =
      R"("sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")";
  EXPECT_TRUE(ParseManifest(R"({"files": {"pca.json": {"bytes": 0, )" + sha + "}}}").ok());
  EXPECT_TRUE(ParseManifest(R"({"files": {}})")->files.has_value());
  for (const std::string& name : std::vector<std::string>{"", ".", "..", "../x", "/etc/passwd",
                                                          "a/b", std::string("a\0b", 3)}) {
    const std::string key = nlohmann::json(name).dump();
    const auto s = ParseManifest(R"({"files": {)" + key + R"(: {"bytes": 1, )" + sha + "}}}");
    EXPECT_EQ(s.status().code(), StatusCode::kCorruptData) << key;
  }
  for (const char* entry : {"1", "[]", R"({"bytes": 1})", R"({"bytes": -1, "sha256": ""})",
                            R"({"bytes": 1.5, "sha256": ""})", R"({"bytes": 1, "sha256": 2})"}) {
    const auto s = ParseManifest(std::string(R"({"files": {"errors.csv": )") + entry + "}}");
    EXPECT_EQ(s.status().code(), StatusCode::kCorruptData) << entry;
  }
}

}  // namespace
}  // namespace orchard
