#include "orchard/pca.h"

#include <gtest/gtest.h>
#include <lapacke.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "reduce/pca_internal.h"

namespace orchard {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, std::fabs(a[i] - b[i]));
  }
  return m;
}

bool BitEqual(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// n x d rows x_i = offset + sum_l g_il * decay^l * r_l, with Gaussian g and random directions
// r_l: a covariance whose spectrum decays geometrically, with well separated eigenvalues.
std::vector<float> DecayingData(int n, int d, uint64_t seed, double decay = 0.85,
                                double offset = 3.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> mix(static_cast<size_t>(d) * d);
  for (double& v : mix) v = normal(rng) / std::sqrt(static_cast<double>(d));
  std::vector<float> x(static_cast<size_t>(n) * d);
  std::vector<double> g(d);
  for (int i = 0; i < n; ++i) {
    double scale = 1.0;
    for (int l = 0; l < d; ++l, scale *= decay) g[l] = normal(rng) * scale;
    for (int j = 0; j < d; ++j) {
      double v = offset * (1.0 + 0.1 * j);
      for (int l = 0; l < d; ++l) v += g[l] * mix[static_cast<size_t>(l) * d + j];
      x[static_cast<size_t>(i) * d + j] = static_cast<float>(v);
    }
  }
  return x;
}

PcaAccumulator MustCreate(int64_t dim) {
  auto acc = PcaAccumulator::Create(dim);
  EXPECT_TRUE(acc.ok()) << acc.status().ToString();
  return acc.MoveValue();
}

PcaAccumulator AccumulateAll(int n, int d, const std::vector<float>& x, int batch) {
  PcaAccumulator acc = MustCreate(d);
  for (int start = 0; start < n; start += batch) {
    const int rows = std::min(batch, n - start);
    EXPECT_TRUE(acc.Accumulate(rows, x.data() + static_cast<size_t>(start) * d).ok());
  }
  return acc;
}

PcaModel MustFit(const PcaAccumulator& acc, PcaOptions options) {
  auto model = FitPca(acc, options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? model.MoveValue() : PcaModel{};
}

// The independent reference: SVD of the centred data matrix, in double.
struct Reference {
  std::vector<double> variance;  // min(n, d) eigenvalues of the covariance, descending
  std::vector<double> vt;        // min(n, d) x d right singular vectors
  std::vector<double> centred;   // n x d
  double total = 0.0;            // sum of the squared singular values / (n - 1)
};

Reference SvdReference(int n, int d, const std::vector<float>& x) {
  Reference ref;
  std::vector<double> mean(d, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) mean[j] += x[static_cast<size_t>(i) * d + j];
  }
  for (double& m : mean) m /= n;
  ref.centred.resize(static_cast<size_t>(n) * d);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) {
      const size_t at = static_cast<size_t>(i) * d + j;
      ref.centred[at] = x[at] - mean[j];
    }
  }
  const int r = std::min(n, d);
  std::vector<double> a = ref.centred, s(r), u(static_cast<size_t>(n) * r);
  ref.vt.resize(static_cast<size_t>(r) * d);
  const lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', n, d, a.data(), d, s.data(),
                                         u.data(), r, ref.vt.data(), d);
  EXPECT_EQ(info, 0);
  for (double sv : s) {
    ref.variance.push_back(sv * sv / (n - 1));
    ref.total += sv * sv / (n - 1);
  }
  return ref;
}

double Dot(const double* a, const double* b, int d) {
  double s = 0.0;
  for (int j = 0; j < d; ++j) s += a[j] * b[j];
  return s;
}

// Unit, mutually orthogonal rows, each with its largest-magnitude entry positive.
void ExpectOrthonormalAndSigned(const PcaModel& m) {
  const int d = static_cast<int>(m.dim);
  for (int a = 0; a < m.k; ++a) {
    const double* ca = m.components.data() + static_cast<size_t>(a) * d;
    for (int b = a; b < m.k; ++b) {
      const double* cb = m.components.data() + static_cast<size_t>(b) * d;
      EXPECT_NEAR(Dot(ca, cb, d), a == b ? 1.0 : 0.0, 1e-12) << a << "," << b;
    }
    int arg = 0;
    for (int j = 1; j < d; ++j) {
      if (std::fabs(ca[j]) > std::fabs(ca[arg])) arg = j;
    }
    EXPECT_GT(ca[arg], 0.0) << "component " << a;
  }
}

