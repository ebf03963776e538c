#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "image/image_header_internal.h"
#include "orchard/image.h"
#include "test_util.h"

namespace orchard {
namespace {

using Bytes = std::vector<uint8_t>;

// A deterministic, non-symmetric RGB test pattern (so that any flip or rotation shows),
// smooth enough that JPEG at high quality reproduces it closely.
cv::Mat PatternRgb(int width, int height) {
  cv::Mat rgb(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(x * 255 / std::max(1, width - 1)),
                                          static_cast<uint8_t>(y * 255 / std::max(1, height - 1)),
                                          static_cast<uint8_t>((x + 2 * y) % 256));
    }
  }
  return rgb;
}

// Encodes with TurboJPEG. `pixels` holds width * height * tjPixelSize[format] bytes.
Bytes EncodeJpeg(const uint8_t* pixels, int width, int height, int pixel_format, int subsamp,
                 int quality = 95, int flags = 0) {
  tjhandle tj = tjInitCompress();
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(tj, pixels, width, 0, height, pixel_format, &jpeg, &size, subsamp,
                             quality, flags);
  EXPECT_EQ(rc, 0) << tjGetErrorStr2(tj);
  Bytes out(jpeg, jpeg + size);
  tjFree(jpeg);
  tjDestroy(tj);
  return out;
}

Bytes EncodeJpegRgb(const cv::Mat& rgb, int quality = 95, int flags = 0) {
  return EncodeJpeg(rgb.data, rgb.cols, rgb.rows, TJPF_RGB, TJSAMP_420, quality, flags);
}

// OpenCV encoders take BGR(A); `mat` is given in OpenCV's order.
Bytes Encode(const std::string& ext, const cv::Mat& mat, const std::vector<int>& params = {}) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(ext, mat, out, params));
  return out;
}

cv::Mat AsMat(const Image& image) {
  return cv::Mat(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
}

// The reference decoder: OpenCV's imdecode, converted to RGB.
cv::Mat OpenCvDecodeRgb(const Bytes& bytes, int flags = cv::IMREAD_COLOR) {
  cv::Mat bgr = cv::imdecode(bytes, flags), rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

int MaxAbsDiff(const cv::Mat& a, const cv::Mat& b) {
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(a.type(), b.type());
  if (a.size() != b.size() || a.type() != b.type()) return 1 << 30;
  double max_diff = 0;
  cv::minMaxLoc(cv::abs(a - b) + cv::abs(b - a), nullptr, &max_diff);
  return static_cast<int>(max_diff);
}

Result<Image> Decode(const Bytes& bytes, const DecodeOptions& options = {}) {
  return DecodeImage(std::span<const uint8_t>(bytes), options);
}

// Offset of the SOF0/SOF2 payload in a JPEG (after marker and length), or 0.
size_t FindSofPayload(const Bytes& jpeg) {
  size_t pos = 2;
  while (pos + 4 <= jpeg.size() && jpeg[pos] == 0xff) {
    const uint8_t marker = jpeg[pos + 1];
    const size_t length = (size_t{jpeg[pos + 2]} << 8) | jpeg[pos + 3];
    if (marker == 0xc0 || marker == 0xc2) return pos + 4;
    if (marker == 0xda) return 0;
    pos += 2 + length;
  }
  return 0;
}

// An APP1 "Exif" segment whose little-endian TIFF block holds only IFD0 with the orientation
// tag (SHORT, 1 value), inserted right after SOI.
Bytes WithExifOrientation(const Bytes& jpeg, int orientation) {
  const uint8_t value = static_cast<uint8_t>(orientation);
  // Marker and length (payload + 2); "Exif\0\0"; TIFF header with IFD0 at offset 8; one
  // entry: tag 0x0112, type SHORT, count 1, value left-aligned; no next IFD.
  const Bytes segment = {0xff, 0xe1, 0, 34, 'E',   'x', 'i', 'f', 0,    0,    'I', 'I',
                         42,   0,    8, 0,  0,     0,   1,   0,   0x12, 0x01, 3,   0,
                         1,    0,    0, 0,  value, 0,   0,   0,   0,    0,    0,   0};
  Bytes out(jpeg.begin(), jpeg.begin() + 2);
  out.insert(out.end(), segment.begin(), segment.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// Photograph-like content for the scaling tests: smooth shapes with fine texture (blurred
// noise) and a few sharp edges, so that the reduced IDCT's low-pass filtering shows.
cv::Mat TexturedRgb(int width, int height, unsigned seed = 7) {
  cv::Mat noise(height, width, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
  cv::GaussianBlur(noise, noise, cv::Size(0, 0), 1.5);
  cv::Mat rgb = PatternRgb(width, height);
  cv::addWeighted(rgb, 0.6, noise, 0.4, 0, rgb);
  cv::circle(rgb, cv::Point(width / 3, height / 2), std::min(width, height) / 4,
             cv::Scalar(200, 40, 30), cv::FILLED, cv::LINE_AA);
  cv::rectangle(rgb, cv::Rect(width / 2, height / 5, width / 4, height / 3),
                cv::Scalar(20, 160, 60), cv::FILLED);
  return rgb;
}

double MeanAbsDiff(const cv::Mat& a, const cv::Mat& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size() || a.type() != b.type()) return 1e9;
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  const cv::Scalar mean = cv::mean(diff);
  return (mean[0] + mean[1] + mean[2]) / 3.0;
}

DecodeOptions MinSize(int width, int height) {
  DecodeOptions options;
  options.min_width = width;
  options.min_height = height;
  return options;
}

// ---------------------------------------------------------------------------------------

TEST(SniffImageFormat, MagicBytes) {
  const Bytes jpeg = {0xff, 0xd8, 0xff, 0xe0};
  const Bytes png = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  const Bytes webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
  const Bytes wav = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E'};
  const Bytes bmp = {'B', 'M'};
  const Bytes short_jpeg = {0xff, 0xd8};
  EXPECT_EQ(SniffImageFormat(jpeg), ImageFormat::kJpeg);
  EXPECT_EQ(SniffImageFormat(png), ImageFormat::kPng);
  EXPECT_EQ(SniffImageFormat(webp), ImageFormat::kWebp);
  EXPECT_EQ(SniffImageFormat(wav), ImageFormat::kUnknown);
  EXPECT_EQ(SniffImageFormat(bmp), ImageFormat::kBmp);
  EXPECT_EQ(SniffImageFormat(short_jpeg), ImageFormat::kUnknown);
  EXPECT_EQ(SniffImageFormat({}), ImageFormat::kUnknown);
  EXPECT_STREQ(ImageFormatName(ImageFormat::kJpeg), "jpeg");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kPng), "png");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kWebp), "webp");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kBmp), "bmp");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kUnknown), "unknown");
}

