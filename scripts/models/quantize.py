#!/usr/bin/env python3
"""Make the statically quantized int8 MobileNetV2 for `--precision int8`.

Writes models/mobilenet_v2_int8.onnx, checks it against the float model, and records it in
the sidecar.

Why a separate file: on CPUs with VNNI (AVX512-VNNI, AVX-VNNI, AMX) ONNX Runtime's int8
convolutions run on 8-bit dot-product instructions; elsewhere the engine keeps fp32
(src/extract/featurizer.cc, ChoosePrecision). The float model stays the reference.

Recipe (each choice measured on fruits-360-mini; models/README.md has the figures):
- The float graph (opset 10, see convert_tflite.py) is converted to opset 13, the first with
  per-channel QuantizeLinear/DequantizeLinear (`axis`), then run through
  onnxruntime.quantization.shape_inference.quant_pre_process, which folds the converter's
  Constant nodes (Clip min/max) into initializers.
- onnxruntime.quantization.quantize_static, QDQ format: uint8 activations (ORT's x86 default,
  the operand VNNI multiplies), symmetric int8 weights per output channel.
- Activation ranges: Percentile (99.999) over the fruits-360-mini Training images only
  (sorted, 40 per class), preprocessed as the sidecar says. The Test images stay held out.
- Weight scales on the weights' own grid: the float weights are dequantized uint8,
  w = s * (q - z) per tensor, so they lie on a grid of step s. ORT's default per-channel
  scale max|w_c| / 127 puts each channel on a different grid, and rounding onto it alone
  drops the descriptor cosine to 0.976. Choosing s itself as the channel's scale keeps the
  int8 weights exact wherever |q - z| <= 127 (all but a few dozen of 18,000 channels, which
  get max|w_c| / 127). Tensors that are not on a grid keep ORT's default.
- The stem conv and the first bottleneck block (the first three Conv nodes, at 112x112, 1.7k
  weights) stay float: they are the most sensitive to quantization, and on AVX2 CPUs
  without VNNI the stem's uint8 x int8 products overflow the 16-bit pair sums of
  VPMADDUBSW (descriptor cosine 0.76 there).
- The classifier head is quantized too: it does not feed "feature_map", and in int8 it
  keeps the file small. "feature_map" stays a float graph output (after a
  DequantizeLinear); "logits" and "probabilities" are kept.

Acceptance (printed and asserted, ORT on all 250 sample images): per-image cosine between
int8 and fp32 descriptors (spatial mean of feature_map) >= --min-cosine, nearest-centroid
accuracy (centroids from L2-normalized Training descriptors, Test classified by cosine) and
leave-one-out accuracy over all images unchanged. Only then is the model moved into place
and the sidecar's "variants": {"int8": {...}} written (every other key kept). Throughput
(images/s, batch 16, 1 and 2 threads) is printed for the record.

The bytes depend on the float results seen during calibration, so another CPU or ORT
version may give a slightly different file (and sha256); the acceptance figures hold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_tflite import save_model, sha256_file, write_sidecar  # noqa: E402

REPO_DIR = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_DIR / "models"
SAMPLES_DIR = REPO_DIR / "samples" / "fruits-360-mini"

# Per-channel QuantizeLinear/DequantizeLinear (the `axis` attribute) need opset 13, and
# opset 13 needs IR version 7.
QUANT_OPSET = 13
QUANT_IR_VERSION = 7
PRODUCER_NAME = "orchard scripts/models/quantize.py"
PRODUCER_VERSION = "1"
VARIANT = "int8"

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}
CALIBRATION_BATCH = 10
BENCH_BATCH = 16
BENCH_IMAGES = 64
# A grid is accepted when every weight is this close to a multiple of the step (in steps),
# and spans at most this many steps (a uint8 grid spans <= 255; float weights fail here).
GRID_TOLERANCE = 0.01
GRID_MAX_STEPS = 1024


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Samples:
    """Images of one split, in sorted class then file order; labels index `classes`."""

    paths: list[Path]
    labels: np.ndarray  # int64, shape (n,)
    classes: list[str]


def list_samples(root: Path, split: str, per_class: int | None = None) -> Samples:
    """The first `per_class` (all if None) *.jpg of each class folder, sorted by name."""
    folders = sorted(p for p in (root / split).iterdir() if p.is_dir())
    if not folders:
        raise SystemExit(f"no class folders under {root / split}")
    paths: list[Path] = []
    labels: list[int] = []
    for index, folder in enumerate(folders):
        files = sorted(folder.glob("*.jpg"))
        if per_class is not None:
            if len(files) < per_class:
                raise SystemExit(f"{folder}: {len(files)} images, fewer than {per_class}")
            files = files[:per_class]
        paths += files
        labels += [index] * len(files)
    return Samples(paths, np.array(labels, np.int64), [f.name for f in folders])


def check_preprocess(sidecar: dict[str, Any]) -> int:
    """Returns the input side; fails unless the sidecar asks for what `load_blob` does."""
    pre, size = sidecar["preprocess"], sidecar["input"]
    expected = {
        "resize": "stretch", "interpolation": "area", "channel_order": "RGB", "scale": 1.0,
        "mean": [128] * 3, "std": [128] * 3,
    }
    got = {key: pre.get(key) for key in expected}
    if got != expected or size["width"] != size["height"]:
        raise SystemExit(f"sidecar preprocessing {got} ({size}) is not {expected}, square")
    return int(size["width"])


def load_blob(paths: list[Path], side: int) -> np.ndarray:
    """NCHW float32: RGB, stretched to side x side with INTER_AREA, (x - 128) / 128."""
    images = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        images.append(cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA))
    batch = (np.stack(images).astype(np.float32) - 128.0) / 128.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


class BlobReader(CalibrationDataReader):
    """Feeds a fixed NCHW array to the calibrator in batches, always in the same order.

    __len__ and set_range (in batches) let quantize_static's "CalibStridedMinMax" option
    (which works for every calibration method) collect one batch at a time: the histogram
    calibrators otherwise hold every intermediate tensor of every image at once (13 GB for
    200 images)."""

    def __init__(self, blob: np.ndarray, input_name: str, batch: int) -> None:
        self._batches = [blob[i : i + batch] for i in range(0, len(blob), batch)]
        self._input_name = input_name
        self._next, self._end = 0, len(self._batches)

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self._batches))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return {self._input_name: self._batches[self._next - 1]}

    def rewind(self) -> None:
        self._next, self._end = 0, len(self._batches)


# --------------------------------------------------------------------------- quantization


def to_quant_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph in opset 13 (Clip min/max become inputs), IR version 7."""
    converted = version_converter.convert_version(model, QUANT_OPSET)
    converted.ir_version = QUANT_IR_VERSION
    onnx.checker.check_model(converted)
    return converted


