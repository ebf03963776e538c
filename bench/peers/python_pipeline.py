#!/usr/bin/env python3
"""The plain Python pipeline a competent data scientist writes for Orchard's job: a folder of
images -> MobileNetV2 descriptors -> exact PCA (95% of variance) -> features.csv/.npy.

    .venv/bin/python bench/peers/python_pipeline.py --input samples/fruits-360-mini \
        --output /tmp/py-out --threads 2

It is a peer in bench/compare, written the obvious way and without sabotage:
  - list the image files (sorted, label = parent folder name, as `orchard run`);
  - decode with PIL: Image.open(p).convert("RGB").resize((224, 224), BILINEAR) (the same
    stretch resize as Orchard's mobilenet_v2 preset; PIL's bilinear resize filters with
    support scaled to the reduction, close to OpenCV's INTER_AREA), in a ThreadPoolExecutor
    of --threads workers (PIL releases the GIL while decoding and resizing);
  - normalise (x - 128) / 128 as the model's sidecar (models/mobilenet_v2.json) says;
  - ONNX Runtime on the same models/mobilenet_v2.onnx, ORT_ENABLE_ALL, intra_op_num_threads =
    --threads, batches of 16, output "feature_map" averaged over H and W (1280 floats);
    the next batch decodes while the network runs on this one;
  - exact PCA in float64: sklearn's PCA(n_components=0.95, svd_solver="full") when sklearn is
    installed, otherwise the covariance's eigh in numpy (same result up to signs);
  - write features.csv (path, label, pc_1..pc_k) with pandas and features.npy with numpy.

Prints one JSON line with the phase timings (seconds) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import onnxruntime as ort
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def load(path: Path, size: int) -> np.ndarray:
    """One image as a (3, size, size) float32 tensor, (x - 128) / 128."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(rgb, dtype=np.float32)
    return ((x - 128.0) / 128.0).transpose(2, 0, 1)


def batches(files: list[Path], pool: ThreadPoolExecutor, batch: int, size: int) -> Iterator[np.ndarray]:
    """Decoded batches, the next one submitted to the pool before this one is yielded."""
    chunks = [files[i:i + batch] for i in range(0, len(files), batch)]
    pending = [pool.submit(load, f, size) for f in chunks[0]] if chunks else []
    for i in range(len(chunks)):
        current = pending
        pending = [pool.submit(load, f, size) for f in chunks[i + 1]] if i + 1 < len(chunks) else []
        yield np.stack([f.result() for f in current])


def pca(x: np.ndarray, variance: float) -> tuple[np.ndarray, str]:
    """Exact PCA keeping the fewest components that explain `variance`; float32 scores."""
    try:
        from sklearn.decomposition import PCA
    except ImportError:
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=0)
        centered = x64 - mean
        cov = centered.T @ centered / (len(x64) - 1)
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
        explained = np.cumsum(eigenvalues) / eigenvalues.sum()
        k = int(np.searchsorted(explained, variance) + 1)
        return (centered @ eigenvectors[:, :k]).astype(np.float32), "numpy eigh (float64)"
    model = PCA(n_components=variance, svd_solver="full")
    return model.fit_transform(x.astype(np.float64)).astype(np.float32), "sklearn PCA (full)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "mobilenet_v2.onnx")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--pca-variance", type=float, default=0.95)
    args = parser.parse_args()

    t0 = time.perf_counter()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    t_load = time.perf_counter()

    files = list_images(args.input)
    t_list = time.perf_counter()

    descriptors, decode_wait, network = [], 0.0, 0.0
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        stream = batches(files, pool, args.batch, args.size)
        while True:
            t = time.perf_counter()
            x = next(stream, None)
            decode_wait += time.perf_counter() - t
            if x is None:
                break
            t = time.perf_counter()
            (feature_map,) = session.run(["feature_map"], {input_name: x})
            descriptors.append(feature_map.mean(axis=(2, 3)))
            network += time.perf_counter() - t
    features = np.concatenate(descriptors).astype(np.float32)
    t_extract = time.perf_counter()

    scores, pca_method = pca(features, args.pca_variance)
    t_pca = time.perf_counter()

    import pandas as pd

    args.output.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(scores, columns=[f"pc_{i + 1}" for i in range(scores.shape[1])])
    table.insert(0, "label", [f.parent.name for f in files])
    table.insert(0, "path", [str(f) for f in files])
    table.to_csv(args.output / "features.csv", index=False)
    np.save(args.output / "features.npy", scores)
    t_write = time.perf_counter()

    print(json.dumps({
        "images": len(files), "dim": int(features.shape[1]), "k": int(scores.shape[1]),
        "pca": pca_method, "onnxruntime": ort.__version__, "threads": args.threads, "batch": args.batch,
        "timings_seconds": {
            "model_load": t_load - t0, "list": t_list - t_load, "extract": t_extract - t_list,
            "network": network, "decode_wait": decode_wait, "pca": t_pca - t_extract,
            "write": t_write - t_pca, "total": t_write - t0,
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
