"""Tests for the model files and the scripts that make them (scripts/models/).

What they establish, each with real numbers:
- the converted MobileNetV2 gives the known ImageNet answers of shared/models/README.md,
  both in OpenCV 4.6 (the engine's runtime) and in an independent torch interpreter;
- OpenCV and the torch interpreter agree on the descriptors (cosine >= 0.9999), and the
  float model agrees with the quantized TFLite original (cosine >= 0.99);
- conversion and export are byte-deterministic, and sidecars match their files;
- exported VGG16/ResNet50 backbones load in OpenCV, at 100x100 and 224x224, and match
  torchvision's own forward pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

REPO_DIR = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_DIR / "scripts" / "models"
sys.path.insert(0, str(SCRIPTS_DIR))

import convert_tflite  # noqa: E402
import export_torchvision  # noqa: E402
from onnx_torch_reference import OnnxTorchReference  # noqa: E402

MODELS_DIR = REPO_DIR / "models"
MOBILENET_ONNX = MODELS_DIR / "mobilenet_v2.onnx"
MOBILENET_JSON = MODELS_DIR / "mobilenet_v2.json"
MOBILENET_TFLITE = MODELS_DIR / "mobilenet_v2_1.0_224_quant.tflite"

# shared/models/README.md: top-1 label and Arm NN's uint8 softmax score (out of 255).
KNOWN_ANSWERS = {
    "cat.bmp": ("Egyptian cat", 194),
    "grace_hopper.bmp": ("military uniform", 240),
    "bird.bmp": ("chickadee", 253),
}
SIDECAR_KEYS = [
    "name", "description", "file", "sha256", "weights", "weights_source", "license",
    "input", "preprocess", "feature", "gflops_224", "peak_bytes_per_pixel",
]
FRUITS_PER_CLASS = 1


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def row_cosines(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [cosine(x, y) for x, y in zip(a, b)]


def load_rgb(path: Path, size: int) -> np.ndarray:
    """uint8 RGB HxWx3, stretched to size x size with area interpolation (the sidecar's recipe)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def mobilenet_blob(images: list[np.ndarray]) -> np.ndarray:
    """NCHW float32 (x - 128) / 128: the dequantized uint8 input of the TFLite model."""
    batch = np.stack(images).astype(np.float32)
    return np.ascontiguousarray(((batch - 128.0) / 128.0).transpose(0, 3, 1, 2))


def imagenet_blob(images: list[np.ndarray]) -> np.ndarray:
    """NCHW float32 with torchvision's normalization (the backbones' preprocessing)."""
    preprocess = export_torchvision.TORCHVISION_PREPROCESS
    batch = np.stack(images).astype(np.float32) * preprocess["scale"]
    batch = (batch - np.float32(preprocess["mean"])) / np.float32(preprocess["std"])
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2).astype(np.float32))


