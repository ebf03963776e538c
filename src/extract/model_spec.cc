#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "orchard/model.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Reads a required key of a given JSON type; the error names the key and the file.
template <typename T>
Result<T> Required(const json& object, const std::string& key, const fs::path& file) {
  const auto it = object.find(key);
  if (it == object.end()) {
    return Status::InvalidArgument("model sidecar " + file.string() + ": missing key '" + key +
                                   "'");
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return Status::InvalidArgument("model sidecar " + file.string() + ": key '" + key +
                                   "' has the wrong type");
  }
}

template <typename T>
T Optional(const json& object, const std::string& key, T fallback) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

Result<std::array<float, 3>> Triple(const json& object, const std::string& key,
                                    const fs::path& file) {
  ORCHARD_ASSIGN_OR_RETURN(auto values, Required<std::vector<float>>(object, key, file));
  if (values.size() != 3) {
    return Status::InvalidArgument("model sidecar " + file.string() + ": '" + key +
                                   "' must hold 3 numbers");
  }
  return std::array<float, 3>{values[0], values[1], values[2]};
}

Result<PreprocessSpec> ParsePreprocess(const json& j, const json& input, const fs::path& file) {
  PreprocessSpec spec;
  ORCHARD_ASSIGN_OR_RETURN(spec.width, Required<int>(input, "width", file));
  ORCHARD_ASSIGN_OR_RETURN(spec.height, Required<int>(input, "height", file));
  ORCHARD_ASSIGN_OR_RETURN(auto resize, Required<std::string>(j, "resize", file));
  ORCHARD_ASSIGN_OR_RETURN(spec.resize, ParseResizePolicy(resize));
  spec.crop_fraction = Optional<double>(j, "crop_fraction", 0.875);
  ORCHARD_ASSIGN_OR_RETURN(auto interpolation, Required<std::string>(j, "interpolation", file));
  ORCHARD_ASSIGN_OR_RETURN(spec.interpolation, ParseInterpolation(interpolation));
  ORCHARD_ASSIGN_OR_RETURN(auto order, Required<std::string>(j, "channel_order", file));
  ORCHARD_ASSIGN_OR_RETURN(spec.channel_order, ParseChannelOrder(order));
  ORCHARD_ASSIGN_OR_RETURN(spec.scale, Required<float>(j, "scale", file));
  ORCHARD_ASSIGN_OR_RETURN(spec.mean, Triple(j, "mean", file));
  ORCHARD_ASSIGN_OR_RETURN(spec.stddev, Triple(j, "std", file));
  ORCHARD_RETURN_NOT_OK(ValidatePreprocessSpec(spec).WithContext("model sidecar " + file.string()));
  return spec;
}

// Folders from AddModelSearchDir(), the latest first.
std::mutex& ExtraDirsMutex() {
  static std::mutex mutex;
  return mutex;
}
std::vector<fs::path>& ExtraDirs() {
  static std::vector<fs::path> dirs;
  return dirs;
}

fs::path ExecutableDir() {
  char buffer[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) return {};
  return fs::path(std::string(buffer, static_cast<size_t>(n))).parent_path();
}

}  // namespace

Result<Pooling> ParsePooling(const std::string& name) {
  if (name == "flatten") return Pooling::kFlatten;
  if (name == "avg") return Pooling::kAvg;
  if (name == "max") return Pooling::kMax;
  return Status::InvalidArgument("unknown pooling '" + name + "' (expected flatten, avg or max)");
}

const char* PoolingName(Pooling pooling) {
  switch (pooling) {
    case Pooling::kFlatten:
      return "flatten";
    case Pooling::kAvg:
      return "avg";
    case Pooling::kMax:
      return "max";
  }
  return "unknown";
}

Result<Precision> ParsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "int8") return Precision::kInt8;
  return Status::InvalidArgument("unknown precision '" + name + "' (expected fp32 or int8)");
}

const char* PrecisionName(Precision precision) {
  return precision == Precision::kInt8 ? "int8" : "fp32";
}

