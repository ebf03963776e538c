#include "orchard/pca_io.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace orchard {
namespace {

using nlohmann::json;

bool BitEqual(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// A fitted model on random data, so that its doubles use all 53 bits.
PcaModel FittedModel(int n, int d, int k) {
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal;
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<float>(normal(rng) * (1.0 + static_cast<double>(i % d)) + 0.3);
  }
  auto acc = PcaAccumulator::Create(d);
  EXPECT_TRUE(acc.ok());
  EXPECT_TRUE(acc->Accumulate(n, x.data()).ok());
  auto model = FitPca(*acc, {.components = k});
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.MoveValue();
}

void ExpectSameModel(const PcaModel& a, const PcaModel& b) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.k, b.k);
  EXPECT_EQ(a.n_samples, b.n_samples);
  EXPECT_TRUE(BitEqual(a.mean, b.mean));
  EXPECT_TRUE(BitEqual(a.components, b.components));
  EXPECT_TRUE(BitEqual(a.explained_variance, b.explained_variance));
  EXPECT_TRUE(BitEqual(a.explained_variance_ratio, b.explained_variance_ratio));
  EXPECT_TRUE(BitEqual({a.total_variance}, {b.total_variance}));
}

TEST(PcaIoTest, RoundTripThroughTextIsExact) {
  const PcaModel model = FittedModel(200, 12, 5);
  const json j = PcaModelToJson(model);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("dim"), 12);
  EXPECT_EQ(j.at("k"), 5);
  EXPECT_EQ(j.at("n_samples"), 200);
  EXPECT_EQ(j.at("mean").size(), 12u);
  ASSERT_EQ(j.at("components").size(), 5u);
  for (const json& row : j.at("components")) EXPECT_EQ(row.size(), 12u);
  EXPECT_EQ(j.at("explained_variance").size(), 5u);
  EXPECT_EQ(j.at("explained_variance_ratio").size(), 5u);
  EXPECT_TRUE(j.at("total_variance").is_number_float());

  for (const int indent : {-1, 2}) {
    const json parsed = json::parse(j.dump(indent));
    auto back = PcaModelFromJson(parsed);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ExpectSameModel(*back, model);
  }
}

TEST(PcaIoTest, ExtremeDoublesRoundTrip) {
  PcaModel m;
  m.dim = 4;
  m.k = 1;
  m.n_samples = 2;
  m.mean = {-0.0, std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::max(),
            0.1};
  m.components = {1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0, 0.0};
  m.explained_variance = {std::numeric_limits<double>::min()};
  m.explained_variance_ratio = {1.0};
  m.total_variance = 1e-300;
  auto back = PcaModelFromJson(json::parse(PcaModelToJson(m).dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameModel(*back, m);
  EXPECT_TRUE(std::signbit(back->mean[0]));
}

TEST(PcaIoTest, IntegerValuedNumbersAreAccepted) {
  const json j = json::parse(R"({"dim": 2, "k": 1, "n_samples": 3, "mean": [1, 2.5],
      "components": [[0, 1]], "explained_variance": [4], "explained_variance_ratio": [1],
      "total_variance": 4})");
  auto m = PcaModelFromJson(j);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->mean, (std::vector<double>{1.0, 2.5}));
  EXPECT_EQ(m->components, (std::vector<double>{0.0, 1.0}));
  EXPECT_EQ(m->total_variance, 4.0);
}

TEST(PcaIoTest, RejectsBadJson) {
  const json good = PcaModelToJson(FittedModel(50, 3, 2));
  ASSERT_TRUE(PcaModelFromJson(good).ok());

  std::vector<std::pair<std::string, json>> cases;
  for (const char* key : {"dim", "k", "n_samples", "mean", "components", "explained_variance",
                          "explained_variance_ratio", "total_variance"}) {
    json j = good;
    j.erase(key);
    cases.emplace_back(std::string("missing ") + key, j);
    j = good;
    j[key] = "text";
    cases.emplace_back(std::string("string ") + key, j);
  }
  auto with = [&](const char* name, auto edit) {
    json j = good;
    edit(j);
    cases.emplace_back(name, j);
  };
  with("dim 0", [](json& j) { j["dim"] = 0; });
  with("dim negative", [](json& j) { j["dim"] = -3; });
  with("dim fractional", [](json& j) { j["dim"] = 3.5; });
  with("dim huge", [](json& j) { j["dim"] = std::numeric_limits<uint64_t>::max(); });
  with("dim larger than data", [](json& j) { j["dim"] = 4; });
  with("k 0", [](json& j) { j["k"] = 0; });
  with("k > dim", [](json& j) { j["k"] = 4; });
  with("k larger than data", [](json& j) { j["k"] = 3; });
  with("n_samples negative", [](json& j) { j["n_samples"] = -1; });
  with("short mean", [](json& j) { j["mean"].erase(0); });
  with("mean not numbers", [](json& j) { j["mean"][1] = nullptr; });
  with("mean object", [](json& j) { j["mean"] = json::object(); });
  with("missing row", [](json& j) { j["components"].erase(1); });
  with("extra row", [](json& j) { j["components"].push_back(j["components"][0]); });
  with("short row", [](json& j) { j["components"][1].erase(0); });
  with("row not array", [](json& j) { j["components"][0] = 1.0; });
  with("flat components", [](json& j) { j["components"] = j["mean"]; });
  with("nan in memory",
       [](json& j) { j["components"][0][0] = std::numeric_limits<double>::quiet_NaN(); });
  with("infinite total",
       [](json& j) { j["total_variance"] = std::numeric_limits<double>::infinity(); });
  with("negative total", [](json& j) { j["total_variance"] = -1.0; });
  with("long variance", [](json& j) { j["explained_variance"].push_back(1.0); });
  with("bool ratio", [](json& j) { j["explained_variance_ratio"][0] = true; });
  cases.emplace_back("array", json::array({1, 2}));
  cases.emplace_back("null", json());
  cases.emplace_back("discarded", json::parse("{bad", nullptr, /*allow_exceptions=*/false));

  for (const auto& [name, j] : cases) {
    const auto r = PcaModelFromJson(j);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << name;
    EXPECT_FALSE(r.status().message().empty()) << name;
  }

  json j = good;
  j.erase("mean");
  EXPECT_EQ(PcaModelFromJson(j).status().message(), "PCA model JSON: missing key \"mean\"");
}

TEST(PcaIoTest, NonFiniteModelValuesDoNotSurviveText) {
  PcaModel m = FittedModel(20, 3, 1);
  m.mean[1] = std::numeric_limits<double>::quiet_NaN();  // written as null
  EXPECT_EQ(PcaModelFromJson(json::parse(PcaModelToJson(m).dump())).status().code(),
            StatusCode::kCorruptData);
}

TEST(PcaIoTest, InconsistentModelYieldsRejectedJson) {
  PcaModel m = FittedModel(20, 3, 2);
  m.components.resize(4);  // 1.33 rows
  const json j = PcaModelToJson(m);
  EXPECT_EQ(PcaModelFromJson(j).status().code(), StatusCode::kCorruptData);
}

}  // namespace
}  // namespace orchard