def float_node_names(model: onnx.ModelProto, float_convs: int) -> list[str]:
    """Names of the first `float_convs` Conv nodes (graph order) and the Clips after them."""
    convs = [node for node in model.graph.node if node.op_type == "Conv"][:float_convs]
    outputs = {name for conv in convs for name in conv.output}
    clips = [n for n in model.graph.node if n.op_type == "Clip" and n.input[0] in outputs]
    return [node.name for node in convs + clips]


def grid_step(weights: np.ndarray) -> float | None:
    """The step s if every weight is an integer multiple of one s (a dequantized integer
    tensor), else None. s starts as the smallest gap between distinct values and is refined
    by least squares over all weights."""
    values = weights.astype(np.float64)
    gaps = np.diff(np.unique(values))
    if gaps.size == 0:
        return None
    steps = np.round(values / gaps.min())
    if np.abs(steps).max() > GRID_MAX_STEPS:
        return None
    step = float((values * steps).sum() / (steps * steps).sum())
    if np.abs(values / step - np.round(values / step)).max() > GRID_TOLERANCE:
        return None
    return step


def grid_weight_overrides(
    model: onnx.ModelProto, skip_nodes: set[str]
) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """TensorQuantOverrides giving each quantized Conv weight's output channel the grid step
    as its int8 scale (zero point 0), or max|w_c| / 127 where the channel spans more than
    127 steps. Returns (overrides, channels on their exact grid, channels in total)."""
    initializers = {init.name: init for init in model.graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    exact = total = 0
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name in skip_nodes or node.input[1] not in initializers:
            continue
        weights = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float64)
        per_channel = weights.reshape(weights.shape[0], -1)
        total += per_channel.shape[0]
        step = grid_step(weights)
        if step is None:
            continue
        span = np.abs(np.round(per_channel / step)).max(axis=1)
        scales = np.where(span <= 127, step, np.abs(per_channel).max(axis=1) / 127)
        scales[scales == 0] = step
        exact += int((span <= 127).sum())
        channels: list[dict[str, Any]] = [
            {"scale": np.float32(scale), "zero_point": 0} for scale in scales
        ]
        channels[0]["axis"] = 0
        overrides[node.input[1]] = channels
    return overrides, exact, total


