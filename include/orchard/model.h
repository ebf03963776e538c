// Models: what a preset declares (ModelSpec, read from a JSON sidecar) and how one is found.
//
// A model is an ONNX file plus a sidecar `<name>.json` beside it that declares, as data,
// the input size, the preprocessing, the feature layer and its pooling, the file's sha256
// and whether its weights are real ("imagenet", "custom") or seeded random ("random").
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/preprocess.h"
#include "orchard/status.h"

namespace orchard {

// How the feature layer's (C, H, W) output becomes one vector.
enum class Pooling {
  kFlatten,  // C*H*W values, C-major (as numpy's reshape of an NCHW array)
  kAvg,      // mean over H*W: C values
  kMax,      // max over H*W: C values
};
Result<Pooling> ParsePooling(const std::string& name);
const char* PoolingName(Pooling pooling);

// Another file of the same network, e.g. its int8 quantization ("variants" in the sidecar).
struct ModelVariant {
  std::filesystem::path file;  // absolute
  std::string sha256;          // expected sha256 of `file`, lower-case hex
  std::string description;
};

// Numeric precision of the network that runs. kInt8 uses the sidecar's "int8" variant, and
// only on CPUs with VNNI (int8 dot-product instructions); elsewhere it falls back to fp32
// with a warning: without VNNI, x86 int8 kernels multiply through 16-bit saturating sums
// (VPMADDUBSW), which can overflow on some layers.
enum class Precision { kFp32, kInt8 };
Result<Precision> ParsePrecision(const std::string& name);
const char* PrecisionName(Precision precision);

struct ModelSpec {
  std::string name;
  std::string description;
  std::filesystem::path sidecar;  // the JSON this spec was read from
  std::filesystem::path file;     // absolute path of the .onnx
  std::string sha256;             // expected sha256 of `file`, lower-case hex
  std::string weights;            // "imagenet", "custom" or "random"
  std::string weights_source;
  std::string license;
  std::string input_name;
  bool resizable = false;     // may the input size change (fully convolutional)?
  PreprocessSpec preprocess;  // width/height = the model's native input size
  std::string feature_layer;
  int feature_channels = 0;
  Pooling pooling = Pooling::kAvg;
  double gflops_224 = 0.0;  // forward cost per image at 224x224, for benchmarks
  // Inference memory of one image per input pixel (sidecar key peak_bytes_per_pixel, from the
  // graph by scripts/models); 0 when the sidecar does not say (a conservative default applies).
  double peak_bytes_per_pixel = 0.0;
  std::map<std::string, ModelVariant> variants;  // by precision name ("int8")

  bool random_weights() const { return weights == "random"; }
};

// Reads and validates a sidecar. Every missing or malformed key is a kInvalidArgument that
// names the key and the file.
Result<ModelSpec> LoadModelSpec(const std::filesystem::path& sidecar);

// Folders searched for presets, in order: $ORCHARD_MODEL_PATH (':'-separated), the folders
// given to AddModelSearchDir() (the latest first), the `models` folder beside the executable
// or one level up, and the source tree's models/.
std::vector<std::filesystem::path> ModelSearchPath();

// Adds `dir` to ModelSearchPath(), before the executable's and the source tree's folders but
// after $ORCHARD_MODEL_PATH (which always wins). Adding a folder already added moves it to the
// front. Used by the Python package for the models/ it ships. Thread-safe.
void AddModelSearchDir(const std::filesystem::path& dir);

// `name_or_path` is a preset name ("mobilenet_v2"), a sidecar path (".json") or an ONNX
// path whose sidecar is the same path with ".json" instead of ".onnx".
Result<ModelSpec> ResolveModel(const std::string& name_or_path,
                               const std::vector<std::filesystem::path>& search_path);

// Every sidecar found on the search path (first one wins for a name), sorted by name.
std::vector<ModelSpec> ListModels(const std::vector<std::filesystem::path>& search_path);

// Preset names that Orchard knows how to produce but that may not be on disk yet, with the
// command that produces them (e.g. vgg16 -> "scripts/export-models").
struct KnownPreset {
  std::string name;
  std::string how_to_get;
};
const std::vector<KnownPreset>& KnownPresets();

// Lower-case hex sha256 of a file.
Result<std::string> Sha256File(const std::filesystem::path& path);
// Lower-case hex sha256 of bytes in memory.
std::string Sha256Hex(std::string_view bytes);

}  // namespace orchard
