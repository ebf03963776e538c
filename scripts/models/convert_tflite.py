#!/usr/bin/env python3
"""Convert the uint8 TFLite MobileNetV2 into a float ONNX graph that OpenCV 4.6 runs.

Why this exists: the engine runs ONNX models through OpenCV's DNN module, and the only real
ImageNet weights reachable offline are google-coral's uint8-quantized TFLite files. We
dequantize every constant (w = scale * (q - zero_point), per tensor or per axis) and rebuild
the same graph in float, so the result has TFLite's architecture and trained weights but
computes in float32; its outputs match TFLite's up to quantization noise.

Graph contract of the written model:
  input          "input"          float32 [N, 3, H, W], NCHW, RGB, the dequantized uint8
                                  pixel (x - zero_point) * scale, i.e. (x - 128) / 128
  output         "feature_map"    [N, 1280, ceil(H/32), ceil(W/32)]: the last 1x1 conv +
                                  ReLU6; its spatial mean is TFLite's
                                  MobilenetV2/Logits/AvgPool
  output         "logits"         [N, 1001] (index 0 = background)
  output         "probabilities"  [N, 1001], softmax of the logits

OpenCV 4.6 constraints that shaped it (checked by tests/python/test_models.py):
- OpenCV 4.6 rejects Clip with min/max given as inputs (opset >= 11: "node_proto.input_size()
  == 1"), so the graph uses opset 10, where Clip takes min/max attributes; OpenCV maps that
  Clip to its ReLU6 layer.
- TFLite's SAME padding: a stride-1 layer's pads do not depend on the input size and are
  written out ([top, left, bottom, right], symmetric); a stride-2 layer's do ((0, 1) on an
  even side, (1, 1) on an odd one), so it gets auto_pad=SAME_UPPER, which OpenCV computes
  per input (its "SAME" pad mode). The graph is then TFLite's at every input size, e.g.
  100x100 -> a 4x4 feature map, as TFLite gives (explicit pads computed for 224 would give
  3x3 there).

The output is byte-deterministic: same .tflite in, same .onnx bytes out (fixed producer
fields, fixed IR version, no timestamps).

The ONNX/sidecar helpers in the "shared" section below (sha256_file, onnx_gflops, save_model,
write_sidecar) are shared with export_torchvision.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

REPO_DIR = Path(__file__).resolve().parents[2]

# Opset 10 is the newest whose Clip takes attributes; see the module docstring.
ONNX_OPSET = 10
# IR version 5 is the one that goes with opset 10; pinning it keeps the bytes independent
# of the installed onnx package's default.
ONNX_IR_VERSION = 5
PRODUCER_NAME = "orchard scripts/models/convert_tflite.py"
PRODUCER_VERSION = "1"

# What the sidecar says about the MobileNetV2 file; the preprocessing mean/std are derived
# from the TFLite input quantization at conversion time, not written here.
MOBILENET_V2_PRESET: dict[str, Any] = {
    "name": "mobilenet_v2",
    "description": "MobileNetV2 1.0 ImageNet (TFLite uint8 model converted to float ONNX, "
    "weights dequantized)",
    "weights_origin": "google-coral/test_data",
    "license": "Apache-2.0",
    "resize": "stretch",
    "interpolation": "area",
    "channel_order": "RGB",
}

_TFLITE_NUMPY_DTYPES: dict[int, type] = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
}

_OPTION_CLASSES: dict[str, type] = {
    "CONV_2D": tflite.Conv2DOptions,
    "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
    "AVERAGE_POOL_2D": tflite.Pool2DOptions,
    "ADD": tflite.AddOptions,
    "SOFTMAX": tflite.SoftmaxOptions,
}

_BUILTIN_OP_NAMES: dict[int, str] = {
    value: name for name, value in vars(tflite.BuiltinOperator).items() if not name.startswith("_")
}


# --------------------------------------------------------------------------- TFLite reading


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), broadcast along `axis`."""

    scale: np.ndarray  # float64, shape (1,) for per-tensor or (C,) for per-axis
    zero_point: np.ndarray  # int64, same shape as scale
    axis: int


@dataclass(frozen=True)
class TfTensor:
    """One TFLite tensor; `data` holds the stored values of constants, None for activations."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: int
    quant: QuantParams | None
    data: np.ndarray | None


@dataclass(frozen=True)
class TfOperator:
    """One TFLite operator; `options` is the op's parsed options table (or None)."""

    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any


