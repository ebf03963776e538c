// The EXIF orientation parser (src/image/exif_internal.h): finding the TIFF block in a JPEG
// (APP1), PNG (eXIf) or WebP (EXIF chunk), reading tag 0x0112 from IFD0, and applying an
// orientation to pixels.
// Invariants: a found block lies inside the input; an orientation is always 1..8; applying
// it gives exactly what a plain loop over the pixels gives (Pillow's exif_transpose).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "image/exif_internal.h"
#include "orchard/image.h"

using namespace orchard;
using namespace orchard::internal;

namespace {

// The displayed pixel (x, y) of an oriented image is the stored pixel Source(x, y): the
// reference for ApplyExifOrientation, written as the EXIF specification describes each
// orientation rather than as the rotations that implement it.
Image Reference(int orientation, const Image& in) {
  const int w = in.width, h = in.height;
  const bool swaps = orientation >= 5 && orientation <= 8;
  Image out;
  out.width = swaps ? h : w;
  out.height = swaps ? w : h;
  out.rgb.resize(in.rgb.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          break;  // mirror left-right
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;  // rotate 180
        case 4:
          sy = h - 1 - y;
          break;  // mirror top-bottom
        case 5:
          sx = y;
          sy = x;
          break;  // transpose
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;  // rotate 90 clockwise
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;  // transverse
        case 8:
          sx = w - 1 - y;
          sy = x;
          break;  // rotate 90 counter-clockwise
        default:
          break;
      }
      for (int c = 0; c < 3; ++c) {
        out.rgb[(static_cast<size_t>(y) * out.width + x) * 3 + c] =
            in.rgb[(static_cast<size_t>(sy) * w + sx) * 3 + c];
      }
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);

  // Each container walker on every input; each block found, and the input itself, parsed.
  const std::span<const uint8_t> blocks[] = {FindJpegExifTiff(bytes), FindPngExifTiff(bytes),
                                             FindWebpExifTiff(bytes), bytes};
  for (const std::span<const uint8_t> tiff : blocks) {
    FUZZ_CHECK(fuzz::Within(tiff, bytes));
    const int orientation = ParseExifOrientation(tiff);
    FUZZ_CHECK(orientation >= 1 && orientation <= 8);
  }
  for (const ImageFormat format : {ImageFormat::kJpeg, ImageFormat::kPng, ImageFormat::kWebp,
                                   ImageFormat::kBmp, ImageFormat::kUnknown}) {
    const int orientation = ExifOrientation(format, bytes);
    FUZZ_CHECK(orientation >= 1 && orientation <= 8);
  }

  // ApplyExifOrientation on a small image made of the input: the first byte picks the size
  // and the orientation (0 and 9..15 included: they must leave the image unchanged).
  if (size < 1) return 0;
  Image image;
  image.width = 1 + (data[0] & 7);
  image.height = 1 + ((data[0] >> 3) & 3);
  const int orientation = data[0] >> 4;
  image.rgb.resize(static_cast<size_t>(image.width) * image.height * 3);
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = data[i % size];
  const Image original = image;
  FUZZ_CHECK(ApplyExifOrientation(orientation, &image).ok());
  const Image expected =
      orientation >= 2 && orientation <= 8 ? Reference(orientation, original) : original;
  FUZZ_CHECK(image.width == expected.width && image.height == expected.height);
  FUZZ_CHECK(image.rgb == expected.rgb);
  return 0;
}
