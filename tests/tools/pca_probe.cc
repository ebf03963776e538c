// Test helper: fits Orchard's PCA on a raw float32 (n, d) matrix and writes pca.json and
// the projection, so that Python tests can compare them with numpy. The rows are fed to
// `splits` accumulators of random sizes that are then merged in a shuffled order, the way
// threads or Spark partitions would.
//   pca_probe N D IN.f32 K SPLITS OUT.json OUT.f32
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "orchard/pca.h"
#include "orchard/pca_io.h"

namespace {

int Fail(const orchard::Status& status) {
  std::fprintf(stderr, "pca_probe: %s\n", status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: pca_probe N D IN.f32 K SPLITS OUT.json OUT.f32\n");
    return 2;
  }
  const int64_t n = std::stoll(argv[1]);
  const int64_t d = std::stoll(argv[2]);
  const int64_t k = std::stoll(argv[4]);
  const int splits = std::stoi(argv[5]);
  std::vector<float> x(static_cast<size_t>(n * d));
  std::ifstream in(argv[3], std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(x.data()),
               static_cast<std::streamsize>(x.size() * sizeof(float)))) {
    std::fprintf(stderr, "pca_probe: %s is too short\n", argv[3]);
    return 1;
  }
  std::mt19937 rng(42);
  std::vector<int64_t> cuts = {0, n};
  for (int s = 1; s < splits; ++s)
    cuts.push_back(std::uniform_int_distribution<int64_t>(0, n)(rng));
  std::sort(cuts.begin(), cuts.end());
  std::vector<orchard::PcaAccumulator> parts;
  for (size_t s = 0; s + 1 < cuts.size(); ++s) {
    auto acc = orchard::PcaAccumulator::Create(d);
    if (!acc.ok()) return Fail(acc.status());
    if (auto st = acc->Accumulate(cuts[s + 1] - cuts[s], x.data() + cuts[s] * d); !st.ok())
      return Fail(st);
    parts.push_back(acc.MoveValue());
  }
  std::shuffle(parts.begin(), parts.end(), rng);
  for (size_t s = 1; s < parts.size(); ++s) {
    if (auto st = parts[0].Merge(parts[s]); !st.ok()) return Fail(st);
  }
  orchard::PcaOptions options;
  options.components = k;
  auto model = orchard::FitPca(parts[0], options);
  if (!model.ok()) return Fail(model.status());
  std::ofstream(argv[6]) << orchard::PcaModelToJson(*model).dump() << "\n";
  std::vector<float> projected(static_cast<size_t>(n * model->k));
  if (auto st = model->Transform(n, x.data(), projected.data()); !st.ok()) return Fail(st);
  std::ofstream(argv[7], std::ios::binary)
      .write(reinterpret_cast<const char*>(projected.data()),
             static_cast<std::streamsize>(projected.size() * sizeof(float)));
  return 0;
}
