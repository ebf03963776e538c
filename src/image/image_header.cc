#include <cstdint>
#include <span>
#include <string>

#include "image/image_header_internal.h"

namespace orchard::internal {
namespace {

// Byte readers. Callers check `bytes.size()` against the furthest offset first; the
// readers themselves assume the range is valid.
uint32_t Be32(std::span<const uint8_t> b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         uint32_t{b[at + 3]};
}
uint32_t Le16(std::span<const uint8_t> b, size_t at) {
  return uint32_t{b[at]} | (uint32_t{b[at + 1]} << 8);
}
uint32_t Le24(std::span<const uint8_t> b, size_t at) {
  return Le16(b, at) | (uint32_t{b[at + 2]} << 16);
}
uint32_t Le32(std::span<const uint8_t> b, size_t at) {
  return Le24(b, at) | (uint32_t{b[at + 3]} << 24);
}
bool TagIs(std::span<const uint8_t> b, size_t at, const char (&tag)[5]) {
  for (size_t i = 0; i < 4; ++i) {
    if (b[at + i] != static_cast<uint8_t>(tag[i])) return false;
  }
  return true;
}

Status Truncated(const char* format) {
  return Status::CorruptData(std::string("corrupt or truncated ") + format + " header");
}

uint32_t Be16(std::span<const uint8_t> b, size_t at) {
  return (uint32_t{b[at]} << 8) | uint32_t{b[at + 1]};
}

}  // namespace

JpegSegmentReader::JpegSegmentReader(std::span<const uint8_t> jpeg) : jpeg_(jpeg) {
  if (jpeg.size() < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8) broken_ = done_ = true;
}

std::optional<JpegSegmentReader::Segment> JpegSegmentReader::Next() {
  while (!done_) {
    // Find the next marker as libjpeg's next_marker() does, so that both see the same
    // segments: bytes before an 0xFF are skipped (libjpeg warns "extraneous bytes"), then
    // any number of 0xFF fill bytes; FF 00 is a stuffed byte, not a marker.
    uint8_t marker = 0;
    while (marker == 0) {
      while (pos_ < jpeg_.size() && jpeg_[pos_] != 0xff) ++pos_;
      while (pos_ < jpeg_.size() && jpeg_[pos_] == 0xff) ++pos_;
      if (pos_ >= jpeg_.size()) break;
      marker = jpeg_[pos_++];
    }
    if (marker == 0) break;                  // ran out of bytes
    if (marker == 0xda || marker == 0xd9) {  // SOS / EOI
      done_ = true;
      return std::nullopt;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;  // no length field
    if (pos_ + 2 > jpeg_.size()) break;
    const size_t length = Be16(jpeg_, pos_);  // counts its own two bytes
    if (length < 2 || length > jpeg_.size() - pos_) break;
    Segment segment{marker, jpeg_.subspan(pos_ + 2, length - 2)};
    pos_ += length;
    return segment;
  }
  broken_ = done_ = true;
  return std::nullopt;
}

Result<JpegFrameInfo> ReadJpegFrameInfo(std::span<const uint8_t> bytes) {
  JpegSegmentReader reader(bytes);
  while (auto segment = reader.Next()) {
    const uint8_t m = segment->marker;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    const bool is_sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
    if (!is_sof) continue;
    // precision (1), height (2), width (2), component count (1), then 3 bytes per
    // component.
    const std::span<const uint8_t> p = segment->payload;
    if (p.size() < 6) return Truncated("JPEG");
    JpegFrameInfo info;
    info.sof_marker = m;
    info.precision = p[0];
    info.height = Be16(p, 1);
    info.width = Be16(p, 3);
    info.components = p[5];
    if (info.width == 0 || info.height == 0) {
      // Height 0 defers it to a DNL marker, which libjpeg does not support.
      return Status::CorruptData("corrupt JPEG: invalid size " + std::to_string(info.width) + "x" +
                                 std::to_string(info.height));
    }
    return info;
  }
  return Status::CorruptData(reader.broken() ? "corrupt or truncated JPEG header"
                                             : "corrupt JPEG: no frame header before the scan");
}

Result<ImageDimensions> ReadPngDimensions(std::span<const uint8_t> bytes) {
  // 8-byte signature, then the IHDR chunk: length (4), "IHDR", width (4), height (4), all
  // big-endian.
  if (bytes.size() < 24) return Truncated("PNG");
  if (!TagIs(bytes, 12, "IHDR") || Be32(bytes, 8) != 13) {
    return Status::CorruptData("corrupt PNG: the first chunk is not IHDR");
  }
  const uint32_t width = Be32(bytes, 16);
  const uint32_t height = Be32(bytes, 20);
  // The PNG specification caps both at 2^31 - 1 and forbids zero.
  if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu) {
    return Status::CorruptData("corrupt PNG: invalid size " + std::to_string(width) + "x" +
                               std::to_string(height));
  }
  return ImageDimensions{width, height};
}

Result<ImageDimensions> ReadBmpDimensions(std::span<const uint8_t> bytes) {
  // 14-byte file header ("BM", file size, reserved, pixel offset), then the info header,
  // whose first field is its own size and selects the layout.
  if (bytes.size() < 18) return Truncated("BMP");
  const uint32_t info_size = Le32(bytes, 14);
  int64_t width = 0;
  int64_t height = 0;
  if (info_size == 12) {  // BITMAPCOREHEADER (OS/2 1.x): unsigned 16-bit sizes.
    if (bytes.size() < 22) return Truncated("BMP");
    width = Le16(bytes, 18);
    height = Le16(bytes, 20);
  } else if (info_size >= 16) {  // OS/2 2.x and BITMAPINFOHEADER..V5: signed 32-bit sizes.
    if (bytes.size() < 26) return Truncated("BMP");
    width = static_cast<int32_t>(Le32(bytes, 18));
    height = static_cast<int32_t>(Le32(bytes, 22));
    if (height < 0) height = -height;  // top-down rows; int64_t, so INT32_MIN is safe.
  } else {
    return Status::CorruptData("corrupt BMP: unknown info header size " +
                               std::to_string(info_size));
  }
  if (width <= 0 || height <= 0) {
    return Status::CorruptData("corrupt BMP: invalid size " + std::to_string(width) + "x" +
                               std::to_string(height));
  }
  return ImageDimensions{static_cast<uint32_t>(width), static_cast<uint32_t>(height)};
}

Result<ImageDimensions> ReadWebpDimensions(std::span<const uint8_t> bytes) {
  // "RIFF", size, "WEBP", then the first chunk: FourCC at 12, chunk size at 16, payload
  // from 20.
  if (bytes.size() < 30) return Truncated("WebP");
  ImageDimensions dims;
  if (TagIs(bytes, 12, "VP8 ")) {
    // Lossy: 3-byte frame tag (bit 0 clear on a key frame), start code 9D 01 2A, then
    // 14-bit width and height, each with a 2-bit upscaling hint in the top bits.
    if ((bytes[20] & 1) != 0 || bytes[23] != 0x9d || bytes[24] != 0x01 || bytes[25] != 0x2a) {
      return Status::CorruptData("corrupt WebP: bad VP8 frame header");
    }
    dims.width = Le16(bytes, 26) & 0x3fff;
    dims.height = Le16(bytes, 28) & 0x3fff;
  } else if (TagIs(bytes, 12, "VP8L")) {
    // Lossless: signature byte 0x2F, then width - 1 and height - 1 as 14-bit fields.
    if (bytes[20] != 0x2f) return Status::CorruptData("corrupt WebP: bad VP8L signature");
    const uint32_t bits = Le32(bytes, 21);
    dims.width = (bits & 0x3fff) + 1;
    dims.height = ((bits >> 14) & 0x3fff) + 1;
  } else if (TagIs(bytes, 12, "VP8X")) {
    // Extended: flags byte, 3 reserved bytes, then canvas width - 1 and height - 1 as
    // 24-bit fields. Flag 0x02 marks an animation.
    if ((bytes[20] & 0x02) != 0) return Status::Unsupported("animated WebP is not supported");
    dims.width = Le24(bytes, 24) + 1;
    dims.height = Le24(bytes, 27) + 1;
  } else {
    return Status::CorruptData("corrupt WebP: unknown first chunk");
  }
  if (dims.width == 0 || dims.height == 0) {
    return Status::CorruptData("corrupt WebP: zero size");
  }
  return dims;
}

Result<ImageDimensions> ReadImageDimensions(ImageFormat format, std::span<const uint8_t> bytes) {
  switch (format) {
    case ImageFormat::kPng:
      return ReadPngDimensions(bytes);
    case ImageFormat::kBmp:
      return ReadBmpDimensions(bytes);
    case ImageFormat::kWebp:
      return ReadWebpDimensions(bytes);
    case ImageFormat::kJpeg:
    case ImageFormat::kUnknown:
      break;
  }
  return Status::Internal(std::string("no header reader for ") + ImageFormatName(format));
}

Status CheckPixelLimit(uint64_t width, uint64_t height, uint64_t max_pixels) {
  // Both factors come from headers (at most 32 bits each), so the product cannot overflow.
  const uint64_t pixels = width * height;
  if (pixels <= max_pixels) return Status::OK();
  return Status::ResourceExhausted("image is " + std::to_string(width) + "x" +
                                   std::to_string(height) + " = " + std::to_string(pixels) +
                                   " pixels, over the limit of " + std::to_string(max_pixels) +
                                   " (--max-pixels)");
}

}  // namespace orchard::internal
