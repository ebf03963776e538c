// Reading image dimensions from container headers without decoding any pixel, so that the
// pixel limit (DecodeOptions::max_pixels) is enforced before a decoder allocates anything.
//
// Every reader is bounds-checked: it never reads past `bytes`, whatever they contain, and
// reports a short or inconsistent header as kCorruptData. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "orchard/image.h"
#include "orchard/status.h"

namespace orchard::internal {

struct ImageDimensions {
  uint32_t width = 0;
  uint32_t height = 0;
};

// Walks the marker segments of a JPEG from SOI up to (not including) the first SOS, which
// is where metadata and frame headers end and entropy-coded data begins.
class JpegSegmentReader {
 public:
  struct Segment {
    uint8_t marker = 0;                // the byte after 0xFF, e.g. 0xE1 for APP1
    std::span<const uint8_t> payload;  // after the 2-byte length; points into the JPEG
  };

  explicit JpegSegmentReader(std::span<const uint8_t> jpeg);

  // The next segment with a payload; nullopt at SOS or EOI, or when the data ends first or a
  // length field runs past it (then broken() is true). Standalone markers (RSTn, TEM) and
  // stray bytes between segments are skipped, as libjpeg skips them.
  std::optional<Segment> Next();
  bool broken() const { return broken_; }

 private:
  std::span<const uint8_t> jpeg_;
  size_t pos_ = 2;
  bool broken_ = false;
  bool done_ = false;
};

struct JpegFrameInfo {
  uint8_t sof_marker = 0;  // 0xC0 baseline, 0xC2 progressive, ...
  int precision = 0;       // bits per sample
  uint32_t width = 0;
  uint32_t height = 0;
  int components = 0;  // 1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK
};

// JPEG: the first SOFn frame header. Read by Orchard rather than by TurboJPEG because
// TurboJPEG 2.1's tjDecompressHeader3 rejects valid files whose chroma sampling factors it
// cannot name ("Could not determine subsampling type"), which libjpeg decodes fine.
Result<JpegFrameInfo> ReadJpegFrameInfo(std::span<const uint8_t> bytes);

// PNG: the IHDR chunk, which the specification requires to come first.
Result<ImageDimensions> ReadPngDimensions(std::span<const uint8_t> bytes);
// BMP: BITMAPCOREHEADER (16-bit sizes) or any later info header (32-bit, negative height
// meaning top-down).
Result<ImageDimensions> ReadBmpDimensions(std::span<const uint8_t> bytes);
// WebP: the first chunk, VP8 (lossy), VP8L (lossless) or VP8X (extended, canvas size).
// An animated VP8X file is kUnsupported: the OpenCV decoder only reads still images.
Result<ImageDimensions> ReadWebpDimensions(std::span<const uint8_t> bytes);

// Dispatches on `format`; JPEG is not handled here (TurboJPEG reads its header).
Result<ImageDimensions> ReadImageDimensions(ImageFormat format, std::span<const uint8_t> bytes);

// kResourceExhausted "image is WxH = N pixels, over the limit of M (--max-pixels)" when
// width * height > max_pixels; OK otherwise.
Status CheckPixelLimit(uint64_t width, uint64_t height, uint64_t max_pixels);

}  // namespace orchard::internal
