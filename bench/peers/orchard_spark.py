#!/usr/bin/env python3
"""orchard.spark (the project's PySpark front end, docs/spark.md) on local[T], as a peer in
bench/compare: the same images, the CLI's defaults (mobilenet_v2, PCA 95% of variance).

    .venv/bin/python bench/peers/orchard_spark.py --input samples/fruits-360-mini \
        --output /tmp/ospark-out --threads 2

Needs `import orchard` in this Python (scripts/install-deps installs the wheel into .venv).
Session start-up is timed apart from the run, as in bench/bench_spark.py; one task per core
(orchard.spark's default threads=1 per task). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="local[T]")
    args = parser.parse_args()

    t0 = time.perf_counter()
    from pyspark.sql import SparkSession

    import orchard.spark as ospark

    spark = (SparkSession.builder.master(f"local[{args.threads}]").appName("orchard-spark-compare")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    t_session = time.perf_counter()
    summary = ospark.run(str(args.input.resolve()), str(args.output), spark=spark)
    t_run = time.perf_counter()
    manifest = json.loads((args.output / "manifest.json").read_text())
    spark.stop()
    print(json.dumps({
        "images": summary.get("processed"), "k": summary.get("k"), "partitions": summary.get("partitions"),
        "threads": args.threads, "spark": spark.version,
        "manifest_timings_seconds": manifest.get("timings_seconds", {}),
        "timings_seconds": {"session_start": t_session - t0, "run": t_run - t_session, "total": t_run - t0},
    }, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