TEST(DecodeImage, EmptyIsCorrupt) {
  const auto result = Decode({});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCorruptData);
  EXPECT_EQ(result.status().message(), "empty file");
}

TEST(DecodeImage, TextIsUnsupported) {
  const std::string text = "<html><body>404 Not Found</body></html>\n";
  const auto result = Decode(Bytes(text.begin(), text.end()));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(result.status().message(),
            "not a supported image (JPEG, PNG, WebP, BMP): content starts with "
            "3c 68 74 6d 6c 3e 3c 62 (\"<html><b\")");
}

TEST(DecodeImage, JpegMatchesLibjpegThroughOpenCv) {
  const cv::Mat rgb = PatternRgb(67, 45);  // odd sizes exercise partial MCUs
  for (int flags : {0, TJFLAG_PROGRESSIVE}) {
    const Bytes jpeg = EncodeJpegRgb(rgb, 90, flags);
    const auto image = Decode(jpeg);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(image->width, 67);
    EXPECT_EQ(image->height, 45);
    ASSERT_EQ(image->rgb.size(), 67u * 45u * 3u);
    // Same libjpeg-turbo, same IDCT and upsampling: identical pixels.
    EXPECT_EQ(MaxAbsDiff(AsMat(*image), OpenCvDecodeRgb(jpeg)), 0);
    EXPECT_LE(MaxAbsDiff(AsMat(*image), rgb), 40);  // and close to the source
  }
}

TEST(DecodeImage, TruncatedJpegIsCorrupt) {
  const Bytes jpeg = EncodeJpegRgb(PatternRgb(64, 64));
  for (int flags : {0, TJFLAG_PROGRESSIVE}) {
    const Bytes full = EncodeJpegRgb(PatternRgb(64, 64), 95, flags);
    const Bytes half(full.begin(), full.begin() + static_cast<ptrdiff_t>(full.size() / 2));
    const auto result = Decode(half);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kCorruptData);
    EXPECT_NE(result.status().message().find("JPEG"), std::string::npos)
        << result.status().message();
  }
  // The same thread's decompressor still works after an error.
  EXPECT_TRUE(Decode(jpeg).ok());
  // Cut inside the headers, before the frame header.
  const Bytes header_only(jpeg.begin(), jpeg.begin() + 30);
  const auto result = Decode(header_only);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCorruptData);
}

TEST(DecodeImage, StrayBytesBetweenSegmentsAreToleratedAsPillowDoes) {
  // Two stray bytes between segments: libjpeg warns "Corrupt JPEG data: 2 extraneous bytes
  // before marker" but loses no pixel, so the image decodes exactly as the clean file.
  const Bytes jpeg = EncodeJpegRgb(PatternRgb(16, 16));
  const size_t sof = FindSofPayload(jpeg);
  ASSERT_GT(sof, 4u);
  Bytes stray = jpeg;
  stray.insert(stray.begin() + static_cast<ptrdiff_t>(sof - 4), {0x12, 0x34});
  // The header reader skips them as libjpeg does, and still finds the frame.
  const auto info = internal::ReadJpegFrameInfo(stray);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->width, 16u);
  const auto result = Decode(stray);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const auto clean = Decode(jpeg);
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(result->rgb, clean->rgb);
}

TEST(DecodeImage, CorruptEntropyDataIsAnError) {
  // Garbage in the middle of the scan: libjpeg would warn and fill with grey.
  const Bytes jpeg = EncodeJpegRgb(PatternRgb(64, 64));
  Bytes broken = jpeg;
  for (size_t i = broken.size() / 2; i < broken.size() / 2 + 40; ++i) broken[i] = 0xFF;
  const auto result = Decode(broken);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCorruptData);
}