@dataclass(frozen=True)
class TfGraph:
    """The single subgraph of a TFLite model, in execution order."""

    tensors: list[TfTensor]
    operators: list[TfOperator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _read_quant(tensor: Any) -> QuantParams | None:
    quant = tensor.Quantization()
    if quant is None or quant.ScaleLength() == 0:
        return None
    scale = quant.ScaleAsNumpy().astype(np.float64)
    zero_point = (
        quant.ZeroPointAsNumpy().astype(np.int64)
        if quant.ZeroPointLength()
        else np.zeros_like(scale, dtype=np.int64)
    )
    return QuantParams(scale=scale, zero_point=zero_point, axis=int(quant.QuantizedDimension()))


def _read_buffer(model: Any, raw: bytes, buffer_index: int) -> bytes | None:
    """Returns a buffer's bytes, inline or (for >2 GB-style models) stored after the flatbuffer."""
    buffer = model.Buffers(buffer_index)
    if buffer is None:
        return None
    if buffer.DataLength() > 0:
        return buffer.DataAsNumpy().tobytes()
    if buffer.Offset() > 1:
        return raw[buffer.Offset() : buffer.Offset() + buffer.Size()]
    return None


def _read_tensor(model: Any, raw: bytes, subgraph: Any, index: int) -> TfTensor:
    tensor = subgraph.Tensors(index)
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    data_bytes = _read_buffer(model, raw, tensor.Buffer())
    data = None
    if data_bytes is not None:
        dtype = _TFLITE_NUMPY_DTYPES.get(tensor.Type())
        if dtype is None:
            raise NotImplementedError(f"tensor {index}: TFLite type {tensor.Type()} not supported")
        data = np.frombuffer(data_bytes, dtype=dtype).reshape(shape)
    return TfTensor(
        index=index,
        name=tensor.Name().decode("utf-8"),
        shape=shape,
        dtype=tensor.Type(),
        quant=_read_quant(tensor),
        data=data,
    )


def _read_operator(model: Any, subgraph: Any, index: int) -> TfOperator:
    op = subgraph.Operators(index)
    code = model.OperatorCodes(op.OpcodeIndex())
    # Codes above 127 live only in BuiltinCode; older files fill only DeprecatedBuiltinCode.
    opcode = _BUILTIN_OP_NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
    options = None
    table = op.BuiltinOptions()
    if table is not None and opcode in _OPTION_CLASSES:
        options = _OPTION_CLASSES[opcode]()
        options.Init(table.Bytes, table.Pos)
    return TfOperator(
        index=index,
        opcode=opcode,
        inputs=tuple(int(i) for i in op.InputsAsNumpy()),
        outputs=tuple(int(i) for i in op.OutputsAsNumpy()),
        options=options,
    )


def read_tflite(path: Path) -> TfGraph:
    """Parses a single-subgraph .tflite file into plain Python objects."""
    raw = path.read_bytes()
    model = tflite.Model.GetRootAsModel(raw, 0)
    if model.SubgraphsLength() != 1:
        raise NotImplementedError(f"{path}: {model.SubgraphsLength()} subgraphs, expected 1")
    subgraph = model.Subgraphs(0)
    return TfGraph(
        tensors=[_read_tensor(model, raw, subgraph, i) for i in range(subgraph.TensorsLength())],
        operators=[_read_operator(model, subgraph, i) for i in range(subgraph.OperatorsLength())],
        inputs=tuple(int(i) for i in subgraph.InputsAsNumpy()),
        outputs=tuple(int(i) for i in subgraph.OutputsAsNumpy()),
    )


def dequantize(tensor: TfTensor) -> np.ndarray:
    """Real values of a constant tensor as float32: scale * (q - zero_point), per tensor/axis."""
    if tensor.data is None:
        raise ValueError(f"tensor {tensor.name!r} has no constant data")
    if tensor.quant is None or tensor.dtype == tflite.TensorType.FLOAT32:
        return tensor.data.astype(np.float32)
    q = tensor.data.astype(np.float64)
    broadcast = [1] * q.ndim
    if tensor.quant.scale.size > 1:
        broadcast[tensor.quant.axis] = tensor.quant.scale.size
    scale = tensor.quant.scale.reshape(broadcast)
    zero_point = tensor.quant.zero_point.reshape(broadcast)
    return (scale * (q - zero_point)).astype(np.float32)


# --------------------------------------------------------------------------- ONNX building


class OnnxGraphBuilder:
    """Collects nodes and initializers in order, handing out unique readable names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used_names: set[str] = set()

    def unique(self, base: str) -> str:
        name, suffix = base, 1
        while name in self._used_names:
            suffix += 1
            name = f"{base}_{suffix}"
        self._used_names.add(name)
        return name

    def constant(self, base: str, array: np.ndarray) -> str:
        name = self.unique(base)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        self.nodes.append(
            helper.make_node(op_type, inputs, outputs, name=f"{outputs[0]}/{op_type}", **attrs)
        )


@dataclass
class ConversionContext:
    """TFLite graph plus the ONNX name given to each TFLite tensor converted so far."""

    graph: TfGraph
    builder: OnnxGraphBuilder
    onnx_names: dict[int, str]

    def tensor(self, index: int) -> TfTensor:
        return self.graph.tensors[index]

    def name(self, index: int) -> str:
        """ONNX name for a TFLite activation tensor, assigned on first use."""
        if index not in self.onnx_names:
            base = self.tensor(index).name.split(";")[0] or f"t{index}"
            self.onnx_names[index] = self.builder.unique(base)
        return self.onnx_names[index]


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite/TensorFlow SAME padding along one axis: (before, after), the extra one after."""
    out_size = -(-size // stride)
    effective_kernel = (kernel - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective_kernel - size, 0)
    return total // 2, total - total // 2


def _emit_activated(
    ctx: ConversionContext,
    op_type: str,
    inputs: list[str],
    output_index: int,
    activation: int,
    **attrs: Any,
) -> None:
    """Emits `op_type` followed by TFLite's fused activation, ending in the output's name."""
    out_name = ctx.name(output_index)
    if activation == tflite.ActivationFunctionType.NONE:
        ctx.builder.node(op_type, inputs, [out_name], **attrs)
        return
    pre = ctx.builder.unique(f"{out_name}/preact")
    ctx.builder.node(op_type, inputs, [pre], **attrs)
    if activation == tflite.ActivationFunctionType.RELU:
        ctx.builder.node("Relu", [pre], [out_name])
    elif activation == tflite.ActivationFunctionType.RELU6:
        ctx.builder.node("Clip", [pre], [out_name], min=0.0, max=6.0)
    else:
        raise NotImplementedError(f"fused activation {activation} not supported")


def _convert_conv(ctx: ConversionContext, op: TfOperator) -> None:
    """CONV_2D (weights OHWI) and DEPTHWISE_CONV_2D (weights 1HWO) to ONNX Conv (OIHW)."""
    opts = op.options
    x = ctx.tensor(op.inputs[0])
    weights = dequantize(ctx.tensor(op.inputs[1]))
    in_channels = x.shape[3]
    if op.opcode == "DEPTHWISE_CONV_2D":
        weights = weights.transpose(3, 0, 1, 2)  # 1HWO -> O1HW
        if weights.shape[0] != in_channels * opts.DepthMultiplier():
            raise ValueError(f"op {op.index}: depthwise channels {weights.shape} vs {x.shape}")
        group = in_channels
    else:
        weights = weights.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        group = 1
    kernel = weights.shape[2:]
    strides = (opts.StrideH(), opts.StrideW())
    dilations = (opts.DilationHFactor(), opts.DilationWFactor())
    if opts.Padding() == tflite.Padding.SAME and max(strides) > 1:
        # A strided layer's SAME pads depend on its input's size: (0, 1) on an even side,
        # (1, 1) on an odd one. SAME_UPPER lets the engine compute them per input, so the
        # graph is TFLite's at every input size, not only at multiples of 32.
        padding: dict[str, Any] = {"auto_pad": "SAME_UPPER"}
    elif opts.Padding() == tflite.Padding.SAME:
        # Stride 1: the pads do not depend on the size; written out as TFLite's, symmetric.
        (top, bottom), (left, right) = (
            same_padding(x.shape[1 + axis], kernel[axis], strides[axis], dilations[axis])
            for axis in range(2)
        )
        padding = {"pads": [top, left, bottom, right]}
    else:
        padding = {"pads": [0, 0, 0, 0]}
    base = ctx.name(op.outputs[0])
    inputs = [ctx.name(op.inputs[0]), ctx.builder.constant(f"{base}/weights", weights)]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(ctx.builder.constant(f"{base}/bias", dequantize(ctx.tensor(op.inputs[2]))))
    _emit_activated(
        ctx,
        "Conv",
        inputs,
        op.outputs[0],
        opts.FusedActivationFunction(),
        kernel_shape=list(kernel),
        strides=list(strides),
        dilations=list(dilations),
        group=group,
        **padding,
    )


def _convert_add(ctx: ConversionContext, op: TfOperator) -> None:
    for index in op.inputs:
        if ctx.tensor(index).data is not None:
            raise NotImplementedError(f"op {op.index}: ADD with a constant operand")
    _emit_activated(
        ctx,
        "Add",
        [ctx.name(i) for i in op.inputs],
        op.outputs[0],
        op.options.FusedActivationFunction() if op.options else 0,
    )


def _convert_average_pool(ctx: ConversionContext, op: TfOperator) -> None:
    """Only the global case: a window covering the whole map becomes GlobalAveragePool."""
    opts = op.options
    _, height, width, _ = ctx.tensor(op.inputs[0]).shape
    if (opts.FilterHeight(), opts.FilterWidth()) != (height, width):
        raise NotImplementedError(f"op {op.index}: AVERAGE_POOL_2D that is not global")
    _emit_activated(
        ctx,
        "GlobalAveragePool",
        [ctx.name(op.inputs[0])],
        op.outputs[0],
        opts.FusedActivationFunction(),
    )


def _convert_reshape(ctx: ConversionContext, op: TfOperator) -> None:
    """RESHAPE/SQUEEZE of [N,1,1,C] to [N,C]: Flatten, valid in NCHW because H = W = 1."""
    in_shape = ctx.tensor(op.inputs[0]).shape
    out_shape = ctx.tensor(op.outputs[0]).shape
    if len(in_shape) != 4 or in_shape[1:3] != (1, 1) or out_shape != (in_shape[0], in_shape[3]):
        raise NotImplementedError(f"op {op.index}: {op.opcode} {in_shape} -> {out_shape}")
    ctx.builder.node("Flatten", [ctx.name(op.inputs[0])], [ctx.name(op.outputs[0])], axis=1)


def _convert_softmax(ctx: ConversionContext, op: TfOperator) -> None:
    if op.options is not None and op.options.Beta() != 1.0:
        raise NotImplementedError(f"op {op.index}: SOFTMAX with beta {op.options.Beta()}")
    if len(ctx.tensor(op.inputs[0]).shape) != 2:
        raise NotImplementedError(f"op {op.index}: SOFTMAX on a non-2D tensor")
    ctx.builder.node("Softmax", [ctx.name(op.inputs[0])], [ctx.name(op.outputs[0])], axis=1)


_CONVERTERS: dict[str, Callable[[ConversionContext, TfOperator], None]] = {
    "CONV_2D": _convert_conv,
    "DEPTHWISE_CONV_2D": _convert_conv,
    "ADD": _convert_add,
    "AVERAGE_POOL_2D": _convert_average_pool,
    "RESHAPE": _convert_reshape,
    "SQUEEZE": _convert_reshape,
    "SOFTMAX": _convert_softmax,
}


def _named_outputs(graph: TfGraph) -> dict[int, str]:
    """Fixed ONNX names for the tensors the engine asks for, found from the graph's shape.

    feature_map = input of the last AVERAGE_POOL_2D; logits / probabilities = input / output
    of the last SOFTMAX.
    """
    pools = [op for op in graph.operators if op.opcode == "AVERAGE_POOL_2D"]
    softmaxes = [op for op in graph.operators if op.opcode == "SOFTMAX"]
    if not pools or not softmaxes:
        raise NotImplementedError("expected an AVERAGE_POOL_2D head followed by a SOFTMAX")
    return {
        pools[-1].inputs[0]: "feature_map",
        softmaxes[-1].inputs[0]: "logits",
        softmaxes[-1].outputs[0]: "probabilities",
    }


def input_normalization(graph: TfGraph) -> tuple[float, float]:
    """(mean, std) such that the float input is (x - mean) / std, from the input quantization."""
    tensor = graph.tensors[graph.inputs[0]]
    if tensor.quant is None:
        raise ValueError("the TFLite input is not quantized; cannot derive its normalization")
    return float(tensor.quant.zero_point[0]), float(1.0 / tensor.quant.scale[0])


def convert(graph: TfGraph, doc_string: str) -> onnx.ModelProto:
    """Builds the float ONNX model (NCHW, dynamic N/H/W) equivalent to the TFLite graph."""
    if len(graph.inputs) != 1:
        raise NotImplementedError("expected one input")
    builder = OnnxGraphBuilder()
    ctx = ConversionContext(graph=graph, builder=builder, onnx_names={})
    input_index = graph.inputs[0]
    channels = graph.tensors[input_index].shape[3]
    builder.unique("input")
    ctx.onnx_names[input_index] = "input"
    for index, name in _named_outputs(graph).items():
        builder.unique(name)
        ctx.onnx_names[index] = name
    for op in graph.operators:
        converter = _CONVERTERS.get(op.opcode)
        if converter is None:
            raise NotImplementedError(f"op {op.index}: {op.opcode} is not supported")
        converter(ctx, op)

    num_classes = graph.tensors[graph.outputs[0]].shape[-1]
    feature_channels = next(
        t.shape[3] for i, t in enumerate(graph.tensors) if ctx.onnx_names.get(i) == "feature_map"
    )
    onnx_graph = helper.make_graph(
        builder.nodes,
        "mobilenet_v2",
        inputs=[
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, "H", "W"])
        ],
        outputs=[
            helper.make_tensor_value_info(
                "feature_map", TensorProto.FLOAT, ["N", feature_channels, None, None]
            ),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", num_classes]),
        ],
        initializer=builder.initializers,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        doc_string=doc_string,
    )
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    return model


