"""``python -m orchard.spark run|update --input ... --output ... [options]``: the CLI's
``orchard run`` and ``orchard update`` on Spark. spark-submit takes a file, not a module;
this file runs as one (it imports the package absolutely):

    spark-submit --master yarn \
        --conf spark.pyspark.python=/opt/orchard/venv/bin/python \
        --conf spark.pyspark.driver.python=/opt/orchard/venv/bin/python \
        /opt/orchard/venv/lib/python3.11/site-packages/orchard/spark/__main__.py run ...

``run`` and ``update`` take the CLI's options (docs/cli.md: ``--resume``, ``--overwrite``
for run) plus the Spark ones (--partitions, --read-threads, --no-parquet, --master). Exit
status as the CLI: 0 success (failed images are listed in errors.csv), 1 the run failed, 2
usage error. Without a master from spark-submit or --master, runs on local[*] with this
Python for the workers. Progress lines (the executors' Python, images pending and reused,
the featurize job's tasks every 30 s, segments committed) go to stderr unless --quiet.
Executors that cannot import this orchard are found by a check job before anything is
written: exit 1 with what to fix (orchard.spark.ExecutorEnvironmentError).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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


def _add_run_arguments(r: argparse.ArgumentParser, is_update: bool) -> None:
    defaults = orchard.RUN_DEFAULTS
    r.add_argument("-i", "--input", required=True, help="folder or s3:// prefix")
    r.add_argument("-o", "--output", required=True, help="folder or s3:// prefix")
    r.add_argument("-m", "--model", default=defaults["model"])
    r.add_argument("--size", type=_nonnegative_int, default=defaults["size"])
    r.add_argument("--pooling", choices=["flatten", "avg", "max"], default=defaults["pooling"])
    pca = r.add_mutually_exclusive_group()
    pca.add_argument("--pca-components", type=_nonnegative_int,
                     default=defaults["pca_components"])
    pca.add_argument("--pca-variance", type=_positive_float, default=defaults["pca_variance"])
    r.add_argument("--batch", type=int, default=defaults["batch"])
    r.add_argument("--threads", type=_nonnegative_int, default=1,
                   help="per Spark task (default 1: Spark runs one task per core)")
    r.add_argument("--limit", type=_nonnegative_int, default=defaults["limit"])
    r.add_argument("--save-raw", action="store_true")
    r.add_argument("--max-pixels", type=int, default=defaults["max_pixels"])
    r.add_argument("--max-pca-dim", type=int, default=defaults["max_pca_dim"])
    r.add_argument("--backend", default=defaults["backend"])
    r.add_argument("--precision", default=defaults["precision"])
    r.add_argument("--no-jpeg-dct-scaling", dest="jpeg_dct_scaling", action="store_false",
                   default=defaults["jpeg_dct_scaling"])
    r.add_argument("--s3-endpoint", default=defaults["s3_endpoint"])
    r.add_argument("--work-dir", default=None, help="the driver's spill and staging folder")
    r.add_argument("--source", choices=["orchard", "binaryFile"], default="orchard",
                   help="orchard: the driver lists, executors fetch with Orchard's client "
                        "(the only source a run supports; binaryFile is refused, see "
                        "docs/spark.md)")
    r.add_argument("--partitions", type=int, default=None)
    r.add_argument("--read-threads", type=int, default=8)
    r.add_argument("--no-parquet", action="store_true", help="do not write features.parquet")
    r.add_argument("--master", default=None, help="Spark master (default: spark-submit's, "
                                                   "else local[*])")
    r.add_argument("--fail-on-error", action="store_true",
                   help="exit 1 if any listed file failed")
    r.add_argument("-q", "--quiet", action="store_true",
                   help="Spark logs at ERROR only, no progress lines")
    if not is_update:
        mode = r.add_mutually_exclusive_group()
        mode.add_argument("--resume", action="store_true",
                          help="continue the interrupted run in --output: images whose "
                               "descriptors are stored there are not featurized again")
        mode.add_argument("--overwrite", action="store_true",
                          help="delete Orchard's files in --output (results and stored "
                               "descriptors) first")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchard.spark",
                                     description="Orchard's chain on Apache Spark.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_arguments(sub.add_parser(
        "run", help="images -> descriptors -> PCA -> features.csv/.npy/.parquet"), False)
    _add_run_arguments(sub.add_parser(
        "update", help="bring an earlier result up to date with the input: featurize only "
                       "new or changed images, drop deleted ones, refit the PCA"), True)
    return parser


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The core's run options (orchard.RUN_DEFAULTS' names) from the parsed flags."""
    return dict(model=args.model, size=args.size, pooling=args.pooling,
                pca_components=args.pca_components, pca_variance=args.pca_variance,
                batch=args.batch, threads=args.threads, limit=args.limit,
                save_raw=args.save_raw, s3_endpoint=args.s3_endpoint,
                max_pixels=args.max_pixels, backend=args.backend, precision=args.precision,
                jpeg_dct_scaling=args.jpeg_dct_scaling, max_pca_dim=args.max_pca_dim,
                work_dir=args.work_dir or "")


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
    from orchard.spark.core import ModelOptions, execute

    start = time.monotonic()
    if args.command == "update":
        mode = "update"
    else:
        mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
    options = _run_options(args)
    # Usage errors (exit 2) before any Spark work, as the CLI: bad options, unknown model.
    try:
        if args.source != "orchard":
            raise orchard.InvalidArgumentError(
                "--source binaryFile cannot run a whole job (the descriptor store needs "
                "Orchard's listing); use the building blocks featurize_binary_files, fit_pca "
                "and transform (docs/spark.md)")
        orchard._orchard._check_run_options(args.input, args.output, mode=mode,
                                            option_style="cli", **options)
        ModelOptions(model=args.model, size=args.size, pooling=args.pooling, threads=1,
                     max_pixels=args.max_pixels, backend=args.backend,
                     precision=args.precision).featurizer()
    except (orchard.InvalidArgumentError, orchard.NotFoundError) as exc:
        print(f"orchard.spark: {exc}", file=sys.stderr)
        return 2
    spark = None
    created = False
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("orchard.spark: %(message)s"))
    logger = logging.getLogger("orchard.spark")
    previous_level = logger.level
    if not args.quiet:
        logger.addHandler(progress)
        logger.setLevel(logging.INFO)
    try:
        spark, created = _session(args.master)
        if args.quiet:
            spark.sparkContext.setLogLevel("ERROR")
        summary = execute(args.input, args.output, spark=spark, mode=mode, option_style="cli",
                          source=args.source, num_partitions=args.partitions,
                          read_threads=args.read_threads, parquet=not args.no_parquet,
                          options=options)
    except orchard.UsageError as exc:  # found by the run itself, e.g. a non-empty output
        print(f"orchard.spark: {exc}", file=sys.stderr)
        return 2
    except (orchard.OrchardError, OSError) as exc:
        print(f"orchard.spark: {exc}", file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(progress)
        logger.setLevel(previous_level)
        if spark is not None and created:
            spark.stop()
    seconds = time.monotonic() - start
    print(f"orchard.spark: {summary['processed']} images -> {summary['processed']} x "
          f"{summary['k']} matrix (PCA from {summary['dim']} dims, "
          f"{100 * summary['explained_variance']:.1f}% of variance) in {seconds:.1f} s "
          f"({summary['featurized']} featurized in {summary['partitions']} partitions, "
          f"{summary['reused']} reused from the descriptor store); "
          f"{summary['failed']} failed{' (see errors.csv)' if summary['failed'] else ''}; "
          f"results in {summary['output']}", file=sys.stderr)
    for warning in summary["warnings"]:
        print(f"orchard.spark: WARNING: {warning}", file=sys.stderr)
    return 1 if args.fail_on_error and summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