def tidy(model: onnx.ModelProto, doc_string: str) -> None:
    """Drops what quantize_static leaves behind that the runtime does not need: intermediate
    shape annotations (quant_pre_process writes floor(H/2) where SAME_UPPER gives ceil) and
    opset imports of unused domains; sets the producer and doc string."""
    del model.graph.value_info[:]
    used = {node.domain for node in model.graph.node}
    kept = [opset for opset in model.opset_import if opset.domain in used | {""}]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    model.producer_name, model.producer_version = PRODUCER_NAME, PRODUCER_VERSION
    model.doc_string = doc_string
    onnx.checker.check_model(model)


def quantize(
    float_model: Path,
    output: Path,
    calibration: np.ndarray,
    method: str,
    percentile: float,
    float_convs: int,
    doc_string: str,
    work_dir: Path,
) -> dict[str, Any]:
    """Writes the int8 QDQ model to `output`; returns facts about it for the report."""
    converted = work_dir / "float_opset13.onnx"
    prepared = work_dir / "float_prepared.onnx"
    quantized = work_dir / "quantized.onnx"
    onnx.save(to_quant_opset(onnx.load(str(float_model))), str(converted))
    quant_pre_process(str(converted), str(prepared))
    model = onnx.load(str(prepared))
    input_name = model.graph.input[0].name
    kept_float = float_node_names(model, float_convs)
    overrides, exact, total = grid_weight_overrides(model, set(kept_float))
    extra: dict[str, Any] = {"TensorQuantOverrides": overrides, "CalibStridedMinMax": 1}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    quantize_static(
        str(prepared),
        str(quantized),
        BlobReader(calibration, input_name, CALIBRATION_BATCH),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CALIBRATION_METHODS[method],
        nodes_to_exclude=kept_float,
        extra_options=extra,
    )
    result = onnx.load(str(quantized))
    tidy(result, doc_string)
    save_model(result, output)
    return {"kept_float": kept_float, "exact_channels": exact, "quantized_channels": total}


# --------------------------------------------------------------------------- acceptance


