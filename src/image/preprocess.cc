// Preprocess: resize (and center-crop) the uint8 RGB image, then normalise into float CHW.
//
// Resizing happens on uint8 pixels, as in the reference pipelines (Keras load_img, cv2,
// torchvision on PIL images), so that the outputs match them bit for bit rather than
// approximately. kPilBilinear reimplements Pillow's resampler (src/libImaging/Resample.c)
// with the same double-precision coefficients and 22-bit fixed-point accumulation.

#include "orchard/preprocess.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdint>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

namespace orchard {
namespace {

// OpenCV's description of an error, on one line (checks format theirs over several).
std::string OneLine(const cv::Exception& e) {
  std::string text = e.err;
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

constexpr int kMaxSide = 16384;
// kShorterSideCrop resizes the shorter side to min(width, height) / crop_fraction first;
// bounded so that a tiny crop fraction cannot ask for a gigantic intermediate image.
constexpr double kMaxResizedShortSide = 65536;
// OpenCV resizes the whole image before the crop; this bounds that buffer (~200 MB). The
// Pillow path computes only the cropped window and needs no such bound.
constexpr int64_t kMaxOpenCvResizedPixels = int64_t{1} << 26;

// The output window within the (possibly virtual) resized image.
struct Geometry {
  int64_t resized_width = 0;
  int64_t resized_height = 0;
  // Top-left corner of the window. Negative when the resized image is smaller than the
  // window: torchvision's CenterCrop then pads with zeros, and so do we.
  int64_t left = 0;
  int64_t top = 0;
};

// torchvision's CenterCrop offset along one axis: pad (crop - size) // 2 before when the
// crop is larger, otherwise int(round((size - crop) / 2.0)), where Python rounds halves to
// even.
int64_t CenterCropOffset(int64_t size, int64_t crop) {
  if (crop > size) return -((crop - size) / 2);
  const int64_t d = size - crop;
  const int64_t half = d / 2;
  if (d % 2 == 0 || half % 2 == 0) return half;
  return half + 1;
}

Result<Geometry> ComputeGeometry(int width, int height, const PreprocessSpec& spec) {
  Geometry g;
  if (spec.resize == ResizePolicy::kStretch) {
    g.resized_width = spec.width;
    g.resized_height = spec.height;
    return g;
  }
  // torchvision Resize(int(size / crop_fraction)) with its truncation rule (0.14,
  // _compute_resized_output_size): the shorter side becomes S, the longer
  // int(S * long / short), where S * long is exact and the division is a double one.
  const int target_short = std::min(spec.width, spec.height);
  const int64_t s = static_cast<int64_t>(target_short / spec.crop_fraction);
  const bool portrait = width <= height;  // torchvision's tie rule: w <= h
  const int64_t image_short = portrait ? width : height;
  const int64_t image_long = portrait ? height : width;
  const double new_long = static_cast<double>(s * image_long) / static_cast<double>(image_short);
  if (new_long > INT_MAX) {
    return Status::ResourceExhausted("image " + std::to_string(width) + "x" +
                                     std::to_string(height) +
                                     " has too extreme an aspect ratio to resize");
  }
  const int64_t long_side = static_cast<int64_t>(new_long);
  g.resized_width = portrait ? s : long_side;
  g.resized_height = portrait ? long_side : s;
  g.left = CenterCropOffset(g.resized_width, spec.width);
  g.top = CenterCropOffset(g.resized_height, spec.height);
  return g;
}

// ---------------------------------------------------------------------------------------
// Pillow's BILINEAR resampling (antialiased: the triangle filter is stretched by the
// downscale factor), for a window of the output only. Every output pixel depends only on
// its own coefficients, so computing a window gives exactly the pixels a full resize
// followed by a crop would.

constexpr int kPrecisionBits = 32 - 8 - 2;  // as Pillow: 8-bit values, 2 bits of headroom

double TriangleFilter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Taps for output indices [out_begin, out_end) of a 1-D resize from in_size to out_size.
struct PilTaps {
  int ksize = 0;
  std::vector<int> first;        // first source index, per output index
  std::vector<int> count;        // number of taps, per output index
  std::vector<int32_t> weights;  // ksize fixed-point weights per output index
};

PilTaps ComputePilTaps(int64_t in_size, int64_t out_size, int64_t out_begin, int64_t out_end) {
  // Same operations in the same order as precompute_coeffs() and normalize_coeffs_8bpc(),
  // so that the double rounding, and hence every fixed-point weight, is identical.
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  PilTaps taps;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const size_t n = static_cast<size_t>(out_end - out_begin);
  taps.first.resize(n);
  taps.count.resize(n);
  taps.weights.assign(n * static_cast<size_t>(taps.ksize), 0);
  std::vector<double> k(static_cast<size_t>(taps.ksize));
  for (size_t i = 0; i < n; ++i) {
    const int64_t xx = out_begin + static_cast<int64_t>(i);
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax = std::clamp<int64_t>(xmax - xmin, 0, taps.ksize);
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double w = TriangleFilter((static_cast<double>(x + xmin) - center + 0.5) * ss);
      k[static_cast<size_t>(x)] = w;
      ww += w;
    }
    int32_t* out = &taps.weights[i * static_cast<size_t>(taps.ksize)];
    for (int64_t x = 0; x < xmax; ++x) {
      double v = k[static_cast<size_t>(x)];
      if (ww != 0.0) v /= ww;
      out[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                     : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    taps.first[i] = static_cast<int>(xmin);
    taps.count[i] = static_cast<int>(xmax);
  }
  return taps;
}

uint8_t Clip8(int32_t acc) {
  return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255));
}

// A read-only RGB pixel grid whose row `row0` and column `col0` are at `data`.
struct RgbView {
  const uint8_t* data;
  size_t stride;  // bytes per row
  int64_t row0;
  int64_t col0;
  const uint8_t* At(int64_t row, int64_t col) const {
    return data + static_cast<size_t>(row - row0) * stride + static_cast<size_t>(col - col0) * 3;
  }
};

// Writes the window [g.left, g.left + out_w) x [g.top, g.top + out_h) of the Pillow resize
// of `src` to g.resized_width x g.resized_height into `window` (out_w * out_h * 3 bytes,
// zero-filled by the caller; pixels outside the resized image stay zero).
void PilBilinearWindow(const Image& src, const Geometry& g, int out_w, int out_h, uint8_t* window) {
  const int64_t cx0 = std::max<int64_t>(g.left, 0);
  const int64_t cx1 = std::min<int64_t>(g.left + out_w, g.resized_width);
  const int64_t cy0 = std::max<int64_t>(g.top, 0);
  const int64_t cy1 = std::min<int64_t>(g.top + out_h, g.resized_height);
  if (cx0 >= cx1 || cy0 >= cy1) return;
  // As Pillow, a pass whose size does not change is skipped (it would be an exact copy).
  const bool need_horizontal = g.resized_width != src.width;
  const bool need_vertical = g.resized_height != src.height;

  // The source rows the vertical pass reads: only those are resampled horizontally.
  PilTaps vtaps;
  int64_t sy0 = cy0, sy1 = cy1;
  if (need_vertical) {
    vtaps = ComputePilTaps(src.height, g.resized_height, cy0, cy1);
    sy0 = vtaps.first.front();
    sy1 = 0;
    for (size_t i = 0; i < vtaps.first.size(); ++i) {
      sy0 = std::min<int64_t>(sy0, vtaps.first[i]);
      sy1 = std::max<int64_t>(sy1, vtaps.first[i] + vtaps.count[i]);
    }
    sy1 = std::max(sy1, sy0);
  }

  RgbView rows{src.rgb.data(), static_cast<size_t>(src.width) * 3, 0, 0};
  std::vector<uint8_t> temp;
  if (need_horizontal) {
    const PilTaps htaps = ComputePilTaps(src.width, g.resized_width, cx0, cx1);
    const size_t cols = static_cast<size_t>(cx1 - cx0);
    temp.resize(static_cast<size_t>(sy1 - sy0) * cols * 3);
    for (int64_t y = sy0; y < sy1; ++y) {
      const uint8_t* in = src.rgb.data() + static_cast<size_t>(y) * rows.stride;
      uint8_t* out = temp.data() + static_cast<size_t>(y - sy0) * cols * 3;
      for (size_t i = 0; i < cols; ++i) {
        const int32_t* k = &htaps.weights[i * static_cast<size_t>(htaps.ksize)];
        const uint8_t* p = in + static_cast<size_t>(htaps.first[i]) * 3;
        int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < htaps.count[i]; ++x, p += 3) {
          s0 += p[0] * k[x];
          s1 += p[1] * k[x];
          s2 += p[2] * k[x];
        }
        out[i * 3 + 0] = Clip8(s0);
        out[i * 3 + 1] = Clip8(s1);
        out[i * 3 + 2] = Clip8(s2);
      }
    }
    rows = RgbView{temp.data(), cols * 3, sy0, cx0};
  }