TEST(DecodeImage, GrayscaleJpegBecomesThreeEqualChannels) {
  cv::Mat gray(33, 50, CV_8UC1);
  for (int y = 0; y < gray.rows; ++y) {
    for (int x = 0; x < gray.cols; ++x) gray.at<uint8_t>(y, x) = static_cast<uint8_t>(x * 5);
  }
  const Bytes jpeg = EncodeJpeg(gray.data, gray.cols, gray.rows, TJPF_GRAY, TJSAMP_GRAY, 100);
  const auto image = Decode(jpeg);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_EQ(image->width, 50);
  for (int y = 0; y < image->height; ++y) {
    for (int x = 0; x < image->width; ++x) {
      const uint8_t* p = &image->rgb[(static_cast<size_t>(y) * 50 + x) * 3];
      ASSERT_EQ(p[0], p[1]);
      ASSERT_EQ(p[1], p[2]);
      ASSERT_NEAR(p[0], gray.at<uint8_t>(y, x), 3);
    }
  }
}

TEST(DecodeImage, CmykJpegIsAdobeInverted) {
  // Flat 8x8 blocks survive quality-100 4:4:4 compression almost exactly.
  const int w = 32, h = 16;
  Bytes cmyk(static_cast<size_t>(w) * h * 4);
  const uint8_t colors[8][4] = {{255, 255, 255, 255}, {0, 0, 0, 255},     {255, 0, 128, 255},
                                {200, 100, 50, 128},  {255, 255, 255, 0}, {10, 240, 90, 200},
                                {128, 128, 128, 128}, {60, 180, 255, 255}};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      std::memcpy(&cmyk[(static_cast<size_t>(y) * w + x) * 4], colors[(y / 8) * 4 + x / 8], 4);
    }
  }
  const Bytes jpeg = EncodeJpeg(cmyk.data(), w, h, TJPF_CMYK, TJSAMP_444, 100);
  const auto image = Decode(jpeg);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_EQ(image->width, w);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t* c = colors[(y / 8) * 4 + x / 8];
      const uint8_t* p = &image->rgb[(static_cast<size_t>(y) * w + x) * 3];
      for (int ch = 0; ch < 3; ++ch) {
        const int expected = static_cast<int>(std::lround(c[ch] * c[3] / 255.0));
        ASSERT_NEAR(p[ch], expected, 3) << "x " << x << " y " << y << " channel " << ch;
      }
    }
  }
}

TEST(DecodeImage, JpegOverPixelLimitIsRefusedBeforeDecoding) {
  Bytes jpeg = EncodeJpegRgb(PatternRgb(16, 16));
  const size_t sof = FindSofPayload(jpeg);
  ASSERT_GT(sof, 0u);
  // precision (1), height (2), width (2): claim 60000x60000 without the data to back it.
  jpeg[sof + 1] = 60000 >> 8;
  jpeg[sof + 2] = 60000 & 0xff;
  jpeg[sof + 3] = 60000 >> 8;
  jpeg[sof + 4] = 60000 & 0xff;
  const auto result = Decode(jpeg);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(result.status().message(),
            "image is 60000x60000 = 3600000000 pixels, over the limit of 89478485 (--max-pixels)");

  const Bytes small = EncodeJpegRgb(PatternRgb(20, 10));
  EXPECT_TRUE(Decode(small, DecodeOptions{.max_pixels = 200}).ok());
  const auto over = Decode(small, DecodeOptions{.max_pixels = 199});
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
}

