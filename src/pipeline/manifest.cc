#include "pipeline/manifest.h"

#include <cblas.h>

#include <new>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>

#include "extract/onnx_runtime_library.h"
#include "orchard/cpu.h"
#include "util/json_text.h"

namespace orchard {

using nlohmann::json;

namespace {

json OptionsJson(const PipelineOptions& o, int threads) {
  // Everything that changes the numbers, and nothing secret.
  return {
      {"input", TextToJson(o.input)},
      {"output", TextToJson(o.output)},
      {"model", TextToJson(o.model)},
      {"backend", o.backend},
      {"precision", PrecisionName(o.precision)},
      {"parallel_runs", o.parallel_runs},
      {"size", o.size},
      {"pooling", o.pooling ? json(PoolingName(*o.pooling)) : json(nullptr)},
      {"pca_components", o.pca_components},
      {"pca_variance", o.pca_variance},
      {"batch", o.batch},
      {"threads", threads},
      {"limit", o.limit},
      {"save_raw", o.save_raw},
      {"max_pixels", o.max_pixels},
      {"jpeg_dct_scaling", o.jpeg_dct_scaling},
  };
}

}  // namespace

json BuildInfoJson() {
  json info = {
      {"orchard", ORCHARD_VERSION},        {"opencv", CV_VERSION},
      {"openblas", openblas_get_config()}, {"openblas_kernel", InspectBlasKernel().picked},
      {"compiler", __VERSION__},           {"cpu_features", DetectCpuFeatures().names()},
      {"cores", cv::getNumberOfCPUs()},
  };
  // Only when a run already loaded it: asking must not load a 35 MB library.
  if (const OnnxRuntime* ort = LoadedOnnxRuntime(); ort != nullptr) {
    info["onnxruntime"] = ort->version;
    info["onnxruntime_library"] = ort->library_path;
  }
  return info;
}

void ManifestBuilder::SetInference(const LoadedModel& model) {
  // file and sha256 came from the constructor's spec, which is model.spec: the variant's
  // when int8 runs.
  model_["precision"] = PrecisionName(model.precision);
  // How the cores were shared changes speed, not numbers: in the manifest, not in pca.json.
  manifest_["inference"] = {{"runs", model.layout.runs},
                            {"threads_per_run", model.layout.threads_per_run}};
  for (const std::string& warning : model.warnings) AddWarning(warning);
}

ManifestBuilder::ManifestBuilder(const PipelineOptions& options, const ModelSpec& spec,
                                 int threads) {
  model_ = {
      {"name", spec.name},
      {"file", TextToJson(spec.file.filename().string())},
      {"sha256", spec.sha256},
      {"weights", spec.weights},
      {"random_weights", spec.random_weights()},
      {"weights_source", spec.weights_source},
      {"backend", options.backend},
      {"feature_layer", spec.feature_layer},
  };
  manifest_ = {
      {"status", "ok"}, {"options", OptionsJson(options, threads)}, {"versions", BuildInfoJson()}};
  if (spec.random_weights()) {
    manifest_["warnings"] = json::array(
        {"model '" + spec.name + "' has RANDOM weights: descriptors are not meaningful"});
  }
}

void ManifestBuilder::SetModelLoaded(int64_t dim, const std::vector<int>& feature_shape,
                                     const ExtractorOptions& extractor, double seconds) {
  model_["input_size"] = {extractor.width, extractor.height};
  model_["pooling"] = PoolingName(extractor.pooling);
  model_["feature_shape"] = feature_shape;
  model_["descriptor_dim"] = dim;
  times_.model_load = seconds;
}

void ManifestBuilder::SetCounts(int64_t listed, int64_t processed, int64_t failed) {
  manifest_["counts"] = {{"listed", listed}, {"processed", processed}, {"failed", failed}};
}

void ManifestBuilder::SetPca(const PcaModel& pca, const PcaOptions& options) {
  double cumulative = 0;
  for (double r : pca.explained_variance_ratio) cumulative += r;
  manifest_["pca"] = {{"k", pca.k},
                      {"dim", pca.dim},
                      {"requested_components", options.components},
                      {"requested_variance", options.variance},
                      {"explained_variance_ratio_sum", cumulative}};
}

Status ManifestBuilder::SetFiles(const std::filesystem::path& dir,
                                 const std::vector<std::string>& names) {
  json files = json::object();
  for (const std::string& name : names) {
    std::error_code ec;
    if (!std::filesystem::exists(dir / name, ec)) continue;  // a sink that wrote no file
    const auto bytes = std::filesystem::file_size(dir / name, ec);
    if (ec) return Status::IOError("cannot read " + (dir / name).string() + ": " + ec.message());
    ORCHARD_ASSIGN_OR_RETURN(std::string sha256, Sha256File(dir / name));
    files[name] = {{"bytes", bytes}, {"sha256", sha256}};
  }
  manifest_["files"] = std::move(files);
  return Status::OK();
}

void ManifestBuilder::AddWarning(const std::string& warning) {
  if (!manifest_.contains("warnings")) manifest_["warnings"] = json::array();
  manifest_["warnings"].push_back(warning);
}

void ManifestBuilder::SetFailure(const std::string& reason) {
  manifest_["status"] = "failed";
  manifest_["failure"] = reason;
}

std::string ManifestBuilder::Json() const {
  json j = manifest_;
  j["model"] = model_;
  j["timings_seconds"] = {
      {"list", times_.list},
      {"model_load", times_.model_load},
      {"read_cpu", times_.read},
      {"decode_cpu", times_.decode},
      {"preprocess_cpu", times_.preprocess},
      {"extract", times_.extract},
      {"pca_accumulate", times_.pca_accumulate},
      {"pca_fit", times_.pca_fit},
      {"project_and_write", times_.write},
      {"total", times_.total},
  };
  return DumpJson(j, 2) + "\n";
}

namespace {

// Readers that take a field only when it has the type ManifestBuilder writes, so that no
// value of another type can throw (nlohmann's value() does) or convert with undefined
// behaviour (a double beyond int64 cast to an integer).
void ReadString(const json& object, const char* key, std::string* out) {
  const auto it = object.find(key);
  if (it != object.end() && it->is_string()) *out = it->get<std::string>();
}
void ReadInt(const json& object, const char* key, int64_t* out) {
  const auto it = object.find(key);
  if (it == object.end()) return;
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u <= static_cast<uint64_t>(INT64_MAX)) *out = static_cast<int64_t>(u);
  } else if (it->is_number_integer()) {
    *out = it->get<int64_t>();
  }
}
void ReadDouble(const json& object, const char* key, double* out) {
  const auto it = object.find(key);
  if (it != object.end() && it->is_number()) *out = it->get<double>();
}
void ReadBool(const json& object, const char* key, bool* out) {
  const auto it = object.find(key);
  if (it != object.end() && it->is_boolean()) *out = it->get<bool>();
}
// The object at `key`, or an empty one.
const json& Object(const json& object, const char* key) {
  static const json kEmpty = json::object();
  const auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : kEmpty;
}

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\0", 2)) == std::string::npos;
}