  const size_t out_stride = static_cast<size_t>(out_w) * 3;
  const size_t row_values = static_cast<size_t>(cx1 - cx0) * 3;
  // Row-at-a-time accumulation (same sums as Pillow's per-pixel loop, in the same order),
  // so that the inner loop runs over contiguous values and vectorises.
  std::vector<int32_t> acc(need_vertical ? row_values : 0);
  for (int64_t y = cy0; y < cy1; ++y) {
    uint8_t* out = window + static_cast<size_t>(y - g.top) * out_stride +
                   static_cast<size_t>(cx0 - g.left) * 3;
    if (!need_vertical) {
      std::copy_n(rows.At(y, cx0), row_values, out);
      continue;
    }
    const size_t i = static_cast<size_t>(y - cy0);
    const int32_t* k = &vtaps.weights[i * static_cast<size_t>(vtaps.ksize)];
    std::fill(acc.begin(), acc.end(), int32_t{1} << (kPrecisionBits - 1));
    for (int t = 0; t < vtaps.count[i]; ++t) {
      const uint8_t* p = rows.At(vtaps.first[i] + t, cx0);
      const int32_t weight = k[t];
      int32_t* a = acc.data();
      for (size_t v = 0; v < row_values; ++v) a[v] += p[v] * weight;
    }
    for (size_t v = 0; v < row_values; ++v) out[v] = Clip8(acc[v]);
  }
}

// ---------------------------------------------------------------------------------------

int OpenCvInterpolation(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::kNearest:
      return cv::INTER_NEAREST;
    case Interpolation::kArea:
      return cv::INTER_AREA;
    case Interpolation::kBicubic:
      return cv::INTER_CUBIC;
    case Interpolation::kBilinear:
    case Interpolation::kPilBilinear:
      break;
  }
  return cv::INTER_LINEAR;
}

