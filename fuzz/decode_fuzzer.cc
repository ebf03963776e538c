// Decoding (JPEG through TurboJPEG; PNG, WebP and BMP through OpenCV) and preprocessing to a
// model's input: what every image of a collection goes through (include/orchard/image.h,
// preprocess.h).
// The pixel limit is low here (kMaxPixels) so that a valid but large image does not take the
// fuzzer's memory; an image declaring more must be refused from its header, before anything
// of its size is allocated (libFuzzer's -malloc_limit_mb catches the allocation if not).
// Invariants: a decoded image has the size its header declares (sides swapped by EXIF
// orientations 5..8, shrunk by the JPEG DCT scaling chosen), within the limit, and a buffer
// of exactly width * height * 3 bytes; no prefix of it is refused by CheckImagePrefix;
// preprocessing it succeeds and every value is the normalisation of some byte 0..255.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <tuple>
#include <vector>

#include "fuzz_util.h"
#include "image/exif_internal.h"
#include "image/image_header_internal.h"
#include "orchard/image.h"
#include "orchard/preprocess.h"

using namespace orchard;

namespace {

constexpr uint64_t kMaxPixels = uint64_t{1} << 22;  // 4 Mpixels: 12 MB of RGB

// The default model's (mobilenet_v2: 224x224 stretch, INTER_AREA, (x - 128) / 128), and the
// other presets' kinds of preprocessing, so that every resize path is exercised.
PreprocessSpec SpecFor(size_t variant) {
  PreprocessSpec spec;
  switch (variant % 4) {
    case 0:  // models/mobilenet_v2.json
      spec.interpolation = Interpolation::kArea;
      spec.mean = {128, 128, 128};
      spec.stddev = {128, 128, 128};
      break;
    case 1:  // models/resnet50.json, vgg16.json (torchvision)
      spec.resize = ResizePolicy::kShorterSideCrop;
      spec.interpolation = Interpolation::kPilBilinear;
      spec.scale = 1.0f / 255.0f;
      spec.mean = {0.485f, 0.456f, 0.406f};
      spec.stddev = {0.229f, 0.224f, 0.225f};
      break;
    case 2:  // Keras "caffe": BGR, mean subtracted, a small --size
      spec.width = spec.height = 100;
      spec.interpolation = Interpolation::kBicubic;
      spec.channel_order = ChannelOrder::kBGR;
      spec.mean = {103.939f, 116.779f, 123.68f};
      break;
    default:  // a non-square crop target: zero padding where the resized image is smaller
      spec.width = 48;
      spec.height = 20;
      spec.resize = ResizePolicy::kShorterSideCrop;
      spec.crop_fraction = 0.5;
      spec.interpolation = Interpolation::kNearest;
      break;
  }
  return spec;
}

// The size DecodeImage must return for `bytes`, from the headers alone, before orientation.
bool ExpectedStoredSize(std::span<const uint8_t> bytes, ImageFormat format,
                        const DecodeOptions& options, int orientation, int* width, int* height) {
  if (format == ImageFormat::kJpeg) {
    const auto info = internal::ReadJpegFrameInfo(bytes);
    if (!info.ok()) return false;
    *width = static_cast<int>(info->width);
    *height = static_cast<int>(info->height);
    if (options.min_width <= 0 && options.min_height <= 0) return true;
    // The smallest of 1/2, 1/4, 1/8 keeping the displayed sides >= the minimums.
    const bool swaps = orientation >= 5 && orientation <= 8;
    const int min_w = swaps ? options.min_height : options.min_width;
    const int min_h = swaps ? options.min_width : options.min_height;
    int w = *width, h = *height;
    for (const int denom : {2, 4, 8}) {
      const int sw = (*width + denom - 1) / denom, sh = (*height + denom - 1) / denom;
      if (sw < min_w || sh < min_h) break;
      w = sw;
      h = sh;
    }
    *width = w;
    *height = h;
    return true;
  }
  const auto dims = internal::ReadImageDimensions(format, bytes);
  if (!dims.ok()) return false;
  *width = static_cast<int>(dims->width);
  *height = static_cast<int>(dims->height);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  const PreprocessSpec spec = SpecFor(size);
  DecodeOptions options;
  options.max_pixels = kMaxPixels;
  if (size % 8 < 4) {  // half the inputs decode a JPEG scaled down, as the pipeline does
    std::tie(options.min_width, options.min_height) = ScaledDecodeMinimums(spec);
  }

  const Result<Image> decoded = DecodeImage(bytes, options);
  const ImageFormat format = SniffImageFormat(bytes);
  // The check the pipeline makes on a file's first bytes before reading the rest must never
  // refuse an image that decodes, whatever the prefix it is given.
  if (decoded.ok()) {
    for (const size_t n : {size, size_t{12}, size_t{64}, size / 2, size_t{data[0]} * 16}) {
      FUZZ_CHECK(CheckImagePrefix(bytes.first(std::min(n, size)), size, options).ok());
    }
  }
  if (!decoded.ok()) {
    const StatusCode code = decoded.status().code();
    FUZZ_CHECK(code == StatusCode::kCorruptData || code == StatusCode::kUnsupported ||
               code == StatusCode::kResourceExhausted);
    FUZZ_CHECK(format != ImageFormat::kUnknown || code == StatusCode::kUnsupported || size == 0);
    return 0;
  }
  const Image& image = *decoded;
  FUZZ_CHECK(format != ImageFormat::kUnknown);
  FUZZ_CHECK(image.width > 0 && image.height > 0);
  FUZZ_CHECK(static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height) <=
             kMaxPixels);
  FUZZ_CHECK(image.rgb.size() ==
             static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3);

  const int orientation = internal::ExifOrientation(format, bytes);
  int width = 0, height = 0;
  FUZZ_CHECK(ExpectedStoredSize(bytes, format, options, orientation, &width, &height));
  if (orientation >= 5 && orientation <= 8) std::swap(width, height);
  FUZZ_CHECK(image.width == width && image.height == height);

  std::vector<float> tensor(TensorElements(spec));
  const Status preprocessed = Preprocess(image, spec, tensor.data());
  if (!preprocessed.ok()) {
    // Only an OpenCV resize of an extreme aspect ratio may be refused (over 2^26 pixels).
    FUZZ_CHECK(preprocessed.code() == StatusCode::kResourceExhausted);
    FUZZ_CHECK(spec.resize == ResizePolicy::kShorterSideCrop &&
               spec.interpolation != Interpolation::kPilBilinear);
    return 0;
  }
  const size_t plane = static_cast<size_t>(spec.width) * static_cast<size_t>(spec.height);
  for (size_t c = 0; c < 3; ++c) {
    // Zero padding (a non-square crop) normalises like a black pixel: within the same range.
    const float lo = (0.0f * spec.scale - spec.mean[c]) / spec.stddev[c];
    const float hi = (255.0f * spec.scale - spec.mean[c]) / spec.stddev[c];
    const float slack = 1e-3f * std::max(std::fabs(lo), std::fabs(hi)) + 1e-3f;
    for (size_t i = 0; i < plane; ++i) {
      const float v = tensor[c * plane + i];
      FUZZ_CHECK(std::isfinite(v) && v >= std::min(lo, hi) - slack &&
                 v <= std::max(lo, hi) + slack);
    }
  }
  return 0;
}
