#include "orchard/preprocess.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <vector>

#include "orchard/image.h"

namespace orchard {
namespace {

Image RandomImage(int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  Image image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  // Smooth gradients plus noise: exercises both rounding and real interpolation.
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        const int v = (x * (c + 1) * 7 + y * (3 - c) * 5) % 256 + static_cast<int>(rng() % 32);
        image.rgb[(static_cast<size_t>(y) * width + x) * 3 + c] = static_cast<uint8_t>(v % 256);
      }
    }
  }
  return image;
}

PreprocessSpec RawSpec(int width, int height, ResizePolicy resize, Interpolation interpolation) {
  PreprocessSpec spec;
  spec.width = width;
  spec.height = height;
  spec.resize = resize;
  spec.interpolation = interpolation;
  return spec;  // scale 1, mean 0, stddev 1: the output is the resized uint8 values
}

std::vector<float> RunPreprocess(const Image& image, const PreprocessSpec& spec) {
  std::vector<float> out(TensorElements(spec), -12345.0f);
  const Status st = Preprocess(image, spec, out.data());
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

// ---------------------------------------------------------------------------------------
// The reference: each step written the plain way, from the torchvision / Pillow sources.

// torchvision 0.14: Resize(int(size / crop_fraction)) then CenterCrop((height, width)),
// where CenterCrop first pads (left/top by (crop - size) // 2) and then crops at
// int(round((size - crop) / 2.0)) of the padded image.
struct RefGeometry {
  int resized_width, resized_height, left, top;
};

RefGeometry ReferenceGeometry(int w, int h, const PreprocessSpec& spec) {
  if (spec.resize == ResizePolicy::kStretch) return {spec.width, spec.height, 0, 0};
  const int size =
      static_cast<int>(std::floor(std::min(spec.width, spec.height) / spec.crop_fraction));
  const int shorter = std::min(w, h), longer = std::max(w, h);
  const int new_long = static_cast<int>(std::floor(static_cast<double>(size) * longer / shorter));
  RefGeometry g{w <= h ? size : new_long, w <= h ? new_long : size, 0, 0};
  const int pad_left = spec.width > g.resized_width ? (spec.width - g.resized_width) / 2 : 0;
  const int pad_right = spec.width > g.resized_width ? (spec.width - g.resized_width + 1) / 2 : 0;
  const int pad_top = spec.height > g.resized_height ? (spec.height - g.resized_height) / 2 : 0;
  const int pad_bottom =
      spec.height > g.resized_height ? (spec.height - g.resized_height + 1) / 2 : 0;
  const int padded_w = g.resized_width + pad_left + pad_right;
  const int padded_h = g.resized_height + pad_top + pad_bottom;
  // std::nearbyint rounds halves to even, like Python's round().
  g.left = static_cast<int>(std::nearbyint((padded_w - spec.width) / 2.0)) - pad_left;
  g.top = static_cast<int>(std::nearbyint((padded_h - spec.height) / 2.0)) - pad_top;
  return g;
}

// Pillow's ImagingResample with the BILINEAR filter, on the whole image, one channel at a
// time, written without any windowing.
std::vector<uint8_t> ReferencePilResize(const std::vector<uint8_t>& in, int in_w, int in_h,
                                        int out_w, int out_h) {
  auto pass = [](const std::vector<uint8_t>& src, int w, int h, int out_size, bool horizontal) {
    const int in_size = horizontal ? w : h;
    const double scale = static_cast<double>(in_size) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = filterscale;
    const int ow = horizontal ? out_size : w, oh = horizontal ? h : out_size;
    std::vector<uint8_t> dst(static_cast<size_t>(ow) * oh * 3);
    for (int o = 0; o < out_size; ++o) {
      const double center = (o + 0.5) * scale;
      const int lo = std::max(0, static_cast<int>(center - support + 0.5));
      const int hi = std::min(in_size, static_cast<int>(center + support + 0.5));
      std::vector<double> weights;
      double total = 0;
      for (int i = lo; i < hi; ++i) {
        const double d = std::abs((i - center + 0.5) * (1.0 / filterscale));
        weights.push_back(d < 1.0 ? 1.0 - d : 0.0);
        total += weights.back();
      }
      std::vector<int> fixed;
      for (double wgt : weights) fixed.push_back(static_cast<int>(0.5 + wgt / total * (1 << 22)));
      const int lines = horizontal ? h : w;
      for (int line = 0; line < lines; ++line) {
        for (int c = 0; c < 3; ++c) {
          int acc = 1 << 21;
          for (int i = lo; i < hi; ++i) {
            const int x = horizontal ? i : line, y = horizontal ? line : i;
            acc += src[(static_cast<size_t>(y) * w + x) * 3 + c] * fixed[i - lo];
          }
          const int x = horizontal ? o : line, y = horizontal ? line : o;
          dst[(static_cast<size_t>(y) * ow + x) * 3 + c] =
              static_cast<uint8_t>(std::clamp(acc >> 22, 0, 255));
        }
      }
    }
    return dst;
  };
  std::vector<uint8_t> out = in;
  int w = in_w;
  if (out_w != in_w) {
    out = pass(out, w, in_h, out_w, true);
    w = out_w;
  }
  if (out_h != in_h) out = pass(out, w, in_h, out_h, false);
  return out;
}

std::vector<float> ReferencePreprocess(const Image& image, const PreprocessSpec& spec) {
  const RefGeometry g = ReferenceGeometry(image.width, image.height, spec);
  std::vector<uint8_t> resized;
  if (g.resized_width == image.width && g.resized_height == image.height) {
    resized = image.rgb;
  } else if (spec.interpolation == Interpolation::kPilBilinear) {
    resized =
        ReferencePilResize(image.rgb, image.width, image.height, g.resized_width, g.resized_height);
  } else {
    const int flag = spec.interpolation == Interpolation::kNearest   ? cv::INTER_NEAREST
                     : spec.interpolation == Interpolation::kArea    ? cv::INTER_AREA
                     : spec.interpolation == Interpolation::kBicubic ? cv::INTER_CUBIC
                                                                     : cv::INTER_LINEAR;
    const cv::Mat in(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
    cv::Mat out;
    cv::resize(in, out, cv::Size(g.resized_width, g.resized_height), 0, 0, flag);
    resized.assign(out.data, out.data + out.total() * 3);
  }
  std::vector<float> tensor(TensorElements(spec));
  for (int y = 0; y < spec.height; ++y) {
    for (int x = 0; x < spec.width; ++x) {
      const int sx = x + g.left, sy = y + g.top;
      const bool inside = sx >= 0 && sy >= 0 && sx < g.resized_width && sy < g.resized_height;
      for (int c = 0; c < 3; ++c) {
        const int source_channel = spec.channel_order == ChannelOrder::kRGB ? c : 2 - c;
        const uint8_t px =
            inside ? resized[(static_cast<size_t>(sy) * g.resized_width + sx) * 3 + source_channel]
                   : 0;
        tensor[(static_cast<size_t>(c) * spec.height + y) * spec.width + x] =
            (static_cast<float>(px) * spec.scale - spec.mean[c]) / spec.stddev[c];
      }
    }
  }
  return tensor;
}

void ExpectMatchesReference(const Image& image, const PreprocessSpec& spec) {
  const std::vector<float> got = RunPreprocess(image, spec);
  const std::vector<float> want = ReferencePreprocess(image, spec);
  ASSERT_EQ(got.size(), want.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && mismatches++ == 0) first = i;
  }
  EXPECT_EQ(mismatches, 0u) << "image " << image.width << "x" << image.height << " -> "
                            << spec.width << "x" << spec.height << " first at " << first << ": "
                            << got[first] << " vs " << want[first];
}

const Interpolation kAllInterpolations[] = {Interpolation::kNearest, Interpolation::kBilinear,
                                            Interpolation::kArea, Interpolation::kBicubic,
                                            Interpolation::kPilBilinear};

// ---------------------------------------------------------------------------------------

TEST(Preprocess, MatchesReferenceForEveryPolicyAndInterpolation) {
  const std::vector<std::pair<int, int>> image_sizes = {
      {100, 100}, {640, 480}, {333, 517}, {57, 31}, {224, 224}, {1, 1}, {300, 2}, {225, 224}};
  const std::vector<std::pair<int, int>> targets = {
      {224, 224}, {299, 299}, {160, 224}, {224, 96}, {1, 1}};
  uint32_t seed = 1;
  for (const auto& [w, h] : image_sizes) {
    const Image image = RandomImage(w, h, seed++);
    for (const auto& [tw, th] : targets) {
      for (ResizePolicy policy : {ResizePolicy::kStretch, ResizePolicy::kShorterSideCrop}) {
        for (Interpolation interpolation : kAllInterpolations) {
          SCOPED_TRACE(::testing::Message()
                       << w << "x" << h << " -> " << tw << "x" << th << " policy "
                       << static_cast<int>(policy) << " interpolation "
                       << static_cast<int>(interpolation));
          ExpectMatchesReference(image, RawSpec(tw, th, policy, interpolation));
        }
      }
    }
  }
}

TEST(Preprocess, NormalisationAndChannelOrder) {
  const Image image = RandomImage(61, 47, 99);
  PreprocessSpec torch =
      RawSpec(32, 32, ResizePolicy::kShorterSideCrop, Interpolation::kPilBilinear);
  torch.scale = 1.0f / 255.0f;
  torch.mean = {0.485f, 0.456f, 0.406f};
  torch.stddev = {0.229f, 0.224f, 0.225f};
  ExpectMatchesReference(image, torch);

  PreprocessSpec caffe = RawSpec(40, 30, ResizePolicy::kStretch, Interpolation::kBilinear);
  caffe.channel_order = ChannelOrder::kBGR;
  caffe.mean = {103.939f, 116.779f, 123.68f};
  ExpectMatchesReference(image, caffe);

  // BGR really swaps: plane 0 of the BGR tensor is plane 2 of the RGB one (mean/std equal).
  PreprocessSpec rgb = RawSpec(20, 20, ResizePolicy::kStretch, Interpolation::kArea);
  PreprocessSpec bgr = rgb;
  bgr.channel_order = ChannelOrder::kBGR;
  const auto a = RunPreprocess(image, rgb), b = RunPreprocess(image, bgr);
  for (size_t i = 0; i < 400; ++i) {
    ASSERT_EQ(a[i], b[800 + i]);
    ASSERT_EQ(a[400 + i], b[400 + i]);
    ASSERT_EQ(a[800 + i], b[i]);
  }
}

TEST(Preprocess, PilBilinearKnownValues) {
  // Values produced by Pillow 9.4 Image.resize(..., BILINEAR) on single-row "L" images.
  struct Case {
    std::vector<uint8_t> in;
    int out_w;
    std::vector<float> want;
  };
  for (const Case& c :
       {Case{{0, 100, 200, 255}, 2, {71, 209}}, Case{{10, 20, 30, 40, 50, 60, 70}, 3, {19, 40, 61}},
        Case{{0, 255}, 5, {0, 25, 128, 230, 255}}}) {
    Image image{static_cast<int>(c.in.size()), 1, {}};
    for (uint8_t v : c.in) image.rgb.insert(image.rgb.end(), {v, v, v});
    const auto out = RunPreprocess(
        image, RawSpec(c.out_w, 1, ResizePolicy::kStretch, Interpolation::kPilBilinear));
    for (int x = 0; x < c.out_w; ++x) {
      for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(out[ch * c.out_w + x], c.want[x]) << x;
    }
  }
}

TEST(Preprocess, CenterCropRoundsHalvesToEven) {
  // An image already at the resize size is only cropped: 341x256 -> S = 256, long side
  // int(256 * 341 / 256) = 341, left = round(117 / 2) = round(58.5) = 58 (Python: to even).
  // 343x256: round(59.5) = 60. Pixel values encode the column.
  for (const auto& [w, expected_left] : std::vector<std::pair<int, int>>{{341, 58}, {343, 60}}) {
    Image image{w, 256, std::vector<uint8_t>(static_cast<size_t>(w) * 256 * 3)};
    for (int y = 0; y < 256; ++y) {
      for (int x = 0; x < w; ++x) {
        uint8_t* p = &image.rgb[(static_cast<size_t>(y) * w + x) * 3];
        p[0] = static_cast<uint8_t>(x);
        p[1] = static_cast<uint8_t>(x >> 8);
        p[2] = static_cast<uint8_t>(y);
      }
    }
    for (Interpolation interpolation : kAllInterpolations) {
      const auto out =
          RunPreprocess(image, RawSpec(224, 224, ResizePolicy::kShorterSideCrop, interpolation));
      const int plane = 224 * 224;
      EXPECT_EQ(out[0] + 256 * out[plane], expected_left) << w;  // column of output (0, 0)
      EXPECT_EQ(out[2 * plane], 16) << w;                        // row: (256 - 224) / 2
    }
  }
}

TEST(Preprocess, CropLargerThanResizedImageIsZeroPadded) {
  // 200x200 to 224 wide x 160 high: S = int(160 / 0.875) = 182, so the 182x182 image is
  // padded by 21 columns each side (torchvision CenterCrop) and cropped by 11 rows on top.
  const Image image = RandomImage(200, 200, 5);
  PreprocessSpec spec =
      RawSpec(224, 160, ResizePolicy::kShorterSideCrop, Interpolation::kPilBilinear);
  spec.mean = {10, 20, 30};
  const auto out = RunPreprocess(image, spec);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 160; ++y) {
      for (int x : {0, 20, 203, 223}) {
        ASSERT_EQ(out[(static_cast<size_t>(c) * 160 + y) * 224 + x], -spec.mean[c]);
      }
    }
  }
  ExpectMatchesReference(image, spec);
}