// What the first bytes condemn is refused before the rest is read; what they cannot tell
// is left to the decode of the whole file.
TEST(CheckImagePrefix, RefusesFromTheHeaderAndTheSizeAlone) {
  Bytes jpeg = EncodeJpegRgb(PatternRgb(16, 16));
  const DecodeOptions options;
  EXPECT_TRUE(CheckImagePrefix(jpeg, jpeg.size(), options).ok());
  // A 16x16 JPEG header in a 3 GB file: no image within the pixel limit is that large.
  const Status huge = CheckImagePrefix(jpeg, uint64_t{3} << 30, options);
  EXPECT_EQ(huge.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(huge.message().find("more than any image within the pixel limit"), std::string::npos)
      << huge.message();
  EXPECT_EQ(MaxEncodedBytes(89'478'485), uint64_t{89'478'485} * 8 + (uint64_t{64} << 20));
  EXPECT_EQ(MaxEncodedBytes(UINT64_MAX), UINT64_MAX);

  const size_t sof = FindSofPayload(jpeg);
  ASSERT_GT(sof, 0u);
  Bytes giga = jpeg;
  giga[sof + 1] = 60000 >> 8;
  giga[sof + 2] = 60000 & 0xff;
  giga[sof + 3] = 60000 >> 8;
  giga[sof + 4] = 60000 & 0xff;
  const std::span<const uint8_t> header(giga.data(), sof + 20);  // the frame header, no data
  EXPECT_EQ(CheckImagePrefix(header, 100'000'000, options).code(), StatusCode::kResourceExhausted);
  // The frame header is not in the prefix yet: no verdict.
  EXPECT_TRUE(CheckImagePrefix(std::span<const uint8_t>(giga.data(), 4), 100'000, options).ok());
  const Bytes text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!'};
  EXPECT_EQ(CheckImagePrefix(text, 1'000'000, options).code(), StatusCode::kUnsupported);
  EXPECT_EQ(CheckImagePrefix({}, 0, options).code(), StatusCode::kCorruptData);
}

TEST(DecodeImage, JpegProcessesLibjpegCannotDecodeAreUnsupported) {
  const Bytes jpeg = EncodeJpegRgb(PatternRgb(16, 16));
  const size_t sof = FindSofPayload(jpeg);
  ASSERT_GT(sof, 0u);
  Bytes lossless = jpeg;
  lossless[sof - 3] = 0xc3;  // the marker code of SOF0 -> SOF3 (lossless)
  auto result = Decode(lossless);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(result.status().message(),
            "JPEG process SOF C3 (lossless or hierarchical) is not supported");
  Bytes twelve_bit = jpeg;
  twelve_bit[sof] = 12;
  result = Decode(twelve_bit);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(result.status().message(), "12-bit JPEG is not supported");
}

TEST(DecodeImage, PngOverPixelLimitIsRefusedBeforeDecoding) {
  // Signature and an IHDR claiming 20000x20000 RGB, then nothing (no valid CRC, no data):
  // only the header reader may look at it.
  const Bytes png = {0x89, 'P',  'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0,    0, 0,
                     13,   'I',  'H', 'D', 'R',  0,    0,    0x4e, 0x20, 0, 0,
                     0x4e, 0x20, 8,   2,   0,    0,    0,    0,    0,    0, 0};
  const auto result = Decode(png);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(result.status().message(),
            "image is 20000x20000 = 400000000 pixels, over the limit of 89478485 (--max-pixels)");
}

TEST(DecodeImage, BmpAndWebpOverPixelLimitAreRefused) {
  // BITMAPINFOHEADER with width 30000, height -30000 (top-down).
  Bytes bmp(54, 0);
  bmp[0] = 'B';
  bmp[1] = 'M';
  bmp[14] = 40;
  const int32_t w = 30000, h = -30000;
  std::memcpy(&bmp[18], &w, 4);
  std::memcpy(&bmp[22], &h, 4);
  auto result = Decode(bmp);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted) << result.status().message();

  // VP8X with a 16384x16384 canvas (stored as size - 1, 24-bit little-endian).
  Bytes webp = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E',  'B',  'P', 'V',  'P',  '8',
                'X', 10,  0,   0,   0,  0, 0, 0, 0,   0xff, 0x3f, 0,   0xff, 0x3f, 0};
  result = Decode(webp);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted) << result.status().message();
  webp[20] = 0x02;  // animation flag
  result = Decode(webp);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnsupported);
}

TEST(ImageHeader, ReadsDimensionsOfRealEncodings) {
  const cv::Mat bgr = PatternRgb(37, 23);
  struct Case {
    std::string ext;
    std::vector<int> params;
  };
  for (const Case& c :
       {Case{".png", {}}, Case{".bmp", {}}, Case{".webp", {cv::IMWRITE_WEBP_QUALITY, 80}},
        Case{".webp", {cv::IMWRITE_WEBP_QUALITY, 101}}}) {
    const Bytes bytes = Encode(c.ext, bgr, c.params);
    const auto dims = internal::ReadImageDimensions(SniffImageFormat(bytes), bytes);
    ASSERT_TRUE(dims.ok()) << c.ext << ": " << dims.status().ToString();
    EXPECT_EQ(dims->width, 37u) << c.ext;
    EXPECT_EQ(dims->height, 23u) << c.ext;
  }
  const Bytes jpeg = EncodeJpegRgb(bgr);
  const auto info = internal::ReadJpegFrameInfo(jpeg);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->width, 37u);
  EXPECT_EQ(info->height, 23u);
  EXPECT_EQ(info->components, 3);
  // Every prefix shorter than the fields a reader needs is rejected, never read past.
  const std::vector<std::pair<Bytes, size_t>> needs = {
      {Encode(".png", bgr), 24}, {Encode(".bmp", bgr), 26}, {Encode(".webp", bgr), 30}};
  for (const auto& [full, need] : needs) {
    const ImageFormat format = SniffImageFormat(full);
    for (size_t n = 0; n <= need; ++n) {
      const Bytes prefix(full.begin(), full.begin() + static_cast<ptrdiff_t>(n));
      EXPECT_EQ(internal::ReadImageDimensions(format, prefix).ok(), n == need)
          << ImageFormatName(format) << " prefix " << n;
    }
  }
  for (size_t n = 0; n < jpeg.size(); ++n) {
    const Bytes prefix(jpeg.begin(), jpeg.begin() + static_cast<ptrdiff_t>(n));
    const auto prefix_info = internal::ReadJpegFrameInfo(prefix);
    if (prefix_info.ok()) {
      EXPECT_EQ(prefix_info->width, 37u);
    }
    if (n < FindSofPayload(jpeg) + 6) {
      EXPECT_FALSE(prefix_info.ok()) << n;
    }
  }
}

TEST(DecodeImage, PngWithAlphaDropsAlpha) {
  const cv::Mat rgb = PatternRgb(31, 17);
  cv::Mat bgra;
  cv::cvtColor(rgb, bgra, cv::COLOR_RGB2BGRA);
  for (int y = 0; y < bgra.rows; ++y) {
    for (int x = 0; x < bgra.cols; ++x) bgra.at<cv::Vec4b>(y, x)[3] = static_cast<uint8_t>(x * 8);
  }
  const auto image = Decode(Encode(".png", bgra));
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(MaxAbsDiff(AsMat(*image), rgb), 0);  // colour unchanged, not composited
}

