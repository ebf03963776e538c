#include "extract/onnx_runtime.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <thread>

#include "extract/onnx_runtime_library.h"
#include "orchard/featurizer.h"
#include "test_util.h"

namespace orchard {
namespace {

ModelSpec MobileNet() {
  auto spec = ResolveModel("mobilenet_v2", {testing::SourceDir() / "models"});
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return *spec;
}

// n images of random pixels in the model's normalised range, NCHW.
std::vector<float> RandomBatch(int n, int side, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pixel(-1.0f, 1.0f);
  std::vector<float> batch(static_cast<size_t>(n) * 3 * side * side);
  for (float& v : batch) v = pixel(rng);
  return batch;
}

double Cosine(const float* a, const float* b, int64_t d) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < d; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

ExtractorOptions Options(int side, int threads) {
  ExtractorOptions options;
  options.width = options.height = side;
  options.threads = threads;
  return options;
}

TEST(OnnxRuntime, LoadsTheLibraryOnce) {
  auto first = GetOnnxRuntime();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE((*first)->version.empty());
  EXPECT_EQ(*GetOnnxRuntime(), *first);
  EXPECT_EQ(LoadedOnnxRuntime(), *first);
}

// The same network through ONNX Runtime and through OpenCV DNN (an independent
// implementation) gives the same descriptors, at the native size and at another one.
TEST(OnnxRuntime, MatchesOpenCvDnn) {
  const ModelSpec spec = MobileNet();
  for (int side : {224, 100}) {
    auto ort = CreateExtractor("onnxruntime", spec, Options(side, 2));
    auto cv = CreateExtractor("opencv-dnn", spec, Options(side, 2));
    ASSERT_TRUE(ort.ok()) << ort.status().ToString();
    ASSERT_TRUE(cv.ok()) << cv.status().ToString();
    ASSERT_EQ((*ort)->dim(), 1280);
    EXPECT_EQ((*ort)->feature_shape(), (*cv)->feature_shape());
    const int n = 3;
    const auto batch = RandomBatch(n, side, 7);
    std::vector<float> a(n * 1280), b(n * 1280);
    ASSERT_TRUE((*ort)->Extract(n, batch.data(), a.data()).ok());
    ASSERT_TRUE((*cv)->Extract(n, batch.data(), b.data()).ok());
    for (int i = 0; i < n; ++i) {
      EXPECT_GT(Cosine(&a[i * 1280], &b[i * 1280], 1280), 0.99999) << "side " << side;
    }
  }
}

// One shared session, Extract() from several threads at once: every result is the one a
// lone call gives, bit for bit (ORT's CPU kernels are deterministic per batch shape).
TEST(OnnxRuntime, ConcurrentExtractIsSafeAndExact) {
  auto extractor = CreateExtractor("onnxruntime", MobileNet(), Options(64, 1));
  ASSERT_TRUE(extractor.ok()) << extractor.status().ToString();
  constexpr int kThreads = 4, kImages = 2;
  std::vector<std::vector<float>> batches, expected, got(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    batches.push_back(RandomBatch(kImages, 64, 100 + t));
    expected.emplace_back(kImages * 1280);
    ASSERT_TRUE((*extractor)->Extract(kImages, batches[t].data(), expected[t].data()).ok());
  }
  std::vector<std::thread> threads;
  std::vector<Status> status(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      got[t].resize(kImages * 1280);
      for (int repeat = 0; repeat < 3 && status[t].ok(); ++repeat) {
        status[t] = (*extractor)->Extract(kImages, batches[t].data(), got[t].data());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(status[t].ok()) << status[t].ToString();
    EXPECT_EQ(got[t], expected[t]) << "thread " << t;
  }
}

// A model declared heavy (>= 4 GFLOP per image) runs a batch in chunks of a few images:
// the same descriptors as one call on the whole batch.
TEST(OnnxRuntime, HeavyModelsRunInChunksWithTheSameResults) {
  ModelSpec heavy = MobileNet();
  heavy.gflops_224 = 100.0;
  auto chunked = CreateExtractor("onnxruntime", heavy, Options(64, 1));
  auto whole = CreateExtractor("onnxruntime", MobileNet(), Options(64, 1));
  ASSERT_TRUE(chunked.ok() && whole.ok());
  const int n = 7;  // not a multiple of the chunk size
  const auto batch = RandomBatch(n, 64, 11);
  std::vector<float> a(n * 1280), b(n * 1280);
  ASSERT_TRUE((*chunked)->Extract(n, batch.data(), a.data()).ok());
  ASSERT_TRUE((*whole)->Extract(n, batch.data(), b.data()).ok());
  for (int i = 0; i < n; ++i) {
    EXPECT_GT(Cosine(&a[i * 1280], &b[i * 1280], 1280), 0.999999) << "image " << i;
  }
}

TEST(OnnxRuntime, PoolingFlattenAndMax) {
  const ModelSpec spec = MobileNet();
  ExtractorOptions flatten = Options(64, 1);
  flatten.pooling = Pooling::kFlatten;
  ExtractorOptions max = Options(64, 1);
  max.pooling = Pooling::kMax;
  auto f = CreateExtractor("onnxruntime", spec, flatten);
  auto m = CreateExtractor("onnxruntime", spec, max);
  ASSERT_TRUE(f.ok() && m.ok());
  const auto shape = (*f)->feature_shape();
  ASSERT_EQ(shape.size(), 3u);
  const int hw = shape[1] * shape[2];
  ASSERT_EQ((*f)->dim(), 1280 * hw);
  const auto batch = RandomBatch(1, 64, 3);
  std::vector<float> flat((*f)->dim()), maxed(1280);
  ASSERT_TRUE((*f)->Extract(1, batch.data(), flat.data()).ok());
  ASSERT_TRUE((*m)->Extract(1, batch.data(), maxed.data()).ok());
  for (int c = 0; c < 1280; ++c) {
    const float* plane = flat.data() + static_cast<size_t>(c) * hw;
    EXPECT_EQ(*std::max_element(plane, plane + hw), maxed[c]);
  }
}

TEST(OnnxRuntime, FeatureLayerMustBeAnOutput) {
  ModelSpec spec = MobileNet();
  spec.feature_layer = "not_an_output";
  auto extractor = CreateExtractor("onnxruntime", spec, Options(64, 1));
  ASSERT_EQ(extractor.status().code(), StatusCode::kNotFound);
  EXPECT_NE(extractor.status().message().find("feature_map"), std::string::npos)
      << extractor.status().message();
}

TEST(OnnxRuntime, CorruptModelIsAStatus) {
  const auto dir = std::filesystem::temp_directory_path() / "orchard_ort_corrupt";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "bad.onnx") << "this is not a protobuf";
  ModelSpec spec = MobileNet();
  spec.file = dir / "bad.onnx";
  auto extractor = CreateExtractor("onnxruntime", spec, Options(64, 1));
  EXPECT_FALSE(extractor.ok());
  EXPECT_NE(extractor.status().message().find("bad.onnx"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(OnnxRuntime, FixedSizeModelRefusesOtherSizes) {
  ModelSpec spec = MobileNet();
  spec.resizable = false;
  EXPECT_EQ(CreateExtractor("onnxruntime", spec, Options(100, 1)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(InferenceLayout, OneSingleThreadedRunPerCoreForOnnxRuntime) {
  auto layout = ChooseInferenceLayout("onnxruntime", 8, 0);
  EXPECT_EQ(layout.runs, 8);
  EXPECT_EQ(layout.threads_per_run, 1);
  layout = ChooseInferenceLayout("onnxruntime", 8, 2);
  EXPECT_EQ(layout.runs, 2);
  EXPECT_EQ(layout.threads_per_run, 4);
  layout = ChooseInferenceLayout("onnxruntime", 2, 5);  // never more runs than cores
  EXPECT_EQ(layout.runs, 2);
  EXPECT_EQ(layout.threads_per_run, 1);
  layout = ChooseInferenceLayout("opencv-dnn", 8, 4);  // not re-entrant: one run
  EXPECT_EQ(layout.runs, 1);
  EXPECT_EQ(layout.threads_per_run, 8);
}

TEST(Precision, Int8OnlyWithAVariantAndVnni) {
  ModelSpec spec = MobileNet();
  spec.variants.clear();
  auto choice = ChoosePrecision(Precision::kInt8, spec, true);
  EXPECT_EQ(choice.precision, Precision::kFp32);
  EXPECT_NE(choice.warning.find("no int8 variant"), std::string::npos);
  spec.variants["int8"] = {"/models/x_int8.onnx", "", ""};
  choice = ChoosePrecision(Precision::kInt8, spec, false);
  EXPECT_EQ(choice.precision, Precision::kFp32);
  EXPECT_NE(choice.warning.find("VNNI"), std::string::npos);
  choice = ChoosePrecision(Precision::kInt8, spec, true);
  EXPECT_EQ(choice.precision, Precision::kInt8);
  EXPECT_TRUE(choice.warning.empty());
  choice = ChoosePrecision(Precision::kFp32, spec, true);
  EXPECT_EQ(choice.precision, Precision::kFp32);
  EXPECT_TRUE(choice.warning.empty());
  EXPECT_EQ(ParsePrecision("int4").status().code(), StatusCode::kInvalidArgument);
}

// The same images through the whole Featurizer with one run on two threads and with two
// single-threaded runs: the same descriptors (the layout changes speed, not numbers, up to
// the batch split ORT's kernels see).
TEST(Featurizer, LayoutsAgree) {
  const auto jpeg = testing::ReadFileBytes(testing::SharedDir() / "models/test-images/cat.bmp");
  const std::vector<std::span<const uint8_t>> batch(4, jpeg);
  std::vector<std::vector<float>> features;
  for (int runs : {1, 2}) {
    FeaturizerOptions options;
    options.threads = 2;
    options.parallel_runs = runs;
    options.size = 96;
    auto featurizer = Featurizer::Create(options);
    ASSERT_TRUE(featurizer.ok()) << featurizer.status().ToString();
    EXPECT_EQ((*featurizer)->model().layout.runs, runs);
    auto result = (*featurizer)->Featurize(batch);
    ASSERT_TRUE(result.ok());
    ASSERT_EQ(result->indices.size(), 4u);
    features.push_back(result->features);
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_GT(Cosine(&features[0][i * 1280], &features[1][i * 1280], 1280), 0.999999);
  }
}

}  // namespace
}  // namespace orchard
