#include <algorithm>
#include <map>
#include <mutex>

#include "extract/onnx_runtime.h"
#include "extract/opencv_dnn.h"
#include "orchard/extractor.h"

namespace orchard {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, ExtractorFactory> factories;
};

// Built-in backends are registered on first use, so there is no static-initialisation order
// to worry about and no global constructor.
Registry& GetRegistry() {
  static Registry* registry = [] {
    auto* r = new Registry;
    r->factories.emplace("onnxruntime", &CreateOnnxRuntimeExtractor);
    r->factories.emplace("opencv-dnn", &CreateOpenCvDnnExtractor);
    return r;
  }();
  return *registry;
}

}  // namespace

Status RegisterExtractorBackend(const std::string& name, ExtractorFactory factory) {
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  if (!registry.factories.emplace(name, std::move(factory)).second) {
    return Status::InvalidArgument("extractor backend '" + name + "' is already registered");
  }
  return Status::OK();
}

std::vector<std::string> ExtractorBackendNames() {
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry.factories) names.push_back(name);
  return names;
}

Result<std::unique_ptr<FeatureExtractor>> CreateExtractor(const std::string& backend,
                                                          const ModelSpec& spec,
                                                          const ExtractorOptions& options) {
  ExtractorFactory factory;
  {
    Registry& registry = GetRegistry();
    std::lock_guard lock(registry.mutex);
    const auto it = registry.factories.find(backend);
    if (it == registry.factories.end()) {
      std::string names;
      for (const auto& [name, f] : registry.factories) names += (names.empty() ? "" : ", ") + name;
      return Status::NotFound("unknown extractor backend '" + backend + "' (available: " + names +
                              ")");
    }
    factory = it->second;
  }
  return factory(spec, options);
}

Result<std::pair<int, int>> InputSize(const ModelSpec& spec, const ExtractorOptions& options) {
  const int width = options.width > 0 ? options.width : spec.preprocess.width;
  const int height = options.height > 0 ? options.height : spec.preprocess.height;
  if ((width != spec.preprocess.width || height != spec.preprocess.height) && !spec.resizable) {
    return Status::InvalidArgument("model '" + spec.name + "' only accepts " +
                                   std::to_string(spec.preprocess.width) + "x" +
                                   std::to_string(spec.preprocess.height) + " input");
  }
  return std::make_pair(width, height);
}

Result<std::vector<int>> FeatureShape(const std::vector<int64_t>& dims, const std::string& layer) {
  if (dims.size() == 4) {
    return std::vector<int>{static_cast<int>(dims[1]), static_cast<int>(dims[2]),
                            static_cast<int>(dims[3])};
  }
  if (dims.size() == 2) return std::vector<int>{static_cast<int>(dims[1]), 1, 1};
  return Status::Unsupported("feature layer '" + layer + "' has " + std::to_string(dims.size()) +
                             " dimensions; expected (N, C, H, W) or (N, C)");
}

int64_t DescriptorDim(Pooling pooling, const std::vector<int>& shape) {
  const int64_t c = shape.at(0);
  return pooling == Pooling::kFlatten ? c * shape.at(1) * shape.at(2) : c;
}

void PoolFeatures(Pooling pooling, int n, int c, int hw, const float* in, float* out) {
  const size_t per_image = static_cast<size_t>(c) * static_cast<size_t>(hw);
  if (pooling == Pooling::kFlatten) {
    std::copy(in, in + per_image * static_cast<size_t>(n), out);
    return;
  }
  for (int i = 0; i < n; ++i) {
    for (int ch = 0; ch < c; ++ch) {
      const float* plane = in + static_cast<size_t>(i) * per_image + static_cast<size_t>(ch) * hw;
      float* dst = out + static_cast<size_t>(i) * c + ch;
      if (pooling == Pooling::kMax) {
        *dst = *std::max_element(plane, plane + hw);
      } else {
        // Summed in double so the mean does not depend on the plane's size.
        double sum = 0.0;
        for (int p = 0; p < hw; ++p) sum += plane[p];
        *dst = static_cast<float>(sum / hw);
      }
    }
  }
}

}  // namespace orchard
