// DecodeImage: TurboJPEG for JPEG (the hot path, and the same libjpeg-turbo build Pillow
// and OpenCV use here, so pixels match them exactly), OpenCV imdecode for PNG, WebP and BMP.
// Every format has its dimensions read from the header and checked against the pixel limit
// before a decoder allocates the image.

#include <turbojpeg.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <span>
#include <string>
#include <vector>

#include "image/exif_internal.h"
#include "image/image_header_internal.h"
#include "orchard/image.h"

namespace orchard {
namespace {

using internal::CheckPixelLimit;

// OpenCV's description of an error, on one line (checks format theirs over several).
std::string OneLine(const cv::Exception& e) {
  std::string text = e.err;
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

bool StartsWith(std::span<const uint8_t> bytes, std::initializer_list<uint8_t> magic,
                size_t at = 0) {
  if (bytes.size() < at + magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), bytes.begin() + static_cast<ptrdiff_t>(at));
}

// "48 65 6c 6c 6f 0a ("Hello.")": the first bytes in hex and as text, for the error that
// tells a user their .jpg is really an HTML error page or a text file.
std::string DescribeLeadingBytes(std::span<const uint8_t> bytes) {
  const size_t n = std::min<size_t>(bytes.size(), 8);
  std::string hex, text;
  for (size_t i = 0; i < n; ++i) {
    char buf[4];
    std::snprintf(buf, sizeof(buf), i == 0 ? "%02x" : " %02x", bytes[i]);
    hex += buf;
    text += (bytes[i] >= 0x20 && bytes[i] < 0x7f) ? static_cast<char>(bytes[i]) : '.';
  }
  return hex + " (\"" + text + "\")";
}

// One TurboJPEG decompressor per thread: creating one costs an allocation of libjpeg state,
// and a handle must not be used by two threads at once. Destroyed when the thread exits.
struct TjDestroyer {
  void operator()(void* handle) const { tjDestroy(handle); }
};

tjhandle ThreadDecompressor() {
  thread_local std::unique_ptr<void, TjDestroyer> handle(tjInitDecompress());
  return handle.get();
}

// Adobe-inverted CMYK (as Photoshop writes it and libjpeg returns it: 0 = full ink) to RGB,
// with Pillow's arithmetic so that results match PIL's convert("RGB") exactly:
// R = K - round((255 - C) * K / 255), i.e. about C * K / 255.
void InvertedCmykToRgb(const uint8_t* cmyk, size_t pixels, uint8_t* rgb) {
  auto muldiv255 = [](int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (size_t i = 0; i < pixels; ++i, cmyk += 4, rgb += 3) {
    const int k = cmyk[3];
    for (int c = 0; c < 3; ++c) rgb[c] = static_cast<uint8_t>(k - muldiv255(255 - cmyk[c], k));
  }
}

// The DCT-domain scale factors DecodeOptions::min_width/min_height may select, least
// reduction first. libjpeg-turbo's reduced IDCTs for these are fast (4x4 and 2x2 in SIMD,
// 1x1 is the DC term alone); its other factors (M/8) run slower than a full decode plus a
// resize, or no faster than 1/2 (measured: see image.h).
constexpr tjscalingfactor kJpegScalings[] = {{1, 2}, {1, 4}, {1, 8}};

bool TurboJpegCanScale(tjscalingfactor factor) {
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  for (int i = 0; factors != nullptr && i < count; ++i) {
    if (factors[i].num * factor.denom == factor.num * factors[i].denom) return true;
  }
  return false;
}

// The factor for a JPEG whose stored (not yet EXIF-oriented) size is width x height: the
// smallest in kJpegScalings that keeps the displayed sides at or above the minimums, or 1/1.
tjscalingfactor ChooseJpegScaling(int width, int height, int orientation,
                                  const DecodeOptions& options) {
  tjscalingfactor chosen = {1, 1};
  if (options.min_width <= 0 && options.min_height <= 0) return chosen;
  // Orientations 5..8 transpose the image: the displayed width is the stored height.
  const bool swaps_axes = orientation >= 5 && orientation <= 8;
  const int min_stored_width = swaps_axes ? options.min_height : options.min_width;
  const int min_stored_height = swaps_axes ? options.min_width : options.min_height;
  static const bool supported[] = {TurboJpegCanScale(kJpegScalings[0]),
                                   TurboJpegCanScale(kJpegScalings[1]),
                                   TurboJpegCanScale(kJpegScalings[2])};
  static_assert(std::size(supported) == std::size(kJpegScalings));
  for (size_t i = 0; i < std::size(kJpegScalings); ++i) {
    const tjscalingfactor factor = kJpegScalings[i];
    if (!supported[i]) continue;
    if (TJSCALED(width, factor) < min_stored_width ||
        TJSCALED(height, factor) < min_stored_height) {
      break;  // the factors shrink in order: every later one is too small as well.
    }
    chosen = factor;
  }
  return chosen;
}

Result<Image> DecodeJpeg(std::span<const uint8_t> bytes, const DecodeOptions& options) {
  ORCHARD_ASSIGN_OR_RETURN(const internal::JpegFrameInfo info, internal::ReadJpegFrameInfo(bytes));
  // The limit is on the full size even when decoding scaled: every coefficient is still read.
  ORCHARD_RETURN_NOT_OK(CheckPixelLimit(info.width, info.height, options.max_pixels));
  // This libjpeg-turbo build decodes 8-bit baseline, extended, progressive and arithmetic-coded
  // JPEG (SOF0/1/2/9/10); lossless and hierarchical processes and 12-bit samples are valid
  // JPEG that it cannot decode.
  const uint8_t m = info.sof_marker;
  if (m != 0xc0 && m != 0xc1 && m != 0xc2 && m != 0xc9 && m != 0xca) {
    char sof[8];
    std::snprintf(sof, sizeof(sof), "%02X", m);
    return Status::Unsupported(std::string("JPEG process SOF ") + sof +
                               " (lossless or hierarchical) is not supported");
  }
  if (info.precision != 8) {
    return Status::Unsupported(std::to_string(info.precision) + "-bit JPEG is not supported");
  }
  const bool cmyk = info.components == 4;
  if (info.components != 1 && info.components != 3 && !cmyk) {
    return Status::Unsupported("JPEG with " + std::to_string(info.components) +
                               " color components");
  }

  tjhandle tj = ThreadDecompressor();
  if (tj == nullptr) {
    return Status::Internal(std::string("cannot create a TurboJPEG decompressor: ") +
                            tjGetErrorStr2(nullptr));
  }
  const int orientation = internal::JpegExifOrientation(bytes);
  // At most 65535 (16-bit SOF fields), so neither the casts nor TJSCALED overflow.
  const int full_width = static_cast<int>(info.width);
  const int full_height = static_cast<int>(info.height);
  const tjscalingfactor scaling = ChooseJpegScaling(full_width, full_height, orientation, options);
  Image image;
  image.width = TJSCALED(full_width, scaling);
  image.height = TJSCALED(full_height, scaling);
  const size_t pixels = static_cast<size_t>(image.width) * static_cast<size_t>(image.height);
  // libjpeg reports truncation ("Premature end of JPEG file") and corrupt entropy data as
  // mere warnings and pads the rest with grey; those become errors below. The one warning
  // that loses no pixel, stray bytes between segments, is accepted, as Pillow does.
  // LIMITSCANS: refuses progressive files with absurd scan counts (a CPU bomb).
  const int flags = TJFLAG_LIMITSCANS;
  // libjpeg cannot convert CMYK/YCCK to RGB, so those are decoded to CMYK and converted here.
  std::vector<uint8_t> cmyk_pixels;
  image.rgb.resize(pixels * 3);
  uint8_t* dst = image.rgb.data();
  if (cmyk) {
    cmyk_pixels.resize(pixels * 4);
    dst = cmyk_pixels.data();
  }
  // TurboJPEG decodes at the largest of its scaling factors whose output fits in the width and
  // height passed; for the frame's size times `scaling` that is `scaling` (or a larger factor
  // giving the same size, on tiny images), so it writes exactly image.width x image.height
  // pixels. It re-reads the header itself; if it disagrees with ours, it fails rather than
  // writing out of bounds, since it never writes more than width x height pixels.
  if (tjDecompress2(tj, bytes.data(), static_cast<unsigned long>(bytes.size()), dst, image.width, 0,
                    image.height, cmyk ? TJPF_CMYK : TJPF_RGB, flags) != 0) {
    const std::string message = tjGetErrorStr2(tj);
    const bool harmless = tjGetErrorCode(tj) == TJERR_WARNING &&
                          message.find("extraneous bytes before marker") != std::string::npos;
    if (!harmless) return Status::CorruptData("corrupt or truncated JPEG: " + message);
  }
  if (cmyk) InvertedCmykToRgb(cmyk_pixels.data(), pixels, image.rgb.data());
  ORCHARD_RETURN_NOT_OK(internal::ApplyExifOrientation(orientation, &image));
  return image;
}

Result<Image> DecodeWithOpenCv(std::span<const uint8_t> bytes, ImageFormat format,
                               const DecodeOptions& options) {
  ORCHARD_ASSIGN_OR_RETURN(const internal::ImageDimensions dims,
                           internal::ReadImageDimensions(format, bytes));
  ORCHARD_RETURN_NOT_OK(CheckPixelLimit(dims.width, dims.height, options.max_pixels));
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return Status::Unsupported("encoded image over 2 GiB");
  }
  const std::string name = format == ImageFormat::kPng    ? "PNG"
                           : format == ImageFormat::kWebp ? "WebP"
                                                          : "BMP";
  try {
    // imdecode only reads the buffer; the Mat header needs a non-const pointer.
    const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8UC1,
                          const_cast<uint8_t*>(bytes.data()));
    // IMREAD_COLOR: 8-bit, 3 channels, whatever the source (gray, palette, 16-bit, alpha).
    // The EXIF orientation is applied below, by us, for PNG and WebP alike.
    const cv::Mat bgr = cv::imdecode(encoded, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    if (bgr.empty()) return Status::CorruptData("corrupt or truncated " + name);
    if (bgr.type() != CV_8UC3) {
      return Status::Internal("OpenCV decoded " + name + " to an unexpected pixel type");
    }
    // Belt and braces: OpenCV's own limit is looser than ours.
    ORCHARD_RETURN_NOT_OK(CheckPixelLimit(static_cast<uint64_t>(bgr.cols),
                                          static_cast<uint64_t>(bgr.rows), options.max_pixels));
    Image image;
    image.width = bgr.cols;
    image.height = bgr.rows;
    image.rgb.resize(size_t{3} * bgr.total());
    cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, image.rgb.data());
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);  // same size and type: writes in place.
    if (rgb.data != image.rgb.data()) return Status::Internal("cvtColor reallocated");
    ORCHARD_RETURN_NOT_OK(
        internal::ApplyExifOrientation(internal::ExifOrientation(format, bytes), &image));
    return image;
  } catch (const cv::Exception& e) {
    return Status::CorruptData("corrupt " + name + ": " + OneLine(e));
  }
}

}  // namespace

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kWebp:
      return "webp";
    case ImageFormat::kBmp:
      return "bmp";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

