#!/usr/bin/env python3
"""Cost of `orchard update` against a run from scratch, when the collection grew by 10%.

    bench/bench_update.py [--images 2200] [--new-share 0.10] [--model mobilenet_v2] [--threads 0]

Makes a deterministic synthetic collection (bench/make_synthetic_collection.py) of N images,
runs `orchard run` on the first (1 - share) * N of them, adds the rest, and times
`orchard update` on that result against `orchard run` from scratch on the whole collection,
in the same session, on the same machine. Prints both times, their ratio, the split of the
update (list / featurize / fit / write, from its manifest) and whether the two results are
byte-identical. The binary is $ORCHARD_BUILD_DIR/orchard (default build/orchard).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = ["features.csv", "features.npy", "pca.json", "errors.csv"]


def orchard(*args: str) -> float:
    binary = Path(os.environ.get("ORCHARD_BUILD_DIR", REPO / "build")) / "orchard"
    start = time.monotonic()
    result = subprocess.run([str(binary), *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"orchard {' '.join(args)} failed:\n{result.stderr}")
    return time.monotonic() - start


def link_tree(src: Path, dst: Path, keep) -> int:
    """Hard-links the files of src that `keep` accepts into dst; how many."""
    count = 0
    for path in sorted(src.rglob("*.jpg")):
        if keep(path):
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2200)
    parser.add_argument("--new-share", type=float, default=0.10)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="orchard-bench-update-"))
    collection = work / "collection"
    subprocess.run([sys.executable, str(REPO / "bench" / "make_synthetic_collection.py"),
                    str(collection), "--images", str(args.images), "--classes", "20"], check=True)
    first_new = int(round(args.images * (1 - args.new_share)))

    def index(path: Path) -> int:
        return int(path.stem.split("_")[1])

    grown = work / "input"
    shutil.rmtree(grown, ignore_errors=True)
    base = link_tree(collection, grown, lambda p: index(p) < first_new)
    common = ["--model", args.model, "--pca-components", "50", "--threads", str(args.threads), "-q"]
    for out in ("updated", "fresh"):
        shutil.rmtree(work / out, ignore_errors=True)

    t_base = orchard("run", "-i", str(grown), "-o", str(work / "updated"), *common)
    added = link_tree(collection, grown, lambda p: index(p) >= first_new)
    t_update = orchard("update", "-i", str(grown), "-o", str(work / "updated"), *common)
    t_fresh = orchard("run", "-i", str(grown), "-o", str(work / "fresh"), *common)

    manifest = json.loads((work / "updated" / "manifest.json").read_text())
    t = manifest["timings_seconds"]
    same = all((work / "updated" / f).read_bytes() == (work / "fresh" / f).read_bytes()
               for f in RESULTS)
    cpu = (subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Model name:")
           [-1].splitlines()[0].strip())
    print(f"cpu: {cpu}, {os.cpu_count()} cores; model {args.model}")
    print(f"collection: {base} images, then {added} new ({100 * added / (base + added):.1f}%)")
    print(f"first run on {base} images: {t_base:.2f} s")
    print(f"update (+{added}):            {t_update:.2f} s  "
          f"(reused {manifest['store']['reused']}, featurized {manifest['store']['featurized']})")
    print(f"run from scratch ({base + added}):  {t_fresh:.2f} s")
    print(f"update / from scratch = {t_update / t_fresh:.3f}")
    print(f"update split: model load {t['model_load']:.2f} s, list {t['list']:.2f} s, "
          f"featurize {t['extract']:.2f} s (inference, summed over runs), "
          f"PCA accumulate {t['pca_accumulate']:.2f} s, PCA fit {t['pca_fit']:.2f} s, "
          f"project+write {t['project_and_write']:.2f} s, total {t['total']:.2f} s")
    print(f"update == from scratch, byte for byte: {same}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
