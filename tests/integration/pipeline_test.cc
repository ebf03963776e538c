// End to end: the real default model (MobileNetV2, ImageNet weights) on real Fruits-360
// images plus broken files, through RunPipeline.
#include "orchard/pipeline.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "test_util.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using testing::ReadCsv;
using testing::ReadFileBytes;
using testing::ScratchDir;
using testing::WriteFileBytes;

PipelineOptions Options(const fs::path& in, const fs::path& out) {
  PipelineOptions o;
  o.input = in.string();
  o.output = out.string();
  o.pca_components = 8;
  o.batch = 4;
  return o;
}

std::vector<std::string> ListedKeys(const fs::path& root) {
  std::vector<std::string> keys;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) keys.push_back(fs::relative(e.path(), root).string());
  }
  return keys;
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::FruitsMiniDir())) GTEST_SKIP() << "shared sample missing";
  }
};

TEST_F(PipelineTest, EveryListedFileEndsInExactlyOneOutput) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 3, true);
  auto summary = RunPipeline(Options(dir.path() / "in", dir.path() / "out"));
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();

  const auto features = ReadCsv(dir.path() / "out/features.csv");
  const auto errors = ReadCsv(dir.path() / "out/errors.csv");
  ASSERT_FALSE(features.empty());
  ASSERT_EQ(features[0].size(), 2u + 8u);
  EXPECT_EQ(features[0][0], "path");
  EXPECT_EQ(features[0][1], "label");
  EXPECT_EQ(features[0][2], "pc_1");
  EXPECT_EQ(errors[0], (std::vector<std::string>{"path", "stage", "message"}));

  std::map<std::string, std::string> stage_of;
  for (size_t i = 1; i < errors.size(); ++i) stage_of[errors[i][0]] = errors[i][1];
  std::set<std::string> seen;
  for (size_t i = 1; i < features.size(); ++i) {
    const std::string& path = features[i][0];
    EXPECT_EQ(features[i][1], fs::path(path).parent_path().filename().string());
    EXPECT_TRUE(seen.insert(path).second) << "twice in features.csv: " << path;
  }
  for (const auto& [path, stage] : stage_of)
    EXPECT_TRUE(seen.insert(path).second) << "in both outputs: " << path;
  const auto listed = ListedKeys(dir.path() / "in");
  EXPECT_EQ(seen, std::set<std::string>(listed.begin(), listed.end()));

  EXPECT_EQ(features.size() - 1, 5u * 3u + 2u);  // 5 classes x 3, plus alpha.png and gray16.PNG
  EXPECT_EQ(stage_of["zz_broken/empty.jpg"], "decode");
  EXPECT_EQ(stage_of["zz_broken/text.jpg"], "decode");
  EXPECT_EQ(stage_of["zz_broken/truncated.jpg"], "decode");
  EXPECT_EQ(stage_of["zz_broken/bomb.png"], "decode");
  EXPECT_EQ(stage_of["zz_broken/notes.txt"], "list");
  EXPECT_EQ(summary->processed, 17);
  EXPECT_EQ(summary->failed, 5);
  EXPECT_EQ(summary->dim, 1280);

  const auto manifest = nlohmann::json::parse(ReadFileBytes(dir.path() / "out/manifest.json"));
  EXPECT_EQ(manifest["counts"]["listed"], 22);
  EXPECT_EQ(manifest["counts"]["processed"], 17);
  EXPECT_EQ(manifest["counts"]["failed"], 5);
  EXPECT_EQ(manifest["model"]["name"], "mobilenet_v2");
  EXPECT_EQ(manifest["model"]["random_weights"], false);
  const auto pca = nlohmann::json::parse(ReadFileBytes(dir.path() / "out/pca.json"));
  EXPECT_EQ(pca["k"], 8);
  EXPECT_EQ(pca["dim"], 1280);
  // features.npy: 128-byte header + 17 x 8 float32.
  EXPECT_EQ(fs::file_size(dir.path() / "out/features.npy"), 128u + 17u * 8u * 4u);
  EXPECT_FALSE(fs::exists(dir.path() / "out/raw.npy"));
}

TEST_F(PipelineTest, RunsAreByteIdenticalAndIndependentOfThreadCount) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 4, true);
  std::vector<fs::path> outs;
  for (int threads : {2, 2, 1}) {
    auto options = Options(dir.path() / "in", dir.path() / ("out" + std::to_string(outs.size())));
    options.threads = threads;
    options.save_raw = true;
    auto summary = RunPipeline(options);
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    outs.push_back(options.output);
  }
  for (const char* file : {"features.csv", "features.npy", "pca.json", "errors.csv", "raw.npy"}) {
    const auto first = ReadFileBytes(outs[0] / file);
    EXPECT_EQ(first, ReadFileBytes(outs[1] / file)) << file << " differs between two runs";
    EXPECT_EQ(first, ReadFileBytes(outs[2] / file)) << file << " differs between --threads 2 and 1";
  }
  EXPECT_EQ(fs::file_size(outs[0] / "raw.npy"), 128u + 22u * 1280u * 4u);
}

