// Runs that survive and grow: a run stopped part way resumes to the same bytes as an
// uninterrupted one; an update after the collection changed equals a run from scratch; an
// output is never overwritten or mixed by mistake. (Crashes with kill -9 in every phase are
// in tests/python/test_resume_chaos.py, against the CLI.)
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "orchard/model.h"
#include "orchard/pipeline.h"
#include "test_util.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using testing::ReadFileBytes;
using testing::ScratchDir;
using testing::WriteFileBytes;

const char* const kResults[] = {"features.csv", "features.npy", "pca.json", "errors.csv",
                                "raw.npy"};

PipelineOptions Options(const fs::path& in, const fs::path& out) {
  PipelineOptions o;
  o.input = in.string();
  o.output = out.string();
  o.pca_components = 6;
  o.batch = 3;
  o.commit_images = 4;  // many small segments: every resume point is exercised
  o.save_raw = true;
  return o;
}

void ExpectSameResults(const fs::path& a, const fs::path& b) {
  for (const char* name : kResults) {
    EXPECT_EQ(ReadFileBytes(a / name), ReadFileBytes(b / name)) << name << " differs";
  }
}

nlohmann::json Manifest(const fs::path& out) {
  return nlohmann::json::parse(ReadFileBytes(out / "manifest.json"));
}

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::FruitsMiniDir())) GTEST_SKIP() << "shared sample missing";
    testing::MakeFruitsInput(dir_.path() / "in", 4, /*broken=*/true);
    auto reference = RunPipeline(Options(dir_.path() / "in", reference_));
    ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  }
  ScratchDir dir_;
  fs::path reference_ = dir_.path() / "reference";
};

TEST_F(ResumeTest, AStoppedRunResumesToTheSameBytes) {
  const fs::path out = dir_.path() / "out";
  // Stop after more and more batches: each resume picks up what the last one committed.
  for (int stop_after : {1, 2, 3}) {  // of 9 batches: some work is left
    std::atomic<bool> cancel{false};
    auto options = Options(dir_.path() / "in", out);
    options.mode = OutputMode::kResume;
    options.cancel = &cancel;
    int batches = 0;
    options.on_progress = [&](const Progress& p) {
      if (std::string(p.phase) == "extracting" && ++batches > stop_after) cancel = true;
    };
    EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kCancelled);
    EXPECT_FALSE(fs::exists(out / "features.csv"));
  }
  auto options = Options(dir_.path() / "in", out);
  options.mode = OutputMode::kResume;
  auto summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_GT(summary->reused, 0);
  EXPECT_GT(summary->featurized, 0);
  EXPECT_EQ(summary->reused + summary->featurized, 26);  // every image once
  ExpectSameResults(reference_, out);
  EXPECT_EQ(Manifest(out)["counts"], Manifest(reference_)["counts"]);

  // Resuming a finished run featurizes nothing and writes the same bytes again.
  summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->featurized, 0);
  ExpectSameResults(reference_, out);
}

TEST_F(ResumeTest, ANewRunNeverTouchesANonEmptyOutput) {
  const auto before = ReadFileBytes(reference_ / "features.csv");
  const auto mtime = fs::last_write_time(reference_ / "manifest.json");
  auto options = Options(dir_.path() / "in", reference_);
  options.pca_components = 3;
  auto summary = RunPipeline(options);
  ASSERT_EQ(summary.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(summary.status().message().find("not empty"), std::string::npos);
  EXPECT_NE(summary.status().message().find("resume"), std::string::npos);
  EXPECT_EQ(summary.status().message().find("--"), std::string::npos)
      << "API messages name options without dashes";
  EXPECT_EQ(ReadFileBytes(reference_ / "features.csv"), before);
  EXPECT_EQ(fs::last_write_time(reference_ / "manifest.json"), mtime);

  // A folder with anything in it is not empty either.
  WriteFileBytes(dir_.path() / "other/notes.txt", {'x'});
  options.output = (dir_.path() / "other").string();
  EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kInvalidArgument);

  // The CLI's names in the CLI's messages.
  auto plan = RunPlan::Make(options, OptionStyle::kCli);
  ASSERT_TRUE(plan.ok());
  const std::string message = RunPipeline(*plan).status().message();
  EXPECT_NE(message.find("--resume"), std::string::npos) << message;
  EXPECT_NE(message.find("--overwrite"), std::string::npos) << message;
}

