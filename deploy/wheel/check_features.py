"""Descriptors of a folder of images by the installed orchard package, saved as a reference or
compared with one; deploy/test-wheel runs it with the host's build (reference) and with each
wheel. Python 3.9+, numpy and orchard only.

    check_features.py dump FOLDER OUT.npz
    check_features.py compare FOLDER REF.npz [--tolerance 1e-5]

Compared: which images failed and why, the descriptors (bit-identical, or the largest
absolute difference), and an 8-component PCA fitted on them (within the tolerance: the
BLAS/LAPACK may differ). Also prints where the package and its ONNX Runtime were loaded
from and the BLAS kernel picked. Exit status 1 when something differs beyond the tolerance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import orchard

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def featurize(folder: Path) -> dict:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    featurizer = orchard.Featurizer(threads=2)
    result = featurizer.featurize([p.read_bytes() for p in paths])
    acc = orchard.PcaAccumulator(featurizer.dim)
    acc.update(result.features)
    pca = acc.finalize(components=8)
    return {
        "paths": np.array([p.relative_to(folder).as_posix() for p in paths]),
        "indices": np.asarray(result.indices),
        "features": np.asarray(result.features),
        "errors": np.array([json.dumps(list(e)) for e in result.errors] or [""]),
        "pca_components": np.asarray(pca.components),
        "pca_reduced": np.asarray(pca.transform(result.features)),
    }


def loaded_libraries() -> list:
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f
                       if "libonnxruntime" in line or "openblas" in line or "_orchard" in line})


def describe() -> None:
    info = orchard.build_info()
    print(f"orchard {orchard.__version__} from {Path(orchard.__file__).parent}")
    print(f"  python {sys.version.split()[0]}, numpy {np.__version__}, OpenCV {info['opencv']}")
    print(f"  BLAS: {info['openblas']} (kernel picked: {info.get('openblas_kernel')}); "
          f"CPU features: {', '.join(info['cpu_features'])}")
    for lib in loaded_libraries():
        print(f"  loaded: {lib}")


def main() -> int:
    mode, folder, ref = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    tolerance = float(sys.argv[sys.argv.index("--tolerance") + 1]) if "--tolerance" in sys.argv else 1e-5
    got = featurize(folder)
    describe()
    if mode == "dump":
        np.savez(ref, **got)
        print(f"  {len(got['indices'])} descriptors of {len(got['paths'])} images -> {ref}")
        return 0
    want = dict(np.load(ref))
    ok = True
    for key in ["paths", "indices", "errors"]:
        if not np.array_equal(got[key], want[key]):
            print(f"DIFFERENT {key}")
            ok = False
    if not ok:
        return 1
    n = len(got["indices"])
    for key in ["features", "pca_components", "pca_reduced"]:
        a, b = got[key], want[key]
        if a.shape != b.shape:
            print(f"DIFFERENT {key}: shape {a.shape} vs {b.shape}")
            ok = False
        elif np.array_equal(a, b):
            print(f"  {key} {a.shape}: bit-identical")
        else:
            diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            scale = float(np.max(np.abs(b)))
            verdict = "within" if diff <= tolerance * max(1.0, scale) else "BEYOND"
            print(f"  {key} {a.shape}: max |diff| {diff:.3g} (max |value| {scale:.3g}), "
                  f"{verdict} the tolerance {tolerance:g} (relative to max(1, max |value|))")
            ok = ok and verdict == "within"
    print(f"{'OK' if ok else 'FAILED'}: {n} descriptors of {len(got['paths'])} images vs {ref}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
