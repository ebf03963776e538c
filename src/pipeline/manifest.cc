#include "pipeline/manifest.h"

#include <cblas.h>

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

}  // namespace orchard