// The model file a sidecar names: a plain file name, beside the sidecar. A sidecar that
// points elsewhere (another folder, an absolute path) is refused, so that the file a user
// names, or the folder they copy, is the model that runs.
Result<fs::path> FileBeside(const fs::path& sidecar, const std::string& file) {
  if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
      file.find('\\') != std::string::npos) {
    return Status::Usage("model sidecar " + sidecar.string() + ": 'file' must be the name of a " +
                         "file beside the sidecar, not '" + file + "'");
  }
  return sidecar.parent_path() / file;
}

Result<ModelSpec> LoadModelSpec(const fs::path& sidecar) {
  std::ifstream in(sidecar);
  if (!in) return Status::NotFound("model sidecar not found: " + sidecar.string());
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    return Status::InvalidArgument("model sidecar " + sidecar.string() +
                                   " is not valid JSON: " + e.what());
  }
  if (!j.is_object()) {
    return Status::InvalidArgument("model sidecar " + sidecar.string() + " is not a JSON object");
  }
  ModelSpec spec;
  spec.sidecar = fs::absolute(sidecar);
  ORCHARD_ASSIGN_OR_RETURN(spec.name, Required<std::string>(j, "name", sidecar));
  spec.description = Optional<std::string>(j, "description", "");
  ORCHARD_ASSIGN_OR_RETURN(auto file, Required<std::string>(j, "file", sidecar));
  ORCHARD_ASSIGN_OR_RETURN(spec.file, FileBeside(spec.sidecar, file));
  spec.sha256 = Optional<std::string>(j, "sha256", "");
  ORCHARD_ASSIGN_OR_RETURN(spec.weights, Required<std::string>(j, "weights", sidecar));
  if (spec.weights != "imagenet" && spec.weights != "custom" && spec.weights != "random") {
    return Status::InvalidArgument("model sidecar " + sidecar.string() +
                                   ": 'weights' must be imagenet, custom or random");
  }
  spec.weights_source = Optional<std::string>(j, "weights_source", "");
  spec.license = Optional<std::string>(j, "license", "");
  ORCHARD_ASSIGN_OR_RETURN(auto input, Required<json>(j, "input", sidecar));
  spec.input_name = Optional<std::string>(input, "name", "");
  spec.resizable = Optional<bool>(input, "resizable", false);
  ORCHARD_ASSIGN_OR_RETURN(auto preprocess, Required<json>(j, "preprocess", sidecar));
  ORCHARD_ASSIGN_OR_RETURN(spec.preprocess, ParsePreprocess(preprocess, input, sidecar));
  ORCHARD_ASSIGN_OR_RETURN(auto feature, Required<json>(j, "feature", sidecar));
  ORCHARD_ASSIGN_OR_RETURN(spec.feature_layer, Required<std::string>(feature, "layer", sidecar));
  spec.feature_channels = Optional<int>(feature, "channels", 0);
  ORCHARD_ASSIGN_OR_RETURN(spec.pooling,
                           ParsePooling(Optional<std::string>(feature, "pooling", "avg")));
  spec.gflops_224 = Optional<double>(j, "gflops_224", 0.0);
  spec.peak_bytes_per_pixel = Optional<double>(j, "peak_bytes_per_pixel", 0.0);
  if (!(spec.peak_bytes_per_pixel >= 0.0 && spec.peak_bytes_per_pixel < 1e9)) {
    return Status::InvalidArgument("model sidecar " + sidecar.string() +
                                   ": 'peak_bytes_per_pixel' must be a number of bytes >= 0");
  }
  const json variants = Optional<json>(j, "variants", json::object());
  if (!variants.is_object()) {
    return Status::InvalidArgument("model sidecar " + sidecar.string() +
                                   ": 'variants' must be an object");
  }
  for (const auto& [precision, entry] : variants.items()) {
    ORCHARD_RETURN_NOT_OK(ParsePrecision(precision).status());
    ORCHARD_ASSIGN_OR_RETURN(auto variant_file, Required<std::string>(entry, "file", sidecar));
    ModelVariant variant;
    ORCHARD_ASSIGN_OR_RETURN(variant.file, FileBeside(spec.sidecar, variant_file));
    variant.sha256 = Optional<std::string>(entry, "sha256", "");
    variant.description = Optional<std::string>(entry, "description", "");
    spec.variants.emplace(precision, std::move(variant));
  }
  return spec;
}