# ------------------------------------------------- helpers shared with export_torchvision.py


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: onnx.ModelProto, path: Path) -> str:
    """Writes the model under a temporary name, renames it into place; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(path)
    return sha256_file(path)


def onnx_gflops(model: onnx.ModelProto, height: int, width: int) -> float:
    """2 x multiply-adds of every Conv/Gemm/MatMul for one image of height x width, in GFLOP.

    Shapes come from ONNX shape inference on a copy whose input is fixed to [1, C, h, w].
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[2].dim_value, dims[3].dim_value = 1, height, width
    del fixed.graph.output[:]  # declared outputs may carry unknown dims; infer them all
    inferred = onnx.shape_inference.infer_shapes(fixed).graph
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in [*inferred.input, *inferred.value_info]
    }
    shapes.update({init.name: list(init.dims) for init in inferred.initializer})

    def shape_of(name: str) -> list[int]:
        shape = shapes.get(name)
        if not shape or not all(shape):
            raise ValueError(f"shape inference left {name!r} unknown: {shape}")
        return shape

    multiply_adds = 0
    for node in inferred.node:
        if node.op_type == "Conv":
            # out: [1, Co, Ho, Wo]; weights: [Co, Ci / group, kh, kw]
            multiply_adds += math.prod(shape_of(node.output[0])) * math.prod(
                shape_of(node.input[1])[1:]
            )
        elif node.op_type in ("Gemm", "MatMul"):
            inner = shape_of(node.input[0])[-1]
            multiply_adds += math.prod(shape_of(node.output[0])) * inner
    return round(2.0 * multiply_adds / 1e9, 4)


