#include "orchard/pca_io.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace orchard {

namespace {

using nlohmann::json;

Status Corrupt(const std::string& message) {
  return Status::CorruptData("PCA model JSON: " + message);
}

Result<const json*> Field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return Corrupt(std::string("missing key \"") + key + "\"");
  return &*it;
}

Result<int64_t> GetInt(const json& j, const char* key) {
  ORCHARD_ASSIGN_OR_RETURN(const json* v, Field(j, key));
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Corrupt(std::string("\"") + key + "\" is out of range");
    }
    return static_cast<int64_t>(u);
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  return Corrupt(std::string("\"") + key + "\" must be an integer (got " + v->type_name() + ")");
}

// Why v is not a usable double, or an empty string if it is one.
std::string NumberProblem(const json& v) {
  if (!v.is_number()) return std::string("must be a number (got ") + v.type_name() + ")";
  if (!std::isfinite(v.get<double>())) return "is not finite";
  return "";
}

Result<double> ToDouble(const json& v, const std::string& where) {
  if (const std::string problem = NumberProblem(v); !problem.empty()) {
    return Corrupt(where + " " + problem);
  }
  return v.get<double>();
}

// Appends the `size` numbers of the array v to out. The location string for an error is only
// built on failure: a large model has tens of millions of entries.
Status AppendDoubles(const json& v, size_t size, const std::string& where,
                     std::vector<double>* out) {
  if (!v.is_array()) {
    return Corrupt(where + " must be an array (got " + v.type_name() + ")");
  }
  if (v.size() != size) {
    return Corrupt(where + " has " + std::to_string(v.size()) + " entries, expected " +
                   std::to_string(size));
  }
  for (size_t i = 0; i < size; ++i) {
    const json& e = v[i];
    if (!e.is_number() || !std::isfinite(e.get<double>())) {
      return Corrupt(where + "[" + std::to_string(i) + "] " + NumberProblem(e));
    }
    out->push_back(e.get<double>());
  }
  return Status::OK();
}

Status GetDoubles(const json& j, const char* key, size_t size, std::vector<double>* out) {
  ORCHARD_ASSIGN_OR_RETURN(const json* v, Field(j, key));
  out->clear();
  out->reserve(size);
  return AppendDoubles(*v, size, std::string("\"") + key + "\"", out);
}

Result<PcaModel> FromJson(const json& j) {
  if (!j.is_object()) return Corrupt(std::string("expected an object (got ") + j.type_name() + ")");
  PcaModel m;
  ORCHARD_ASSIGN_OR_RETURN(m.dim, GetInt(j, "dim"));
  ORCHARD_ASSIGN_OR_RETURN(m.k, GetInt(j, "k"));
  ORCHARD_ASSIGN_OR_RETURN(m.n_samples, GetInt(j, "n_samples"));
  if (m.dim < 1) return Corrupt("\"dim\" must be positive, got " + std::to_string(m.dim));
  if (m.k < 1 || m.k > m.dim) {
    return Corrupt("\"k\" must be in 1.." + std::to_string(m.dim) + ", got " + std::to_string(m.k));
  }
  if (m.n_samples < 0) {
    return Corrupt("\"n_samples\" must be >= 0, got " + std::to_string(m.n_samples));
  }
  const size_t dim = static_cast<size_t>(m.dim);
  const size_t k = static_cast<size_t>(m.k);
  // The array sizes are checked before anything of size dim or k is allocated, so a bogus
  // "dim" cannot trigger a huge allocation.
  ORCHARD_RETURN_NOT_OK(GetDoubles(j, "mean", dim, &m.mean));
  ORCHARD_RETURN_NOT_OK(GetDoubles(j, "explained_variance", k, &m.explained_variance));
  ORCHARD_RETURN_NOT_OK(GetDoubles(j, "explained_variance_ratio", k, &m.explained_variance_ratio));

  ORCHARD_ASSIGN_OR_RETURN(const json* components, Field(j, "components"));
  if (!components->is_array()) {
    return Corrupt(std::string("\"components\" must be an array (got ") + components->type_name() +
                   ")");
  }
  if (components->size() != k) {
    return Corrupt("\"components\" has " + std::to_string(components->size()) +
                   " rows, expected k = " + std::to_string(k));
  }
  m.components.reserve(k * dim);
  for (size_t r = 0; r < k; ++r) {
    ORCHARD_RETURN_NOT_OK(AppendDoubles(
        (*components)[r], dim, "\"components\"[" + std::to_string(r) + "]", &m.components));
  }

  ORCHARD_ASSIGN_OR_RETURN(const json* total, Field(j, "total_variance"));
  ORCHARD_ASSIGN_OR_RETURN(m.total_variance, ToDouble(*total, "\"total_variance\""));
  if (m.total_variance < 0.0) return Corrupt("\"total_variance\" is negative");
  return m;
}

}  // namespace

nlohmann::json PcaModelToJson(const PcaModel& model) {
  json j = json::object();
  j["dim"] = model.dim;
  j["k"] = model.k;
  j["n_samples"] = model.n_samples;
  j["mean"] = model.mean;
  j["explained_variance"] = model.explained_variance;
  j["explained_variance_ratio"] = model.explained_variance_ratio;
  j["total_variance"] = model.total_variance;
  // Rows are cut from `components` without reading past its end, so an inconsistent model
  // yields JSON that PcaModelFromJson() rejects rather than undefined behaviour.
  json rows = json::array();
  const size_t dim = model.dim > 0 ? static_cast<size_t>(model.dim) : 0;
  for (int64_t r = 0; r < model.k && static_cast<size_t>(r) * dim < model.components.size(); ++r) {
    const size_t begin = std::min(static_cast<size_t>(r) * dim, model.components.size());
    const size_t end = std::min(begin + dim, model.components.size());
    rows.push_back(
        std::vector<double>(model.components.begin() + begin, model.components.begin() + end));
  }
  j["components"] = std::move(rows);
  return j;
}

Result<PcaModel> PcaModelFromJson(const nlohmann::json& j) {
  try {
    return FromJson(j);
  } catch (const nlohmann::json::exception& e) {
    return Corrupt(e.what());
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("PCA model JSON: out of memory");
  }
}

}  // namespace orchard
