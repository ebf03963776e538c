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
  // decoded (decompression-bomb guard). The default is Pillow's MAX_IMAGE_PIXELS.
  uint64_t max_pixels = 89'478'485;
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

}  // namespace orchard