TEST(FitPcaTest, MatchesSvdOnRandomData) {
  const int n = 500, d = 40;
  const std::vector<float> x = DecayingData(n, d, 7);
  const PcaAccumulator acc = AccumulateAll(n, d, x, 37);
  const PcaModel m = MustFit(acc, {.components = d});
  const Reference ref = SvdReference(n, d, x);

  ASSERT_EQ(m.dim, d);
  ASSERT_EQ(m.k, d);
  EXPECT_EQ(m.n_samples, n);
  ASSERT_EQ(m.components.size(), static_cast<size_t>(d) * d);
  EXPECT_NEAR(m.total_variance, ref.total, 1e-10 * ref.total);
  double worst_cos = 1.0, worst_rel = 0.0, ratio_sum = 0.0;
  for (int c = 0; c < d; ++c) {
    const double cosine = std::fabs(Dot(m.components.data() + c * d, ref.vt.data() + c * d, d));
    const double rel = std::fabs(m.explained_variance[c] - ref.variance[c]) / ref.variance[c];
    EXPECT_GE(cosine, 0.9999) << "component " << c;
    EXPECT_LE(rel, 1e-6) << "component " << c;
    EXPECT_DOUBLE_EQ(m.explained_variance_ratio[c], m.explained_variance[c] / m.total_variance);
    worst_cos = std::min(worst_cos, cosine);
    worst_rel = std::max(worst_rel, rel);
    ratio_sum += m.explained_variance_ratio[c];
  }
  EXPECT_NEAR(ratio_sum, 1.0, 1e-12);
  ExpectOrthonormalAndSigned(m);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "1-|cos| %.3g, variance rel error %.3g", 1.0 - worst_cos,
                worst_rel);
  RecordProperty("worst_error", buf);
}

// Fewer images than dimensions, duplicated and constant columns, integer patterns: rank
// deficient, so most eigenvalues are (numerically) zero.
TEST(FitPcaTest, MatchesSvdOnStructuredRankDeficientData) {
  const int n = 30, d = 50;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (int i = 0; i < n; ++i) {
    float* row = x.data() + static_cast<size_t>(i) * d;
    for (int j = 0; j < 20; ++j) row[j] = static_cast<float>(j + normal(rng) * std::pow(0.8, j));
    for (int j = 20; j < 30; ++j) row[j] = 2.0f * row[j - 20];
    for (int j = 30; j < 40; ++j) row[j] = static_cast<float>(j);
    for (int j = 40; j < 50; ++j) row[j] = static_cast<float>((i * (j - 37)) % 7 - 3);
  }
  const PcaAccumulator acc = AccumulateAll(n, d, x, 8);
  const PcaModel m = MustFit(acc, {.components = d});
  const Reference ref = SvdReference(n, d, x);
  const double top = ref.variance[0];
  EXPECT_NEAR(m.total_variance, ref.total, 1e-10 * ref.total);

  int rank = 0;
  while (rank < static_cast<int>(ref.variance.size()) && ref.variance[rank] > 1e-9 * top) ++rank;
  EXPECT_GE(rank, 20);
  EXPECT_LE(rank, n - 1);
  int compared = 0;
  for (int c = 0; c < rank; ++c) {
    EXPECT_LE(std::fabs(m.explained_variance[c] - ref.variance[c]) / ref.variance[c], 1e-6)
        << "component " << c;
    // Compare directions only where the eigenvalue is well separated from its neighbours.
    const double gap = std::min(c > 0 ? ref.variance[c - 1] - ref.variance[c] : top,
                                ref.variance[c] - ref.variance[c + 1]);
    if (gap < 1e-4 * ref.variance[c]) continue;
    ++compared;
    EXPECT_GE(std::fabs(Dot(m.components.data() + c * d, ref.vt.data() + c * d, d)), 0.9999)
        << "component " << c;
  }
  EXPECT_GE(compared, rank - 2);
  // The remaining components span the null space: zero variance, orthogonal to the data.
  for (int c = rank; c < d; ++c) {
    EXPECT_GE(m.explained_variance[c], 0.0);
    EXPECT_LE(m.explained_variance[c], 1e-10 * top) << "component " << c;
    double norm2 = 0.0;
    for (int i = 0; i < n; ++i) {
      const double p = Dot(ref.centred.data() + static_cast<size_t>(i) * d,
                           m.components.data() + static_cast<size_t>(c) * d, d);
      norm2 += p * p;
    }
    EXPECT_LE(std::sqrt(norm2 / (n - 1)), 1e-6 * std::sqrt(top)) << "component " << c;
  }
  ExpectOrthonormalAndSigned(m);
}

// Columns built from a Hadamard matrix: exactly orthogonal, zero-mean, so the covariance is
// diagonal with variances proportional to 16, 9, 4, 1 (ratios 16/30, 9/30, 4/30, 1/30) in
// columns 2, 5, 1, 3, and columns 0 and 4 constant.
struct HadamardDesign {
  static constexpr int kN = 8, kD = 6;
  std::vector<float> x;
  HadamardDesign() : x(kN * kD) {
    auto h = [](int i, int j) { return (std::popcount(unsigned(i & j)) % 2) ? -1.0f : 1.0f; };
    for (int i = 0; i < kN; ++i) {
      float* row = x.data() + i * kD;
      row[0] = 7.0f;
      row[1] = 100.0f + 2.0f * h(i, 3);
      row[2] = -5.0f - 4.0f * h(i, 1);
      row[3] = 1.0f * h(i, 4);
      row[4] = -3.0f;
      row[5] = 0.5f + 3.0f * h(i, 2);
    }
  }
};