TEST(DecodeImage, SixteenBitPngKeepsTheHighByte) {
  const cv::Mat rgb8 = PatternRgb(20, 12);
  cv::Mat bgr8, bgr16;
  cv::cvtColor(rgb8, bgr8, cv::COLOR_RGB2BGR);
  bgr8.convertTo(bgr16, CV_16UC3, 256.0, 0x7f);  // v * 256 + 127: the low byte is noise
  const Bytes png = Encode(".png", bgr16);
  ASSERT_EQ(png[24], 16);  // IHDR bit depth
  const auto image = Decode(png);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(MaxAbsDiff(AsMat(*image), rgb8), 0);
}

TEST(DecodeImage, GrayscalePngBecomesThreeEqualChannels) {
  cv::Mat gray(9, 14, CV_8UC1);
  for (int i = 0; i < 9 * 14; ++i) gray.data[i] = static_cast<uint8_t>(i * 2);
  const auto image = Decode(Encode(".png", gray));
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_EQ(image->width, 14);
  ASSERT_EQ(image->height, 9);
  for (int i = 0; i < 9 * 14; ++i) {
    for (int c = 0; c < 3; ++c) ASSERT_EQ(image->rgb[i * 3 + c], gray.data[i]);
  }
}

TEST(DecodeImage, LosslessFormatsRoundTripExactly) {
  const cv::Mat rgb = PatternRgb(29, 19);
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  for (const auto& [ext, params] : std::vector<std::pair<std::string, std::vector<int>>>{
           {".png", {}}, {".bmp", {}}, {".webp", {cv::IMWRITE_WEBP_QUALITY, 101}}}) {
    const auto image = Decode(Encode(ext, bgr, params));
    ASSERT_TRUE(image.ok()) << ext << ": " << image.status().ToString();
    EXPECT_EQ(MaxAbsDiff(AsMat(*image), rgb), 0) << ext;
  }
  const Bytes lossy = Encode(".webp", bgr, {cv::IMWRITE_WEBP_QUALITY, 90});
  const auto image = Decode(lossy);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(MaxAbsDiff(AsMat(*image), OpenCvDecodeRgb(lossy)), 0);
}

TEST(DecodeImage, TruncatedPngWebpBmpAreCorrupt) {
  const cv::Mat bgr = PatternRgb(64, 48);
  for (const auto& [ext, name] : std::vector<std::pair<std::string, std::string>>{
           {".png", "PNG"}, {".webp", "WebP"}, {".bmp", "BMP"}}) {
    const Bytes full = Encode(ext, bgr);
    for (size_t keep : {full.size() / 2, full.size() - 12, full.size() - 1}) {
      const Bytes cut(full.begin(), full.begin() + static_cast<ptrdiff_t>(keep));
      const auto result = Decode(cut);
      ASSERT_FALSE(result.ok()) << ext << " cut to " << keep << " of " << full.size();
      EXPECT_EQ(result.status().code(), StatusCode::kCorruptData);
      EXPECT_EQ(result.status().message(), "corrupt or truncated " + name);
    }
  }
}

TEST(DecodeImage, SharedBmpTestImagesDecode) {
  const auto dir = testing::SharedDir() / "models" / "test-images";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "shared test images not found at " << dir;
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".bmp") continue;
    const Bytes bytes = testing::ReadFileBytes(entry.path());
    const auto image = Decode(bytes);
    ASSERT_TRUE(image.ok()) << entry.path() << ": " << image.status().ToString();
    EXPECT_EQ(MaxAbsDiff(AsMat(*image), OpenCvDecodeRgb(bytes)), 0) << entry.path();
    ++count;
  }
  EXPECT_EQ(count, 3);
}

TEST(DecodeImage, SharedFruitJpegsMatchOpenCv) {
  const auto dir = testing::FruitsMiniDir() / "Training" / "Peach 3";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "shared fruit images not found at " << dir;
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const Bytes bytes = testing::ReadFileBytes(entry.path());
    const auto image = Decode(bytes);
    ASSERT_TRUE(image.ok()) << entry.path() << ": " << image.status().ToString();
    ASSERT_EQ(MaxAbsDiff(AsMat(*image), OpenCvDecodeRgb(bytes)), 0) << entry.path();
    if (++count == 10) break;
  }
  EXPECT_EQ(count, 10);
}

// --- DCT-domain scaled decoding (DecodeOptions::min_width / min_height) ---------------------

