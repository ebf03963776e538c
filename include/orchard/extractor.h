// Feature extraction: a backend runs a model on a batch of preprocessed images and returns
// one pooled descriptor per image.
//
// Backends register by name in a registry ("opencv-dnn" is built in); an unknown name is a
// Status, not a crash. A FeatureExtractor owns its loaded network and is NOT thread-safe:
// use one per inference thread (the network's own kernels use `threads` cores).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "orchard/model.h"
#include "orchard/status.h"

namespace orchard {

struct ExtractorOptions {
  int width = 0;  // input size; 0 = the model's native size
  int height = 0;
  Pooling pooling = Pooling::kAvg;
  int threads = 0;  // 0 = all cores
};

class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  // Length of one descriptor.
  virtual int64_t dim() const = 0;
  // Shape (C, H, W) of the feature layer for one image.
  virtual std::vector<int> feature_shape() const = 0;
  // `batch`: n images, NCHW float, each TensorElements(preprocess) long.
  // `out`: n * dim() floats, row-major.
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

// Pools a (n, C, H, W) float tensor into (n, C) for avg/max, or copies it for flatten.
void PoolFeatures(Pooling pooling, int n, int c, int hw, const float* in, float* out);

}  // namespace orchard