TEST(FitPcaTest, VarianceThresholdPicksSmallestK) {
  const HadamardDesign design;
  const PcaAccumulator acc = AccumulateAll(design.kN, design.kD, design.x, 3);
  struct Case {
    double variance;
    int64_t k;
  };
  const Case cases[] = {
      {1e-9, 1}, {0.5, 1},       {16.0 / 30, 1},        {16.0 / 30 + 1e-9, 2}, {25.0 / 30, 2},
      {0.84, 3}, {29.0 / 30, 3}, {29.0 / 30 + 1e-9, 4}, {0.999999, 4},         {1.0, 4},
  };
  for (const Case& c : cases) {
    const PcaModel m = MustFit(acc, {.variance = c.variance});
    EXPECT_EQ(m.k, c.k) << "variance " << c.variance;
  }
  const PcaModel m = MustFit(acc, {.variance = 1.0});
  ASSERT_EQ(m.k, 4);
  const double unit = 8.0 / 7.0;  // n / (n - 1) for +-1 columns
  const double expected_variance[] = {16 * unit, 9 * unit, 4 * unit, 1 * unit};
  const int expected_axis[] = {2, 5, 1, 3};
  EXPECT_NEAR(m.total_variance, 30 * unit, 1e-13);
  for (int c = 0; c < 4; ++c) {
    EXPECT_NEAR(m.explained_variance[c], expected_variance[c], 1e-12);
    EXPECT_NEAR(m.explained_variance_ratio[c], expected_variance[c] / (30 * unit), 1e-14);
    for (int j = 0; j < design.kD; ++j) {
      EXPECT_NEAR(m.components[c * design.kD + j], j == expected_axis[c] ? 1.0 : 0.0, 1e-12);
    }
  }
  EXPECT_DOUBLE_EQ(m.mean[1], 100.0);
  EXPECT_DOUBLE_EQ(m.mean[0], 7.0);
}

// Variances near FLT_MAX^2 exceed the range where LAPACK's tridiagonal solvers are safe, so
// FitPca scales the covariance first, as dsyevr does, and reports unscaled eigenvalues.
TEST(FitPcaTest, HugeValuesAreScaledForLapack) {
  const HadamardDesign design;
  const double s = 7.5e37;  // the largest column then reaches 3e38, close to FLT_MAX
  const double offsets[HadamardDesign::kD] = {7.0, 100.0, -5.0, 0.0, -3.0, 0.5};
  std::vector<float> big(design.x.size());
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<float>((design.x[i] - offsets[i % design.kD]) * s);
  }
  const PcaModel m = MustFit(AccumulateAll(design.kN, design.kD, big, 8), {.components = 4});
  const double unit = 8.0 / 7.0 * s * s;
  ASSERT_GT(16 * unit, 1e77);
  const double expected_variance[] = {16 * unit, 9 * unit, 4 * unit, 1 * unit};
  const int expected_axis[] = {2, 5, 1, 3};
  for (int c = 0; c < 4; ++c) {
    ASSERT_TRUE(std::isfinite(m.explained_variance[c]));
    EXPECT_NEAR(m.explained_variance[c] / expected_variance[c], 1.0, 1e-6);
    for (int j = 0; j < design.kD; ++j) {
      EXPECT_NEAR(m.components[c * design.kD + j], j == expected_axis[c] ? 1.0 : 0.0, 1e-12);
    }
  }
  EXPECT_NEAR(m.total_variance / (30 * unit), 1.0, 1e-6);
}

TEST(FitPcaTest, ZeroVarianceData) {
  const int n = 4, d = 3;
  const std::vector<float> x(n * d, 2.5f);
  const PcaAccumulator acc = AccumulateAll(n, d, x, n);
  const PcaModel by_variance = MustFit(acc, {.variance = 0.9});
  EXPECT_EQ(by_variance.k, 1);
  EXPECT_EQ(by_variance.total_variance, 0.0);
  EXPECT_EQ(by_variance.explained_variance[0], 0.0);
  EXPECT_EQ(by_variance.explained_variance_ratio[0], 0.0);
  const PcaModel all = MustFit(acc, {.components = d});
  for (double r : all.explained_variance_ratio) EXPECT_EQ(r, 0.0);
  ExpectOrthonormalAndSigned(all);
}