TEST(DecodeScaled, SizeIsTheSmallestHalvingThatKeepsBothMinimums) {
  struct Case {
    int width, height;          // source
    int min_width, min_height;  // hint
    int expected_width, expected_height;
  };
  const Case cases[] = {
      {896, 896, 224, 224, 224, 224},    // exact multiple: 1/4
      {448, 448, 224, 224, 224, 224},    // exact multiple: 1/2
      {1792, 1792, 224, 224, 224, 224},  // exact multiple: 1/8, the smallest factor
      {1800, 900, 100, 100, 225, 113},   // 1/8 (ceil(112.5) = 113)
      {900, 900, 224, 224, 225, 225},    // 1/4, sides rounded up
      {893, 893, 224, 224, 224, 224},    // ceil(893 / 4) = 224: still 1/4
      {892, 892, 224, 224, 446, 446},    // 892 / 4 = 223 < 224: 1/2
      {447, 447, 224, 224, 224, 224},    // odd: ceil(447 / 2) = 224, so 1/2
      {446, 446, 224, 224, 446, 446},    // ceil(446 / 2) = 223 < 224: full size
      {601, 1203, 100, 100, 151, 301},   // odd sizes: 1/4
      {1000, 500, 224, 224, 500, 250},   // the shorter side decides: 1/2
      {100, 80, 224, 224, 100, 80},      // target larger than the source: full size
      {896, 896, 0, 0, 896, 896},        // no hint: full size
      {896, 448, 0, 50, 112, 56},        // only the height constrained: 1/8
      {896, 448, 200, 0, 224, 112},      // only the width constrained: 1/4
      {896, 448, -5, -5, 896, 448},      // negative minimums are no constraint
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << c.width << "x" << c.height << " min " << c.min_width << "x" << c.min_height);
    const Bytes jpeg = EncodeJpegRgb(PatternRgb(c.width, c.height), 80);
    const auto image = Decode(jpeg, MinSize(c.min_width, c.min_height));
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(image->width, c.expected_width);
    EXPECT_EQ(image->height, c.expected_height);
    EXPECT_EQ(image->rgb.size(), size_t{3} * image->width * image->height);
  }
}

TEST(DecodeScaled, AxisSwappingOrientationsCompareTheDisplayedSides) {
  // Stored 1000x400; orientations 5..8 display it as 400x1000.
  const cv::Mat stored = TexturedRgb(1000, 400);
  const Bytes plain = EncodeJpegRgb(stored, 90);
  struct Case {
    int orientation, min_width, min_height;
    int expected_width, expected_height;  // displayed
  };
  const Case cases[] = {
      // Displayed >= 200x400: stored width >= 400 and height >= 200, so 1/2 (500x200). Read
      // unswapped (stored height >= 400) it would be full size.
      {6, 200, 400, 200, 500},
      {8, 200, 400, 200, 500},
      {5, 200, 400, 200, 500},
      {7, 200, 400, 200, 500},
      // Displayed >= 100x250: 1/4 (stored 250x100); read unswapped it would be full size.
      {6, 100, 250, 100, 250},
      // Orientations that keep the axes: stored height 400 >= 400 needs full size.
      {1, 200, 400, 1000, 400},
      {3, 200, 400, 1000, 400},
      {3, 400, 200, 500, 200},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "orientation " << c.orientation << " min " << c.min_width
                                      << "x" << c.min_height);
    const Bytes jpeg = WithExifOrientation(plain, c.orientation);
    const auto image = Decode(jpeg, MinSize(c.min_width, c.min_height));
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(image->width, c.expected_width);
    EXPECT_EQ(image->height, c.expected_height);
    // The same pixels as the scaled decode of the unrotated file, then rotated.
    const bool swaps = c.orientation >= 5;
    const int stored_width = swaps ? c.expected_height : c.expected_width;
    const int stored_height = swaps ? c.expected_width : c.expected_height;
    const auto upright = Decode(plain, MinSize(stored_width, stored_height));
    ASSERT_TRUE(upright.ok());
    ASSERT_EQ(upright->width, stored_width);
    cv::Mat expected = AsMat(*upright).clone();
    switch (c.orientation) {
      case 3:
        cv::rotate(expected, expected, cv::ROTATE_180);
        break;
      case 5:
        cv::transpose(expected, expected);
        break;
      case 6:
        cv::rotate(expected, expected, cv::ROTATE_90_CLOCKWISE);
        break;
      case 7:  // transverse: out(y, x) = in(H - 1 - x, W - 1 - y)
        cv::rotate(expected, expected, cv::ROTATE_90_CLOCKWISE);
        cv::flip(expected, expected, 0);
        break;
      case 8:
        cv::rotate(expected, expected, cv::ROTATE_90_COUNTERCLOCKWISE);
        break;
    }
    EXPECT_EQ(MaxAbsDiff(AsMat(*image), expected), 0);
  }
}

