// The EXIF orientation tag of a JPEG, PNG or WebP: finding it and applying it.
//
// Cameras store pixels in sensor order and record how to display them in tag 0x0112 of
// IFD0. Decoders that ignore the tag return sideways photographs, so DecodeImage applies it
// itself, for every format that can carry EXIF (OpenCV 4.6 would apply it for JPEG and PNG
// but not WebP; DecodeImage asks OpenCV to ignore it, so that the rule is ours and does not
// change with the OpenCV version).
// The parser reads only what it needs, bounds-checks every offset and treats anything
// malformed as "no orientation" (1): a broken EXIF block must not make a decodable image
// fail. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <span>

#include "orchard/image.h"
#include "orchard/status.h"

namespace orchard::internal {

// The TIFF block (starting at its "II"/"MM" byte-order mark) of the first APP1 segment whose
// payload starts with "Exif\0\0", found among the markers before the first SOS. Empty when
// there is none or the marker structure is broken first. The span points into `jpeg`.
std::span<const uint8_t> FindJpegExifTiff(std::span<const uint8_t> jpeg);

// The TIFF block of the first eXIf chunk of a PNG (chunks walked up to IEND).
std::span<const uint8_t> FindPngExifTiff(std::span<const uint8_t> png);

// The TIFF block of the first EXIF chunk of a WebP (RIFF chunks walked from the first).
std::span<const uint8_t> FindWebpExifTiff(std::span<const uint8_t> webp);

// Orientation 1..8 from IFD0 of a TIFF block; 1 when the tag is absent, out of range or the
// block is malformed.
int ParseExifOrientation(std::span<const uint8_t> tiff);

// FindJpegExifTiff followed by ParseExifOrientation.
int JpegExifOrientation(std::span<const uint8_t> jpeg);

// The orientation of an encoded image of `format` (1 for BMP and unknown formats). PNG and
// WebP blocks may, against their specifications, still start with "Exif\0\0"; it is skipped.
int ExifOrientation(ImageFormat format, std::span<const uint8_t> bytes);

// Transforms `image` so that it displays upright, for EXIF orientation 1..8 (as Pillow's
// ImageOps.exif_transpose does): 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom,
// 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
// Orientations 5..8 swap width and height. Other values leave the image unchanged.
// kInvalidArgument if image->rgb does not hold width * height * 3 bytes.
Status ApplyExifOrientation(int orientation, Image* image);

}  // namespace orchard::internal