std::vector<fs::path> ModelSearchPath() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("ORCHARD_MODEL_PATH")) {
    std::stringstream ss(env);
    for (std::string dir; std::getline(ss, dir, ':');) {
      if (!dir.empty()) dirs.emplace_back(dir);
    }
  }
  {
    std::lock_guard<std::mutex> lock(ExtraDirsMutex());
    dirs.insert(dirs.end(), ExtraDirs().begin(), ExtraDirs().end());
  }
  const fs::path exe = ExecutableDir();
  if (!exe.empty()) {
    dirs.push_back(exe / "models");
    dirs.push_back(exe.parent_path() / "models");
  }
  dirs.emplace_back(ORCHARD_SOURCE_MODELS_DIR);
  return dirs;
}

void AddModelSearchDir(const fs::path& dir) {
  std::lock_guard<std::mutex> lock(ExtraDirsMutex());
  auto& dirs = ExtraDirs();
  dirs.erase(std::remove(dirs.begin(), dirs.end(), dir), dirs.end());
  dirs.insert(dirs.begin(), dir);
}

Result<ModelSpec> ResolveModel(const std::string& name_or_path,
                               const std::vector<fs::path>& search_path) {
  const fs::path path(name_or_path);
  std::error_code ec;
  if (path.extension() == ".json") return LoadModelSpec(path);
  if (path.extension() == ".onnx") {
    fs::path sidecar = path;
    sidecar.replace_extension(".json");
    if (!fs::exists(sidecar, ec)) {
      return Status::NotFound("ONNX model " + path.string() + " has no sidecar " +
                              sidecar.string() +
                              " (it declares input size, preprocessing and feature layer; see "
                              "docs/models.md)");
    }
    ORCHARD_ASSIGN_OR_RETURN(ModelSpec spec, LoadModelSpec(sidecar));
    if (spec.file.filename() != path.filename()) {
      return Status::Usage("model sidecar " + sidecar.string() + " describes " +
                           spec.file.filename().string() + ", not " + path.filename().string() +
                           ": refusing to run another model than the one named");
    }
    return spec;
  }
  for (const fs::path& dir : search_path) {
    const fs::path sidecar = dir / (name_or_path + ".json");
    if (fs::exists(sidecar, ec)) return LoadModelSpec(sidecar);
  }
  for (const KnownPreset& known : KnownPresets()) {
    if (known.name == name_or_path) {
      return Status::NotFound("model '" + name_or_path + "' is not exported yet: run " +
                              known.how_to_get);
    }
  }
  std::string names;
  for (const ModelSpec& spec : ListModels(search_path))
    names += (names.empty() ? "" : ", ") + spec.name;
  return Status::NotFound("unknown model '" + name_or_path +
                          "' (available: " + (names.empty() ? "none" : names) +
                          "; or pass the path of an .onnx file with its .json sidecar)");
}

std::vector<ModelSpec> ListModels(const std::vector<fs::path>& search_path) {
  std::map<std::string, ModelSpec> found;
  std::set<fs::path> seen_dirs;
  for (const fs::path& dir : search_path) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(dir, ec);
    if (ec || !fs::is_directory(canonical, ec) || !seen_dirs.insert(canonical).second) continue;
    std::vector<fs::path> sidecars;
    for (const auto& entry : fs::directory_iterator(canonical, ec)) {
      if (entry.path().extension() == ".json") sidecars.push_back(entry.path());
    }
    std::sort(sidecars.begin(), sidecars.end());
    for (const fs::path& sidecar : sidecars) {
      auto spec = LoadModelSpec(sidecar);
      if (spec.ok() && !found.count(spec->name)) found.emplace(spec->name, spec.MoveValue());
    }
  }
  std::vector<ModelSpec> specs;
  for (auto& [name, spec] : found) specs.push_back(std::move(spec));
  return specs;
}

const std::vector<KnownPreset>& KnownPresets() {
  static const std::vector<KnownPreset> presets = {
      {"mobilenet_v2", "it ships in models/ (real ImageNet weights)"},
      {"vgg16", "scripts/export-models (ImageNet weights if in the torch cache, else random)"},
      {"resnet50", "scripts/export-models (ImageNet weights if in the torch cache, else random)"},
  };
  return presets;
}

}  // namespace orchard