TEST(Preprocess, SameSizeSkipsResize) {
  const Image image = RandomImage(48, 36, 3);
  for (Interpolation interpolation : kAllInterpolations) {
    const auto out = RunPreprocess(image, RawSpec(48, 36, ResizePolicy::kStretch, interpolation));
    for (int c = 0; c < 3; ++c) {
      for (size_t i = 0; i < 48 * 36; ++i) {
        ASSERT_EQ(out[c * 48 * 36 + i], image.rgb[i * 3 + c]);
      }
    }
  }
}

TEST(Preprocess, ExtremeAspectRatio) {
  // 1x500: the resize before the crop is 256 x 128000; Pillow's path computes only the
  // 224x224 window of it.
  ExpectMatchesReference(RandomImage(1, 500, 11), RawSpec(224, 224, ResizePolicy::kShorterSideCrop,
                                                          Interpolation::kPilBilinear));
  // 1x5000: 256 x 1280000 would be 1 GB for OpenCV, which resizes whole images.
  const Image strip = RandomImage(1, 5000, 12);
  const PreprocessSpec pil =
      RawSpec(224, 224, ResizePolicy::kShorterSideCrop, Interpolation::kPilBilinear);
  std::vector<float> out(TensorElements(pil));
  EXPECT_TRUE(Preprocess(strip, pil, out.data()).ok());
  const Status st =
      Preprocess(strip, RawSpec(224, 224, ResizePolicy::kShorterSideCrop, Interpolation::kBilinear),
                 out.data());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
}