// The reduced IDCT is a low-pass filter: a scaled decode is close to a full decode followed
// by INTER_AREA to the same size (what Preprocess would do with the full image).
// - Against that plain reference, mean absolute difference <= 4 levels (of 255) per channel;
//   measured 0.5 to 3.7. Most of it is geometry: when a side is not a multiple of 8 / factor,
//   its last, partial block still becomes a whole output pixel (ceil), so the content is
//   stretched by up to one output pixel towards the right and bottom edges.
// - Against a reference with the same geometry (edges replicated up to whole blocks, as the
//   encoder pads them, then an exact k:1 INTER_AREA box filter), <= 1 level; measured 0.05
//   to 0.85. 4:2:2 at 1/8 is looser (<= 3, measured 2.5): its chroma, one sample per 16
//   pixels across, is upsampled with a triangle filter, which softens sharp colour edges.
TEST(DecodeScaled, CloseToFullDecodeThenInterArea) {
  struct Case {
    std::string what;
    Bytes jpeg;
    int min_side;
    double aligned_bound = 1.0;
  };
  std::vector<Case> cases;
  for (int flags : {0, TJFLAG_PROGRESSIVE}) {
    const std::string mode = flags == 0 ? " baseline" : " progressive";
    const cv::Mat rgb = TexturedRgb(903, 611);
    cases.push_back({"4:2:0" + mode, EncodeJpegRgb(rgb, 90, flags), 300});  // 1/2
    cases.push_back({"4:2:0" + mode, EncodeJpegRgb(rgb, 90, flags), 150});  // 1/4
    cases.push_back({"4:2:0" + mode, EncodeJpegRgb(rgb, 90, flags), 70});   // 1/8
    cases.push_back({"4:4:4" + mode,
                     EncodeJpeg(rgb.data, rgb.cols, rgb.rows, TJPF_RGB, TJSAMP_444, 90, flags),
                     150});
    cases.push_back({"4:2:2" + mode,
                     EncodeJpeg(rgb.data, rgb.cols, rgb.rows, TJPF_RGB, TJSAMP_422, 90, flags), 70,
                     3.0});
    cv::Mat gray;
    cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
    cases.push_back({"gray" + mode,
                     EncodeJpeg(gray.data, gray.cols, gray.rows, TJPF_GRAY, TJSAMP_GRAY, 90, flags),
                     150});
  }
  {
    cv::Mat rgb = TexturedRgb(400, 240), cmyk(rgb.size(), CV_8UC4);
    for (int y = 0; y < rgb.rows; ++y) {
      for (int x = 0; x < rgb.cols; ++x) {
        const cv::Vec3b p = rgb.at<cv::Vec3b>(y, x);
        cmyk.at<cv::Vec4b>(y, x) = cv::Vec4b(p[0], p[1], p[2], 230);  // inverted CMYK, K = 230
      }
    }
    cases.push_back(
        {"cmyk", EncodeJpeg(cmyk.data, cmyk.cols, cmyk.rows, TJPF_CMYK, TJSAMP_444, 90), 100});
  }
  // Real photographs bundled with the repository, at each factor.
  const auto fruits = testing::SourceDir() / "samples" / "fruits-360-mini" / "Training";
  const std::pair<const char*, int> photos[] = {
      {"Peach 3/r0_0.jpg", 224},        // 875x888: 1/2
      {"Peach 3/r0_0.jpg", 200},        // 1/4
      {"Peach 3/r0_0.jpg", 100},        // 1/8
      {"Plum 5/r0_0.jpg", 100},         // 345x379: 1/2
      {"apple_golden_1/r0_0.jpg", 80},  // 365x320: 1/4
  };
  for (const auto& [name, min_side] : photos) {
    ASSERT_TRUE(std::filesystem::exists(fruits / name)) << fruits / name;
    cases.push_back({name, testing::ReadFileBytes(fruits / name), min_side});
  }
  for (const Case& c : cases) {
    const auto full = Decode(c.jpeg);
    ASSERT_TRUE(full.ok()) << c.what << ": " << full.status().ToString();
    const auto scaled = Decode(c.jpeg, MinSize(c.min_side, c.min_side));
    ASSERT_TRUE(scaled.ok()) << c.what << ": " << scaled.status().ToString();
    SCOPED_TRACE(::testing::Message() << c.what << " " << full->width << "x" << full->height
                                      << " -> " << scaled->width << "x" << scaled->height);
    ASSERT_LT(scaled->width, full->width);  // a factor was applied
    EXPECT_GE(std::min(scaled->width, scaled->height), c.min_side);
    const cv::Size size(scaled->width, scaled->height);
    cv::Mat plain;
    cv::resize(AsMat(*full), plain, size, 0, 0, cv::INTER_AREA);
    EXPECT_LE(MeanAbsDiff(AsMat(*scaled), plain), 4.0);
    const int k = (full->width + scaled->width - 1) / scaled->width;  // 1 / factor
    ASSERT_EQ(scaled->height, (full->height + k - 1) / k);
    cv::Mat padded, aligned;
    cv::copyMakeBorder(AsMat(*full), padded, 0, scaled->height * k - full->height, 0,
                       scaled->width * k - full->width, cv::BORDER_REPLICATE);
    cv::resize(padded, aligned, size, 0, 0, cv::INTER_AREA);
    EXPECT_LE(MeanAbsDiff(AsMat(*scaled), aligned), c.aligned_bound);
  }
}

TEST(DecodeScaled, StrictnessIsUnchanged) {
  const cv::Mat rgb = TexturedRgb(640, 480);
  const DecodeOptions scaled = MinSize(100, 100);
  for (int flags : {0, TJFLAG_PROGRESSIVE}) {
    const Bytes jpeg = EncodeJpegRgb(rgb, 90, flags);
    // Truncated: still an error, not a grey-padded small image.
    const Bytes half(jpeg.begin(), jpeg.begin() + static_cast<ptrdiff_t>(jpeg.size() / 2));
    const auto truncated = Decode(half, scaled);
    ASSERT_FALSE(truncated.ok());
    EXPECT_EQ(truncated.status().code(), StatusCode::kCorruptData);
    // Corrupt entropy data.
    Bytes broken = jpeg;
    for (size_t i = broken.size() / 2; i < broken.size() / 2 + 40; ++i) broken[i] = 0xFF;
    const auto corrupt = Decode(broken, scaled);
    ASSERT_FALSE(corrupt.ok());
    EXPECT_EQ(corrupt.status().code(), StatusCode::kCorruptData);
  }
  // The pixel limit applies to the full-size header, not to the scaled output (160x120).
  const Bytes jpeg = EncodeJpegRgb(rgb, 90);
  DecodeOptions limited = scaled;
  limited.max_pixels = 640 * 480 - 1;
  const auto over = Decode(jpeg, limited);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  limited.max_pixels = 640 * 480;
  const auto at_limit = Decode(jpeg, limited);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status().ToString();
  EXPECT_EQ(at_limit->width, 160);
}