TEST(FitPcaTest, MoreComponentsThanSamplesIsAllowed) {
  const int n = 5, d = 12;
  const std::vector<float> x = DecayingData(n, d, 3);
  const PcaModel m = MustFit(AccumulateAll(n, d, x, 2), {.components = d});
  EXPECT_EQ(m.k, d);
  for (int c = n - 1; c < d; ++c) EXPECT_LE(m.explained_variance[c], 1e-12);
  ExpectOrthonormalAndSigned(m);
}

TEST(FitPcaTest, Deterministic) {
  const int n = 300, d = 64;
  const std::vector<float> x = DecayingData(n, d, 5);
  const PcaModel a = MustFit(AccumulateAll(n, d, x, 16), {.variance = 0.95});
  const PcaModel b = MustFit(AccumulateAll(n, d, x, 16), {.variance = 0.95});
  EXPECT_EQ(a.k, b.k);
  EXPECT_TRUE(BitEqual(a.components, b.components));
  EXPECT_TRUE(BitEqual(a.explained_variance, b.explained_variance));
  EXPECT_TRUE(BitEqual(a.mean, b.mean));
  EXPECT_EQ(std::bit_cast<uint64_t>(a.total_variance), std::bit_cast<uint64_t>(b.total_variance));
}

TEST(FitPcaTest, ComponentsAndVarianceModesAgree) {
  const int n = 200, d = 30;
  const std::vector<float> x = DecayingData(n, d, 31);
  const PcaAccumulator acc = AccumulateAll(n, d, x, 50);
  const PcaModel by_variance = MustFit(acc, {.variance = 0.8});
  ASSERT_GT(by_variance.k, 1);
  ASSERT_LT(by_variance.k, d);
  const PcaModel by_count = MustFit(acc, {.components = by_variance.k});
  EXPECT_TRUE(BitEqual(by_variance.components, by_count.components));
  EXPECT_TRUE(BitEqual(by_variance.explained_variance, by_count.explained_variance));
  // The leading components do not depend on how many are requested.
  const PcaModel all = MustFit(acc, {.components = d});
  EXPECT_LE(MaxAbsDiff(std::vector<double>(all.components.begin(),
                                           all.components.begin() + by_count.components.size()),
                       by_count.components),
            1e-12);
  EXPECT_TRUE(BitEqual(std::vector<double>(all.explained_variance.begin(),
                                           all.explained_variance.begin() + by_count.k),
                       by_count.explained_variance));
}

TEST(PcaInternalTest, ArgMaxAbsTakesFirstOnTies) {
  const double v[] = {0.5, -0.7, 0.7, -0.7, 0.1};
  EXPECT_EQ(pca_internal::ArgMaxAbs(v, 5), 1);
  EXPECT_EQ(pca_internal::ArgMaxAbs(v + 2, 3), 0);
  EXPECT_EQ(pca_internal::ArgMaxAbs(v, 1), 0);
}

// Both tridiagonal solvers (MRRR and its bisection fallback) give the same eigenpairs, including
// a cluster of equal eigenvalues from a split-off block.
TEST(PcaInternalTest, TridiagonalSolversAgree) {
  const int d = 60;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::vector<double> diag(d), off(d - 1);
  for (double& v : diag) v = normal(rng);
  for (double& v : off) v = normal(rng);
  for (int i = 40; i < d; ++i) diag[i] = 0.0;  // a zero block: eigenvalue 0, multiplicity 20
  for (int i = 39; i < d - 1; ++i) off[i] = 0.0;
  for (const int k : {1, 7, 30, d}) {
    SCOPED_TRACE("k = " + std::to_string(k));
    std::vector<double> w1, w2, z1, z2;
    ASSERT_TRUE(pca_internal::TopTridiagonalEigenpairs(d, diag.data(), off.data(), k, &w1, &z1,
                                                       pca_internal::TridiagonalSolver::kMrrr)
                    .ok());
    ASSERT_TRUE(pca_internal::TopTridiagonalEigenpairs(d, diag.data(), off.data(), k, &w2, &z2,
                                                       pca_internal::TridiagonalSolver::kBisection)
                    .ok());
    ASSERT_EQ(w1.size(), static_cast<size_t>(k));
    ASSERT_EQ(w2.size(), static_cast<size_t>(k));
    ASSERT_EQ(z1.size(), static_cast<size_t>(k) * d);
    ASSERT_EQ(z2.size(), static_cast<size_t>(k) * d);
    for (int c = 0; c < k; ++c) {
      EXPECT_NEAR(w1[c], w2[c], 1e-12);
      if (c > 0) {
        EXPECT_LE(w1[c - 1], w1[c]);
        EXPECT_LE(w2[c - 1], w2[c]);
      }
      // Residual ||T z - w z|| for both.
      for (const auto& [w, z] : {std::pair{&w1, &z1}, std::pair{&w2, &z2}}) {
        const double* v = z->data() + static_cast<size_t>(c) * d;
        double res = 0.0;
        for (int i = 0; i < d; ++i) {
          double t = diag[i] * v[i] - (*w)[c] * v[i];
          if (i > 0) t += off[i - 1] * v[i - 1];
          if (i + 1 < d) t += off[i] * v[i + 1];
          res += t * t;
        }
        EXPECT_LE(std::sqrt(res), 1e-12);
      }
      // Same vector up to sign where the eigenvalue is simple.
      const bool simple =
          (c == 0 || w1[c] - w1[c - 1] > 1e-6) && (c + 1 == k || w1[c + 1] - w1[c] > 1e-6);
      if (simple) {
        EXPECT_NEAR(std::fabs(Dot(z1.data() + c * d, z2.data() + c * d, d)), 1.0, 1e-10);
      }
    }
    // Orthonormal columns.
    for (const auto* z : {&z1, &z2}) {
      for (int a = 0; a < k; ++a) {
        for (int b = a; b < k; ++b) {
          EXPECT_NEAR(Dot(z->data() + a * d, z->data() + b * d, d), a == b ? 1.0 : 0.0, 1e-12);
        }
      }
    }
  }
}

