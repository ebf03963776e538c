// Feature extraction: a backend runs a model on a batch of preprocessed images and returns
// one pooled descriptor per image.
//
// Backends register by name in a registry ("onnxruntime", the default, and "opencv-dnn" are
// built in); an unknown name is a Status, not a crash. A FeatureExtractor is the loaded
// model, shared by every thread of a run: Extract() is thread-safe (onnxruntime runs the
// calls concurrently, opencv-dnn one after the other), and each call's network kernels use
// ExtractorOptions::threads cores.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "orchard/model.h"
#include "orchard/status.h"

namespace orchard {

inline constexpr char kDefaultBackend[] = "onnxruntime";

struct ExtractorOptions {
  int width = 0;  // input size; 0 = the model's native size
  int height = 0;
  Pooling pooling = Pooling::kAvg;
  int threads = 1;  // intra-op threads of one Extract() call
};

class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  // Length of one descriptor.
  virtual int64_t dim() const = 0;
  // Shape (C, H, W) of the feature layer for one image.
  virtual std::vector<int> feature_shape() const = 0;
  // `batch`: n images, NCHW float, each TensorElements(preprocess) long.
  // `out`: n * dim() floats, row-major. Thread-safe.
  virtual Status Extract(int n, const float* batch, float* out) = 0;
};

using ExtractorFactory = std::function<Result<std::unique_ptr<FeatureExtractor>>(
    const ModelSpec&, const ExtractorOptions&)>;

// Registers a backend; kInvalidArgument if the name is taken.
Status RegisterExtractorBackend(const std::string& name, ExtractorFactory factory);
std::vector<std::string> ExtractorBackendNames();
// Loads `spec` with the named backend; kNotFound for an unknown backend.
Result<std::unique_ptr<FeatureExtractor>> CreateExtractor(const std::string& backend,
                                                          const ModelSpec& spec,
                                                          const ExtractorOptions& options);

// Where the onnxruntime backend loads libonnxruntime.so from, instead of its default search
// ($ORCHARD_ONNXRUNTIME_LIB, the build's copy, the loader's path). Only effective before the
// backend's first use. Thread-safe.
void SetOnnxRuntimeLibraryPath(const std::string& path);

// The (width, height) a backend runs `spec` at: the options' size, else the model's own;
// kInvalidArgument when another size is asked of a model that is not resizable.
Result<std::pair<int, int>> InputSize(const ModelSpec& spec, const ExtractorOptions& options);

// The (C, H, W) of a feature layer from its output's dims, batch first: (N, C, H, W), or
// (N, C) read as (C, 1, 1). kUnsupported for any other rank, naming `layer`.
Result<std::vector<int>> FeatureShape(const std::vector<int64_t>& dims, const std::string& layer);
// Length of one descriptor of a (C, H, W) feature layer: C, or C*H*W for kFlatten.
int64_t DescriptorDim(Pooling pooling, const std::vector<int>& shape);

// Pools a (n, C, H, W) float tensor into (n, C) for avg/max, or copies it for flatten.
void PoolFeatures(Pooling pooling, int n, int c, int hw, const float* in, float* out);

}  // namespace orchard