TEST_F(ResumeTest, OverwriteReplacesOrchardsFilesOnly) {
  WriteFileBytes(reference_ / "notes.txt", {'k', 'e', 'e', 'p'});
  auto options = Options(dir_.path() / "in", reference_);
  options.mode = OutputMode::kOverwrite;
  options.pca_components = 3;
  options.size = 96;  // other descriptors: the old store must go, not be mixed
  auto summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->reused, 0);
  EXPECT_EQ(summary->k, 3);
  EXPECT_EQ(ReadFileBytes(reference_ / "notes.txt"), (std::vector<uint8_t>{'k', 'e', 'e', 'p'}));
}

TEST_F(ResumeTest, OtherModelSettingsAreRefusedNeverMixed) {
  auto options = Options(dir_.path() / "in", reference_);
  options.mode = OutputMode::kUpdate;
  options.size = 96;
  auto summary = RunPipeline(options);
  ASSERT_EQ(summary.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(summary.status().message().find("input size: 224x224 in the store, 96x96 now"),
            std::string::npos)
      << summary.status().message();
  options.size = 0;
  options.jpeg_dct_scaling = !options.jpeg_dct_scaling;
  EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kInvalidArgument);
  // PCA options, batch and threads do not change descriptors: allowed.
  options.jpeg_dct_scaling = !options.jpeg_dct_scaling;
  options.pca_components = 4;
  options.threads = 1;
  summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->featurized, 0);
  EXPECT_EQ(summary->k, 4);
}

TEST_F(ResumeTest, ASecondRunOnTheSameOutputRefusesWhileTheFirstWorks) {
  const fs::path out = dir_.path() / "busy";
  Status second;
  bool tried = false;
  auto options = Options(dir_.path() / "in", out);
  options.on_progress = [&](const Progress& p) {
    if (tried || std::string(p.phase) != "extracting") return;
    tried = true;
    for (OutputMode mode : {OutputMode::kResume, OutputMode::kOverwrite, OutputMode::kNew}) {
      auto other = Options(dir_.path() / "in", out);
      other.mode = mode;
      second = RunPipeline(other).status();
      EXPECT_EQ(second.code(), StatusCode::kInvalidArgument) << OutputModeName(mode);
      EXPECT_NE(second.message().find("in use by another orchard run"), std::string::npos)
          << second.message();
    }
  };
  auto first = RunPipeline(options);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(tried);
  ExpectSameResults(reference_, out);  // the first run's result is whole
  // Once it has ended, the lock is free.
  auto again = Options(dir_.path() / "in", out);
  again.mode = OutputMode::kResume;
  EXPECT_TRUE(RunPipeline(again).ok());
}

TEST_F(ResumeTest, TheManifestVouchesForEveryResultFileAndGoesFirst) {
  const auto manifest = Manifest(reference_);
  std::map<std::string, std::vector<uint8_t>> before;
  for (const char* name : kResults) before[name] = ReadFileBytes(reference_ / name);
  for (const char* name : kResults) {
    ASSERT_TRUE(manifest["files"].contains(name)) << name;
    EXPECT_EQ(manifest["files"][name]["bytes"], fs::file_size(reference_ / name)) << name;
    EXPECT_EQ(manifest["files"][name]["sha256"], *Sha256File(reference_ / name)) << name;
  }
  // A rerun that fails after it started writing results leaves no manifest beside them: the
  // old one would vouch for files that are no longer its own.
  auto options = Options(dir_.path() / "in", reference_);
  options.mode = OutputMode::kResume;
  struct FailingSink : ResultSink {
    std::string name() const override { return "extra.bin"; }
    Status Begin(const SinkContext&) override { return Status::OK(); }
    Status Write(const ResultRows&) override { return Status::IOError("disk gone"); }
    Status Commit() override { return Status::OK(); }
  };
  options.extra_sinks.push_back(std::make_shared<FailingSink>());
  EXPECT_EQ(RunPipeline(options).status().code(), StatusCode::kIOError);
  EXPECT_FALSE(fs::exists(reference_ / "manifest.json"));
  options.extra_sinks.clear();
  ASSERT_TRUE(RunPipeline(options).ok());  // and --resume makes it whole again
  for (const char* name : kResults) EXPECT_EQ(ReadFileBytes(reference_ / name), before[name]);
  EXPECT_TRUE(fs::exists(reference_ / "manifest.json"));
}