def opencv_forward(onnx_path: Path, blob: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    net.setInput(blob)
    return dict(zip(outputs, net.forward(outputs)))


def tflite_forward(images: list[np.ndarray], tensor_prefix: str) -> tuple[np.ndarray, list[int]]:
    """Runs the uint8 TFLite MobileNetV2 on uint8 RGB images of one size (the input is resized
    to it) and returns the dequantized tensor whose name starts with `tensor_prefix`, stacked
    (float64, TFLite's NHWC layout), and each image's top-1 class. Skips without tflite-runtime."""
    interpreter_module = pytest.importorskip("tflite_runtime.interpreter")
    interpreter = interpreter_module.Interpreter(
        str(MOBILENET_TFLITE), experimental_preserve_all_tensors=True
    )
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, [1, *images[0].shape])
    interpreter.allocate_tensors()
    tensor = next(
        t for t in interpreter.get_tensor_details() if t["name"].startswith(tensor_prefix)
    )
    scale, zero = tensor["quantization"]
    values, top1 = [], []
    for image in images:
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        quantized = interpreter.get_tensor(tensor["index"])[0].astype(np.float64)
        values.append(scale * (quantized - zero))
        scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
        top1.append(int(np.argmax(scores)))
    return np.stack(values), top1


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return (MODELS_DIR / "imagenet_labels.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def test_image_paths(shared_dir: Path) -> dict[str, Path]:
    return {name: shared_dir / "models" / "test-images" / name for name in KNOWN_ANSWERS}


@pytest.fixture(scope="module")
def fruit_paths(shared_dir: Path) -> list[Path]:
    """The first test image of each fruits-360-mini class (folder names contain spaces)."""
    root = shared_dir / "data" / "fruits-360-mini" / "Test"
    paths = [
        path
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(folder.glob("*.jpg"))[:FRUITS_PER_CLASS]
    ]
    assert len(paths) >= 4, f"expected fruit images under {root}"
    return paths


@pytest.fixture(scope="module")
def descriptor_paths(test_image_paths: dict[str, Path], fruit_paths: list[Path]) -> list[Path]:
    return [*test_image_paths.values(), *fruit_paths]


@pytest.fixture(scope="module")
def mobilenet_reference() -> OnnxTorchReference:
    return OnnxTorchReference(MOBILENET_ONNX, torch.float64)


# --------------------------------------------------------------------------- MobileNetV2


@pytest.mark.parametrize("engine", ["opencv", "torch_reference"])
def test_mobilenet_known_answers(
    engine: str,
    labels: list[str],
    test_image_paths: dict[str, Path],
    mobilenet_reference: OnnxTorchReference,
) -> None:
    names = list(KNOWN_ANSWERS)
    blob = mobilenet_blob([load_rgb(test_image_paths[name], 224) for name in names])
    if engine == "opencv":
        probabilities = opencv_forward(MOBILENET_ONNX, blob, ["probabilities"])["probabilities"]
    else:
        probabilities = mobilenet_reference.run({"input": blob}, ["probabilities"])["probabilities"]
    assert probabilities.shape == (len(names), 1001)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    for row, name in zip(probabilities, names):
        expected_label, expected_score = KNOWN_ANSWERS[name]
        top = int(np.argmax(row))
        assert labels[top] == expected_label, f"{name}: got {labels[top]!r} ({row[top]:.3f})"
        # Float vs uint8 inference: the score moves a little, not by more than 0.1.
        assert abs(float(row[top]) - expected_score / 255.0) < 0.1, f"{name}: {row[top]:.3f}"
    cat_second = int(np.argsort(-probabilities[names.index("cat.bmp")])[1])
    assert labels[cat_second] == "tabby, tabby cat"


def test_mobilenet_opencv_matches_torch_reference(
    descriptor_paths: list[Path], mobilenet_reference: OnnxTorchReference
) -> None:
    """Same tensor, two engines: pooled 1280-d descriptors and logits must agree."""
    blob = mobilenet_blob([load_rgb(path, 224) for path in descriptor_paths])
    outputs = ["feature_map", "logits"]
    ours = opencv_forward(MOBILENET_ONNX, blob, outputs)
    reference = mobilenet_reference.run({"input": blob}, outputs)
    assert ours["feature_map"].shape == (len(descriptor_paths), 1280, 7, 7)
    descriptors = ours["feature_map"].mean(axis=(2, 3))
    reference_descriptors = reference["feature_map"].mean(axis=(2, 3))
    assert min(row_cosines(descriptors, reference_descriptors)) >= 0.9999
    np.testing.assert_allclose(ours["feature_map"], reference["feature_map"], atol=1e-3)
    np.testing.assert_allclose(ours["logits"], reference["logits"], atol=1e-3)


# Map side per input side: TFLite's, ceil(size / 32) (five stride-2 layers with SAME
# padding). At 100 a stride-2 layer meets an odd side (25) and must pad (1, 1) there.
@pytest.mark.parametrize("size, side", [(100, 4), (97, 4), (160, 5)])
def test_mobilenet_runs_at_other_sizes(
    size: int,
    side: int,
    test_image_paths: dict[str, Path],
    mobilenet_reference: OnnxTorchReference,
) -> None:
    """The input is resizable: H/W are dynamic in OpenCV and agree with the reference."""
    blob = mobilenet_blob([load_rgb(path, size) for path in test_image_paths.values()])
    ours = opencv_forward(MOBILENET_ONNX, blob, ["feature_map"])["feature_map"]
    reference = mobilenet_reference.run({"input": blob}, ["feature_map"])["feature_map"]
    assert ours.shape == reference.shape == (3, 1280, side, side)
    assert min(row_cosines(ours.mean(axis=(2, 3)), reference.mean(axis=(2, 3)))) >= 0.9999


def test_mobilenet_matches_quantized_tflite(descriptor_paths: list[Path]) -> None:
    """Our float descriptor vs the uint8 TFLite AvgPool tensor: same network, up to quantization."""
    images = [load_rgb(path, 224) for path in descriptor_paths]
    pooled, tflite_top1 = tflite_forward(images, "MobilenetV2/Logits/AvgPool")
    ours = opencv_forward(MOBILENET_ONNX, mobilenet_blob(images), ["feature_map", "logits"])
    descriptors = ours["feature_map"].mean(axis=(2, 3))
    assert min(row_cosines(descriptors, pooled.reshape(len(images), -1))) >= 0.99
    # The three README images have confident answers: top-1 must agree with TFLite exactly.
    assert list(ours["logits"][:3].argmax(axis=1)) == tflite_top1[:3]


def test_mobilenet_feature_map_matches_tflite_at_a_size_not_a_multiple_of_32(
    descriptor_paths: list[Path],
) -> None:
    """At 200x200 a stride-2 layer meets an odd side (25): with SAME_UPPER our graph pads it
    as TFLite does and gives TFLite's 7x7 map (pads fixed for 224 would give 6x6). The
    uint8 model's last feature map (before its fixed 7x7 AvgPool, which needs >= 193 px)
    is compared position by position, as closely as at 224."""
    cosines = {}
    for size in (200, 224):
        batch = [load_rgb(path, size) for path in descriptor_paths]
        tflite_maps = tflite_forward(batch, "MobilenetV2/Conv_1/Relu6")[0].transpose(0, 3, 1, 2)
        ours = opencv_forward(MOBILENET_ONNX, mobilenet_blob(batch), ["feature_map"])
        side = -(-size // 32)
        assert ours["feature_map"].shape == tflite_maps.shape == (len(batch), 1280, side, side)
        cosines[size] = min(row_cosines(ours["feature_map"].reshape(len(batch), -1),
                                        tflite_maps.reshape(len(batch), -1)))
    print(f"map cosine vs TFLite, worst image: {cosines}")
    assert cosines[200] >= 0.98 and cosines[224] >= 0.98, cosines
    assert cosines[200] >= cosines[224] - 0.01, cosines


def test_conversion_is_byte_deterministic(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / "convert_tflite.py"), "--tflite", str(MOBILENET_TFLITE),
         "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "mobilenet_v2.onnx").read_bytes() == MOBILENET_ONNX.read_bytes()
    # A fresh output folder has no variants (scripts/models/quantize.py adds them).
    committed = json.loads(MOBILENET_JSON.read_text())
    committed.pop("variants")
    assert json.loads((tmp_path / "mobilenet_v2.json").read_text()) == committed
    # Converting again over the committed sidecar keeps its variants: the float file is the same.
    (tmp_path / "mobilenet_v2.json").write_text(MOBILENET_JSON.read_text())
    subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / "convert_tflite.py"), "--tflite", str(MOBILENET_TFLITE),
         "--output-dir", str(tmp_path), "--no-verify"],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "mobilenet_v2.json").read_text() == MOBILENET_JSON.read_text()


