#include "orchard/featurizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "test_util.h"

namespace orchard {
namespace {

TEST(Featurizer, EveryImageEndsInIndicesOrErrors) {
  auto featurizer = Featurizer::Create({});
  ASSERT_TRUE(featurizer.ok()) << featurizer.status().ToString();
  ASSERT_EQ((*featurizer)->dim(), 1280);
  const auto jpeg = testing::ReadFileBytes(testing::SharedDir() / "models/test-images/cat.bmp");
  const std::vector<uint8_t> empty;
  const std::string text = "not an image";
  const std::vector<uint8_t> text_bytes(text.begin(), text.end());
  const std::vector<std::span<const uint8_t>> batch = {jpeg, empty, text_bytes, jpeg};
  auto result = (*featurizer)->Featurize(batch);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->indices, (std::vector<int64_t>{0, 3}));
  ASSERT_EQ(result->errors.size(), 2u);
  EXPECT_EQ(result->errors[0].index, 1);
  EXPECT_EQ(result->errors[0].stage, "decode");
  EXPECT_EQ(result->errors[1].index, 2);
  ASSERT_EQ(result->features.size(), 2u * 1280u);
  for (int j = 0; j < 1280; ++j) {
    ASSERT_TRUE(std::isfinite(result->features[j]));
    EXPECT_EQ(result->features[j], result->features[1280 + j]);  // same image, same descriptor
  }
}

TEST(Featurizer, EmptyBatchAndUnknownModel) {
  auto featurizer = Featurizer::Create({});
  ASSERT_TRUE(featurizer.ok());
  auto result = (*featurizer)->Featurize({});
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->indices.empty());
  FeaturizerOptions bad;
  bad.model = "no_such_model";
  EXPECT_EQ(Featurizer::Create(bad).status().code(), StatusCode::kNotFound);
}

// A backend that throws (as OpenCV or an allocation may) fails the batch's images as extract
// errors: the caller (a Python interpreter, a Spark executor) gets errors, not an exception.
TEST(Featurizer, AnExceptionInInferenceBecomesErrors) {
  FeaturizerOptions options;
  options.backend = testing::ThrowingBackend();
  options.threads = 2;
  auto featurizer = Featurizer::Create(options);
  ASSERT_TRUE(featurizer.ok()) << featurizer.status().ToString();
  const auto jpeg =
      testing::ReadFileBytes(testing::FruitsMiniDir() / "Training" / "Cherry 3" / "r0_0.jpg");
  const std::vector<std::span<const uint8_t>> images(4, std::span<const uint8_t>(jpeg));
  auto first = (*featurizer)->Featurize(images);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->errors.empty());
  auto second = (*featurizer)->Featurize(images);  // the call that throws
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_EQ(second->errors.size(), 4u);
  EXPECT_EQ(second->errors[0].stage, "extract");
  EXPECT_NE(second->errors[0].message.find("library failure inside a worker thread"),
            std::string::npos)
      << second->errors[0].message;
}

}  // namespace
}  // namespace orchard
