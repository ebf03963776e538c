#!/usr/bin/env python3
"""A small, independent ONNX interpreter on torch.nn.functional, used as a test reference.

Why: tests compare OpenCV's DNN result against a second engine that shares nothing with it
but the .onnx file, so that a wrong import (layout, pads, groups, fused activations) shows up
as a numeric mismatch. It runs the graph node by node on the initializers, in float64 (the
default, for a tight reference) or float32, and returns the requested tensors by name.

Supported ops (what our converters and torch.onnx.export of VGG16/ResNet50 emit): Conv
(groups, dilations, strides; explicit, VALID, SAME_UPPER or SAME_LOWER pads), Clip
(attribute or input min/max), Relu, Add, GlobalAveragePool, Flatten, Gemm, Softmax, MaxPool,
BatchNormalization and Identity. Anything else raises NotImplementedError: the reference
must never guess.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

Tensor = torch.Tensor
Values = dict[str, Tensor]


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}


def _explicit_pads(
    node: onnx.NodeProto, kernel: list[int], spatial_shape: list[int]
) -> list[int]:
    """ONNX pads [x1_begin, x2_begin, ..., x1_end, x2_end] for an input of `spatial_shape`.

    SAME_UPPER / SAME_LOWER follow the ONNX spec: output = ceil(input / stride), the total
    padding (output - 1) * stride + dilated kernel - input, its odd pixel at the end (UPPER,
    TensorFlow's SAME) or at the beginning (LOWER).
    """
    attrs = _attrs(node)
    rank = len(spatial_shape)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        return [0] * (2 * rank)
    if auto_pad == "NOTSET":
        return list(attrs.get("pads", [0] * (2 * rank)))
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise NotImplementedError(f"{node.name}: auto_pad={auto_pad}")
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    begins, ends = [], []
    for size, k, stride, dilation in zip(spatial_shape, kernel, strides, dilations):
        out = -(-size // stride)
        total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def _torch_pad_order(pads: list[int]) -> list[int]:
    """ONNX [h_begin, w_begin, h_end, w_end] -> F.pad's (w_begin, w_end, h_begin, h_end)."""
    rank = len(pads) // 2
    order: list[int] = []
    for axis in reversed(range(rank)):
        order += [pads[axis], pads[axis + rank]]
    return order


def _conv(node: onnx.NodeProto, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    attrs = _attrs(node)
    rank = w.dim() - 2
    pads = _explicit_pads(node, list(w.shape[2:]), list(x.shape[2:]))
    x = F.pad(x, _torch_pad_order(pads))
    return F.conv2d(
        x,
        w,
        b,
        stride=tuple(attrs.get("strides", [1] * rank)),
        dilation=tuple(attrs.get("dilations", [1] * rank)),
        groups=int(attrs.get("group", 1)),
    )


def _clip(
    node: onnx.NodeProto, x: Tensor, lo: Tensor | None = None, hi: Tensor | None = None
) -> Tensor:
    attrs = _attrs(node)
    low = float(lo) if lo is not None else float(attrs.get("min", -np.inf))
    high = float(hi) if hi is not None else float(attrs.get("max", np.inf))
    return x.clamp(low, high)


def _max_pool(node: onnx.NodeProto, x: Tensor) -> Tensor:
    attrs = _attrs(node)
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    pads = _explicit_pads(node, kernel, list(x.shape[2:]))
    x = F.pad(x, _torch_pad_order(pads), value=-np.inf)
    return F.max_pool2d(
        x,
        kernel_size=kernel,
        stride=list(attrs.get("strides", [1] * rank)),
        dilation=list(attrs.get("dilations", [1] * rank)),
        ceil_mode=bool(attrs.get("ceil_mode", 0)),
    )


def _gemm(node: onnx.NodeProto, a: Tensor, b: Tensor, c: Tensor | None = None) -> Tensor:
    attrs = _attrs(node)
    a = a.t() if attrs.get("transA", 0) else a
    b = b.t() if attrs.get("transB", 0) else b
    out = float(attrs.get("alpha", 1.0)) * (a @ b)
    if c is not None:
        out = out + float(attrs.get("beta", 1.0)) * c
    return out


def _batch_norm(
    node: onnx.NodeProto, x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, var: Tensor
) -> Tensor:
    eps = float(_attrs(node).get("epsilon", 1e-5))
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)


def _flatten(node: onnx.NodeProto, x: Tensor) -> Tensor:
    axis = int(_attrs(node).get("axis", 1))
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _softmax(node: onnx.NodeProto, x: Tensor) -> Tensor:
    # Opset < 13 flattens to 2-D at `axis`; on the 2-D tensors we feed it, both semantics agree.
    axis = int(_attrs(node).get("axis", 1))
    if x.dim() != 2 or axis not in (1, -1):
        raise NotImplementedError(f"{node.name}: Softmax on shape {tuple(x.shape)} axis {axis}")
    return torch.softmax(x, dim=1)


_OPS: dict[str, Callable[..., Tensor]] = {
    "Conv": _conv,
    "Clip": _clip,
    "Relu": lambda node, x: F.relu(x),
    "Add": lambda node, a, b: a + b,
    "GlobalAveragePool": lambda node, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "Flatten": _flatten,
    "Gemm": _gemm,
    "Softmax": _softmax,
    "MaxPool": _max_pool,
    "BatchNormalization": _batch_norm,
    "Identity": lambda node, x: x,
}


class OnnxTorchReference:
    """Loads an ONNX file once; `run` evaluates it on NCHW numpy inputs."""

    def __init__(self, path: Path, dtype: torch.dtype = torch.float64) -> None:
        self.model = onnx.load(str(path))
        self.dtype = dtype
        self.initializers: Values = {
            init.name: torch.from_numpy(numpy_helper.to_array(init).copy()).to(dtype)
            for init in self.model.graph.initializer
        }
        unsupported = {n.op_type for n in self.model.graph.node} - set(_OPS)
        if unsupported:
            raise NotImplementedError(f"{path}: ops not in the reference: {sorted(unsupported)}")

    @property
    def input_name(self) -> str:
        return next(i.name for i in self.model.graph.input if i.name not in self.initializers)

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Evaluates the graph; returns the named tensors as numpy arrays of the reference dtype."""
        values: Values = dict(self.initializers)
        for name, array in inputs.items():
            values[name] = torch.from_numpy(np.asarray(array)).to(self.dtype)
        with torch.no_grad():
            for node in self.model.graph.node:
                args = [values[name] if name else None for name in node.input]
                values[node.output[0]] = _OPS[node.op_type](node, *args)
        missing = [name for name in outputs if name not in values]
        if missing:
            raise KeyError(f"graph has no tensors {missing}")
        return {name: values[name].numpy() for name in outputs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("onnx", type=Path, help="ONNX file")
    parser.add_argument("--size", type=int, default=224, help="square input side")
    parser.add_argument("--outputs", nargs="+", default=["feature_map"], help="tensors to print")
    parser.add_argument("--float32", action="store_true", help="compute in float32, not float64")
    args = parser.parse_args()

    reference = OnnxTorchReference(args.onnx, torch.float32 if args.float32 else torch.float64)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, args.size, args.size))
    for name, value in reference.run({reference.input_name: x}, args.outputs).items():
        print(f"{name}: shape {value.shape} mean {value.mean():.6g} std {value.std():.6g}")


if __name__ == "__main__":
    main()