// Resizes the whole image with OpenCV, then copies the window (zero outside the image).
Status OpenCvWindow(const Image& src, const Geometry& g, const PreprocessSpec& spec,
                    uint8_t* window) {
  cv::Mat input(src.height, src.width, CV_8UC3, const_cast<uint8_t*>(src.rgb.data()));
  cv::Mat resized = input;
  if (g.resized_width != src.width || g.resized_height != src.height) {
    if (g.resized_width * g.resized_height > kMaxOpenCvResizedPixels) {
      return Status::ResourceExhausted("resizing to " + std::to_string(g.resized_width) + "x" +
                                       std::to_string(g.resized_height) +
                                       " before the crop is over the limit of " +
                                       std::to_string(kMaxOpenCvResizedPixels) + " pixels");
    }
    cv::resize(input, resized,
               cv::Size(static_cast<int>(g.resized_width), static_cast<int>(g.resized_height)), 0,
               0, OpenCvInterpolation(spec.interpolation));
  }
  const int64_t cx0 = std::max<int64_t>(g.left, 0);
  const int64_t cx1 = std::min<int64_t>(g.left + spec.width, g.resized_width);
  const size_t out_stride = static_cast<size_t>(spec.width) * 3;
  for (int64_t y = std::max<int64_t>(g.top, 0);
       y < std::min<int64_t>(g.top + spec.height, g.resized_height); ++y) {
    if (cx0 >= cx1) break;
    const uint8_t* in = resized.ptr<uint8_t>(static_cast<int>(y)) + cx0 * 3;
    std::copy_n(in, static_cast<size_t>(cx1 - cx0) * 3,
                window + static_cast<size_t>(y - g.top) * out_stride +
                    static_cast<size_t>(cx0 - g.left) * 3);
  }
  return Status::OK();
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

Status ValidatePreprocessSpec(const PreprocessSpec& spec) {
  if (spec.width < 1 || spec.width > kMaxSide || spec.height < 1 || spec.height > kMaxSide) {
    return Status::InvalidArgument("preprocess size " + std::to_string(spec.width) + "x" +
                                   std::to_string(spec.height) + " is outside 1.." +
                                   std::to_string(kMaxSide));
  }
  if (spec.resize != ResizePolicy::kStretch && spec.resize != ResizePolicy::kShorterSideCrop) {
    return Status::InvalidArgument("invalid resize policy");
  }
  if (spec.resize == ResizePolicy::kShorterSideCrop) {
    if (!(spec.crop_fraction > 0.0 && spec.crop_fraction <= 1.0)) {
      return Status::InvalidArgument("crop_fraction must be in (0, 1], got " +
                                     std::to_string(spec.crop_fraction));
    }
    if (std::min(spec.width, spec.height) / spec.crop_fraction > kMaxResizedShortSide) {
      return Status::InvalidArgument("crop_fraction " + std::to_string(spec.crop_fraction) +
                                     " is too small: the resize before the crop would exceed " +
                                     std::to_string(static_cast<int>(kMaxResizedShortSide)) +
                                     " pixels");
    }
  }
  switch (spec.interpolation) {
    case Interpolation::kNearest:
    case Interpolation::kBilinear:
    case Interpolation::kArea:
    case Interpolation::kBicubic:
    case Interpolation::kPilBilinear:
      break;
    default:
      return Status::InvalidArgument("invalid interpolation");
  }
  if (spec.channel_order != ChannelOrder::kRGB && spec.channel_order != ChannelOrder::kBGR) {
    return Status::InvalidArgument("invalid channel order");
  }
  if (!std::isfinite(spec.scale)) return Status::InvalidArgument("scale must be finite");
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(spec.mean[c])) {
      return Status::InvalidArgument("mean[" + std::to_string(c) + "] must be finite");
    }
    if (!std::isfinite(spec.stddev[c]) || spec.stddev[c] == 0.0f) {
      return Status::InvalidArgument("stddev[" + std::to_string(c) +
                                     "] must be finite and non-zero");
    }
  }
  return Status::OK();
}