def test_mobilenet_sidecar_describes_the_file() -> None:
    sidecar = json.loads(MOBILENET_JSON.read_text())
    assert list(sidecar) == SIDECAR_KEYS + ["variants"]
    assert list(sidecar["variants"]) == ["int8"]
    assert sidecar["sha256"] == convert_tflite.sha256_file(MODELS_DIR / sidecar["file"])
    # What the engine's memory check uses (src/pipeline/memory_budget.cc) is the graph's.
    assert sidecar["peak_bytes_per_pixel"] == convert_tflite.onnx_peak_bytes_per_pixel(
        onnx.load(str(MODELS_DIR / sidecar["file"])))
    assert sidecar["weights"] == "imagenet"
    assert convert_tflite.sha256_file(MOBILENET_TFLITE) in sidecar["weights_source"]
    assert sidecar["input"] == {"name": "input", "width": 224, "height": 224, "resizable": True}
    assert sidecar["preprocess"]["mean"] == [128] * 3 and sidecar["preprocess"]["std"] == [128] * 3
    assert sidecar["feature"] == {"layer": "feature_map", "channels": 1280, "pooling": "avg"}
    # MobileNetV2 1.0 at 224 is ~300M multiply-adds (0.6 GFLOP).
    assert 0.55 < sidecar["gflops_224"] < 0.65