TEST(PcaAccumulatorTest, MergeOfRandomSplitsMatchesOnePass) {
  const int n = 500, d = 40;
  const std::vector<float> x = DecayingData(n, d, 21);
  const PcaAccumulator one_pass = AccumulateAll(n, d, x, n);
  const std::vector<double> m_ref = one_pass.CoMoment();
  const double mean_scale = MaxAbs(one_pass.mean());
  const double m_scale = MaxAbs(m_ref);
  const PcaModel fit_ref = MustFit(one_pass, {.components = 10});
  const PcaModel fit_ref_var = MustFit(one_pass, {.variance = 0.9});

  for (int trial = 0; trial < 20; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    std::mt19937_64 rng(1000 + trial);
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);

    // Cut the shuffled rows into parts of random sizes, always including an empty part and
    // a single-row part.
    std::vector<PcaAccumulator> parts;
    parts.push_back(MustCreate(d));
    int pos = 0;
    bool single_done = false;
    while (pos < n) {
      int size = single_done ? std::uniform_int_distribution<int>(0, 90)(rng) : 1;
      single_done = true;
      size = std::min(size, n - pos);
      PcaAccumulator part = MustCreate(d);
      int done = 0;
      while (done < size) {
        const int batch = std::uniform_int_distribution<int>(1, size - done)(rng);
        std::vector<float> rows;
        for (int i = 0; i < batch; ++i) {
          const float* src = x.data() + static_cast<size_t>(order[pos + done + i]) * d;
          rows.insert(rows.end(), src, src + d);
        }
        ASSERT_TRUE(part.Accumulate(batch, rows.data()).ok());
        done += batch;
      }
      parts.push_back(std::move(part));
      pos += size;
    }
    std::shuffle(parts.begin(), parts.end(), rng);

    PcaAccumulator merged = MustCreate(d);
    if (trial % 2 == 0) {
      for (const PcaAccumulator& p : parts) ASSERT_TRUE(merged.Merge(p).ok());
    } else {
      // Pairwise tree, as Spark's treeAggregate does.
      while (parts.size() > 1) {
        std::vector<PcaAccumulator> next;
        for (size_t i = 0; i + 1 < parts.size(); i += 2) {
          ASSERT_TRUE(parts[i].Merge(parts[i + 1]).ok());
          next.push_back(std::move(parts[i]));
        }
        if (parts.size() % 2 == 1) next.push_back(std::move(parts.back()));
        parts = std::move(next);
      }
      ASSERT_TRUE(merged.Merge(parts[0]).ok());
    }

    ASSERT_EQ(merged.count(), n);
    EXPECT_LE(MaxAbsDiff(merged.mean(), one_pass.mean()), 1e-12 * mean_scale);
    EXPECT_LE(MaxAbsDiff(merged.CoMoment(), m_ref), 1e-12 * m_scale);

    const PcaModel fit = MustFit(merged, {.components = 10});
    EXPECT_LE(MaxAbsDiff(fit.components, fit_ref.components), 1e-9);
    for (int c = 0; c < 10; ++c) {
      EXPECT_NEAR(fit.explained_variance[c], fit_ref.explained_variance[c],
                  1e-10 * fit_ref.explained_variance[c]);
    }
    const PcaModel fit_var = MustFit(merged, {.variance = 0.9});
    EXPECT_EQ(fit_var.k, fit_ref_var.k);
  }
}

