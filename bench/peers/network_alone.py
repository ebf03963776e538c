#!/usr/bin/env python3
"""The network alone, on tensors already decoded and preprocessed: MobileNetV2 images/s in
one engine at batch 1 and 16, with a given number of threads. A worker of bench/compare, one
engine per process (clean thread pools, its own peak RSS).

    .venv/bin/python bench/peers/network_alone.py --engine ort --threads 2 --images 128

Engines, all on the same network:
  ort          ONNX Runtime on models/mobilenet_v2.onnx, ORT_ENABLE_ALL, intra_op_num_threads
               = T, output "feature_map" averaged over H, W. With --runs R > 1: one session
               with intra_op_num_threads = T / R and R Python threads calling run() at once on
               different batches (ORT's Run is thread-safe and releases the GIL): Orchard's
               own layout (its manifest's inference.runs x threads_per_run).
  torchscript  PyTorch: an nn.Module that evaluates the same ONNX graph with torch ops (the
               graph walk of scripts/models/onnx_torch_reference.py, in float32, with
               symmetric pads passed to conv2d and ReLU6 as hardtanh), traced with
               torch.jit.trace, torch.jit.freeze, torch.jit.optimize_for_inference (oneDNN);
               torch.set_num_threads(T). Checked against ORT on one batch (max_abs_diff_vs_ort).
  tflite       LiteRT on models/mobilenet_v2_1.0_224_quant.tflite, the uint8 model the ONNX
               file was converted from (the int8 peer), num_threads = T, default delegates
               (XNNPACK where it applies). --litert picks the interpreter: ai_edge_litert (the
               current LiteRT package, in .venv-peers: XNNPACK runs the uint8 graph) or
               tflite_runtime (2.14 in .venv: no XNNPACK for uint8, its x86 uint8 kernels are
               ~10x slower). The model is the whole classifier (the extra global pool, 1x1
               conv to 1001 classes and softmax are ~0.2% of the MACs), and its final Reshape
               is fixed to batch 1, so batch 16 cannot run.

The inputs: the first min(images, 64) images of --input, PIL decode + stretch resize to
224 BILINEAR, (x - 128) / 128 as float32 NCHW (uint8 NHWC for tflite); cycled to --images.
Timing: two untimed warm-up calls per batch size (three for TorchScript, whose profiling
executor specialises on the first calls), then ceil(images / batch) timed calls, or fewer
when --max-seconds runs out first.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SUFFIXES = {".jpg", ".jpeg", ".png"}
Runner = Callable[[np.ndarray], np.ndarray]


def load_inputs(folder: Path, count: int, size: int, as_uint8: bool) -> np.ndarray:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)[:count]
    if not files:
        raise SystemExit(f"network_alone: no images under {folder}")
    arrays = []
    for f in files:
        with Image.open(f) as image:
            x = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
        arrays.append(x if as_uint8 else ((x.astype(np.float32) - 128.0) / 128.0).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(arrays))


def ort_runner(model: Path, threads: int) -> tuple[Runner, dict[str, Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(["feature_map"], {name: x})[0].mean(axis=(2, 3))

    return run, {"onnxruntime": ort.__version__, "graph_optimization": "ORT_ENABLE_ALL"}


def torchscript_runner(model: Path, threads: int, example: np.ndarray) -> tuple[Runner, dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(REPO / "scripts" / "models"))
    import onnx_torch_reference as ref  # noqa: E402  (the repo's ONNX-on-torch graph walk)

    torch.set_num_threads(threads)
    graph = ref.OnnxTorchReference(model, torch.float32)

    class OnnxGraphModule(torch.nn.Module):
        """The ONNX graph up to `feature_map`, average-pooled; initializers as buffers."""

        def __init__(self, output: str) -> None:
            super().__init__()
            needed, nodes = {output}, []
            for node in reversed(graph.model.graph.node):
                if any(o in needed for o in node.output):
                    nodes.append(node)
                    needed.update(i for i in node.input if i)
            self.nodes = nodes[::-1]
            self.slots: dict[str, str] = {}
            for name, tensor in graph.initializers.items():
                if name in needed:
                    self.slots[name] = f"w{len(self.slots)}"
                    self.register_buffer(self.slots[name], tensor.contiguous())
            self.output = output

        def conv(self, node: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
            attrs = ref._attrs(node)
            pads = ref._explicit_pads(node, list(w.shape[2:]), list(x.shape[2:]))
            half = len(pads) // 2
            padding: Any = tuple(pads[:half])
            if pads[:half] != pads[half:]:  # SAME_UPPER on stride 2: asymmetric, pad explicitly
                x, padding = F.pad(x, ref._torch_pad_order(pads)), 0
            return F.conv2d(x, w, b, stride=tuple(attrs.get("strides", [1, 1])), padding=padding,
                            dilation=tuple(attrs.get("dilations", [1, 1])), groups=int(attrs.get("group", 1)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values = {graph.input_name: x, **{n: getattr(self, s) for n, s in self.slots.items()}}
            for node in self.nodes:
                args = [values[n] if n else None for n in node.input]
                if node.op_type == "Conv":
                    y = self.conv(node, *args)
                elif node.op_type == "Clip" and len(args) == 1:
                    a = ref._attrs(node)
                    y = F.hardtanh(args[0], float(a.get("min", -math.inf)), float(a.get("max", math.inf)))
                else:
                    y = ref._OPS[node.op_type](node, *args)
                values[node.output[0]] = y
            return values[self.output].mean(dim=(2, 3))

    module = OnnxGraphModule("feature_map").eval()
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.from_numpy(example))
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return frozen(torch.from_numpy(x)).numpy()

    return run, {"torch": torch.__version__, "threads": torch.get_num_threads(),
                 "mode": "jit.trace + jit.freeze + optimize_for_inference"}


def tflite_runner(model: Path, threads: int, litert: str) -> tuple[Runner, dict[str, Any]]:
    from importlib.metadata import version

    if litert == "auto":
        try:
            import ai_edge_litert  # noqa: F401

            litert = "ai_edge_litert"
        except ImportError:
            litert = "tflite_runtime"
    if litert == "ai_edge_litert":
        from ai_edge_litert.interpreter import Interpreter

        package = f"ai-edge-litert {version('ai-edge-litert')}"
    else:
        from tflite_runtime.interpreter import Interpreter

        package = f"tflite_runtime {version('tflite_runtime')}"
    interpreter = Interpreter(model_path=str(model), num_threads=threads)
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]["index"]
    state = {"batch": 0}

    def run(x: np.ndarray) -> np.ndarray:
        if state["batch"] != len(x):
            interpreter.resize_tensor_input(detail["index"], [len(x), *detail["shape"][1:]])
            interpreter.allocate_tensors()
            state["batch"] = len(x)
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run, {"litert": package, "input_dtype": str(detail["dtype"].__name__)}


def time_batches(run: Runner, inputs: np.ndarray, images: int, batch: int, warmup: int,
                 max_seconds: float, runs: int = 1) -> dict[str, Any]:
    def batch_at(i: int) -> np.ndarray:
        idx = [(i * batch + j) % len(inputs) for j in range(batch)]
        return np.ascontiguousarray(inputs[idx])

    for i in range(warmup):
        run(batch_at(i))
    calls = math.ceil(images / batch)
    prepared = [batch_at(i) for i in range(min(calls, math.ceil(len(inputs) / batch) + 1))]
    start = time.perf_counter()
    done = 0
    if runs > 1:  # R callers at once, each on its own batches, until the calls or time run out
        from concurrent.futures import ThreadPoolExecutor

        counter = iter(range(calls))

        def worker() -> int:
            n = 0
            for i in counter:  # next() on a range iterator is atomic under the GIL
                run(prepared[i % len(prepared)])
                n += 1
                if time.perf_counter() - start >= max_seconds:
                    break
            return n

        with ThreadPoolExecutor(runs) as pool:
            done = sum(f.result() for f in [pool.submit(worker) for _ in range(runs)])
    else:
        while done < calls and (done == 0 or time.perf_counter() - start < max_seconds):
            run(prepared[done % len(prepared)])
            done += 1
    seconds = time.perf_counter() - start
    return {"batch": batch, "images": done * batch, "seconds": seconds,
            "images_per_second": done * batch / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("ort", "torchscript", "tflite"), required=True)
    parser.add_argument("--input", type=Path, default=REPO / "samples" / "fruits-360-mini")
    parser.add_argument("--model", type=Path, help="default: models/mobilenet_v2.onnx (tflite: "
                        "models/mobilenet_v2_1.0_224_quant.tflite)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--images", type=int, default=128, help="timed images per batch size")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--runs", type=int, default=1, help="ort: concurrent run() callers, each "
                        "with threads / runs intra-op threads")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="stop a batch size's timed calls after this long (slow engines)")
    parser.add_argument("--litert", choices=("auto", "ai_edge_litert", "tflite_runtime"), default="auto",
                        help="tflite interpreter (auto: ai_edge_litert when installed)")
    args = parser.parse_args()

    tflite = args.engine == "tflite"
    model = args.model or REPO / "models" / ("mobilenet_v2_1.0_224_quant.tflite" if tflite else "mobilenet_v2.onnx")
    inputs = load_inputs(args.input, min(args.images, 64), 224, as_uint8=tflite)
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if args.engine == "ort":
        run, info = ort_runner(model, args.threads // max(1, args.runs))
        info.update(runs=args.runs, threads_per_run=max(1, args.threads // max(1, args.runs)))
    elif args.engine == "torchscript":
        run, info = torchscript_runner(model, args.threads, inputs[:16])
        ort_run, _ = ort_runner(model, args.threads)
        info["max_abs_diff_vs_ort"] = float(np.abs(run(inputs[:4]) - ort_run(inputs[:4])).max())
    else:
        run, info = tflite_runner(model, args.threads, args.litert)
    info["setup_seconds"] = time.perf_counter() - t0

    warmup = 3 if args.engine == "torchscript" else 2
    results, errors = {}, {}
    for batch in (int(b) for b in args.batches.split(",")):
        try:
            results[str(batch)] = time_batches(run, inputs, args.images, batch, warmup, args.max_seconds,
                                           args.runs if args.engine == "ort" else 1)
        except Exception as e:  # noqa: BLE001  (e.g. a model that cannot take this batch)
            errors[str(batch)] = f"{type(e).__name__}: {e}"
    print(json.dumps({"engine": args.engine, "model": str(model), "threads": args.threads,
                      "batches": results, "errors": errors, **info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