def test_mobilenet_graph_is_what_opencv_accepts() -> None:
    model = onnx.load(str(MOBILENET_ONNX))
    assert [o.version for o in model.opset_import] == [convert_tflite.ONNX_OPSET]
    op_types = {node.op_type for node in model.graph.node}
    assert op_types <= {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Softmax"}
    assert all(len(n.input) == 1 for n in model.graph.node if n.op_type == "Clip")
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "H", "W"]
    assert [o.name for o in model.graph.output] == ["feature_map", "logits", "probabilities"]
    depthwise = [n for n in model.graph.node if n.op_type == "Conv" and
                 helper.get_attribute_value(next(a for a in n.attribute if a.name == "group")) > 1]
    assert len(depthwise) == 17
    # SAME pads that depend on the input size (stride 2) are left to the engine; the others
    # are written out, so the graph is TFLite's at every input size.
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if max(attrs["strides"]) > 1:
            assert attrs.get("auto_pad") == b"SAME_UPPER" and "pads" not in attrs, conv.name
        else:
            assert "auto_pad" not in attrs and len(attrs["pads"]) == 4, conv.name


def test_same_padding_puts_the_extra_pixel_last() -> None:
    assert convert_tflite.same_padding(224, 3, 2, 1) == (0, 1)
    assert convert_tflite.same_padding(225, 3, 2, 1) == (1, 1)
    assert convert_tflite.same_padding(112, 3, 1, 1) == (1, 1)
    assert convert_tflite.same_padding(7, 1, 1, 1) == (0, 0)


def test_dequantize_per_tensor_and_per_axis() -> None:
    q = np.array([[0, 128, 255], [10, 20, 30]], np.uint8)
    per_tensor = convert_tflite.TfTensor(
        0, "w", q.shape, 3,
        convert_tflite.QuantParams(np.array([0.5]), np.array([128]), 0), q,
    )
    np.testing.assert_array_equal(
        convert_tflite.dequantize(per_tensor), 0.5 * (q.astype(np.float32) - 128)
    )
    per_axis = convert_tflite.TfTensor(
        0, "w", q.shape, 3,
        convert_tflite.QuantParams(np.array([0.5, 2.0]), np.array([0, 10]), 0), q,
    )
    np.testing.assert_array_equal(
        convert_tflite.dequantize(per_axis),
        np.array([[0, 64, 127.5], [0, 20, 40]], np.float32),
    )


