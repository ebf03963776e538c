#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "orchard/model.h"
#include "test_util.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;

// A copy of the bundled sidecar with `variants` replaced by `variants_json`.
Result<ModelSpec> SpecWithVariants(const std::string& variants_json) {
  const fs::path dir = fs::temp_directory_path() / "orchard_model_spec_test";
  fs::create_directories(dir);
  std::ifstream in(testing::SourceDir() / "models/mobilenet_v2.json");
  nlohmann::json sidecar = nlohmann::json::parse(in);
  sidecar["variants"] = nlohmann::json::parse(variants_json);
  std::ofstream(dir / "m.json") << sidecar.dump(2);
  auto spec = LoadModelSpec(dir / "m.json");
  fs::remove_all(dir);
  return spec;
}

TEST(ModelSpec, BundledModelDeclaresItsInt8Variant) {
  auto spec = ResolveModel("mobilenet_v2", {testing::SourceDir() / "models"});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->variants.count("int8"), 1u);
  const ModelVariant& int8 = spec->variants.at("int8");
  EXPECT_TRUE(int8.file.is_absolute());
  EXPECT_TRUE(fs::exists(int8.file)) << int8.file;
  auto sha = Sha256File(int8.file);
  ASSERT_TRUE(sha.ok());
  EXPECT_EQ(*sha, int8.sha256);
}

TEST(ModelSpec, VariantsAreValidated) {
  EXPECT_EQ(SpecWithVariants("[]").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SpecWithVariants(R"({"int4": {"file": "x.onnx"}})").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(SpecWithVariants(R"({"int8": {"sha256": "00"}})").status().code(),
            StatusCode::kInvalidArgument);
  auto spec = SpecWithVariants(R"({"int8": {"file": "q.onnx", "sha256": "ab"}})");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->variants.at("int8").file.filename(), "q.onnx");
  EXPECT_EQ(spec->variants.at("int8").sha256, "ab");
}

// A sidecar whose 'file' points out of its folder would run another model than the one the
// user named or copied: refused, for the main file and for variants.
TEST(ModelSpec, SidecarFileMustBeBesideIt) {
  testing::ScratchDir dir;
  std::ifstream in(testing::SourceDir() / "models/mobilenet_v2.json");
  const nlohmann::json original = nlohmann::json::parse(in);
  for (const std::string file : {"/etc/passwd", "../other.onnx", "sub/m.onnx", "..", ""}) {
    nlohmann::json sidecar = original;
    sidecar["file"] = file;
    std::ofstream(dir.path() / "m.json") << sidecar.dump(2);
    auto spec = LoadModelSpec(dir.path() / "m.json");
    ASSERT_FALSE(spec.ok()) << file;
    EXPECT_TRUE(spec.status().is_usage_error()) << spec.status().ToString();
    EXPECT_NE(spec.status().message().find("beside the sidecar"), std::string::npos);
  }
  nlohmann::json variant = original;
  variant["variants"]["int8"]["file"] = "/tmp/q.onnx";
  std::ofstream(dir.path() / "m.json") << variant.dump(2);
  EXPECT_FALSE(LoadModelSpec(dir.path() / "m.json").ok());
}

// `--model x.onnx` runs x.onnx: a sidecar x.json that describes y.onnx is refused.
TEST(ModelSpec, NamedOnnxFileIsTheOneThatRuns) {
  testing::ScratchDir dir;
  std::ifstream in(testing::SourceDir() / "models/mobilenet_v2.json");
  nlohmann::json sidecar = nlohmann::json::parse(in);
  sidecar["file"] = "y.onnx";
  std::ofstream(dir.path() / "x.json") << sidecar.dump(2);
  std::ofstream(dir.path() / "x.onnx") << "not used";
  auto spec = ResolveModel((dir.path() / "x.onnx").string(), {});
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(spec.status().is_usage_error());
  EXPECT_NE(spec.status().message().find("describes y.onnx, not x.onnx"), std::string::npos)
      << spec.status().message();
  sidecar["file"] = "x.onnx";
  std::ofstream(dir.path() / "x.json") << sidecar.dump(2);
  auto same = ResolveModel((dir.path() / "x.onnx").string(), {});
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(same->file, dir.path() / "x.onnx");
}

}  // namespace
}  // namespace orchard
