#!/usr/bin/env python3
"""How to share T cores between inference calls: one ONNX Runtime run with T intra-op threads
(`--parallel-runs 1`) against T single-threaded runs fed in parallel (`--parallel-runs T`),
decode and preprocess overlapped in both, per model. Interleaved rounds, same images; prints
images/s (end to end, model load excluded; best of the rounds) and the ratio parallel/intra-op.

    .venv/bin/python bench/bench_threads.py --orchard build/orchard --input samples/fruits-360-mini
    .venv/bin/python bench/bench_threads.py --models mobilenet_v2,vgg16 --sizes 224,100 --rounds 3

The default layout in ChooseInferenceLayout (src/extract/featurizer.cc) follows these figures
(docs/benchmarks.md, "Threads").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(orchard: Path, input_dir: Path, model: str, size: int, threads: int, runs: int,
             batch: int) -> float:
    """images/s (end to end without model load) of one `orchard run`."""
    out = Path(tempfile.mkdtemp(prefix="orchard-threads-"))
    try:
        subprocess.run(
            [str(orchard), "run", "--input", str(input_dir), "--output", str(out / "o"),
             "--model", model, "--size", str(size), "--threads", str(threads),
             "--parallel-runs", str(runs), "--batch", str(batch), "--pca-components", "4",
             "--quiet"],
            check=True, stderr=subprocess.DEVNULL)
        manifest = json.loads((out / "o" / "manifest.json").read_text())
        t = manifest["timings_seconds"]
        processed = manifest["counts"]["processed"]
        return processed / (t["total"] - t["model_load"])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orchard", type=Path, default=REPO / "build" / "orchard")
    parser.add_argument("--input", type=Path, default=REPO / "samples" / "fruits-360-mini")
    parser.add_argument("--models", default="mobilenet_v2,vgg16")
    parser.add_argument("--sizes", default="224")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    layouts = sorted({1, args.threads})
    cases = [(m, int(s)) for m in args.models.split(",") for s in args.sizes.split(",")]
    rates: dict[tuple[str, int, int], list[float]] = {}
    for round_index in range(args.rounds):
        for model, size in cases:
            if not (REPO / "models" / f"{model}.json").exists():
                continue
            for runs in layouts:
                rate = run_once(args.orchard, args.input, model, size, args.threads, runs,
                                   args.batch)
                rates.setdefault((model, size, runs), []).append(rate)
                print(f"round {round_index + 1}: {model}@{size} runs={runs}: {rate:.2f} img/s",
                      flush=True)
    print(f"\n{'model':<14}{'size':>6}" + "".join(f"{'runs=' + str(r):>14}" for r in layouts)
          + f"{'parallel/intra':>16}")
    for model, size in cases:
        if (model, size, layouts[0]) not in rates:
            continue
        best = [max(rates[(model, size, r)]) for r in layouts]
        print(f"{model:<14}{size:>6}" + "".join(f"{b:>14.2f}" for b in best)
              + f"{best[-1] / best[0]:>16.2f}")


if __name__ == "__main__":
    main()