def session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def forward(
    sess: ort.InferenceSession, blob: np.ndarray, batch: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors, logits): the descriptor is the spatial mean of "feature_map", as the
    engine pools it, (n, 1280) float64; logits (n, 1001)."""
    name = sess.get_inputs()[0].name
    runs = [sess.run(["feature_map", "logits"], {name: blob[i : i + batch]})
            for i in range(0, len(blob), batch)]
    maps = np.concatenate([run[0] for run in runs])
    return maps.mean(axis=(2, 3)).astype(np.float64), np.concatenate([run[1] for run in runs])


def normalized(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def nearest_centroid(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, classes: int
) -> np.ndarray:
    """Predicted class of each test row: max cosine to the mean of the L2-normalized
    training rows of each class."""
    train = normalized(train)
    means = [train[train_labels == c].mean(axis=0) for c in range(classes)]
    centroids = normalized(np.stack(means))
    return (normalized(test) @ centroids.T).argmax(axis=1)


def leave_one_out(x: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """Nearest-centroid accuracy with each row classified by centroids built without it."""
    x = normalized(x)
    sums = np.stack([x[labels == c].sum(axis=0) for c in range(classes)])
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    hits = 0
    for row, label in zip(x, labels):
        own = np.arange(classes) == label
        centroids = normalized((sums - own[:, None] * row) / (counts - own)[:, None])
        hits += int((row @ centroids.T).argmax() == label)
    return hits / len(x)


@dataclass(frozen=True)
class Acceptance:
    cosine_min: float
    cosine_mean: float
    cosine_min_test: float  # held-out images only
    accuracy_fp32: float
    accuracy_int8: float
    accuracy_int8_vs_fp32_centroids: float
    changed_predictions: int
    loo_fp32: float
    loo_int8: float
    top1_agreement: float  # ImageNet top-1 of "logits", int8 vs fp32

    def failures(self, min_cosine: float) -> list[str]:
        failed = []
        if self.cosine_min < min_cosine:
            failed.append(f"min cosine {self.cosine_min:.4f} < {min_cosine}")
        if self.accuracy_int8 != self.accuracy_fp32:
            failed.append(f"accuracy {self.accuracy_int8:.3f} != fp32 {self.accuracy_fp32:.3f}")
        if self.loo_int8 != self.loo_fp32:
            failed.append(f"leave-one-out {self.loo_int8:.3f} != fp32 {self.loo_fp32:.3f}")
        return failed


def measure(
    float_model: Path, int8_model: Path, train: Samples, test: Samples, side: int
) -> Acceptance:
    """The acceptance figures over Training + Test (Test alone for nearest-centroid)."""
    blob = load_blob(train.paths + test.paths, side)
    labels = np.concatenate([train.labels, test.labels])
    n_train, classes = len(train.paths), len(train.classes)
    fp32, fp32_logits = forward(session(float_model), blob)
    int8, int8_logits = forward(session(int8_model), blob)
    cosines = (normalized(fp32) * normalized(int8)).sum(axis=1)
    pred = {
        name: nearest_centroid(d[:n_train], train.labels, d[n_train:], classes)
        for name, d in (("fp32", fp32), ("int8", int8))
    }
    crossed = nearest_centroid(fp32[:n_train], train.labels, int8[n_train:], classes)
    return Acceptance(
        cosine_min=float(cosines.min()),
        cosine_mean=float(cosines.mean()),
        cosine_min_test=float(cosines[n_train:].min()),
        accuracy_fp32=float((pred["fp32"] == test.labels).mean()),
        accuracy_int8=float((pred["int8"] == test.labels).mean()),
        accuracy_int8_vs_fp32_centroids=float((crossed == test.labels).mean()),
        changed_predictions=int((pred["fp32"] != pred["int8"]).sum()),
        loo_fp32=leave_one_out(fp32, labels, classes),
        loo_int8=leave_one_out(int8, labels, classes),
        top1_agreement=float((fp32_logits.argmax(axis=1) == int8_logits.argmax(axis=1)).mean()),
    )


def images_per_second(path: Path, blob: np.ndarray, threads: int, repeats: int = 3) -> float:
    """Best of `repeats` passes over `blob` in batches of BENCH_BATCH, after one warm-up."""
    sess = session(path, threads)
    sess.run(["feature_map"], {"input": blob[:BENCH_BATCH]})
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(blob), BENCH_BATCH):
            sess.run(["feature_map"], {"input": blob[i : i + BENCH_BATCH]})
        best = min(best, time.perf_counter() - start)
    return len(blob) / best


# --------------------------------------------------------------------------- sidecar


def update_sidecar(sidecar_path: Path, model_path: Path, sha256: str, description: str) -> None:
    """Sets "variants"."int8" (file, sha256, description), keeping every other key in order."""
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    variants = dict(sidecar.get("variants", {}))
    variants[VARIANT] = {"file": model_path.name, "sha256": sha256, "description": description}
    sidecar["variants"] = variants
    write_sidecar(sidecar, sidecar_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--float-model", type=Path, default=MODELS_DIR / "mobilenet_v2.onnx",
                        help="float ONNX to quantize (default: %(default)s)")
    parser.add_argument("--sidecar", type=Path, default=None,
                        help="its JSON sidecar, updated in place (default: beside the model)")
    parser.add_argument("--output", type=Path, default=MODELS_DIR / "mobilenet_v2_int8.onnx",
                        help="int8 model to write; its name goes into the sidecar "
                        "(default: %(default)s)")
    parser.add_argument("--samples", type=Path, default=SAMPLES_DIR,
                        help="folder with Training/ and Test/ class folders (default: %(default)s)")
    parser.add_argument("--calibration-per-class", type=int, default=40,
                        help="first N sorted Training images of each class (default: %(default)s)")
    parser.add_argument("--method", choices=sorted(CALIBRATION_METHODS), default="percentile",
                        help="activation calibration (default: %(default)s)")
    parser.add_argument("--percentile", type=float, default=99.999,
                        help="for --method percentile (default: %(default)s)")
    parser.add_argument("--float-convs", type=int, default=3,
                        help="leading Conv nodes kept in float (default: %(default)s)")
    parser.add_argument("--min-cosine", type=float, default=0.99,
                        help="acceptance: worst int8-vs-fp32 descriptor cosine "
                        "(default: %(default)s)")
    parser.add_argument("--no-benchmark", action="store_true", help="skip the images/s figures")
    args = parser.parse_args()

    sidecar_path = args.sidecar or args.float_model.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    if sidecar["file"] != args.float_model.name:
        raise SystemExit(f"{sidecar_path} describes {sidecar['file']}, not {args.float_model.name}")
    if args.output.resolve().parent != sidecar_path.resolve().parent:
        raise SystemExit(f"--output must sit beside {sidecar_path}, which names it by file name")
    side = check_preprocess(sidecar)
    calibration = list_samples(args.samples, "Training", args.calibration_per_class)
    train = list_samples(args.samples, "Training")
    test = list_samples(args.samples, "Test")
    method_text = "MinMax" if args.method == "minmax" else args.method.capitalize()
    if args.method == "percentile":
        method_text += f" {args.percentile:g}"
    description = (
        f"static int8 QDQ by onnxruntime {ort.__version__} quantize_static: uint8 activations "
        f"calibrated ({method_text}) on {len(calibration.paths)} fruits-360-mini Training "
        "images, per-channel int8 weights on the float weights' uint8 grid, first "
        f"{args.float_convs} convs kept float"
    )
    doc_string = (
        f"{args.float_model.name} (sha256 {sha256_file(args.float_model)}) quantized by "
        f"scripts/models/quantize.py: {description}"
    )

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        work_dir = Path(tmp)
        candidate = work_dir / args.output.name
        start = time.perf_counter()
        facts = quantize(args.float_model, candidate, load_blob(calibration.paths, side),
                         args.method, args.percentile, args.float_convs, doc_string, work_dir)
        print(f"quantized in {time.perf_counter() - start:.0f} s: "
              f"{candidate.stat().st_size} bytes; kept float: {', '.join(facts['kept_float'])}")
        print(f"int8 weights exact on their grid in {facts['exact_channels']} of "
              f"{facts['quantized_channels']} output channels")

        result = measure(args.float_model, candidate, train, test, side)
        print(f"descriptor cosine int8 vs fp32 over {len(train.paths) + len(test.paths)} images: "
              f"min {result.cosine_min:.4f}, mean {result.cosine_mean:.4f} "
              f"(held-out Test min {result.cosine_min_test:.4f})")
        print(f"nearest-centroid accuracy on Test: fp32 {result.accuracy_fp32:.3f}, "
              f"int8 {result.accuracy_int8:.3f} ({result.changed_predictions} predictions "
              f"changed), int8 against fp32 centroids {result.accuracy_int8_vs_fp32_centroids:.3f}")
        print(f"leave-one-out accuracy: fp32 {result.loo_fp32:.3f}, int8 {result.loo_int8:.3f}; "
              f"ImageNet top-1 agreement {result.top1_agreement:.3f}")
        failures = result.failures(args.min_cosine)
        if failures:
            raise SystemExit("acceptance failed, nothing written: " + "; ".join(failures))

        if not args.no_benchmark:
            blob = load_blob((train.paths + test.paths)[:BENCH_IMAGES], side)
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"images/s, ORT {ort.__version__}, batch {BENCH_BATCH}, {os.cpu_count()} CPUs "
                  f"(load average {load}):")
            for threads in (1, 2):
                fp32 = images_per_second(args.float_model, blob, threads)
                int8 = images_per_second(candidate, blob, threads)
                print(f"  {threads} thread(s): fp32 {fp32:.1f}, int8 {int8:.1f}")

        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp_output = args.output.with_name(args.output.name + ".tmp")
        tmp_output.write_bytes(candidate.read_bytes())
        tmp_output.replace(args.output)
    sha = sha256_file(args.output)
    update_sidecar(sidecar_path, args.output, sha, description)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes) and {sidecar_path}")
    print(f"sha256 {sha}  {args.output.name}")


if __name__ == "__main__":
    main()
