// The container header readers (src/image/image_header_internal.h): the JPEG marker walk and
// frame header, PNG IHDR, BMP info header, WebP first chunk, and the pixel-limit check.
// Every reader runs on every input (the sniffed format is not trusted).
// Invariants: a segment's payload lies inside the input and segments advance; a size that
// is read is never 0 and never beyond what its field can hold.

#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_util.h"
#include "image/image_header_internal.h"
#include "orchard/image.h"

using namespace orchard;
using namespace orchard::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);

  JpegSegmentReader reader(bytes);
  const uint8_t* last_end = data;
  size_t segments = 0;
  while (auto segment = reader.Next()) {
    FUZZ_CHECK(fuzz::Within(segment->payload, bytes));
    // Each segment takes at least a marker (FF xx) and a length field, then its payload.
    FUZZ_CHECK(segment->payload.data() >= last_end + 4);
    last_end = segment->payload.data() + segment->payload.size();
    FUZZ_CHECK(++segments <= size / 4);
  }

  if (auto info = ReadJpegFrameInfo(bytes); info.ok()) {
    FUZZ_CHECK(info->width >= 1 && info->width <= 0xffff);
    FUZZ_CHECK(info->height >= 1 && info->height <= 0xffff);
    FUZZ_CHECK(info->precision >= 0 && info->precision <= 255);
    FUZZ_CHECK(info->components >= 0 && info->components <= 255);
  } else {
    FUZZ_CHECK(info.status().code() == StatusCode::kCorruptData);
  }

  for (const ImageFormat format : {ImageFormat::kPng, ImageFormat::kBmp, ImageFormat::kWebp}) {
    const auto dims = ReadImageDimensions(format, bytes);
    if (!dims.ok()) {
      const StatusCode code = dims.status().code();
      FUZZ_CHECK(code == StatusCode::kCorruptData ||
                 (format == ImageFormat::kWebp && code == StatusCode::kUnsupported));
      continue;
    }
    FUZZ_CHECK(dims->width >= 1 && dims->height >= 1);
    switch (format) {
      case ImageFormat::kPng:
        FUZZ_CHECK(dims->width <= 0x7fffffffu && dims->height <= 0x7fffffffu);
        break;
      case ImageFormat::kBmp:  // 32-bit signed fields, negated height included
        FUZZ_CHECK(dims->width <= 0x80000000u && dims->height <= 0x80000000u);
        break;
      default:  // WebP: 24-bit canvas fields, plus one
        FUZZ_CHECK(dims->width <= (1u << 24) && dims->height <= (1u << 24));
        break;
    }
    // The limit check must agree with plain arithmetic, near and at the boundary.
    const uint64_t pixels = uint64_t{dims->width} * dims->height;
    FUZZ_CHECK(CheckPixelLimit(dims->width, dims->height, pixels).ok());
    const Status over = CheckPixelLimit(dims->width, dims->height, pixels - 1);
    FUZZ_CHECK(over.code() == StatusCode::kResourceExhausted);
  }
  return 0;
}
