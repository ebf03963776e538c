"""Tests for the int8 MobileNetV2 (models/mobilenet_v2_int8.onnx, made by
scripts/models/quantize.py) that `--precision int8` runs on CPUs with VNNI.

What they establish, with ONNX Runtime on the repo's own fruits-360-mini samples (5 classes,
200 Training + 50 Test images; the Test images were not used for calibration):
- the committed file is the one the sidecar's "variants"."int8" names (sha256), and it is an
  int8 QDQ graph whose "feature_map" output stays float;
- per image, the int8 descriptor (spatial mean of feature_map) has cosine >= 0.99 with the
  fp32 one, and nearest-centroid accuracy (centroids of L2-normalized Training descriptors,
  Test classified by cosine) is the same as fp32's;
- it runs at other input sizes, as the float model does;
- the script's weight-grid rule keeps weights that lie on a grid exact.
Preprocessing and scoring are written out here rather than imported from the script, so
that a mistake there cannot hide itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO_DIR = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_DIR / "scripts" / "models"
sys.path.insert(0, str(SCRIPTS_DIR))

import quantize  # noqa: E402
from convert_tflite import sha256_file  # noqa: E402

MODELS_DIR = REPO_DIR / "models"
FLOAT_ONNX = MODELS_DIR / "mobilenet_v2.onnx"
INT8_ONNX = MODELS_DIR / "mobilenet_v2_int8.onnx"
SIDECAR = MODELS_DIR / "mobilenet_v2.json"
SAMPLES_DIR = REPO_DIR / "samples" / "fruits-360-mini"
MIN_COSINE = 0.99


def list_split(split: str) -> tuple[list[Path], np.ndarray]:
    """Every *.jpg of a split in sorted class then file order, and its class index."""
    folders = sorted(p for p in (SAMPLES_DIR / split).iterdir() if p.is_dir())
    paths = [path for folder in folders for path in sorted(folder.glob("*.jpg"))]
    labels = [index for index, folder in enumerate(folders) for _ in folder.glob("*.jpg")]
    return paths, np.array(labels)


def mobilenet_blob(paths: list[Path], size: int = 224) -> np.ndarray:
    """The sidecar's recipe: RGB, stretched with INTER_AREA, (x - 128) / 128, NCHW."""
    images = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, f"cannot read {path}"
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        images.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA))
    batch = (np.stack(images).astype(np.float32) - 128.0) / 128.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def pooled_features(model: Path, blob: np.ndarray) -> np.ndarray:
    """(n, 1280) float64 spatial means of "feature_map", run in batches of 16."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    maps = [session.run(["feature_map"], {"input": blob[i : i + 16]})[0]
            for i in range(0, len(blob), 16)]
    return np.concatenate(maps).mean(axis=(2, 3)).astype(np.float64)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def centroid_predictions(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray
) -> np.ndarray:
    classes = int(train_labels.max()) + 1
    normalized = unit_rows(train)
    centroids = unit_rows(
        np.stack([normalized[train_labels == c].mean(axis=0) for c in range(classes)])
    )
    return (unit_rows(test) @ centroids.T).argmax(axis=1)


@pytest.fixture(scope="module")
def sidecar() -> dict:
    return json.loads(SIDECAR.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple[list[Path], np.ndarray]]:
    splits = {split: list_split(split) for split in ("Training", "Test")}
    assert [len(splits[s][0]) for s in splits] == [200, 50], f"samples under {SAMPLES_DIR}"
    return splits


@pytest.fixture(scope="module")
def features(samples: dict[str, tuple[list[Path], np.ndarray]]) -> dict[str, np.ndarray]:
    """Descriptors of the 200 Training then 50 Test images, fp32 and int8."""
    blob = mobilenet_blob(samples["Training"][0] + samples["Test"][0])
    return {"fp32": pooled_features(FLOAT_ONNX, blob), "int8": pooled_features(INT8_ONNX, blob)}


def test_sidecar_names_the_int8_file(sidecar: dict) -> None:
    variant = sidecar["variants"]["int8"]
    assert list(variant) == ["file", "sha256", "description"]
    assert variant["file"] == INT8_ONNX.name
    assert variant["sha256"] == sha256_file(INT8_ONNX)
    assert "int8" in variant["description"] and "\n" not in variant["description"]
    # The float entry is untouched by the script.
    assert sidecar["file"] == FLOAT_ONNX.name and sidecar["sha256"] == sha256_file(FLOAT_ONNX)


def test_int8_graph_is_qdq_with_a_float_feature_map() -> None:
    model = onnx.load(str(INT8_ONNX))
    onnx.checker.check_model(model)
    assert INT8_ONNX.stat().st_size < 5_000_000  # int8 weights: ~3.9 MB (fp32: 14 MB)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 100
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert outputs == dict.fromkeys(["feature_map", "logits", "probabilities"], TensorProto.FLOAT)
    producer = next(node for node in model.graph.node if "feature_map" in node.output)
    assert producer.op_type == "DequantizeLinear"
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "H", "W"]
    # Every Conv but the first three (kept float) has int8 weights, one scale per channel.
    int8_weights = [init for init in model.graph.initializer
                    if init.data_type == TensorProto.INT8 and len(init.dims) == 4]
    assert len(int8_weights) == ops.count("Conv") - 3
    scales = {init.name: init for init in model.graph.initializer}
    for weight in int8_weights:
        assert list(scales[weight.name.replace("_quantized", "_scale")].dims) == [weight.dims[0]]


def test_int8_descriptors_match_fp32(
    features: dict[str, np.ndarray], samples: dict[str, tuple[list[Path], np.ndarray]]
) -> None:
    cosines = (unit_rows(features["fp32"]) * unit_rows(features["int8"])).sum(axis=1)
    held_out = cosines[len(samples["Training"][0]) :]
    print(f"int8 vs fp32 cosine: min {cosines.min():.4f}, mean {cosines.mean():.4f}, "
          f"held-out min {held_out.min():.4f}")
    assert cosines.min() >= MIN_COSINE, int(np.argmin(cosines))


def test_int8_nearest_centroid_accuracy_is_unchanged(
    features: dict[str, np.ndarray], samples: dict[str, tuple[list[Path], np.ndarray]]
) -> None:
    train_labels, test_labels = samples["Training"][1], samples["Test"][1]
    n_train = len(train_labels)
    accuracy = {}
    for name, x in features.items():
        predicted = centroid_predictions(x[:n_train], train_labels, x[n_train:])
        accuracy[name] = float((predicted == test_labels).mean())
    # Mixed collections (some workers without VNNI run fp32): int8 queries, fp32 centroids.
    mixed = centroid_predictions(
        features["fp32"][:n_train], train_labels, features["int8"][n_train:]
    )
    accuracy["int8 vs fp32 centroids"] = float((mixed == test_labels).mean())
    print(f"nearest-centroid accuracy on Test: {accuracy}")
    assert accuracy["fp32"] >= 0.9  # the task separates the classes, so the check means something
    assert accuracy["int8"] == accuracy["fp32"]
    assert accuracy["int8 vs fp32 centroids"] == accuracy["fp32"]


@pytest.mark.parametrize("size, side", [(100, 4), (160, 5)])
def test_int8_runs_at_other_sizes(
    size: int, side: int, samples: dict[str, tuple[list[Path], np.ndarray]]
) -> None:
    """H and W stay dynamic, with the float model's SAME_UPPER map sizes (ceil(size / 32))."""
    blob = mobilenet_blob(samples["Test"][0][::10], size)
    maps = {}
    for name, path in (("fp32", FLOAT_ONNX), ("int8", INT8_ONNX)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        maps[name] = session.run(["feature_map"], {"input": blob})[0]
    assert maps["int8"].shape == maps["fp32"].shape == (len(blob), 1280, side, side)
    cosines = (unit_rows(maps["fp32"].mean(axis=(2, 3))) *
               unit_rows(maps["int8"].mean(axis=(2, 3)))).sum(axis=1)
    assert cosines.min() >= MIN_COSINE


def test_grid_step_finds_dequantized_weights_only() -> None:
    rng = np.random.default_rng(0)
    step = 0.0123
    on_grid = (step * (rng.integers(0, 256, (8, 4, 3, 3)) - 117)).astype(np.float32)
    assert quantize.grid_step(on_grid) == pytest.approx(step, rel=1e-5)
    assert quantize.grid_step(rng.standard_normal((8, 4, 3, 3)).astype(np.float32)) is None


def test_grid_overrides_keep_grid_weights_exact() -> None:
    """Channels within 127 steps get the step as their scale (exact int8); a wider one gets
    max|w| / 127; the first (kept float) conv gets no override."""
    step = 0.05
    steps = np.zeros((3, 4, 1, 1))
    steps[0, :, 0, 0] = [-100, 27, 5, 6]
    steps[1, :, 0, 0] = [3, -1, 0, 2]
    steps[2, :, 0, 0] = [200, -60, 7, 8]  # spans more than 127 steps
    weights = (step * steps).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w0"], ["y"], name="first"),
         helper.make_node("Conv", ["y", "w1"], ["z"], name="second")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 4, 4])],
        [numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w0"),
         numpy_helper.from_array(weights, "w1")],
    )
    model = helper.make_model(graph)
    assert quantize.float_node_names(model, 1) == ["first"]
    overrides, exact, total = quantize.grid_weight_overrides(model, {"first"})
    assert list(overrides) == ["w1"] and (exact, total) == (2, 3)
    scales = [channel["scale"] for channel in overrides["w1"]]
    assert scales[:2] == pytest.approx([step, step]) and scales[2] == pytest.approx(10.0 / 127)
    assert overrides["w1"][0]["axis"] == 0 and all(c["zero_point"] == 0 for c in overrides["w1"])
