#!/usr/bin/env python3
"""Write a deterministic collection of N small JPEGs in K class folders, for memory benchmarks.

    bench/make_synthetic_collection.py OUT_DIR --images 100000 [--classes 100] [--size 100]

Image i goes to OUT_DIR/class_<i % K>/img_<i>.jpg and is a colour gradient with a little
noise drawn from a generator seeded with i, so the bytes depend only on (i, size, quality)
and not on --jobs or on what was written before. A finished collection is recorded in
OUT_DIR.json (beside the folder, not inside it, so that `orchard run` does not list it); a
second call with the same parameters returns at once, and an interrupted one resumes where it
stopped (each file is written under a temporary name and renamed).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CollectionSpec:
    images: int
    classes: int
    size: int
    quality: int
    version: int = FORMAT_VERSION


def image_path(root: Path, spec: CollectionSpec, index: int) -> Path:
    return root / f"class_{index % spec.classes:03d}" / f"img_{index:07d}.jpg"


_NOISE_OFFSETS = 1 << 16


@functools.lru_cache(maxsize=4)
def _noise_pool(elements: int) -> np.ndarray:
    """Gaussian noise (sigma 8) shared by all images; each image reads it at its own offset."""
    rng = np.random.default_rng(0)
    return rng.standard_normal(size=elements + _NOISE_OFFSETS, dtype=np.float32) * np.float32(8.0)


@functools.lru_cache(maxsize=4)
def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    return ys - 0.5, xs - 0.5


def render(index: int, size: int) -> np.ndarray:
    """The BGR uint8 image number `index`: a random linear gradient between two colours + noise."""
    rng = np.random.default_rng(index)
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = _unit_grid(size)
    t = np.clip(0.5 + xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle)), 0.0, 1.0)
    image = c0 + t[..., None] * (c1 - c0)
    offset = int(rng.integers(0, _NOISE_OFFSETS))
    image += _noise_pool(image.size)[offset : offset + image.size].reshape(image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _write_range(args: tuple[str, CollectionSpec, int, int]) -> int:
    """Writes images [start, stop) that are missing; returns how many it wrote."""
    root_text, spec, start, stop = args
    root = Path(root_text)
    written = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, spec.quality]
    for index in range(start, stop):
        path = image_path(root, spec, index)
        if path.exists():
            continue
        ok, encoded = cv2.imencode(".jpg", render(index, spec.size), params)
        if not ok:
            raise RuntimeError(f"cv2.imencode failed for image {index}")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(encoded.tobytes())
        tmp.replace(path)
        written += 1
    return written


def marker_path(root: Path) -> Path:
    return root.parent / (root.name + ".json")


def make_collection(root: Path, spec: CollectionSpec, jobs: int = 0, verbose: bool = True) -> Path:
    """Ensures `root` holds the collection described by `spec`; returns `root`.

    Raises ValueError when `root` is marked as a collection with other parameters (delete it
    first), RuntimeError when encoding fails.
    """
    if spec.images < 1 or spec.classes < 1 or spec.size < 8 or not 1 <= spec.quality <= 100:
        raise ValueError(f"invalid collection parameters: {spec}")
    marker = marker_path(root)
    if marker.exists():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded == asdict(spec):
            return root
        raise ValueError(f"{root} holds another collection ({recorded}); delete it and {marker}")
    for c in range(min(spec.classes, spec.images)):
        (root / f"class_{c:03d}").mkdir(parents=True, exist_ok=True)
    jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
    chunk = 2000
    ranges = [(str(root), spec, s, min(s + chunk, spec.images)) for s in range(0, spec.images, chunk)]
    written = 0
    with multiprocessing.Pool(jobs) as pool:
        for done, count in enumerate(pool.imap_unordered(_write_range, ranges), start=1):
            written += count
            if verbose:
                print(f"\r{root.name}: {done}/{len(ranges)} chunks", end="", file=sys.stderr)
    if verbose:
        print(f"\r{root.name}: {spec.images} images ({written} written now)", file=sys.stderr)
    marker.write_text(json.dumps(asdict(spec)) + "\n", encoding="utf-8")
    return root


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder to fill (created if missing)")
    parser.add_argument("--images", type=int, required=True, help="number of images N")
    parser.add_argument("--classes", type=int, default=100, help="number of class folders K (default 100)")
    parser.add_argument("--size", type=int, default=100, help="side of the square images in pixels (default 100)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    parser.add_argument("--jobs", type=int, default=0, help="encoding processes (default: all cores)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = CollectionSpec(images=args.images, classes=args.classes, size=args.size, quality=args.quality)
    try:
        make_collection(args.out_dir, spec, jobs=args.jobs)
    except ValueError as e:
        print(f"make_synthetic_collection: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
