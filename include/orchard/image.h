// Decoding encoded image bytes into 8-bit RGB pixels.
//
// Decoding is pure (no I/O) and thread-safe: any number of threads may call DecodeImage
// concurrently. The format is sniffed from the bytes, never taken from a file name.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "orchard/status.h"

namespace orchard {

// 8-bit RGB, interleaved, row-major: pixel (y, x) channel c is rgb[(y * width + x) * 3 + c].
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kBmp };

// "jpeg", "png", "webp", "bmp" or "unknown".
const char* ImageFormatName(ImageFormat format);

// Identifies the format from the leading magic bytes.
ImageFormat SniffImageFormat(std::span<const uint8_t> bytes);

struct DecodeOptions {
  // Images whose header declares more pixels than this are refused before any pixel is
  // decoded (decompression-bomb guard). The default is Pillow's MAX_IMAGE_PIXELS. It applies
  // to the full-size dimensions in the header, whether or not the image is decoded scaled
  // down (see min_width), since the decoder still reads every coefficient.
  uint64_t max_pixels = 89'478'485;

  // Size hint for callers that will shrink the image anyway (a model input). When either is
  // > 0, a JPEG may be decoded scaled down in the DCT domain (libjpeg-turbo's reduced IDCT,
  // much cheaper than a full decode followed by a resize): by the smallest of the factors
  // 1/2, 1/4 and 1/8 that keeps the width >= min_width and the height >= min_height. Sides
  // never fall below these, and an image already too small for 1/2 is decoded at full size.
  // A minimum <= 0 leaves its side unconstrained; both <= 0 (the default) means full size.
  // - the minimums apply to the displayed (EXIF-oriented) image: for orientations 5..8,
  //   which swap the axes, min_width bounds the stored height and min_height its width;
  // - a scaled side is ceil(side * factor), as libjpeg computes it;
  // - the pixels are then no longer Pillow's convert("RGB") but close to a full decode
  //   followed by an INTER_AREA resize to the same size: mean absolute difference under 4
  //   levels of 255 (decode_test.cc). Most of it is geometry: a partial last block of a side
  //   that is not a multiple of 8 / factor still becomes a whole pixel, so the content is
  //   stretched by less than one output pixel towards the right and bottom edges;
  // - PNG, WebP and BMP ignore the hint (no cheap scaled decode): always full size;
  // - errors are the same as at full size (truncation, corruption, pixel limit, ...).
  // Only factors <= 1/2 are used: libjpeg-turbo's 7/8 and 3/4 IDCTs (plain C) made decode +
  // INTER_AREA slower than at full size (0.7x and 0.9x the speed), 5/8 only 1.1x faster, and
  // allowing 5/8 or 3/8 as well changed the total by no more than run-to-run noise, while
  // 1/2, 1/4 and 1/8 ran 2x, 4.7x and 6x faster (bench_decode_scaling --sweep, Fruits-360
  // originals to 224 and 100).
  // For a resize straight to W x H, pass W and H. For a shorter-side resize to S before a
  // crop, pass S for both (the shorter side then stays >= S); the crop geometry may shift by
  // a pixel since the scaled aspect ratio is rounded. Minimums of about 1.5x the final size
  // (as Pillow's reducing_gap) avoid the extra blur of two resizes in a row when the second
  // is small (1/8 then 1.1:1): with them MobileNetV2 descriptors kept cosine >= 0.99 to a full
  // decode at 100x100, against 0.967 with the bare final size.
  int min_width = 0;
  int min_height = 0;
};

// Decodes JPEG, PNG, WebP or BMP bytes to RGB.
// - grayscale and CMYK (Adobe-inverted, as Photoshop writes it) become RGB; palette images
//   are expanded; an alpha channel is dropped (not composited); 16-bit samples keep their
//   high byte. For 8-bit images the pixels equal Pillow's Image.open(...).convert("RGB")
//   (JPEG: the same libjpeg-turbo, accurate IDCT, fancy upsampling);
// - the EXIF orientation (JPEG APP1, PNG eXIf, WebP EXIF chunk) is applied, so the result is
//   upright, as Pillow's ImageOps.exif_transpose would make it;
// - truncated or corrupt data is an error (kCorruptData), never a partly grey image; this
//   includes JPEGs on which libjpeg only warns (e.g. "Corrupt JPEG data: N extraneous bytes");
// - an unknown format is kUnsupported ("not a supported image (JPEG, PNG, WebP, BMP): content
//   starts with ..."), as are valid files this build cannot decode (lossless, hierarchical
//   or 12-bit JPEG, animated WebP); an empty input is kCorruptData "empty file";
// - a header over max_pixels is kResourceExhausted, decided from the header alone;
// - never reads outside `bytes`, whatever they hold. Messages are one line, without the
//   file name (callers add it with Status::WithContext).
Result<Image> DecodeImage(std::span<const uint8_t> bytes, const DecodeOptions& options = {});

// The largest file an image within `max_pixels` can be: 8 bytes a pixel (16-bit RGBA PNG, the
// least compact of the supported formats, stored uncompressed) plus 64 MiB of metadata.
uint64_t MaxEncodedBytes(uint64_t max_pixels);

// What DecodeImage would refuse, decided from the first bytes of a file of `total_size` bytes
// before the rest is read: a size over MaxEncodedBytes, an unknown format, a header over
// max_pixels. OK when `prefix` is too short to tell (say, a JPEG whose frame header comes after
// large metadata): the decode of the whole file checks again.
Status CheckImagePrefix(std::span<const uint8_t> prefix, uint64_t total_size,
                        const DecodeOptions& options);

}  // namespace orchard
