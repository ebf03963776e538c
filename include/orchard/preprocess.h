// Turning an RGB image into the float tensor a model expects.
//
// Every model preset declares its PreprocessSpec in data (models/*.json); this file has
// no per-model branches. Preprocess is pure and thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <utility>

#include "orchard/image.h"
#include "orchard/status.h"

namespace orchard {

enum class ResizePolicy {
  kStretch,          // resize straight to width x height (Keras load_img(target_size=...))
  kShorterSideCrop,  // resize the shorter side to size / crop_fraction, then center-crop
                     // (torchvision Resize(256) + CenterCrop(224) for crop_fraction 0.875)
};
// kShorterSideCrop in detail, as torchvision 0.14 computes it: S = int(min(width, height) /
// crop_fraction); the image's shorter side becomes S and its longer side int(S * long /
// short) (ties: width <= height counts as portrait); the crop starts at int(round((resized -
// target) / 2.0)) with Python's round-half-to-even; where the resized image is smaller than
// the target (possible for non-square targets), the crop is centred on zero padding
// ((target - resized) // 2 before), which normalises like a black pixel.

enum class Interpolation {
  kNearest,      // OpenCV INTER_NEAREST (not PIL's NEAREST: that is INTER_NEAREST_EXACT)
  kBilinear,     // OpenCV INTER_LINEAR (no antialiasing)
  kArea,         // OpenCV INTER_AREA
  kBicubic,      // OpenCV INTER_CUBIC
  kPilBilinear,  // Pillow's BILINEAR resampling, antialiased (what torchvision does on PIL images)
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
  return std::size_t{3} * static_cast<std::size_t>(spec.width) *
         static_cast<std::size_t>(spec.height);
}

// Checks sizes (1..16384), enum values, crop_fraction (in (0, 1], and only for
// kShorterSideCrop, where the resize before the crop may not exceed 65536 on the short side),
// and that scale, mean and stddev are finite with stddev non-zero; returns kInvalidArgument
// with the reason.
Status ValidatePreprocessSpec(const PreprocessSpec& spec);

// Resizes, reorders channels and normalises `image` into `out`, planar CHW:
// out[c * height * width + y * width + x]. `out` must hold TensorElements(spec) floats.
// Resizing is done on the uint8 RGB pixels and skipped when the size already matches; the
// OpenCV interpolations equal cv2.resize exactly, kPilBilinear equals Pillow's
// Image.resize(..., BILINEAR) exactly (and so torchvision on PIL images).
// Errors: kInvalidArgument for an invalid spec, an empty image, an rgb buffer that does not
// hold width * height * 3 bytes or a null `out`; kResourceExhausted when an OpenCV
// interpolation would need a resized image over 2^26 pixels before the crop (extreme aspect
// ratios; kPilBilinear computes only the cropped window and has no such limit).
Status Preprocess(const Image& image, const PreprocessSpec& spec, float* out);

// The DecodeOptions size hint (min_width, min_height) under which a JPEG may be decoded
// scaled down: 1.5 times what the resize below needs, so that it still shrinks the image
// (1.5 x the target for kStretch; for kShorterSideCrop 1.5 x the shorter side before the
// crop, max(width, height) / crop_fraction, for both sides). Measured: descriptor cosine to
// a full decode >= 0.99, where a 1x margin went down to 0.967 at 100x100 (docs/models.md).
std::pair<int, int> ScaledDecodeMinimums(const PreprocessSpec& spec);

// Parsing of the names used in model JSON sidecars ("stretch", "shorter_side_crop",
// "nearest", "bilinear", "area", "bicubic", "pil_bilinear", "RGB", "BGR"; case-sensitive).
// An unknown name is kInvalidArgument listing the valid ones.
Result<ResizePolicy> ParseResizePolicy(const std::string& name);
Result<Interpolation> ParseInterpolation(const std::string& name);
Result<ChannelOrder> ParseChannelOrder(const std::string& name);

}  // namespace orchard