TEST_F(ResumeTest, AnOutputInsideTheInputIsLeftOutOfTheListing) {
  const fs::path in = dir_.path() / "in";
  auto options = Options(in, in / "results");
  auto summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  options.mode = OutputMode::kResume;  // now the input holds a store and results
  summary = RunPipeline(options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->listed, Manifest(reference_)["counts"]["listed"]);
  EXPECT_EQ(summary->featurized, 0);
  ExpectSameResults(reference_, in / "results");
  // The input itself cannot be the output.
  auto same = Options(in, in);
  same.mode = OutputMode::kOverwrite;
  const Status refused = RunPipeline(same).status();
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("is the input folder"), std::string::npos) << refused.message();
}

TEST_F(ResumeTest, UpdateWithoutAStoreIsRefused) {
  auto options = Options(dir_.path() / "in", dir_.path() / "empty");
  options.mode = OutputMode::kUpdate;
  auto summary = RunPipeline(options);
  ASSERT_EQ(summary.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(summary.status().message().find("nothing to update"), std::string::npos);
}

TEST_F(ResumeTest, UpdateEqualsARunFromScratchOnTheNewCollection) {
  const fs::path in = dir_.path() / "in";
  // The collection changes: new images, a deleted one, one replaced by other content, one
  // broken file fixed.
  testing::MakeFruitsInput(dir_.path() / "more", 6, false);
  int added = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_.path() / "more")) {
    if (!e.is_regular_file()) continue;
    const fs::path target = in / fs::relative(e.path(), dir_.path() / "more");
    if (!fs::exists(target)) {
      fs::create_directories(target.parent_path());
      fs::copy_file(e.path(), target);
      ++added;
    }
  }
  ASSERT_EQ(added, 10);
  std::vector<fs::path> images;
  for (const auto& e : fs::recursive_directory_iterator(in)) {
    if (e.is_regular_file() && e.path().extension() == ".jpg" &&
        e.path().parent_path().filename() != "zz_broken") {
      images.push_back(e.path());
    }
  }
  std::sort(images.begin(), images.end());
  fs::remove(images[0]);
  fs::copy_file(images[1], images[2], fs::copy_options::overwrite_existing);
  fs::copy_file(images[3], in / "zz_broken/text.jpg", fs::copy_options::overwrite_existing);

  auto options = Options(in, reference_);
  options.mode = OutputMode::kUpdate;
  auto updated = RunPipeline(options);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->featurized, 12);  // 10 new, 1 replaced, 1 fixed
  auto fresh = RunPipeline(Options(in, dir_.path() / "fresh"));
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(updated->processed, fresh->processed);
  EXPECT_EQ(updated->failed, fresh->failed);
  // Descriptors do not depend on the batch an image ran in (tested in the extractor tests),
  // so the update is byte-identical, not only close.
  ExpectSameResults(dir_.path() / "fresh", reference_);
  EXPECT_EQ(Manifest(reference_)["store"]["mode"], "update");

  // An update without save_raw removes the raw.npy of the earlier run: it would be stale.
  options.save_raw = false;
  ASSERT_TRUE(RunPipeline(options).ok());
  EXPECT_FALSE(fs::exists(reference_ / "raw.npy"));
  EXPECT_TRUE(fs::exists(reference_ / "features.csv"));
}

}  // namespace
}  // namespace orchard