TEST(Preprocess, RejectsBadInput) {
  const PreprocessSpec good;
  std::vector<float> out(TensorElements(good));
  EXPECT_EQ(Preprocess(Image{}, good, out.data()).code(), StatusCode::kInvalidArgument);
  Image short_buffer{4, 4, std::vector<uint8_t>(47)};
  EXPECT_EQ(Preprocess(short_buffer, good, out.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Preprocess(RandomImage(4, 4, 1), good, nullptr).code(), StatusCode::kInvalidArgument);
}

TEST(ValidatePreprocessSpec, Limits) {
  EXPECT_TRUE(ValidatePreprocessSpec(PreprocessSpec{}).ok());
  auto invalid = [](auto mutate) {
    PreprocessSpec spec;
    spec.resize = ResizePolicy::kShorterSideCrop;
    mutate(spec);
    return ValidatePreprocessSpec(spec).code() == StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.width = 0; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.height = 16385; }));
  EXPECT_FALSE(invalid([](PreprocessSpec& s) { s.height = 16384; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.crop_fraction = 0; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.crop_fraction = 1.01; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.crop_fraction = std::nan(""); }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.crop_fraction = 1e-9; }));
  EXPECT_FALSE(invalid([](PreprocessSpec& s) { s.crop_fraction = 1.0; }));
  EXPECT_FALSE(invalid([](PreprocessSpec& s) {  // unused by kStretch
    s.resize = ResizePolicy::kStretch;
    s.crop_fraction = 0;
  }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.stddev[1] = 0; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.stddev[2] = INFINITY; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.mean[0] = NAN; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.scale = NAN; }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.interpolation = static_cast<Interpolation>(42); }));
  EXPECT_TRUE(invalid([](PreprocessSpec& s) { s.channel_order = static_cast<ChannelOrder>(7); }));
}