TEST(PcaAccumulatorTest, CoMomentIsSymmetricAndMatchesNaiveSums) {
  const int n = 50, d = 7;
  const std::vector<float> x = DecayingData(n, d, 2);
  const PcaAccumulator acc = AccumulateAll(n, d, x, 16);
  std::vector<double> mean(d, 0.0), naive(d * d, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) mean[j] += x[i * d + j] / static_cast<double>(n);
  }
  for (int i = 0; i < n; ++i) {
    for (int a = 0; a < d; ++a) {
      for (int b = 0; b < d; ++b) {
        naive[a * d + b] += (x[i * d + a] - mean[a]) * (x[i * d + b] - mean[b]);
      }
    }
  }
  const std::vector<double> m = acc.CoMoment();
  for (int a = 0; a < d; ++a) {
    for (int b = 0; b < d; ++b) EXPECT_EQ(m[a * d + b], m[b * d + a]);
  }
  EXPECT_LE(MaxAbsDiff(m, naive), 1e-12 * MaxAbs(naive));
  EXPECT_LE(MaxAbsDiff(acc.mean(), mean), 1e-14 * MaxAbs(mean));
}

TEST(PcaAccumulatorTest, EmptyBatchesAndSelfMerge) {
  const int n = 40, d = 6;
  const std::vector<float> x = DecayingData(n, d, 4);
  PcaAccumulator acc = MustCreate(d);
  EXPECT_TRUE(acc.Accumulate(0, nullptr).ok());
  EXPECT_EQ(acc.count(), 0);
  EXPECT_EQ(acc.mean(), std::vector<double>(d, 0.0));
  ASSERT_TRUE(acc.Accumulate(n, x.data()).ok());
  const PcaAccumulator before = acc;
  ASSERT_TRUE(acc.Merge(acc).ok());
  EXPECT_EQ(acc.count(), 2 * n);
  EXPECT_TRUE(BitEqual(acc.mean(), before.mean()));
  std::vector<double> doubled = before.CoMoment();
  for (double& v : doubled) v *= 2;
  EXPECT_TRUE(BitEqual(acc.CoMoment(), doubled));
}

TEST(PcaAccumulatorTest, SerializeRoundTripIsBitExact) {
  const int n = 100, d = 40;
  const std::vector<float> x = DecayingData(n, d, 8);
  PcaAccumulator acc = AccumulateAll(n / 2, d, x, 16);
  const std::vector<uint8_t> bytes = acc.Serialize();
  EXPECT_EQ(bytes.size(), pca_internal::SerialSize(d));
  auto back = PcaAccumulator::Deserialize(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->dim(), d);
  EXPECT_EQ(back->count(), n / 2);
  EXPECT_TRUE(BitEqual(back->mean(), acc.mean()));
  EXPECT_TRUE(BitEqual(back->CoMoment(), acc.CoMoment()));
  EXPECT_EQ(back->Serialize(), bytes);

  // A restored accumulator continues exactly like the original.
  const float* rest = x.data() + static_cast<size_t>(n / 2) * d;
  ASSERT_TRUE(acc.Accumulate(n / 2, rest).ok());
  ASSERT_TRUE(back->Accumulate(n / 2, rest).ok());
  EXPECT_EQ(back->Serialize(), acc.Serialize());

  const PcaAccumulator empty = MustCreate(3);
  auto empty_back = PcaAccumulator::Deserialize(empty.Serialize());
  ASSERT_TRUE(empty_back.ok()) << empty_back.status().ToString();
  EXPECT_EQ(empty_back->count(), 0);
  EXPECT_EQ(empty_back->Serialize(), empty.Serialize());
}

TEST(PcaAccumulatorTest, DeserializeRejectsCorruptAndTruncatedBytes) {
  const int n = 5, d = 3;
  const std::vector<float> x = DecayingData(n, d, 9);
  const std::vector<uint8_t> good = AccumulateAll(n, d, x, 2).Serialize();
  ASSERT_TRUE(PcaAccumulator::Deserialize(good).ok());

  for (size_t pos = 0; pos < good.size(); ++pos) {
    for (uint8_t flip : {0x01, 0x10, 0x80, 0xFF}) {
      std::vector<uint8_t> bad = good;
      bad[pos] ^= flip;
      const auto r = PcaAccumulator::Deserialize(bad);
      ASSERT_FALSE(r.ok()) << "byte " << pos << " ^ " << int(flip);
      const StatusCode expected =
          (pos >= 4 && pos < 8) ? StatusCode::kUnsupported : StatusCode::kCorruptData;
      EXPECT_EQ(r.status().code(), expected) << "byte " << pos << ": " << r.status().ToString();
    }
  }
  for (size_t len = 0; len < good.size(); ++len) {
    const auto r = PcaAccumulator::Deserialize(std::span<const uint8_t>(good.data(), len));
    ASSERT_FALSE(r.ok()) << "length " << len;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_EQ(PcaAccumulator::Deserialize(longer).status().code(), StatusCode::kCorruptData);

  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<uint8_t> garbage(std::uniform_int_distribution<int>(0, 200)(rng));
    for (uint8_t& b : garbage) b = static_cast<uint8_t>(rng());
    if (trial % 2 == 0 && garbage.size() >= 8) {  // past the magic and version checks
      std::copy(good.begin(), good.begin() + 8, garbage.begin());
    }
    EXPECT_FALSE(PcaAccumulator::Deserialize(garbage).ok());
  }
}