TEST_F(PipelineTest, LimitStopsAfterNImages) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 3, false);
  auto options = Options(dir.path() / "in", dir.path() / "out");
  options.limit = 5;
  options.pca_components = 2;
  auto summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->processed, 5);
  EXPECT_EQ(ReadCsv(dir.path() / "out/features.csv").size(), 6u);
}

TEST_F(PipelineTest, PcaVarianceChoosesK) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 3, false);
  auto options = Options(dir.path() / "in", dir.path() / "out");
  options.pca_components = 0;
  options.pca_variance = 0.5;
  auto summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_GE(summary->explained_variance, 0.5);
  EXPECT_GE(summary->k, 1);
  EXPECT_LT(summary->k, 15);
}

TEST_F(PipelineTest, NothingProcessableIsAClearFailureWithAnErrorReport) {
  ScratchDir dir;
  WriteFileBytes(dir.path() / "in/a/empty.jpg", {});
  WriteFileBytes(dir.path() / "in/a/readme.txt", {'x'});
  auto summary = RunPipeline(Options(dir.path() / "in", dir.path() / "out"));
  ASSERT_FALSE(summary.ok());
  EXPECT_NE(summary.status().message().find("no image could be processed"), std::string::npos);
  EXPECT_EQ(ReadCsv(dir.path() / "out/errors.csv").size(), 3u);
  EXPECT_FALSE(fs::exists(dir.path() / "out/features.csv"));
}

TEST_F(PipelineTest, BadOptionsAndModelsFailBeforeAnyWork) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 1, false);
  auto options = Options(dir.path() / "in", dir.path() / "out");
  options.model = "no_such_model";
  EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kNotFound);
  options = Options(dir.path() / "in", dir.path() / "out");
  options.max_pca_dim = 100;
  EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kResourceExhausted);
  options = Options(dir.path() / "in", dir.path() / "out");
  options.pca_components = 5000;
  EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kInvalidArgument);
  options = Options(dir.path() / "absent", dir.path() / "out");
  EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir.path() / "out/features.csv"));
}

// An exception in a worker thread never ends the process: its batch's images become error
// rows and the run goes on.
TEST_F(PipelineTest, AnExceptionInAWorkerThreadFailsItsImagesNotTheProcess) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 2, false);  // 10 images
  auto options = Options(dir.path() / "in", dir.path() / "out");
  options.backend = testing::ThrowingBackend();
  options.pca_components = 2;
  options.batch = 2;
  options.threads = 1;
  options.parallel_runs = 1;
  auto summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->processed, 8);
  EXPECT_EQ(summary->failed, 2);
  const auto errors = ReadCsv(dir.path() / "out/errors.csv");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[1][1], "extract");
  EXPECT_NE(errors[1][2].find("library failure inside a worker thread"), std::string::npos)
      << errors[1][2];
}

TEST_F(PipelineTest, MoreComponentsThanTheImagesCanGiveAreKeptToTheRankWithAWarning) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 1, false);  // 5 images: 4 directions
  auto options = Options(dir.path() / "in", dir.path() / "out");
  options.pca_components = 6;
  std::vector<std::string> warnings;
  options.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  auto summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->k, 4);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("pca_components 6 is more than 5 images can give"), std::string::npos)
      << warnings[0];
  const auto manifest = nlohmann::json::parse(ReadFileBytes(dir.path() / "out/manifest.json"));
  EXPECT_EQ(manifest["warnings"].size(), 1u);
  EXPECT_EQ(manifest["pca"]["k"], 4);
}

TEST_F(PipelineTest, NamesThatAreNotUtf8NeverCrashTheRun) {
  ScratchDir dir;
  const fs::path in = dir.path() / "in";
  testing::MakeFruitsInput(in, 2, false);
  fs::rename(in / "Plum 5", in / "caf\xe9");  // Latin-1, as old file systems have them
  const fs::path out = dir.path() / "out\xfe";
  auto summary = RunPipeline(Options(in, out));
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  const auto rows = ReadCsv(out / "features.csv");
  EXPECT_TRUE(
      std::any_of(rows.begin(), rows.end(), [](const auto& row) { return row[1] == "caf\xe9"; }));
  const auto manifest = nlohmann::json::parse(ReadFileBytes(out / "manifest.json"));
  EXPECT_EQ(manifest["options"]["output"]["hex"].get<std::string>().substr(
                manifest["options"]["output"]["hex"].get<std::string>().size() - 2),
            "fe");
}

TEST_F(PipelineTest, CancelledRunLeavesNoOutputMatrix) {
  ScratchDir dir;
  testing::MakeFruitsInput(dir.path() / "in", 3, false);
  std::atomic<bool> cancel{false};
  auto options = Options(dir.path() / "in", dir.path() / "out");
  options.cancel = &cancel;
  options.on_progress = [&](const Progress& p) {
    if (p.processed > 0) cancel = true;
  };
  auto summary = RunPipeline(options);
  EXPECT_EQ(summary.status().code(), StatusCode::kCancelled);
  EXPECT_FALSE(fs::exists(dir.path() / "out/features.csv"));
  EXPECT_FALSE(fs::exists(dir.path() / "out/errors.csv"));
}

}  // namespace
}  // namespace orchard