TEST(DecodeScaled, OtherFormatsIgnoreTheHint) {
  const cv::Mat bgr = TexturedRgb(480, 320);
  for (const char* ext : {".png", ".bmp", ".webp"}) {
    const Bytes bytes = Encode(ext, bgr);
    const auto image = Decode(bytes, MinSize(50, 50));
    ASSERT_TRUE(image.ok()) << ext << ": " << image.status().ToString();
    EXPECT_EQ(image->width, 480) << ext;
    EXPECT_EQ(image->height, 320) << ext;
  }
}

TEST(DecodeScaled, FullSizeDecodeIsUntouchedByAnUnusedHint) {
  // A hint no factor can meet gives exactly the full decode (Pillow/OpenCV pixels).
  const Bytes jpeg = EncodeJpegRgb(TexturedRgb(300, 200), 90);
  const auto image = Decode(jpeg, MinSize(224, 224));
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(MaxAbsDiff(AsMat(*image), OpenCvDecodeRgb(jpeg)), 0);
}

TEST(DecodeImage, ConcurrentDecodesAgree) {
  const Bytes jpeg = EncodeJpegRgb(PatternRgb(120, 80));
  const Bytes png = Encode(".png", PatternRgb(50, 40));
  const auto jpeg_ref = Decode(jpeg);
  const auto png_ref = Decode(png);
  ASSERT_TRUE(jpeg_ref.ok() && png_ref.ok());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const auto a = Decode(jpeg);
        const auto b = Decode(png);
        const auto bad = Decode(Bytes(jpeg.begin(), jpeg.begin() + 300));
        if (!a.ok() || a->rgb != jpeg_ref->rgb) ++mismatches[t];
        if (!b.ok() || b->rgb != png_ref->rgb) ++mismatches[t];
        if (bad.ok()) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

// Random mutations of valid files (byte changes, truncation, spliced garbage) must give an
// image or an error, never a crash or an out-of-bounds access (run under ASan + UBSan).
TEST(DecodeImage, MutatedInputsNeverCrash) {
  const cv::Mat bgr = PatternRgb(40, 30);
  cv::Mat gray;
  cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
  std::vector<Bytes> seeds = {
      EncodeJpegRgb(bgr),
      EncodeJpegRgb(bgr, 80, TJFLAG_PROGRESSIVE),
      EncodeJpeg(gray.data, gray.cols, gray.rows, TJPF_GRAY, TJSAMP_GRAY),
      Encode(".png", bgr),
      Encode(".png", gray),
      Encode(".bmp", bgr),
      Encode(".webp", bgr, {cv::IMWRITE_WEBP_QUALITY, 80}),
      Encode(".webp", bgr, {cv::IMWRITE_WEBP_QUALITY, 101}),
  };
  constexpr int kIterations = 1000;
  std::mt19937 rng(12345);
  int decoded = 0, failed = 0;
  for (const Bytes& seed : seeds) {
    for (int iteration = 0; iteration < kIterations; ++iteration) {
      Bytes bytes = seed;
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits; ++e) {
        // Keep the magic (first 4 bytes) so the mutation reaches the decoder.
        const size_t at = 4 + rng() % (bytes.size() - 4);
        switch (rng() % 4) {
          case 0:
            bytes[at] = static_cast<uint8_t>(rng());
            break;
          case 1:
            bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
            break;
          case 2:
            bytes.resize(std::max<size_t>(at, 5));
            break;
          case 3:
            bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(at), 1 + rng() % 16,
                         static_cast<uint8_t>(rng()));
            break;
        }
      }
      // Every other iteration with a size hint, so that JPEGs also take the scaled path.
      DecodeOptions options{.max_pixels = 1 << 20};
      if (iteration % 2 == 1) options.min_width = options.min_height = 8;
      const auto result = Decode(bytes, options);
      if (result.ok()) {
        ++decoded;
        ASSERT_GT(result->width, 0);
        ASSERT_GT(result->height, 0);
        ASSERT_EQ(result->rgb.size(),
                  static_cast<size_t>(result->width) * static_cast<size_t>(result->height) * 3);
      } else {
        ++failed;
        ASSERT_NE(result.status().code(), StatusCode::kInternal) << result.status().message();
      }
    }
  }
  // Both outcomes occur: mutations in pixel data often still decode.
  EXPECT_GT(failed, 0);
  EXPECT_GT(decoded, 0);
  EXPECT_EQ(decoded + failed, static_cast<int>(seeds.size()) * kIterations);
  RecordProperty("decoded", decoded);
  RecordProperty("failed", failed);
}

}  // namespace
}  // namespace orchard