// Payloads with a valid checksum but impossible contents.
std::vector<uint8_t> Forge(int64_t dim, int64_t count, const std::vector<double>& mean,
                           const std::vector<double>& upper, size_t size) {
  std::vector<uint8_t> out(size, 0);
  auto put = [&](size_t at, uint64_t v, int width) {
    for (int b = 0; b < width && at + b < out.size(); ++b) out[at + b] = uint8_t(v >> (8 * b));
  };
  put(0, pca_internal::kSerialMagic, 4);
  put(4, pca_internal::kSerialVersion, 4);
  put(8, static_cast<uint64_t>(dim), 8);
  put(16, static_cast<uint64_t>(count), 8);
  size_t at = pca_internal::kSerialHeaderBytes;
  for (double v : mean) put(at, std::bit_cast<uint64_t>(v), 8), at += 8;
  for (double v : upper) put(at, std::bit_cast<uint64_t>(v), 8), at += 8;
  if (size >= 8) {
    const size_t body = size - 8;
    put(body, pca_internal::SerialChecksum(std::span<const uint8_t>(out.data(), body)), 8);
  }
  return out;
}

TEST(PcaAccumulatorTest, DeserializeValidatesContents) {
  const size_t size = pca_internal::SerialSize(2);
  const std::vector<double> mean = {1.0, 2.0};
  const std::vector<double> upper = {4.0, 1.0, 3.0};  // (0,0) (0,1) (1,1)
  auto ok = PcaAccumulator::Deserialize(Forge(2, 5, mean, upper, size));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->CoMoment(), (std::vector<double>{4.0, 1.0, 1.0, 3.0}));

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<std::vector<uint8_t>> bad = {
      Forge(2, -1, mean, upper, size),
      Forge(2, 5, {nan, 2.0}, upper, size),
      Forge(2, 5, mean, {4.0, inf, 3.0}, size),
      Forge(2, 5, mean, {4.0, 1.0, -3.0}, size),
      Forge(2, 0, mean, {0.0, 0.0, 0.0}, size),
      Forge(2, 1, mean, upper, size),
      Forge(0, 5, {}, {}, pca_internal::kSerialHeaderBytes + 8),
      Forge(-1, 5, {}, {}, pca_internal::kSerialHeaderBytes + 8),
      Forge(int64_t{1} << 40, 5, mean, upper, size),
      Forge(3, 5, mean, upper, size),  // length of a dim-2 payload
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    const auto r = PcaAccumulator::Deserialize(bad[i]);
    ASSERT_FALSE(r.ok()) << "case " << i;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << "case " << i;
  }
}

TEST(PcaTransformTest, MatchesNaiveDoubleLoop) {
  const int n = 600, d = 40, k = 7;  // 600 rows: two full blocks and a partial one
  const std::vector<float> x = DecayingData(n, d, 12);
  const PcaModel m = MustFit(AccumulateAll(n, d, x, 64), {.components = k});
  std::vector<float> out(static_cast<size_t>(n) * k, -1.0f);
  ASSERT_TRUE(m.Transform(n, x.data(), out.data()).ok());

  std::vector<double> column_sum(k, 0.0), column_sq(k, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int c = 0; c < k; ++c) {
      double ref = 0.0, magnitude = 0.0;
      for (int j = 0; j < d; ++j) {
        const double term =
            (static_cast<double>(x[i * d + j]) - m.mean[j]) * m.components[c * d + j];
        ref += term;
        magnitude += std::fabs(term);
      }
      const float got = out[i * k + c];
      EXPECT_LE(std::fabs(got - ref), 2 * FLT_EPSILON * std::fabs(ref) + 1e-13 * magnitude)
          << "row " << i << " component " << c;
      column_sum[c] += got;
      column_sq[c] += static_cast<double>(got) * got;
    }
  }
  // Projected training data has zero mean and the explained variances.
  for (int c = 0; c < k; ++c) {
    EXPECT_NEAR(column_sum[c] / n, 0.0, 1e-5);
    EXPECT_NEAR(column_sq[c] / (n - 1), m.explained_variance[c], 1e-5 * m.explained_variance[c]);
  }
  EXPECT_TRUE(m.Transform(0, nullptr, nullptr).ok());
}