TEST(ParseSpecNames, KnownAndUnknown) {
  EXPECT_EQ(*ParseResizePolicy("stretch"), ResizePolicy::kStretch);
  EXPECT_EQ(*ParseResizePolicy("shorter_side_crop"), ResizePolicy::kShorterSideCrop);
  EXPECT_EQ(*ParseInterpolation("nearest"), Interpolation::kNearest);
  EXPECT_EQ(*ParseInterpolation("bilinear"), Interpolation::kBilinear);
  EXPECT_EQ(*ParseInterpolation("area"), Interpolation::kArea);
  EXPECT_EQ(*ParseInterpolation("bicubic"), Interpolation::kBicubic);
  EXPECT_EQ(*ParseInterpolation("pil_bilinear"), Interpolation::kPilBilinear);
  EXPECT_EQ(*ParseChannelOrder("RGB"), ChannelOrder::kRGB);
  EXPECT_EQ(*ParseChannelOrder("BGR"), ChannelOrder::kBGR);

  const auto policy = ParseResizePolicy("crop");
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(policy.status().message(),
            "unknown resize policy \"crop\" (valid: stretch, shorter_side_crop)");
  const auto interpolation = ParseInterpolation("lanczos");
  ASSERT_FALSE(interpolation.ok());
  EXPECT_EQ(interpolation.status().message(),
            "unknown interpolation \"lanczos\" (valid: nearest, bilinear, area, bicubic, "
            "pil_bilinear)");
  const auto order = ParseChannelOrder("rgb");
  ASSERT_FALSE(order.ok());
  EXPECT_EQ(order.status().message(), "unknown channel order \"rgb\" (valid: RGB, BGR)");
}

TEST(ScaledDecodeMinimums, LeaveAMarginAboveWhatTheResizeNeeds) {
  PreprocessSpec stretch;
  stretch.width = 224;
  stretch.height = 100;
  EXPECT_EQ(ScaledDecodeMinimums(stretch), std::make_pair(336, 150));
  PreprocessSpec crop;
  crop.resize = ResizePolicy::kShorterSideCrop;
  crop.crop_fraction = 0.875;
  crop.width = crop.height = 224;  // resized shorter side 256, times 1.5
  EXPECT_EQ(ScaledDecodeMinimums(crop), std::make_pair(384, 384));
}

}  // namespace
}  // namespace orchard