def onnx_peak_bytes_per_pixel(model: onnx.ModelProto) -> int:
    """Memory one image costs during inference, in bytes per input pixel: twice the largest
    (inputs + outputs) activation of any node at 224x224, float32.

    The engine refuses a --size/--batch whose estimate exceeds the machine's memory
    (src/pipeline/memory_budget.cc). The factor 2 covers ONNX Runtime's arena and the tensors
    around the node: measured peak RSS per image was 1.1-1.5x the node peak for MobileNetV2,
    ResNet50 and VGG16 at 448 and 896 (docs/reliability.md).
    """
    height = width = 224
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[2].dim_value, dims[3].dim_value = 1, height, width
    del fixed.graph.output[:]
    inferred = onnx.shape_inference.infer_shapes(fixed).graph
    weights = {init.name for init in inferred.initializer}
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in [*inferred.input, *inferred.value_info]
    }
    peak = 0
    for node in inferred.node:
        floats = sum(
            math.prod(shapes[name])
            for name in [*node.input, *node.output]
            if name in shapes and name not in weights and all(shapes[name])
        )
        peak = max(peak, floats)
    return int(math.ceil(2 * 4 * peak / (height * width)))


def write_sidecar(sidecar: dict[str, Any], path: Path) -> None:
    """Writes the engine's JSON sidecar (keys in schema order, stable formatting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def check_loads_in_opencv(onnx_path: Path, output_names: list[str], sizes: list[int]) -> None:
    """Raises unless OpenCV's DNN importer loads the file and runs it at each square size."""
    import cv2  # imported here so that conversion alone does not need OpenCV

    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    for size in sizes:
        net.setInput(np.zeros((1, 3, size, size), np.float32))
        outputs = net.forward(output_names)
        if not all(np.all(np.isfinite(out)) for out in outputs):
            raise RuntimeError(f"{onnx_path}: non-finite output at {size}x{size}")