TEST(PcaTransformTest, Errors) {
  const int n = 300, d = 5;
  std::vector<float> x = DecayingData(n, d, 13);
  const PcaModel m = MustFit(AccumulateAll(n, d, x, n), {.components = 2});
  std::vector<float> out(n * 2);
  x[290 * d + 4] = std::numeric_limits<float>::quiet_NaN();
  Status st = m.Transform(n, x.data(), out.data());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(st.message(), "row 290 ")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "column 4")) << st.message();
  EXPECT_EQ(m.Transform(-1, x.data(), out.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Transform(1, nullptr, out.data()).code(), StatusCode::kInvalidArgument);

  PcaModel broken = m;
  broken.components.pop_back();
  EXPECT_EQ(broken.Transform(1, x.data(), out.data()).code(), StatusCode::kInvalidArgument);
  broken = m;
  broken.mean.push_back(0.0);
  EXPECT_EQ(broken.Transform(1, x.data(), out.data()).code(), StatusCode::kInvalidArgument);
  broken = m;
  broken.k = 0;
  EXPECT_EQ(broken.Transform(1, x.data(), out.data()).code(), StatusCode::kInvalidArgument);
}

TEST(PcaAccumulatorTest, CreateErrors) {
  EXPECT_EQ(PcaAccumulator::Create(0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PcaAccumulator::Create(-3).status().code(), StatusCode::kInvalidArgument);
  const auto vgg = PcaAccumulator::Create(25088);
  ASSERT_EQ(vgg.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(vgg.status().message(),
            "descriptor dimension 25088 needs a 4.69 GiB co-moment matrix for exact PCA, over "
            "the limit of 8192 dims (--max-pca-dim); use --pooling avg or max, a smaller --size, "
            "or raise the limit");
  EXPECT_EQ(PcaAccumulator::Create(100, 50).status().code(), StatusCode::kResourceExhausted);
  // A small matrix is not "0.0 GiB".
  EXPECT_NE(PcaAccumulator::Create(1280, 100).status().message().find("needs a 12.5 MiB"),
            std::string::npos);
  EXPECT_TRUE(PcaAccumulator::Create(50, 50).ok());
}

TEST(PcaAccumulatorTest, NonFiniteInputIsRejectedAndLeavesStateUnchanged) {
  const int d = 4;
  std::vector<float> x = DecayingData(400, d, 14);
  PcaAccumulator acc = MustCreate(d);
  ASSERT_TRUE(acc.Accumulate(10, x.data()).ok());
  const std::vector<uint8_t> before = acc.Serialize();

  std::vector<float> batch(x.begin() + 10 * d, x.begin() + 15 * d);
  batch[3 * d + 2] = std::numeric_limits<float>::quiet_NaN();
  Status st = acc.Accumulate(5, batch.data());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(st.message(), "row 3 of the batch (row 13 overall)")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "column 2")) << st.message();

  // A bad row in a later block must not leave the earlier blocks applied.
  std::vector<float> big(x.begin(), x.begin() + 300 * d);
  big[290 * d] = -std::numeric_limits<float>::infinity();
  st = acc.Accumulate(300, big.data());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(st.message(), "row 290 of the batch")) << st.message();
  EXPECT_EQ(acc.Serialize(), before);

  EXPECT_EQ(acc.Accumulate(-1, x.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(acc.Accumulate(1, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(acc.Serialize(), before);
}

TEST(PcaAccumulatorTest, MergeDimensionMismatch) {
  PcaAccumulator a = MustCreate(4);
  const PcaAccumulator b = MustCreate(5);
  const Status st = a.Merge(b);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(st.message(), "dimension 4 and 5")) << st.message();
}

TEST(FitPcaTest, Errors) {
  const int d = 6;
  const std::vector<float> x = DecayingData(20, d, 15);
  PcaAccumulator acc = MustCreate(d);
  EXPECT_EQ(FitPca(acc, {.components = 1}).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(acc.Accumulate(1, x.data()).ok());
  const auto one = FitPca(acc, {.components = 1});
  EXPECT_EQ(one.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(one.status().message(), "PCA needs at least 2 images, got 1");

  ASSERT_TRUE(acc.Accumulate(19, x.data() + d).ok());
  const PcaOptions bad[] = {
      {},
      {.components = 2, .variance = 0.5},
      {.components = d + 1},
      {.components = -1},
      {.variance = 1.5},
      {.variance = -0.1},
      {.variance = std::numeric_limits<double>::quiet_NaN()},
  };
  for (const PcaOptions& o : bad) {
    EXPECT_EQ(FitPca(acc, o).status().code(), StatusCode::kInvalidArgument)
        << o.components << " " << o.variance;
  }
  EXPECT_TRUE(FitPca(acc, {.components = d}).ok());
  EXPECT_TRUE(FitPca(acc, {.variance = 1.0}).ok());
}

}  // namespace
}  // namespace orchard