Result<ManifestSummary> Summarize(std::string_view text) {
  const json manifest = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded()) return Status::CorruptData("manifest.json is not valid JSON");
  if (!manifest.is_object()) return Status::CorruptData("manifest.json is not a JSON object");
  ManifestSummary s;
  ReadString(manifest, "status", &s.status);
  const json& counts = Object(manifest, "counts");
  ReadInt(counts, "listed", &s.listed);
  ReadInt(counts, "processed", &s.processed);
  ReadInt(counts, "failed", &s.failed);
  const json& model = Object(manifest, "model");
  ReadString(model, "name", &s.model_name);
  ReadString(model, "weights", &s.model_weights);
  ReadString(model, "pooling", &s.model_pooling);
  ReadBool(model, "random_weights", &s.random_weights);
  ReadInt(model, "descriptor_dim", &s.descriptor_dim);
  if (const auto files = manifest.find("files"); files != manifest.end() && files->is_object()) {
    s.files.emplace();
    for (const auto& [name, entry] : files->items()) {
      const auto bytes = entry.is_object() ? entry.find("bytes") : entry.end();
      const auto sha256 = entry.is_object() ? entry.find("sha256") : entry.end();
      if (!IsPlainFileName(name) || !entry.is_object() || bytes == entry.end() ||
          !bytes->is_number_unsigned() || sha256 == entry.end() || !sha256->is_string()) {
        return Status::CorruptData("manifest.json: \"files\" has an invalid entry " +
                                   DumpJson(json(name), -1));
      }
      (*s.files)[name] = {bytes->get<uint64_t>(), sha256->get<std::string>()};
    }
  }
  if (const auto pca = manifest.find("pca"); pca != manifest.end() && pca->is_object()) {
    s.has_pca = true;
    ReadInt(*pca, "k", &s.pca_k);
    ReadDouble(*pca, "explained_variance_ratio_sum", &s.pca_variance_ratio_sum);
  }
  if (const auto store = manifest.find("store"); store != manifest.end() && store->is_object()) {
    s.has_store = true;
    ReadString(*store, "mode", &s.store_mode);
    ReadInt(*store, "reused", &s.store_reused);
    ReadInt(*store, "featurized", &s.store_featurized);
    ReadInt(*store, "segments_total", &s.store_segments);
  }
  if (const auto it = manifest.find("timings_seconds"); it != manifest.end() && it->is_object()) {
    double total = 0;
    ReadDouble(*it, "total", &total);
    s.total_seconds = total;
  }
  return s;
}

}  // namespace

Result<ManifestSummary> ParseManifest(std::string_view text) {
  try {
    return Summarize(text);
  } catch (const json::exception& e) {  // not expected: every access above checks the type
    return Status::CorruptData(std::string("manifest.json: ") + e.what());
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("manifest.json: out of memory");
  }
}

}  // namespace orchard