# --------------------------------------------------------------------------- entry point


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def build_sidecar(
    preset: dict[str, Any],
    graph: TfGraph,
    onnx_path: Path,
    tflite_path: Path,
    model: onnx.ModelProto,
) -> dict[str, Any]:
    """The engine's sidecar for the converted model (schema: models/README.md)."""
    mean, std = input_normalization(graph)
    _, height, width, channels = graph.tensors[graph.inputs[0]].shape
    feature_channels = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    return {
        "name": preset["name"],
        "description": preset["description"],
        "file": onnx_path.name,
        "sha256": sha256_file(onnx_path),
        "weights": "imagenet",
        "weights_source": f"{preset['weights_origin']} {tflite_path.name}, "
        f"sha256 {sha256_file(tflite_path)}",
        "license": preset["license"],
        "input": {"name": "input", "width": width, "height": height, "resizable": True},
        "preprocess": {
            "resize": preset["resize"],
            "interpolation": preset["interpolation"],
            "channel_order": preset["channel_order"],
            "scale": 1.0,
            "mean": [_number(mean)] * channels,
            "std": [_number(std)] * channels,
        },
        "feature": {"layer": "feature_map", "channels": feature_channels, "pooling": "avg"},
        "gflops_224": onnx_gflops(model, 224, 224),
        "peak_bytes_per_pixel": onnx_peak_bytes_per_pixel(model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tflite",
        type=Path,
        default=REPO_DIR / "models" / "mobilenet_v2_1.0_224_quant.tflite",
        help="uint8 TFLite MobileNetV2 (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=REPO_DIR / "models",
        help="where <name>.onnx and <name>.json go (default: %(default)s)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip loading the result in OpenCV"
    )
    args = parser.parse_args()

    preset = MOBILENET_V2_PRESET
    graph = read_tflite(args.tflite)
    tflite_sha = sha256_file(args.tflite)
    model = convert(
        graph,
        doc_string=f"{args.tflite.name} (sha256 {tflite_sha}) converted to float by "
        "scripts/models/convert_tflite.py: weights dequantized, NCHW input",
    )
    onnx_path = args.output_dir / f"{preset['name']}.onnx"
    onnx_sha = save_model(model, onnx_path)
    if not args.no_verify:
        check_loads_in_opencv(onnx_path, ["feature_map", "logits", "probabilities"], [224, 100])
    sidecar = build_sidecar(preset, graph, onnx_path, args.tflite, model)
    sidecar_path = args.output_dir / f"{preset['name']}.json"
    # Variants (the int8 model of scripts/models/quantize.py) are made from this float file:
    # kept while it is unchanged, dropped with a word when it changed.
    if sidecar_path.exists():
        previous = json.loads(sidecar_path.read_text(encoding="utf-8"))
        if "variants" in previous and previous.get("sha256") == sidecar["sha256"]:
            sidecar["variants"] = previous["variants"]
        elif "variants" in previous:
            print(f"{sidecar_path.name}: the float model changed, so its variants were dropped: "
                  "run scripts/models/quantize.py again")
    write_sidecar(sidecar, sidecar_path)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes, {sidecar['gflops_224']} GFLOP)")
    print(f"sha256 {onnx_sha}  {onnx_path.name}")


if __name__ == "__main__":
    main()
