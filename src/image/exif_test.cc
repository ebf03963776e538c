#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <vector>

#include "image/exif_internal.h"
#include "orchard/image.h"

namespace orchard::internal {
namespace {

using Bytes = std::vector<uint8_t>;

void Put16(Bytes& b, bool big_endian, uint32_t v) {
  if (big_endian) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
  } else {
    b.push_back(static_cast<uint8_t>(v));
    b.push_back(static_cast<uint8_t>(v >> 8));
  }
}
void Put32(Bytes& b, bool big_endian, uint32_t v) {
  if (big_endian) {
    Put16(b, true, v >> 16);
    Put16(b, true, v & 0xffff);
  } else {
    Put16(b, false, v & 0xffff);
    Put16(b, false, v >> 16);
  }
}

struct Entry {
  uint16_t tag;
  uint16_t type;
  uint32_t count;
  uint32_t value;  // SHORT values are written left-aligned, as TIFF stores them
};

// A TIFF block with IFD0 at offset 8 holding `entries`.
Bytes MakeTiff(bool big_endian, const std::vector<Entry>& entries) {
  Bytes b;
  b.push_back(big_endian ? 'M' : 'I');
  b.push_back(big_endian ? 'M' : 'I');
  Put16(b, big_endian, 42);
  Put32(b, big_endian, 8);
  Put16(b, big_endian, static_cast<uint32_t>(entries.size()));
  for (const Entry& e : entries) {
    Put16(b, big_endian, e.tag);
    Put16(b, big_endian, e.type);
    Put32(b, big_endian, e.count);
    if (e.type == 3) {
      Put16(b, big_endian, e.value);
      Put16(b, big_endian, 0);
    } else {
      Put32(b, big_endian, e.value);
    }
  }
  Put32(b, big_endian, 0);  // no next IFD
  return b;
}

Bytes OrientationTiff(int orientation, bool big_endian = false) {
  return MakeTiff(big_endian, {{0x010f, 2, 4, 0x414e4f43},  // Make "CANO", inline
                               {0x0112, 3, 1, static_cast<uint32_t>(orientation)},
                               {0x011a, 5, 1, 200}});
}

// An APP segment (marker 0xFFE0 + n) with the given payload.
Bytes AppSegment(int n, const Bytes& payload) {
  // Sized up front and copied: GCC 12 at -O3 misreads push_back + insert as an overread.
  const size_t length = payload.size() + 2;
  Bytes b(payload.size() + 4);
  b[0] = 0xff;
  b[1] = static_cast<uint8_t>(0xe0 + n);
  b[2] = static_cast<uint8_t>(length >> 8);
  b[3] = static_cast<uint8_t>(length);
  std::copy(payload.begin(), payload.end(), b.begin() + 4);
  return b;
}

Bytes ExifSegment(const Bytes& tiff) {
  Bytes payload = {'E', 'x', 'i', 'f', 0, 0};
  payload.insert(payload.end(), tiff.begin(), tiff.end());
  return AppSegment(1, payload);
}

// `segments` inserted right after SOI.
Bytes WithSegments(const Bytes& jpeg, const std::vector<Bytes>& segments) {
  Bytes out(jpeg.begin(), jpeg.begin() + 2);
  for (const Bytes& s : segments) out.insert(out.end(), s.begin(), s.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// A 4:4:4 quality-100 JPEG of a non-symmetric pattern.
Bytes TestJpeg(int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(x * 6);
      p[1] = static_cast<uint8_t>(y * 9);
      p[2] = static_cast<uint8_t>(x * y);
    }
  }
  tjhandle tj = tjInitCompress();
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  EXPECT_EQ(
      tjCompress2(tj, rgb.data(), width, 0, height, TJPF_RGB, &jpeg, &size, TJSAMP_444, 100, 0), 0);
  Bytes out(jpeg, jpeg + size);
  tjFree(jpeg);
  tjDestroy(tj);
  return out;
}

uint32_t Crc32(const uint8_t* data, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

cv::Mat TestPatternBgr(int width, int height) {
  cv::Mat bgr(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(
          static_cast<uint8_t>(x * 10), static_cast<uint8_t>(y * 15), static_cast<uint8_t>(x * y));
    }
  }
  return bgr;
}

// A PNG with an eXIf chunk (valid CRC) right after IHDR.
Bytes PngWithExif(const Bytes& tiff) {
  Bytes png;
  EXPECT_TRUE(cv::imencode(".png", TestPatternBgr(24, 16), png));
  Bytes chunk;
  Put32(chunk, true, static_cast<uint32_t>(tiff.size()));
  chunk.insert(chunk.end(), {'e', 'X', 'I', 'f'});
  chunk.insert(chunk.end(), tiff.begin(), tiff.end());
  Put32(chunk, true, Crc32(chunk.data() + 4, chunk.size() - 4));
  png.insert(png.begin() + 33, chunk.begin(), chunk.end());  // signature (8) + IHDR (25)
  return png;
}

// The lossless WebP of the pattern, rewrapped as extended (VP8X) with an EXIF chunk.
Bytes WebpWithExif(const Bytes& tiff) {
  Bytes simple;
  EXPECT_TRUE(
      cv::imencode(".webp", TestPatternBgr(24, 16), simple, {cv::IMWRITE_WEBP_QUALITY, 101}));
  Bytes webp = {'R', 'I', 'F', 'F', 0,   0,   0,
                0,   'W', 'E', 'B', 'P', 'V', 'P',
                '8', 'X', 10,  0,   0,   0,   0x08 /* EXIF present */,
                0,   0,   0,   23,  0,   0,   15,
                0,   0};
  webp.insert(webp.end(), simple.begin() + 12, simple.end());
  webp.insert(webp.end(), {'E', 'X', 'I', 'F'});
  Put32(webp, false, static_cast<uint32_t>(tiff.size()));
  webp.insert(webp.end(), tiff.begin(), tiff.end());
  if (tiff.size() % 2 != 0) webp.push_back(0);
  const uint32_t riff_size = static_cast<uint32_t>(webp.size() - 8);
  for (int i = 0; i < 4; ++i) webp[4 + i] = static_cast<uint8_t>(riff_size >> (8 * i));
  return webp;
}

// The pixel of the stored image that EXIF orientation `o` displays at (x, y), straight from
// the definitions (W, H: stored size).
const uint8_t* ExpectedSource(const Image& stored, int o, int x, int y) {
  const int w = stored.width, h = stored.height;
  int sx = x, sy = y;
  switch (o) {
    case 2:
      sx = w - 1 - x;
      break;
    case 3:
      sx = w - 1 - x;
      sy = h - 1 - y;
      break;
    case 4:
      sy = h - 1 - y;
      break;
    case 5:
      sx = y;
      sy = x;
      break;
    case 6:
      sx = y;
      sy = h - 1 - x;
      break;
    case 7:
      sx = w - 1 - y;
      sy = h - 1 - x;
      break;
    case 8:
      sx = w - 1 - y;
      sy = x;
      break;
  }
  return &stored.rgb[(static_cast<size_t>(sy) * w + sx) * 3];
}

TEST(ParseExifOrientation, BothByteOrders) {
  for (bool big_endian : {false, true}) {
    for (int o = 1; o <= 8; ++o) {
      EXPECT_EQ(ParseExifOrientation(OrientationTiff(o, big_endian)), o)
          << (big_endian ? "MM " : "II ") << o;
    }
  }
}

TEST(ParseExifOrientation, InvalidOrMissingMeansUpright) {
  EXPECT_EQ(ParseExifOrientation({}), 1);
  EXPECT_EQ(ParseExifOrientation(OrientationTiff(0)), 1);
  EXPECT_EQ(ParseExifOrientation(OrientationTiff(9)), 1);
  EXPECT_EQ(ParseExifOrientation(MakeTiff(false, {{0x010f, 2, 4, 0}})), 1);  // no tag
  EXPECT_EQ(ParseExifOrientation(MakeTiff(true, {{0x0112, 3, 2, 6}})), 1);   // count 2
  EXPECT_EQ(ParseExifOrientation(MakeTiff(true, {{0x0112, 2, 1, 6}})), 1);   // ASCII type
  EXPECT_EQ(ParseExifOrientation(MakeTiff(false, {{0x0112, 4, 1, 6}})), 6);  // LONG: tolerated
  Bytes bad_magic = OrientationTiff(6);
  bad_magic[2] = 43;
  EXPECT_EQ(ParseExifOrientation(bad_magic), 1);
  Bytes bad_order = OrientationTiff(6);
  bad_order[0] = 'M';
  EXPECT_EQ(ParseExifOrientation(bad_order), 1);
  for (uint32_t offset : {0u, 7u, 0xfffffff0u, 0xffffffffu}) {
    Bytes b = OrientationTiff(6);
    b[4] = static_cast<uint8_t>(offset);
    b[5] = static_cast<uint8_t>(offset >> 8);
    b[6] = static_cast<uint8_t>(offset >> 16);
    b[7] = static_cast<uint8_t>(offset >> 24);
    EXPECT_EQ(ParseExifOrientation(b), 1) << offset;
  }
  // An entry count far beyond the block.
  Bytes many = OrientationTiff(6);
  many[8] = 0xff;
  many[9] = 0xff;
  EXPECT_EQ(ParseExifOrientation(many), 6);  // found before running out
  many = MakeTiff(false, {{0x010f, 2, 4, 0}});
  many[8] = 0xff;
  many[9] = 0xff;
  EXPECT_EQ(ParseExifOrientation(many), 1);
}

TEST(ParseExifOrientation, EveryTruncationIsSafe) {
  const Bytes full = OrientationTiff(8, true);
  // The orientation entry is the second: it is complete at 8 + 2 + 2 * 12 bytes.
  for (size_t n = 0; n <= full.size(); ++n) {
    const Bytes prefix(full.begin(), full.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_EQ(ParseExifOrientation(prefix), n >= 34 ? 8 : 1) << n;
  }
}

TEST(FindJpegExifTiff, SkipsOtherSegmentsAndStopsAtScan) {
  const Bytes jpeg = TestJpeg(8, 8);
  const Bytes tiff = OrientationTiff(3);
  const std::string xmp_id = "http://ns.adobe.com/xap/1.0/";
  Bytes xmp(xmp_id.begin(), xmp_id.end());
  xmp.push_back(0);
  const Bytes with = WithSegments(
      jpeg, {AppSegment(0, {'J', 'F', 'I', 'F', 0}), AppSegment(1, xmp), ExifSegment(tiff)});
  const auto found = FindJpegExifTiff(with);
  EXPECT_EQ(Bytes(found.begin(), found.end()), tiff);
  EXPECT_EQ(JpegExifOrientation(with), 3);
  // Fill bytes before a marker are allowed.
  Bytes filled = WithSegments(jpeg, {{0xff, 0xff}, ExifSegment(tiff)});
  EXPECT_EQ(JpegExifOrientation(filled), 3);

  EXPECT_EQ(JpegExifOrientation(jpeg), 1);
  EXPECT_TRUE(FindJpegExifTiff({}).empty());
  // An APP1 whose length runs past the end of the file.
  Bytes overlong = WithSegments(jpeg, {ExifSegment(tiff)});
  overlong[4] = 0xff;
  overlong[5] = 0xff;
  EXPECT_TRUE(FindJpegExifTiff(std::span(overlong).first(60)).empty());
  // EXIF after the first scan is not metadata.
  Bytes late = jpeg;
  const Bytes seg = ExifSegment(tiff);
  late.insert(late.end() - 2, seg.begin(), seg.end());
  EXPECT_EQ(JpegExifOrientation(late), 1);
}

TEST(ApplyExifOrientation, AllEightOrientationsInDecodeImage) {
  const Bytes jpeg = TestJpeg(24, 16);
  const auto stored = DecodeImage(jpeg);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  const cv::Mat stored_mat(stored->height, stored->width, CV_8UC3,
                           const_cast<uint8_t*>(stored->rgb.data()));
  for (bool big_endian : {false, true}) {
    for (int o = 1; o <= 8; ++o) {
      const auto image =
          DecodeImage(WithSegments(jpeg, {ExifSegment(OrientationTiff(o, big_endian))}));
      ASSERT_TRUE(image.ok()) << image.status().ToString();
      const bool swapped = o >= 5;
      ASSERT_EQ(image->width, swapped ? 16 : 24) << o;
      ASSERT_EQ(image->height, swapped ? 24 : 16) << o;
      for (int y = 0; y < image->height; ++y) {
        for (int x = 0; x < image->width; ++x) {
          const uint8_t* got = &image->rgb[(static_cast<size_t>(y) * image->width + x) * 3];
          const uint8_t* want = ExpectedSource(*stored, o, x, y);
          ASSERT_TRUE(got[0] == want[0] && got[1] == want[1] && got[2] == want[2])
              << "orientation " << o << " at " << x << "," << y;
        }
      }
      // And, for the rotations, pixel-equal to cv::rotate.
      int rotate_code = -1;
      if (o == 3) rotate_code = cv::ROTATE_180;
      if (o == 6) rotate_code = cv::ROTATE_90_CLOCKWISE;
      if (o == 8) rotate_code = cv::ROTATE_90_COUNTERCLOCKWISE;
      if (rotate_code >= 0) {
        cv::Mat expected;
        cv::rotate(stored_mat, expected, rotate_code);
        const cv::Mat got(image->height, image->width, CV_8UC3,
                          const_cast<uint8_t*>(image->rgb.data()));
        EXPECT_EQ(cv::norm(got, expected, cv::NORM_INF), 0) << o;
      }
    }
  }
}

TEST(ApplyExifOrientation, PngAndWebpInDecodeImage) {
  Bytes prefixed = {'E', 'x', 'i', 'f', 0, 0};
  const Bytes tiff6 = OrientationTiff(6, true);
  prefixed.insert(prefixed.end(), tiff6.begin(), tiff6.end());
  for (const Bytes& tiff : {tiff6, prefixed, OrientationTiff(3)}) {
    const int o = ParseExifOrientation(tiff) == 3 ? 3 : 6;
    for (const Bytes& bytes : {PngWithExif(tiff), WebpWithExif(tiff)}) {
      const ImageFormat format = SniffImageFormat(bytes);
      EXPECT_EQ(ExifOrientation(format, bytes), o) << ImageFormatName(format);
      const auto image = DecodeImage(bytes);
      ASSERT_TRUE(image.ok()) << ImageFormatName(format) << ": " << image.status().ToString();
      Bytes plain;
      ASSERT_TRUE(cv::imencode(".png", TestPatternBgr(24, 16), plain));
      const auto stored = DecodeImage(plain);
      ASSERT_TRUE(stored.ok());
      ASSERT_EQ(image->width, o == 6 ? 16 : 24) << ImageFormatName(format);
      for (int y = 0; y < image->height; ++y) {
        for (int x = 0; x < image->width; ++x) {
          const uint8_t* got = &image->rgb[(static_cast<size_t>(y) * image->width + x) * 3];
          const uint8_t* want = ExpectedSource(*stored, o, x, y);
          ASSERT_TRUE(got[0] == want[0] && got[1] == want[1] && got[2] == want[2])
              << ImageFormatName(format) << " orientation " << o << " at " << x << "," << y;
        }
      }
    }
  }
  Bytes bmp;
  ASSERT_TRUE(cv::imencode(".bmp", TestPatternBgr(4, 4), bmp));
  EXPECT_EQ(ExifOrientation(ImageFormat::kBmp, bmp), 1);
}

TEST(ApplyExifOrientation, RejectsInconsistentBuffer) {
  Image image{4, 4, std::vector<uint8_t>(10)};
  EXPECT_EQ(ApplyExifOrientation(6, &image).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ApplyExifOrientation(1, &image).ok());  // nothing to do, nothing checked
}

TEST(ExifOrientation, MutatedPngAndWebpChunksNeverCrash) {
  std::mt19937 rng(11);
  for (const Bytes& seed : {PngWithExif(OrientationTiff(8)), WebpWithExif(OrientationTiff(8))}) {
    const ImageFormat format = SniffImageFormat(seed);
    ASSERT_EQ(ExifOrientation(format, seed), 8);
    for (int i = 0; i < 20000; ++i) {
      Bytes b = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t at = 8 + rng() % (b.size() - 8);
        if (rng() % 5 == 0) {
          b.resize(at);
          break;
        }
        b[at] = static_cast<uint8_t>(rng());
      }
      const int o = ExifOrientation(format, b);
      ASSERT_GE(o, 1);
      ASSERT_LE(o, 8);
    }
  }
}

TEST(FindJpegExifTiff, MutatedExifNeverCrashes) {
  const Bytes jpeg = WithSegments(TestJpeg(8, 8), {ExifSegment(OrientationTiff(6, true))});
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    Bytes b = jpeg;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = 2 + rng() % 60;  // within the EXIF segment and just after it
      if (rng() % 5 == 0) {
        b.resize(at);
      } else if (at < b.size()) {
        b[at] = static_cast<uint8_t>(rng());
      }
    }
    const int o = JpegExifOrientation(b);
    ASSERT_GE(o, 1);
    ASSERT_LE(o, 8);
  }
}

}  // namespace
}  // namespace orchard::internal