Status Preprocess(const Image& image, const PreprocessSpec& spec, float* out) {
  ORCHARD_RETURN_NOT_OK(ValidatePreprocessSpec(spec));
  if (image.width <= 0 || image.height <= 0) {
    return Status::InvalidArgument("empty image (" + std::to_string(image.width) + "x" +
                                   std::to_string(image.height) + ")");
  }
  if (image.rgb.size() !=
      size_t{3} * static_cast<size_t>(image.width) * static_cast<size_t>(image.height)) {
    return Status::InvalidArgument("image buffer holds " + std::to_string(image.rgb.size()) +
                                   " bytes, not 3 * " + std::to_string(image.width) + " * " +
                                   std::to_string(image.height));
  }
  if (out == nullptr) return Status::InvalidArgument("null output buffer");
  ORCHARD_ASSIGN_OR_RETURN(const Geometry g, ComputeGeometry(image.width, image.height, spec));

  const size_t plane = static_cast<size_t>(spec.width) * static_cast<size_t>(spec.height);
  try {
    std::vector<uint8_t> window(plane * 3, 0);
    if (spec.interpolation == Interpolation::kPilBilinear) {
      PilBilinearWindow(image, g, spec.width, spec.height, window.data());
    } else {
      ORCHARD_RETURN_NOT_OK(OpenCvWindow(image, g, spec, window.data()));
    }
    // A 256-entry table per output channel holds exactly the float the formula gives, so the
    // result equals the per-pixel computation.
    std::array<std::array<float, 256>, 3> lut;
    for (int c = 0; c < 3; ++c) {
      for (int v = 0; v < 256; ++v) {
        lut[c][v] = (static_cast<float>(v) * spec.scale - spec.mean[c]) / spec.stddev[c];
      }
    }
    for (int c = 0; c < 3; ++c) {
      const int source_channel = spec.channel_order == ChannelOrder::kRGB ? c : 2 - c;
      const uint8_t* in = window.data() + source_channel;
      float* dst = out + static_cast<size_t>(c) * plane;
      const std::array<float, 256>& table = lut[c];
      for (size_t i = 0; i < plane; ++i) dst[i] = table[in[i * 3]];
    }
  } catch (const cv::Exception& e) {
    return Status::Internal(std::string("resize failed: ") + OneLine(e));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory while preprocessing");
  }
  return Status::OK();
}

Result<ResizePolicy> ParseResizePolicy(const std::string& name) {
  if (name == "stretch") return ResizePolicy::kStretch;
  if (name == "shorter_side_crop") return ResizePolicy::kShorterSideCrop;
  return Status::InvalidArgument("unknown resize policy " + Quoted(name) +
                                 " (valid: stretch, shorter_side_crop)");
}

Result<Interpolation> ParseInterpolation(const std::string& name) {
  if (name == "nearest") return Interpolation::kNearest;
  if (name == "bilinear") return Interpolation::kBilinear;
  if (name == "area") return Interpolation::kArea;
  if (name == "bicubic") return Interpolation::kBicubic;
  if (name == "pil_bilinear") return Interpolation::kPilBilinear;
  return Status::InvalidArgument("unknown interpolation " + Quoted(name) +
                                 " (valid: nearest, bilinear, area, bicubic, pil_bilinear)");
}

Result<ChannelOrder> ParseChannelOrder(const std::string& name) {
  if (name == "RGB") return ChannelOrder::kRGB;
  if (name == "BGR") return ChannelOrder::kBGR;
  return Status::InvalidArgument("unknown channel order " + Quoted(name) + " (valid: RGB, BGR)");
}

std::pair<int, int> ScaledDecodeMinimums(const PreprocessSpec& spec) {
  // 1.5x margin: a DCT-scaled image then still shrinks by at least 1.5 in the resize, instead
  // of two nearly equal resizes in a row that blur (bench/bench_decode_scaling --gap).
  constexpr double kMargin = 1.5;
  if (spec.resize == ResizePolicy::kStretch) {
    return {static_cast<int>(std::ceil(kMargin * spec.width)),
            static_cast<int>(std::ceil(kMargin * spec.height))};
  }
  const int shorter =
      static_cast<int>(std::ceil(kMargin * std::max(spec.width, spec.height) / spec.crop_fraction));
  return {shorter, shorter};
}

}  // namespace orchard