# --------------------------------------------------------------------------- backbones


def test_initializer_identities_are_replaced_and_load_in_opencv() -> None:
    """The torch.onnx.export trap in miniature: a bias reached through Identity."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = np.zeros(4, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["bias"], ["bias_copy"]),
         helper.make_node("Conv", ["input", "w", "bias_copy"], ["feature_map"], kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("feature_map", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    with pytest.raises(cv2.error):
        cv2.dnn.readNetFromONNX(model.SerializeToString())
    assert export_torchvision.replace_initializer_identities(model) == 1
    assert all(node.op_type != "Identity" for node in model.graph.node)
    net = cv2.dnn.readNetFromONNX(model.SerializeToString())
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    net.setInput(x)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weights), padding=1)
    np.testing.assert_allclose(net.forward(), expected.numpy(), atol=1e-5)


def test_missing_imagenet_weights_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as error:
        export_torchvision.resolve_weights("vgg16", "imagenet", 0)
    message = str(error.value)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "cannot download" in message
    assert export_torchvision.resolve_weights("vgg16", "auto", 0).kind == "random"


def test_custom_state_dict_is_loaded(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(5)
    source = torchvision.models.resnet50(weights=None)
    path = tmp_path / "mine.pth"
    torch.save(source.state_dict(), path)
    choice = export_torchvision.resolve_weights("resnet50", str(path), 0)
    assert choice.kind == "custom" and convert_tflite.sha256_file(path) in choice.source
    backbone = export_torchvision.build_backbone("resnet50", choice)
    torch.testing.assert_close(backbone[7][2].conv3.weight, source.layer4[2].conv3.weight)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, channels, side_100", [("vgg16", 512, 3), ("resnet50", 2048, 4)]
)
def test_random_backbone_export(
    name: str, channels: int, side_100: int, tmp_path: Path, test_image_paths: dict[str, Path]
) -> None:
    seed = 3
    command = [sys.executable, str(SCRIPTS_DIR / "export_torchvision.py"), name,
               "--weights", "random", "--seed", str(seed)]
    first = subprocess.run(command + ["--output-dir", str(tmp_path / "a")],
                           check=True, capture_output=True, text=True)
    assert "WARNING" in first.stderr and "RANDOM" in first.stderr
    subprocess.run(command + ["--output-dir", str(tmp_path / "b"), "--no-verify"],
                   check=True, capture_output=True)
    onnx_path = tmp_path / "a" / f"{name}.onnx"
    assert onnx_path.read_bytes() == (tmp_path / "b" / f"{name}.onnx").read_bytes()

    sidecar = json.loads((tmp_path / "a" / f"{name}.json").read_text())
    assert list(sidecar) == SIDECAR_KEYS
    assert sidecar["weights"] == "random" and f"manual_seed({seed})" in sidecar["weights_source"]
    assert sidecar["sha256"] == convert_tflite.sha256_file(onnx_path)
    assert sidecar["preprocess"] == export_torchvision.TORCHVISION_PREPROCESS
    assert sidecar["feature"]["channels"] == channels
    assert all(node.op_type != "Identity" for node in onnx.load(str(onnx_path)).graph.node)

    backbone = export_torchvision.build_backbone(
        name, export_torchvision.resolve_weights(name, "random", seed)
    )
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    for size, side in [(100, side_100), (224, 7)]:
        blob = imagenet_blob([load_rgb(path, size) for path in test_image_paths.values()])
        net.setInput(blob)
        ours = net.forward("feature_map")
        with torch.no_grad():
            expected = backbone(torch.from_numpy(blob)).numpy()
        assert ours.shape == expected.shape == (3, channels, side, side)
        assert min(row_cosines(ours.reshape(3, -1), expected.reshape(3, -1))) >= 0.9999
        assert min(row_cosines(ours.mean(axis=(2, 3)), expected.mean(axis=(2, 3)))) >= 0.9999