ImageFormat SniffImageFormat(std::span<const uint8_t> bytes) {
  if (StartsWith(bytes, {0xff, 0xd8, 0xff})) return ImageFormat::kJpeg;
  if (StartsWith(bytes, {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a})) return ImageFormat::kPng;
  if (StartsWith(bytes, {'R', 'I', 'F', 'F'}) && StartsWith(bytes, {'W', 'E', 'B', 'P'}, 8)) {
    return ImageFormat::kWebp;
  }
  if (StartsWith(bytes, {'B', 'M'})) return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

Result<Image> DecodeImage(std::span<const uint8_t> bytes, const DecodeOptions& options) {
  if (bytes.empty()) return Status::CorruptData("empty file");
  const ImageFormat format = SniffImageFormat(bytes);
  try {
    switch (format) {
      case ImageFormat::kJpeg:
        return DecodeJpeg(bytes, options);
      case ImageFormat::kPng:
      case ImageFormat::kWebp:
      case ImageFormat::kBmp:
        return DecodeWithOpenCv(bytes, format, options);
      case ImageFormat::kUnknown:
        break;
    }
  } catch (const std::bad_alloc&) {
    // Within max_pixels, but this process had no memory left for it.
    return Status::ResourceExhausted(std::string("out of memory decoding a ") +
                                     ImageFormatName(format) + " image");
  }
  return Status::Unsupported("not a supported image (JPEG, PNG, WebP, BMP): content starts with " +
                             DescribeLeadingBytes(bytes));
}

uint64_t MaxEncodedBytes(uint64_t max_pixels) {
  constexpr uint64_t kMetadata = uint64_t{64} << 20;
  if (max_pixels > (UINT64_MAX - kMetadata) / 8) return UINT64_MAX;
  return max_pixels * 8 + kMetadata;
}

Status CheckImagePrefix(std::span<const uint8_t> prefix, uint64_t total_size,
                        const DecodeOptions& options) {
  if (total_size == 0) return Status::CorruptData("empty file");
  if (const uint64_t most = MaxEncodedBytes(options.max_pixels); total_size > most) {
    return Status::ResourceExhausted("file is " + std::to_string(total_size) +
                                     " bytes, more than any image within the pixel " + "limit (" +
                                     std::to_string(options.max_pixels) +
                                     ", --max-pixels) can be (" + std::to_string(most) + " bytes)");
  }
  const ImageFormat format = SniffImageFormat(prefix);
  if (format == ImageFormat::kUnknown) {
    if (prefix.size() < 12 && prefix.size() < total_size) return Status::OK();
    return Status::Unsupported(
        "not a supported image (JPEG, PNG, WebP, BMP): content starts with " +
        DescribeLeadingBytes(prefix));
  }
  uint64_t width = 0;
  uint64_t height = 0;
  if (format == ImageFormat::kJpeg) {
    auto info = internal::ReadJpegFrameInfo(prefix);
    if (!info.ok()) return prefix.size() < total_size ? Status::OK() : info.status();
    width = info->width;
    height = info->height;
  } else {
    auto dims = internal::ReadImageDimensions(format, prefix);
    if (!dims.ok()) return prefix.size() < total_size ? Status::OK() : dims.status();
    width = dims->width;
    height = dims->height;
  }
  return CheckPixelLimit(width, height, options.max_pixels);
}

}  // namespace orchard
