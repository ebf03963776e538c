"""``python -m orchard.spark run --input ... --output ... [options]``: the CLI's ``orchard
run`` on Spark. spark-submit takes a file, not a module; this file runs as one (it imports
the package absolutely):

    spark-submit --master yarn \
        --conf spark.pyspark.python=/opt/orchard/venv/bin/python \
        --conf spark.pyspark.driver.python=/opt/orchard/venv/bin/python \
        /opt/orchard/venv/lib/python3.11/site-packages/orchard/spark/__main__.py run ...

Options are the CLI's (docs/cli.md) plus the Spark ones (--source, --partitions,
--read-threads, --no-parquet, --master). Exit status as the CLI: 0 success (failed images
are listed in errors.csv), 1 the run failed, 2 usage error. Without a master from
spark-submit or --master, runs on local[*] with this Python for the workers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orchard

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchard.spark",
                                     description="Orchard's chain on Apache Spark.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="images -> descriptors -> PCA -> features.csv/.npy/.parquet")
    r.add_argument("-i", "--input", required=True, help="folder or s3:// prefix")
    r.add_argument("-o", "--output", required=True, help="folder or s3:// prefix")
    r.add_argument("-m", "--model", default="mobilenet_v2")
    r.add_argument("--size", type=_nonnegative_int, default=0)
    r.add_argument("--pooling", choices=["flatten", "avg", "max"], default=None)
    pca = r.add_mutually_exclusive_group()
    pca.add_argument("--pca-components", type=_nonnegative_int, default=0)
    pca.add_argument("--pca-variance", type=_positive_float, default=0.0)
    r.add_argument("--batch", type=int, default=16)
    r.add_argument("--threads", type=_nonnegative_int, default=1,
                   help="per Spark task (default 1: Spark runs one task per core)")
    r.add_argument("--limit", type=_nonnegative_int, default=0)
    r.add_argument("--save-raw", action="store_true")
    r.add_argument("--max-pixels", type=int, default=89_478_485)
    r.add_argument("--max-pca-dim", type=int, default=8192)
    r.add_argument("--s3-endpoint", default=None)
    r.add_argument("--work-dir", default=None, help="driver-side staging for s3:// outputs")
    r.add_argument("--source", choices=["orchard", "binaryFile"], default="orchard",
                   help="orchard: the driver lists, executors fetch with Orchard's client "
                        "(default); binaryFile: Spark's binaryFile data source")
    r.add_argument("--partitions", type=int, default=None)
    r.add_argument("--read-threads", type=int, default=8)
    r.add_argument("--no-parquet", action="store_true", help="do not write features.parquet")
    r.add_argument("--master", default=None, help="Spark master (default: spark-submit's, "
                                                   "else local[*])")
    r.add_argument("--fail-on-error", action="store_true",
                   help="exit 1 if any listed file failed")
    r.add_argument("-q", "--quiet", action="store_true", help="Spark logs at ERROR only")
    return parser


def _session(master: str | None) -> tuple[SparkSession, bool]:
    """The active session (not to be stopped by us), or a new one (created = True)."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active, False
    conf = SparkConf()  # picks up spark-submit's settings
    builder = SparkSession.builder.appName(conf.get("spark.app.name", "orchard"))
    if master:
        builder = builder.master(master)
    elif not conf.contains("spark.master"):
        builder = builder.master("local[*]")
    effective = master or conf.get("spark.master", "local[*]")
    if effective.startswith("local") and not os.environ.get("PYSPARK_PYTHON") \
            and not conf.contains("spark.pyspark.python"):
        # Local workers are forked by this process's JVM and run $PYSPARK_PYTHON (default
        # python3, which may lack orchard): use this very Python.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    return builder.getOrCreate(), True


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from orchard.spark.core import ModelOptions, run, validate

    start = time.monotonic()
    # Usage errors (exit 2) before any Spark work, as the CLI: bad options, unknown model.
    try:
        validate(pca_components=args.pca_components, pca_variance=args.pca_variance,
                 batch=args.batch, threads=args.threads, size=args.size, limit=args.limit,
                 max_pixels=args.max_pixels)
        ModelOptions(model=args.model, size=args.size, pooling=args.pooling, threads=1,
                     max_pixels=args.max_pixels).featurizer()
    except (orchard.InvalidArgumentError, orchard.NotFoundError) as exc:
        print(f"orchard.spark: {exc}", file=sys.stderr)
        return 2
    spark = None
    created = False
    try:
        spark, created = _session(args.master)
        if args.quiet:
            spark.sparkContext.setLogLevel("ERROR")
        summary = run(args.input, args.output, spark=spark, model=args.model, size=args.size,
                      pooling=args.pooling, pca_components=args.pca_components,
                      pca_variance=args.pca_variance, batch=args.batch, threads=args.threads,
                      limit=args.limit, save_raw=args.save_raw, s3_endpoint=args.s3_endpoint,
                      max_pixels=args.max_pixels, max_pca_dim=args.max_pca_dim,
                      source=args.source, num_partitions=args.partitions,
                      read_threads=args.read_threads, parquet=not args.no_parquet,
                      work_dir=args.work_dir)
    except (orchard.OrchardError, OSError) as exc:
        print(f"orchard.spark: {exc}", file=sys.stderr)
        return 1
    finally:
        if spark is not None and created:
            spark.stop()
    seconds = time.monotonic() - start
    print(f"orchard.spark: {summary['processed']} images -> {summary['processed']} x "
          f"{summary['k']} matrix (PCA from {summary['dim']} dims, "
          f"{100 * summary['explained_variance']:.1f}% of variance) in {seconds:.1f} s "
          f"({summary['processed'] / seconds:.1f} images/s, {summary['partitions']} partitions); "
          f"{summary['failed']} failed{' (see errors.csv)' if summary['failed'] else ''}; "
          f"results in {summary['output']}", file=sys.stderr)
    for warning in summary["warnings"]:
        print(f"orchard.spark: WARNING: {warning}", file=sys.stderr)
    return 1 if args.fail_on_error and summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
