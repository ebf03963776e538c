#include <algorithm>
#include <cstdint>
#include <cstring>
#include <opencv2/core.hpp>
#include <span>
#include <string>

#include "image/exif_internal.h"
#include "image/image_header_internal.h"

namespace orchard::internal {
namespace {

// OpenCV's description of an error, on one line (checks format theirs over several).
std::string OneLine(const cv::Exception& e) {
  std::string text = e.err;
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

constexpr uint16_t kOrientationTag = 0x0112;
constexpr uint16_t kTypeShort = 3;
constexpr uint16_t kTypeLong = 4;

// Reads TIFF integers in the block's byte order. Callers check bounds first.
class TiffReader {
 public:
  TiffReader(std::span<const uint8_t> b, bool big_endian) : b_(b), big_endian_(big_endian) {}
  uint16_t U16(size_t at) const {
    return big_endian_ ? static_cast<uint16_t>((b_[at] << 8) | b_[at + 1])
                       : static_cast<uint16_t>(b_[at] | (b_[at + 1] << 8));
  }
  uint32_t U32(size_t at) const {
    const uint32_t first = U16(at), second = U16(at + 2);
    return big_endian_ ? (first << 16) | second : (second << 16) | first;
  }

 private:
  std::span<const uint8_t> b_;
  bool big_endian_;
};

constexpr uint8_t kExifId[6] = {'E', 'x', 'i', 'f', 0, 0};

bool StartsWithExifId(std::span<const uint8_t> p) {
  return p.size() >= sizeof(kExifId) && std::memcmp(p.data(), kExifId, sizeof(kExifId)) == 0;
}

uint32_t Be32(std::span<const uint8_t> b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         uint32_t{b[at + 3]};
}

uint32_t Le32(std::span<const uint8_t> b, size_t at) {
  return uint32_t{b[at]} | (uint32_t{b[at + 1]} << 8) | (uint32_t{b[at + 2]} << 16) |
         (uint32_t{b[at + 3]} << 24);
}

bool FourCcIs(std::span<const uint8_t> b, size_t at, const char (&tag)[5]) {
  return std::memcmp(&b[at], tag, 4) == 0;
}

}  // namespace

std::span<const uint8_t> FindJpegExifTiff(std::span<const uint8_t> jpeg) {
  JpegSegmentReader reader(jpeg);
  while (auto segment = reader.Next()) {
    if (segment->marker == 0xe1 && StartsWithExifId(segment->payload)) {
      return segment->payload.subspan(sizeof(kExifId));
    }
  }
  return {};
}

std::span<const uint8_t> FindPngExifTiff(std::span<const uint8_t> png) {
  // After the 8-byte signature: chunks of length (4, big-endian), type (4), data, CRC (4).
  size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const uint64_t length = Be32(png, pos);
    if (length > png.size() - pos - 12) return {};
    if (FourCcIs(png, pos + 4, "eXIf")) return png.subspan(pos + 8, length);
    if (FourCcIs(png, pos + 4, "IEND")) return {};
    pos += 12 + length;
  }
  return {};
}

std::span<const uint8_t> FindWebpExifTiff(std::span<const uint8_t> webp) {
  // After "RIFF", size, "WEBP": chunks of FourCC (4), size (4, little-endian), data padded to
  // an even length.
  size_t pos = 12;
  while (pos + 8 <= webp.size()) {
    const uint64_t size = Le32(webp, pos + 4);
    if (size > webp.size() - pos - 8) return {};
    if (FourCcIs(webp, pos, "EXIF")) return webp.subspan(pos + 8, size);
    pos += 8 + size + (size & 1);
  }
  return {};
}

int ParseExifOrientation(std::span<const uint8_t> tiff) {
  // Header: byte order "II" or "MM", the number 42, then the offset of IFD0 (from the start
  // of the block). An IFD is a 16-bit entry count followed by 12-byte entries:
  // tag (2), type (2), count (4), value or value offset (4).
  if (tiff.size() < 8) return 1;
  bool big_endian;
  if (tiff[0] == 'I' && tiff[1] == 'I') {
    big_endian = false;
  } else if (tiff[0] == 'M' && tiff[1] == 'M') {
    big_endian = true;
  } else {
    return 1;
  }
  const TiffReader r(tiff, big_endian);
  if (r.U16(2) != 42) return 1;
  const uint64_t ifd = r.U32(4);
  if (ifd < 8 || ifd + 2 > tiff.size()) return 1;
  const uint32_t entries = r.U16(ifd);
  for (uint32_t i = 0; i < entries; ++i) {
    const uint64_t entry = ifd + 2 + uint64_t{12} * i;
    if (entry + 12 > tiff.size()) return 1;
    if (r.U16(entry) != kOrientationTag) continue;
    const uint16_t type = r.U16(entry + 2);
    if (r.U32(entry + 4) != 1) return 1;  // the tag holds exactly one value.
    // A value that fits in 4 bytes is stored inline, left-aligned.
    uint32_t value = 0;
    if (type == kTypeShort) {
      value = r.U16(entry + 8);
    } else if (type == kTypeLong) {  // wrong per the spec, but written by some tools.
      value = r.U32(entry + 8);
    } else {
      return 1;
    }
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

int JpegExifOrientation(std::span<const uint8_t> jpeg) {
  return ParseExifOrientation(FindJpegExifTiff(jpeg));
}

int ExifOrientation(ImageFormat format, std::span<const uint8_t> bytes) {
  std::span<const uint8_t> tiff;
  switch (format) {
    case ImageFormat::kJpeg:
      return JpegExifOrientation(bytes);
    case ImageFormat::kPng:
      tiff = FindPngExifTiff(bytes);
      break;
    case ImageFormat::kWebp:
      tiff = FindWebpExifTiff(bytes);
      break;
    case ImageFormat::kBmp:
    case ImageFormat::kUnknown:
      return 1;
  }
  if (StartsWithExifId(tiff)) tiff = tiff.subspan(sizeof(kExifId));
  return ParseExifOrientation(tiff);
}

Status ApplyExifOrientation(int orientation, Image* image) {
  if (orientation < 2 || orientation > 8) return Status::OK();
  if (image->width <= 0 || image->height <= 0 ||
      image->rgb.size() !=
          size_t{3} * static_cast<size_t>(image->width) * static_cast<size_t>(image->height)) {
    return Status::InvalidArgument("image buffer does not match its size");
  }
  try {
    const cv::Mat src(image->height, image->width, CV_8UC3, image->rgb.data());
    cv::Mat dst;
    switch (orientation) {
      case 2:
        cv::flip(src, dst, 1);
        break;
      case 3:
        cv::rotate(src, dst, cv::ROTATE_180);
        break;
      case 4:
        cv::flip(src, dst, 0);
        break;
      case 5:
        cv::transpose(src, dst);
        break;
      case 6:
        cv::rotate(src, dst, cv::ROTATE_90_CLOCKWISE);
        break;
      case 7: {  // the transpose across the anti-diagonal.
        cv::Mat transposed;
        cv::transpose(src, transposed);
        cv::flip(transposed, dst, -1);
        break;
      }
      case 8:
        cv::rotate(src, dst, cv::ROTATE_90_COUNTERCLOCKWISE);
        break;
    }
    // OpenCV results are freshly allocated and continuous.
    std::vector<uint8_t> rgb(dst.data, dst.data + dst.total() * dst.elemSize());
    image->width = dst.cols;
    image->height = dst.rows;
    image->rgb = std::move(rgb);
  } catch (const cv::Exception& e) {
    return Status::Internal(std::string("applying EXIF orientation failed: ") + OneLine(e));
  }
  return Status::OK();
}

}  // namespace orchard::internal
