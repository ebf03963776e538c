#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "orchard/pipeline.h"

namespace orchard {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

PipelineOptions Valid() {
  PipelineOptions o;
  o.input = "in";
  o.output = "out";
  return o;
}

struct BadValue {
  std::string option;  // API name
  std::string value;   // for messages
  std::function<void(PipelineOptions&)> set;
};

std::vector<BadValue> BadValues() {
  return {
      {"pca_variance", "NaN", [](auto& o) { o.pca_variance = kNan; }},
      {"pca_variance", "-NaN", [](auto& o) { o.pca_variance = -kNan; }},
      {"pca_variance", "inf", [](auto& o) { o.pca_variance = kInf; }},
      {"pca_variance", "-inf", [](auto& o) { o.pca_variance = -kInf; }},
      {"pca_variance", "-0.5", [](auto& o) { o.pca_variance = -0.5; }},
      {"pca_variance", "1.5", [](auto& o) { o.pca_variance = 1.5; }},
      {"pca_components", "-1", [](auto& o) { o.pca_components = -1; }},
      {"max_pca_dim", "0", [](auto& o) { o.max_pca_dim = 0; }},
      {"max_pca_dim", "-3", [](auto& o) { o.max_pca_dim = -3; }},
      {"batch", "0", [](auto& o) { o.batch = 0; }},
      {"batch", "4097", [](auto& o) { o.batch = 4097; }},
      {"threads", "-1", [](auto& o) { o.threads = -1; }},
      {"threads", "1025", [](auto& o) { o.threads = 1025; }},
      {"parallel_runs", "-1", [](auto& o) { o.parallel_runs = -1; }},
      {"parallel_runs", "1025", [](auto& o) { o.parallel_runs = 1025; }},
      {"size", "-1", [](auto& o) { o.size = -1; }},
      {"size", "4097", [](auto& o) { o.size = 4097; }},
      {"limit", "-1", [](auto& o) { o.limit = -1; }},
      {"max_pixels", "0", [](auto& o) { o.max_pixels = 0; }},
      {"commit_images", "0", [](auto& o) { o.commit_images = 0; }},
      {"commit_images", "-1", [](auto& o) { o.commit_images = -1; }},
      {"commit_seconds", "NaN", [](auto& o) { o.commit_seconds = kNan; }},
      {"commit_seconds", "inf", [](auto& o) { o.commit_seconds = kInf; }},
      {"commit_seconds", "-inf", [](auto& o) { o.commit_seconds = -kInf; }},
      {"commit_seconds", "0", [](auto& o) { o.commit_seconds = 0.0; }},
      {"commit_seconds", "-1", [](auto& o) { o.commit_seconds = -1.0; }},
  };
}

std::string CliName(const std::string& api) {
  std::string out = "--" + api;
  for (char& c : out) c = c == '_' ? '-' : c;
  return out;
}

TEST(ValidatePipelineOptions, AcceptsDefaultsAndEdgesOfEachRange) {
  EXPECT_TRUE(ValidatePipelineOptions(Valid()).ok());
  std::vector<std::function<void(PipelineOptions&)>> edges = {
      [](auto& o) { o.pca_variance = 1.0; },
      [](auto& o) { o.pca_variance = std::numeric_limits<double>::denorm_min(); },
      [](auto& o) { o.pca_components = 7; },
      [](auto& o) { o.max_pca_dim = 1; },
      [](auto& o) { o.batch = 1; },
      [](auto& o) { o.batch = 4096; },
      [](auto& o) { o.threads = 1024; },
      [](auto& o) { o.parallel_runs = 1024; },
      [](auto& o) { o.size = 4096; },
      [](auto& o) { o.limit = 5; },
      [](auto& o) { o.max_pixels = 1; },
      [](auto& o) { o.commit_images = 1; },
      [](auto& o) { o.commit_seconds = 1e-3; },
      [](auto& o) { o.commit_seconds = std::numeric_limits<double>::max(); },
  };
  for (size_t i = 0; i < edges.size(); ++i) {
    PipelineOptions o = Valid();
    edges[i](o);
    const Status status = ValidatePipelineOptions(o);
    EXPECT_TRUE(status.ok()) << "edge " << i << ": " << status.ToString();
  }
}

TEST(ValidatePipelineOptions, RejectsNanInfinityAndOutOfRangeValues) {
  for (const BadValue& bad : BadValues()) {
    PipelineOptions o = Valid();
    bad.set(o);
    for (OptionStyle style : {OptionStyle::kApi, OptionStyle::kCli}) {
      const Status status = ValidatePipelineOptions(o, style);
      ASSERT_FALSE(status.ok()) << bad.option << " = " << bad.value;
      EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
      const std::string want = style == OptionStyle::kCli ? CliName(bad.option) : bad.option;
      EXPECT_EQ(status.message().rfind(want + " ", 0), 0u)
          << bad.option << " = " << bad.value << ": " << status.ToString();
    }
    EXPECT_FALSE(RunPlan::Make(o, OptionStyle::kApi).ok()) << bad.option << " = " << bad.value;
  }
}

TEST(ValidatePipelineOptions, NamesOptionsInTheCallersStyle) {
  PipelineOptions o = Valid();
  o.pca_variance = kNan;
  const Status api = ValidatePipelineOptions(o, OptionStyle::kApi);
  ASSERT_FALSE(api.ok());
  EXPECT_NE(api.message().find("pca_variance"), std::string::npos) << api.ToString();
  EXPECT_EQ(api.message().find("--pca-variance"), std::string::npos) << api.ToString();
  const Status cli = ValidatePipelineOptions(o, OptionStyle::kCli);
  ASSERT_FALSE(cli.ok());
  EXPECT_NE(cli.message().find("--pca-variance"), std::string::npos) << cli.ToString();
  EXPECT_EQ(cli.message().find("pca_variance"), std::string::npos) << cli.ToString();

  o.pca_variance = 0.5;
  o.pca_components = 3;
  const Status both = ValidatePipelineOptions(o, OptionStyle::kCli);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.message().find("--pca-components"), std::string::npos) << both.ToString();
  EXPECT_NE(both.message().find("--pca-variance"), std::string::npos) << both.ToString();
}

TEST(ValidatePipelineOptions, NanVarianceIsNotMistakenForBothGiven) {
  // NaN != 0, so with components set too the "not both" rule fires first; alone, NaN must
  // still be refused as out of range rather than slip through as "given".
  PipelineOptions o = Valid();
  o.pca_variance = kNan;
  const Status status = ValidatePipelineOptions(o);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("must be in (0, 1]"), std::string::npos) << status.ToString();
}

TEST(ValidatePipelineOptions, MalformedS3UrlsAreUsageErrors) {
  PipelineOptions o = Valid();
  o.input = "s3://Bad_Bucket!/fruits";
  Status status = ValidatePipelineOptions(o, OptionStyle::kCli);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message().rfind("--input ", 0), 0u) << status.message();
  o = Valid();
  o.output = "s3:///no-bucket";
  EXPECT_EQ(ValidatePipelineOptions(o).code(), StatusCode::kInvalidArgument);
  o = Valid();
  o.model = "s3://x/model.onnx";  // a 1-character bucket
  EXPECT_EQ(ValidatePipelineOptions(o).code(), StatusCode::kInvalidArgument);
  o = Valid();
  o.output = "s3://my-bucket/results/";
  EXPECT_TRUE(ValidatePipelineOptions(o).ok());
}

}  // namespace
}  // namespace orchard
