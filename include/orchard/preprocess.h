// Turning an RGB image into the float tensor a model expects.
//
// Every model preset declares its PreprocessSpec in data (models/*.json); this file has
// no per-model branches. Preprocess is pure and thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <string>

#include "orchard/image.h"
#include "orchard/status.h"

namespace orchard {

enum class ResizePolicy {
  kStretch,            // resize straight to width x height (Keras load_img(target_size=...))
  kShorterSideCrop,    // resize the shorter side to size / crop_fraction, then center-crop
                       // (torchvision Resize(256) + CenterCrop(224) for crop_fraction 0.875)
};

enum class Interpolation {
  kNearest,        // OpenCV INTER_NEAREST
  kBilinear,       // OpenCV INTER_LINEAR (no antialiasing)
  kArea,           // OpenCV INTER_AREA
  kBicubic,        // OpenCV INTER_CUBIC
  kPilBilinear,    // Pillow's BILINEAR resampling, antialiased (what torchvision does on PIL images)
};

enum class ChannelOrder { kRGB, kBGR };

struct PreprocessSpec {
  int width = 224;
  int height = 224;
  ResizePolicy resize = ResizePolicy::kStretch;
  double crop_fraction = 0.875;  // only for kShorterSideCrop
  Interpolation interpolation = Interpolation::kBilinear;
  ChannelOrder channel_order = ChannelOrder::kRGB;
  // out[c] = (pixel[c] * scale - mean[c]) / stddev[c], with c counted in channel_order:
  // torchvision: scale 1/255, mean {0.485, 0.456, 0.406}, stddev {0.229, 0.224, 0.225};
  // Keras "caffe" (VGG16): BGR, scale 1, mean {103.939, 116.779, 123.68}, stddev 1.
  float scale = 1.0f;
  std::array<float, 3> mean{0.0f, 0.0f, 0.0f};
  std::array<float, 3> stddev{1.0f, 1.0f, 1.0f};
};

// Number of floats one preprocessed image occupies: 3 * width * height.
inline std::size_t TensorElements(const PreprocessSpec& spec) {
  return std::size_t{3} * static_cast<std::size_t>(spec.width) * static_cast<std::size_t>(spec.height);
}

// Checks sizes, crop fraction and stddev; returns kInvalidArgument with the reason.
Status ValidatePreprocessSpec(const PreprocessSpec& spec);

// Resizes, reorders channels and normalises `image` into `out`, planar CHW:
// out[c * height * width + y * width + x]. `out` must hold TensorElements(spec) floats.
Status Preprocess(const Image& image, const PreprocessSpec& spec, float* out);

// Parsing of the names used in model JSON sidecars ("stretch", "shorter_side_crop",
// "nearest", "bilinear", "area", "bicubic", "pil_bilinear", "RGB", "BGR").
Result<ResizePolicy> ParseResizePolicy(const std::string& name);
Result<Interpolation> ParseInterpolation(const std::string& name);
Result<ChannelOrder> ParseChannelOrder(const std::string& name);

}  // namespace orchard
