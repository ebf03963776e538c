#!/usr/bin/env python3
"""Writes the image seeds of fuzz/corpus/{decode,exif,image_header}/ (small, real encodings).

Run from the repository root with the project's Python (Pillow, OpenCV, numpy):
    .venv/bin/python fuzz/make_image_seeds.py [FRUIT_JPEG]
FRUIT_JPEG defaults to a bundled Fruits-360 sample; every seed is a shrunk copy of it
(16x16, some 12x20 to tell width from height), so that the seeds hold real photographic
content. The output is deterministic for a given Pillow/OpenCV.
"""
import io
import pathlib
import struct
import sys
import zlib

import cv2
import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent
DEFAULT_FRUIT = ROOT.parent / "samples/fruits-360-mini/Training/Peach 3/r0_0.jpg"


def exif_with_orientation(orientation, big_endian=False):
    """The TIFF block of an EXIF APP1 payload with IFD0 holding one Orientation SHORT."""
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    tiff += struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(e + "I", 0)  # no next IFD
    return tiff


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def main():
    fruit = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FRUIT
    if not fruit.exists():
        fruit = next((ROOT.parent / "samples").rglob("*.jpg"))
    src = Image.open(fruit).convert("RGB")
    sq = src.resize((16, 16), Image.LANCZOS)
    tall = src.resize((12, 20), Image.LANCZOS)
    rgba = sq.copy()
    rgba.putalpha(Image.linear_gradient("L").resize((16, 16)))

    seeds = {}
    # JPEG: the processes and layouts libjpeg-turbo decodes, and EXIF orientations.
    seeds["jpeg_baseline_420.jpg"] = encode(sq, "JPEG", quality=75)
    seeds["jpeg_444.jpg"] = encode(tall, "JPEG", quality=90, subsampling=0)
    seeds["jpeg_422.jpg"] = encode(tall, "JPEG", quality=60, subsampling=1)
    seeds["jpeg_progressive.jpg"] = encode(sq, "JPEG", quality=80, progressive=True)
    seeds["jpeg_optimized.jpg"] = encode(sq, "JPEG", quality=50, optimize=True)
    seeds["jpeg_gray.jpg"] = encode(sq.convert("L"), "JPEG", quality=75)
    seeds["jpeg_cmyk.jpg"] = encode(sq.convert("CMYK"), "JPEG", quality=75)
    for o in (3, 6, 8):
        seeds[f"jpeg_exif_orientation_{o}.jpg"] = encode(
            tall, "JPEG", quality=70, exif=b"Exif\0\0" + exif_with_orientation(o, big_endian=o == 6))
    ok, rst = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(sq), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 70, cv2.IMWRITE_JPEG_RST_INTERVAL, 1])
    if ok:
        seeds["jpeg_restart_markers.jpg"] = rst.tobytes()
    # PNG: color types and depths, and an eXIf chunk.
    seeds["png_rgb.png"] = encode(sq, "PNG")
    seeds["png_rgba.png"] = encode(rgba, "PNG")
    seeds["png_gray.png"] = encode(sq.convert("L"), "PNG")
    seeds["png_palette.png"] = encode(sq.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG")
    seeds["png_gray16.png"] = encode(sq.convert("I").point(lambda v: v * 257), "PNG")
    seeds["png_exif_orientation_6.png"] = encode(tall, "PNG", exif=exif_with_orientation(6))
    ok, png16 = cv2.imencode(".png", (cv2.cvtColor(np.asarray(sq), cv2.COLOR_RGB2BGR)
                                      .astype(np.uint16) * 257))
    if ok:
        seeds["png_rgb16.png"] = png16.tobytes()
    # WebP: lossy (VP8), lossless (VP8L), extended with alpha and EXIF (VP8X).
    seeds["webp_lossy.webp"] = encode(sq, "WEBP", quality=60)
    seeds["webp_lossless.webp"] = encode(sq, "WEBP", lossless=True)
    seeds["webp_alpha.webp"] = encode(rgba, "WEBP", quality=60)
    seeds["webp_exif_orientation_8.webp"] = encode(
        tall, "WEBP", quality=60, exif=b"Exif\0\0" + exif_with_orientation(8))
    # BMP: 24-bit, 8-bit palette, 32-bit, and a top-down one (negative height).
    seeds["bmp_24.bmp"] = encode(sq, "BMP")
    seeds["bmp_palette.bmp"] = encode(sq.convert("P", palette=Image.ADAPTIVE, colors=16), "BMP")
    ok, bmp32 = cv2.imencode(".bmp", cv2.cvtColor(np.asarray(rgba), cv2.COLOR_RGBA2BGRA))
    if ok:
        seeds["bmp_32.bmp"] = bmp32.tobytes()
    b = bytearray(encode(tall, "BMP"))
    struct.pack_into("<i", b, 22, -struct.unpack_from("<i", b, 22)[0])
    seeds["bmp_top_down.bmp"] = bytes(b)

    # Decompression bombs: small files whose headers declare huge images. They must be refused
    # from the header, before a decoder allocates anything of that size.
    b = bytearray(seeds["jpeg_baseline_420.jpg"])
    sof = b.index(b"\xff\xc0")
    struct.pack_into(">HH", b, sof + 5, 65500, 65500)
    seeds["bomb_jpeg_65500x65500.jpg"] = bytes(b)
    b = bytearray(seeds["png_rgb.png"])
    struct.pack_into(">II", b, 16, 100000, 100000)
    struct.pack_into(">I", b, 29, zlib.crc32(bytes(b[12:29])))
    seeds["bomb_png_100000x100000.png"] = bytes(b)
    b = bytearray(seeds["bmp_24.bmp"])
    struct.pack_into("<ii", b, 18, 100000, -100000)
    seeds["bomb_bmp_100000x100000.bmp"] = bytes(b)
    b = bytearray(seeds["webp_alpha.webp"])
    assert b[12:16] == b"VP8X"
    b[24:27] = (20000 - 1).to_bytes(3, "little")
    b[27:30] = (20000 - 1).to_bytes(3, "little")
    seeds["bomb_webp_vp8x_20000x20000.webp"] = bytes(b)

    for target in ("decode", "image_header"):
        out = ROOT / "corpus" / target
        out.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (out / name).write_bytes(data)
    # The EXIF parser: the images that carry EXIF, and bare TIFF blocks in both byte orders.
    out = ROOT / "corpus" / "exif"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        if "exif" in name:
            (out / name).write_bytes(data)
    (out / "tiff_ii_orientation_5.bin").write_bytes(exif_with_orientation(5))
    (out / "tiff_mm_orientation_7.bin").write_bytes(exif_with_orientation(7, big_endian=True))
    print(f"{len(seeds)} image seeds, {sum(map(len, seeds.values()))} bytes each for decode and "
          "image_header")


if __name__ == "__main__":
    main()
