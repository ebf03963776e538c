// The pca.json reader (include/orchard/pca_io.h), as orchard.PcaModel.from_json reads a
// file (python/_orchard.cc): parse without exceptions, then PcaModelFromJson.
// Invariants: a model that is accepted has consistent shapes and finite numbers, writes back
// to JSON that reads back bit for bit, and can transform a vector.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "fuzz_util.h"
#include "orchard/pca_io.h"

using namespace orchard;

namespace {

bool AllFinite(const std::vector<double>& v) {
  for (double x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

bool BitEqual(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j =
      nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  const Result<PcaModel> model = PcaModelFromJson(j);
  if (!model.ok()) {
    FUZZ_CHECK(model.status().code() == StatusCode::kCorruptData);
    return 0;
  }
  const PcaModel& m = *model;
  FUZZ_CHECK(m.dim >= 1 && m.k >= 1 && m.k <= m.dim && m.n_samples >= 0);
  const size_t dim = static_cast<size_t>(m.dim), k = static_cast<size_t>(m.k);
  FUZZ_CHECK(m.mean.size() == dim && m.components.size() == k * dim);
  FUZZ_CHECK(m.explained_variance.size() == k && m.explained_variance_ratio.size() == k);
  FUZZ_CHECK(AllFinite(m.mean) && AllFinite(m.components) && AllFinite(m.explained_variance) &&
             AllFinite(m.explained_variance_ratio));
  FUZZ_CHECK(std::isfinite(m.total_variance) && m.total_variance >= 0.0);

  // Writing it back and reading that gives the same model, bit for bit.
  const std::string text = PcaModelToJson(m).dump();
  const Result<PcaModel> back = PcaModelFromJson(nlohmann::json::parse(text));
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->dim == m.dim && back->k == m.k && back->n_samples == m.n_samples);
  FUZZ_CHECK(BitEqual(back->mean, m.mean) && BitEqual(back->components, m.components));
  FUZZ_CHECK(BitEqual(back->explained_variance, m.explained_variance));
  FUZZ_CHECK(BitEqual(back->explained_variance_ratio, m.explained_variance_ratio));
  FUZZ_CHECK(std::memcmp(&back->total_variance, &m.total_variance, sizeof(double)) == 0);

  // A model that was accepted can be used.
  const std::vector<float> x(dim, 0.5f);
  std::vector<float> out(k);
  FUZZ_CHECK(m.Transform(1, x.data(), out.data()).ok());
  return 0;
}
