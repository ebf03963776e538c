"""Driver side of orchard.spark: the run, and the DataFrame building blocks.

Everything here is a function of its arguments (no module state besides the logger).
Functions shipped to the executors are built by ``_worker``'s factories from plain values,
never from an object.

``run`` is the C++ run (orchard/pipeline.h) with its featurization spread over the cluster
(see docs/spark.md):

1. Driver: ``_find_pending_images`` prepares the output exactly as ``orchard run`` would
   (the mode's rules; the descriptor store's fingerprint written, or checked against the
   model), lists the input with Orchard's storage and returns the images the store lacks,
   in listing order.
2. Executors: the pending images are cut into *units* of ``batch`` consecutive images (the
   CLI's work units), whole units in contiguous ranges per partition (``parallelize``).
   Each task reads and featurizes its units with the C++ core and commits them as ONE
   segment of the store, named after the run's generation and the partition's first unit:
   a retried or speculative task rewrites the same segment, so no image is stored twice.
3. Driver: the C++ run in resume mode finishes: it featurizes nothing that was committed,
   fits the exact PCA on every stored descriptor in listing order, and writes every output
   (features.csv, .npy, pca.json, errors.csv, manifest.json, features.parquet through
   ``ParquetSink``) with the CLI's code. The files are the CLI's, byte for byte, when the
   descriptors are.

A driver killed at any point leaves the committed segments; ``run(..., resume=True)``
featurizes only what is missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import orchard
from orchard import _orchard
from orchard.sinks import ParquetSink

from . import _worker
from ._environment import ExecutorEnvironmentError, check_executors
from ._progress import JobProgress

OUTCOME_DDL = ("idx long, path string, label string, features array<float>, stage string, "
               "message string")
KEYS_DDL = "idx long, path string, unit long"
ACCUMULATOR_DDL = "count long, accumulator binary"
FEATURES_TYPES = ("array", "vector")
# Seconds between the progress lines of a run's featurize job (orchard.spark logger, INFO).
PROGRESS_INTERVAL_SECONDS = 30.0
_DEFAULTS = orchard.RUN_DEFAULTS

_log = logging.getLogger("orchard.spark")


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """How images become descriptors; the same meaning as the CLI's options, the same
    defaults (the core's), except ``threads``.

    ``threads`` is per task (decode threads and the network's cores): Spark already runs one
    task per executor core, so the default 1 uses every core without oversubscribing it.
    """

    model: str = _DEFAULTS["model"]
    size: int = _DEFAULTS["size"]
    pooling: str | None = _DEFAULTS["pooling"]
    threads: int = 1
    max_pixels: int = _DEFAULTS["max_pixels"]
    backend: str = _DEFAULTS["backend"]
    precision: str = _DEFAULTS["precision"]
    jpeg_dct_scaling: bool = _DEFAULTS["jpeg_dct_scaling"]

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.model, self.size, self.pooling, self.threads, self.max_pixels,
                self.backend, self.precision, self.jpeg_dct_scaling)

    def featurizer(self) -> orchard.Featurizer:
        """A Featurizer with these options, for the driver (model checks and metadata)."""
        return orchard.Featurizer(model=self.model, size=self.size, pooling=self.pooling,
                                  threads=self.threads, max_pixels=self.max_pixels,
                                  backend=self.backend, precision=self.precision,
                                  jpeg_dct_scaling=self.jpeg_dct_scaling)


@dataclasses.dataclass(frozen=True)
class Listing:
    """The input as the CLI sees it: every listed key in byte order, whether its name is an
    image's, stopped at the ``limit``-th image."""

    location: str
    keys: list[str]
    is_image: list[bool]

    @property
    def images(self) -> list[tuple[int, str]]:
        return [(i, k) for i, (k, ok) in enumerate(zip(self.keys, self.is_image)) if ok]

    def list_errors(self) -> list[tuple[int, str, str, str]]:
        """(idx, path, 'list', message) for the keys that are not image names."""
        return [(i, k, "list", _worker.NOT_AN_IMAGE)
                for i, (k, ok) in enumerate(zip(self.keys, self.is_image)) if not ok]


def list_input(location: str, *, s3_endpoint: str | None = None, limit: int = 0) -> Listing:
    """Lists ``location`` (folder or s3:// prefix) on the driver with Orchard's storage."""
    keys: list[str] = []
    flags: list[bool] = []
    images = 0
    for key, _size in orchard.Storage(location, s3_endpoint=s3_endpoint).list():
        ok = bool(orchard.has_image_extension(key))
        keys.append(key)
        flags.append(ok)
        images += ok
        if limit and ok and images == limit:
            break
    return Listing(location=location, keys=keys, is_image=flags)


def default_partitions(spark: SparkSession, images: int, batch: int) -> int:
    """Enough partitions to balance the cores (2 per core) and to keep a task near 1,024
    images (a lost task costs little to redo), never more than there are units."""
    units = max(1, math.ceil(images / batch))
    parallelism = spark.sparkContext.defaultParallelism
    return max(1, min(units, max(2 * parallelism, math.ceil(images / 1024))))


def partitions_for(spark: SparkSession, images: int, batch: int,
                   num_partitions: int | None) -> int:
    """The number of partitions of ``images`` images: ``num_partitions`` (default:
    default_partitions) capped at the number of units."""
    units = max(1, math.ceil(images / batch))
    return max(1, min(num_partitions or default_partitions(spark, images, batch), units))


def keys_dataframe(spark: SparkSession, images: Sequence[tuple[int, str]], *, batch: int,
                   num_partitions: int | None = None) -> DataFrame:
    """DataFrame (idx, path, unit) of the images, ``batch`` consecutive images per unit and
    whole units per partition, partition p holding a contiguous range: the partitioning
    depends on the listing only."""
    if batch < 1:
        raise orchard.InvalidArgumentError("batch must be positive")
    units = [[(idx, key, u) for idx, key in images[s:s + batch]]
             for u, s in enumerate(range(0, len(images), batch))]
    parts = partitions_for(spark, len(images), batch, num_partitions)
    rdd = spark.sparkContext.parallelize(units, parts).flatMap(lambda unit: unit)
    return spark.createDataFrame(rdd, KEYS_DDL)


def _check_features_type(features_type: str) -> None:
    if features_type not in FEATURES_TYPES:
        raise orchard.InvalidArgumentError(
            f"features_type must be 'array' or 'vector', not {features_type!r}")


def _as_features_type(df: DataFrame, features_type: str) -> DataFrame:
    """``df`` with its array<float> ``features`` column as asked: unchanged ("array"), or
    Spark ML dense vectors ("vector": pyspark.ml.linalg.VectorUDT, doubles; null stays
    null)."""
    if features_type == "array":
        return df
    from pyspark.ml.functions import array_to_vector

    col = F.col("features")
    return df.withColumn("features", F.when(col.isNotNull(), array_to_vector(col)))


def _as_float_arrays(df: DataFrame) -> DataFrame:
    """``df`` with a ``features`` column of Spark ML vectors turned into array<float> (what
    fit_pca and transform read); any other column type is left as it is."""
    from pyspark.ml.linalg import VectorUDT

    if not isinstance(df.schema["features"].dataType, VectorUDT):
        return df
    from pyspark.ml.functions import vector_to_array

    col = F.col("features")
    return df.withColumn("features",
                         F.when(col.isNotNull(), vector_to_array(col, dtype="float32")))


def featurize_keys(keys: DataFrame, location: str, *, options: ModelOptions = ModelOptions(),
                   s3_endpoint: str | None = None, read_threads: int = 8,
                   features_type: str = "array") -> DataFrame:
    """Descriptors of the images named by ``keys`` (idx, path, unit), read from
    ``location`` by the executors with Orchard's native client. Returns (idx, path, label,
    features, stage, message); ``features`` is array<float> (``features_type="array"``) or
    a Spark ML dense vector (``"vector"``, for pyspark.ml estimators), null for a failed
    image (stage and message say why, as in errors.csv). Checks first that the executors
    import the driver's orchard (check_executors)."""
    _check_features_type(features_type)
    check_executors(keys.sparkSession.sparkContext)
    fn = _worker.featurize_keys_fn(location, s3_endpoint, options.as_tuple(), read_threads)
    return _as_features_type(keys.mapInArrow(fn, OUTCOME_DDL), features_type)


def featurize_binary_files(images: DataFrame, *, root: str = "",
                           options: ModelOptions = ModelOptions(),
                           batch: int = _DEFAULTS["batch"],
                           features_type: str = "array") -> DataFrame:
    """Descriptors of a DataFrame with ``path`` and ``content`` columns, e.g.
    ``spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(dir)``.
    Paths are made relative to ``root`` (give the loaded folder, in any spelling: '/data/x',
    'file:///data/x'; '' keeps them whole) and labelled by their parent folder. Returns the
    same columns as featurize_keys (``features_type`` too), with idx = -1."""
    _check_features_type(features_type)
    check_executors(images.sparkSession.sparkContext)
    fn = _worker.featurize_content_fn(root, options.as_tuple(), batch)
    return _as_features_type(images.select("path", "content").mapInArrow(fn, OUTCOME_DDL),
                             features_type)


def fit_pca(features: DataFrame, dim: int, *, components: int | None = None,
            variance: float | None = None, max_dim: int = _DEFAULTS["max_pca_dim"],
            depth: int = 2) -> tuple[orchard.PcaModel | None, int]:
    """Exact PCA of the non-null ``features`` rows (array<float> or Spark ML vectors of
    ``dim``): a PcaAccumulator per partition, merged as bytes by ``treeReduce`` on the
    executors, finalized here. Returns (model, count); model is None when fewer than 2 rows
    have a descriptor."""
    check_executors(features.sparkSession.sparkContext)
    accs = (_as_float_arrays(features.where(F.col("features").isNotNull()).select("features"))
            .mapInArrow(_worker.accumulate_fn(dim, max_dim), ACCUMULATOR_DDL))
    merge = _worker.merge_accumulators
    rdd = accs.rdd.map(lambda row: bytes(row[1]))
    try:
        merged = rdd.treeReduce(merge, depth=depth)
    except ValueError as exc:  # no partition had a row
        if "empty" not in str(exc).lower():
            raise
        return None, 0
    acc = orchard.PcaAccumulator.from_bytes(merged)
    if acc.count < 2:
        return None, int(acc.count)
    if components:
        return acc.finalize(components=components), int(acc.count)
    return acc.finalize(variance=variance or 0.95), int(acc.count)


def transform(features: DataFrame, model: orchard.PcaModel, *,
              keep_features: bool = False, features_type: str = "array") -> DataFrame:
    """(idx, path, label, pc_1..pc_k float) of the rows that have a descriptor (array<float>
    or Spark ML vectors), projected on the executors with the model's JSON broadcast. With
    ``keep_features`` the descriptors follow, as ``features_type`` says ("array":
    array<float>, "vector": Spark ML dense vectors)."""
    _check_features_type(features_type)
    spark = features.sparkSession
    check_executors(spark.sparkContext)
    shared = spark.sparkContext.broadcast(model.to_json())
    k = int(model.k)
    ddl = "idx long, path string, label string, " + ", ".join(f"pc_{j} float"
                                                              for j in range(1, k + 1))
    if keep_features:
        ddl += ", features array<float>"
    fn = _worker.transform_fn(shared, int(model.dim), k, keep_features)
    rows = _as_float_arrays(features.where(F.col("features").isNotNull())
                            .select("idx", "path", "label", "features"))
    projected = rows.mapInArrow(fn, ddl)
    return _as_features_type(projected, features_type) if keep_features else projected


# ---- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def _job_description(sc: SparkContext, text: str) -> Iterator[None]:
    """Names the Spark jobs started inside (Spark UI, logs), then restores the previous."""
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(text)
    try:
        yield
    finally:
        sc.setLocalProperty("spark.job.description", previous)  # type: ignore[arg-type]


def _binary_file_error() -> orchard.InvalidArgumentError:
    return orchard.InvalidArgumentError(
        "source='binaryFile' cannot run a whole job: a run keeps a descriptor store in its "
        "output, which needs Orchard's own listing of the input (and each object's content "
        "identity). Use source='orchard' (the default), or, to read the images with Spark's "
        "binaryFile data source, the building blocks featurize_binary_files + fit_pca + "
        "transform (docs/spark.md)")


def execute(input: str, output: str, *, spark: SparkSession | None, mode: str,
            option_style: str, source: str, num_partitions: int | None, read_threads: int,
            parquet: bool, options: dict[str, Any]) -> dict[str, Any]:
    """The body of ``run`` and ``update`` (and of ``python -m orchard.spark``, which names
    options as flags: ``option_style="cli"``). ``options`` are the core's run options
    (orchard.RUN_DEFAULTS' names); ``mode`` is the OutputMode's name."""
    if source != "orchard":
        if source == "binaryFile":
            raise _binary_file_error()
        raise orchard.InvalidArgumentError("source must be 'orchard'")
    if num_partitions is not None and num_partitions < 1:
        raise orchard.InvalidArgumentError("num_partitions must be positive")
    if read_threads < 1 or read_threads > 1024:
        raise orchard.InvalidArgumentError("read_threads must be in 1..1024")
    start = time.monotonic()
    opts = {**options, "option_style": option_style}
    # The options are checked (the core's rules) before a session is made or anything read.
    _orchard._check_run_options(input, output, mode=mode, **opts)
    spark = spark or SparkSession.builder.getOrCreate()
    sc = spark.sparkContext
    # Before the output is touched: executors that cannot import this orchard fail here, in
    # seconds, with what to fix, instead of in the featurize job with a Java trace.
    t = time.monotonic()
    executors = check_executors(sc)
    timings = {"check": time.monotonic() - t}
    _log.info("executors import orchard %s (%s)", orchard.__version__,
              ", ".join(sorted({f"{r['python']} on {r['host']}" for r in executors})))

    pending = _orchard._find_pending_images(input, output, mode=mode, **opts)
    images: list[tuple[str, str]] = pending["images"]
    timings["plan"] = time.monotonic() - start - timings["check"]
    _log.info("%s: %d objects listed, %d images to featurize, %d reused from the descriptor "
              "store", output, pending["listed"], len(images), pending["reused"])
    partitions = 0
    segments: list[tuple[str, int, int]] = []
    if images:
        batch = int(options["batch"])
        units = [(u, images[s:s + batch]) for u, s in enumerate(range(0, len(images), batch))]
        partitions = partitions_for(spark, len(images), batch, num_partitions)
        model = ModelOptions(
            model=options["model"], size=options["size"], pooling=options["pooling"],
            threads=options["threads"], max_pixels=options["max_pixels"],
            backend=options["backend"], precision=options["precision"],
            jpeg_dct_scaling=options["jpeg_dct_scaling"])
        fn = _worker.commit_segments_fn(input, options["s3_endpoint"], model.as_tuple(),
                                        read_threads, output, int(pending["generation"]),
                                        int(pending["dim"]))
        t = time.monotonic()
        with _job_description(sc, f"orchard: featurize {len(images)} images of {input} "
                                  f"({len(units)} units of {batch}, {partitions} partitions)"), \
                JobProgress(sc, f"{output}: featurize", tasks=partitions, images=len(images),
                            interval=PROGRESS_INTERVAL_SECONDS):
            segments = sc.parallelize(units, partitions).mapPartitions(fn).collect()
        timings["featurize"] = time.monotonic() - t
        _log.info("%s: %d segments committed (%d images, %d failed)", output, len(segments),
                  sum(s[1] for s in segments), sum(s[2] for s in segments))

    # The C++ run finishes: nothing left to featurize, the PCA and every output.
    _log.info("%s: fitting the PCA and writing the outputs on the driver", output)
    sinks = [ParquetSink()] if parquet else []
    t = time.monotonic()
    spark_facts = {"spark": {
        "version": spark.version, "master": sc.master, "app_id": sc.applicationId,
        "executor_pythons": sorted({r["python"] for r in executors}),
        "default_parallelism": sc.defaultParallelism, "mode": mode, "partitions": partitions,
        "segments_committed": len(segments), "featurized_on_executors": len(images),
        "reused": int(pending["reused"]), "timings_seconds": dict(timings)}}
    summary = _orchard._run(input, output, sinks=sinks,
                            mode="update" if mode == "update" else "resume",
                            manifest_extra=json.dumps(spark_facts), **opts)
    timings["finish"] = time.monotonic() - t
    seconds = time.monotonic() - start
    featurized = len(images) + int(summary["featurized"])
    summary.update(reused=int(pending["reused"]), featurized=featurized, seconds=seconds,
                   images_per_second=featurized / seconds if seconds > 0 else 0.0,
                   partitions=partitions, segments=len(segments), timings_seconds=timings)
    _log.info("%s: %d images, %d failed, k = %d, in %.1f s", output, summary["processed"],
              summary["failed"], summary["k"], seconds)
    return summary


def run(input: str, output: str, *, spark: SparkSession | None = None,
        model: str = _DEFAULTS["model"], size: int = _DEFAULTS["size"],
        pooling: str | None = _DEFAULTS["pooling"],
        pca_components: int = _DEFAULTS["pca_components"],
        pca_variance: float = _DEFAULTS["pca_variance"], batch: int = _DEFAULTS["batch"],
        threads: int = 1, limit: int = _DEFAULTS["limit"],
        save_raw: bool = _DEFAULTS["save_raw"], s3_endpoint: str | None = None,
        max_pixels: int = _DEFAULTS["max_pixels"], backend: str = _DEFAULTS["backend"],
        precision: str = _DEFAULTS["precision"],
        jpeg_dct_scaling: bool = _DEFAULTS["jpeg_dct_scaling"],
        max_pca_dim: int = _DEFAULTS["max_pca_dim"], source: str = "orchard",
        num_partitions: int | None = None, read_threads: int = 8, parquet: bool = True,
        work_dir: str | None = None, resume: bool = False, overwrite: bool = False
        ) -> dict[str, Any]:
    """The CLI's ``orchard run`` on a Spark cluster: same options, same files
    (features.csv, features.npy, pca.json, errors.csv, manifest.json, raw.npy with
    ``save_raw``) plus features.parquet (``parquet=False`` to skip it), written by the same
    C++ code, and the descriptor store ``_orchard/`` in ``output``.

    An output that is not empty is refused unless ``resume`` (continue an interrupted run:
    images whose descriptors are stored are not featurized again) or ``overwrite`` (delete
    Orchard's files there first). Executors write descriptors into ``output``'s store: a
    local ``output`` must be the same folder on every node (or use s3://).

    ``source``: only "orchard" (the driver lists ``input`` with Orchard's storage and the
    executors fetch the images with the native client; a local ``input`` must be visible to
    every executor at the same path). "binaryFile" is refused: use featurize_binary_files,
    fit_pca and transform. ``threads``: per task (see ModelOptions). ``work_dir``: the
    driver's spill and staging folder. Returns a summary like orchard.run's, plus
    ``partitions``, ``segments`` (committed by this run) and ``timings_seconds``: ``check``
    (a tiny job: the executors import this orchard, else ExecutorEnvironmentError before
    anything is written), ``plan`` (driver: output check, model, listing), ``featurize``
    (the Spark job), ``finish`` (driver: PCA and every output).
    """
    options = dict(model=model, size=size, pooling=pooling, pca_components=pca_components,
                   pca_variance=pca_variance, batch=batch, threads=threads, limit=limit,
                   save_raw=save_raw, s3_endpoint=s3_endpoint, max_pixels=max_pixels,
                   backend=backend, precision=precision, jpeg_dct_scaling=jpeg_dct_scaling,
                   max_pca_dim=max_pca_dim, work_dir=work_dir or "")
    return execute(input, output, spark=spark, mode=orchard._output_mode(resume, overwrite),
                   option_style="api", source=source, num_partitions=num_partitions,
                   read_threads=read_threads, parquet=parquet, options=options)


def update(input: str, output: str, *, spark: SparkSession | None = None,
           model: str = _DEFAULTS["model"], size: int = _DEFAULTS["size"],
           pooling: str | None = _DEFAULTS["pooling"],
           pca_components: int = _DEFAULTS["pca_components"],
           pca_variance: float = _DEFAULTS["pca_variance"], batch: int = _DEFAULTS["batch"],
           threads: int = 1, limit: int = _DEFAULTS["limit"],
           save_raw: bool = _DEFAULTS["save_raw"], s3_endpoint: str | None = None,
           max_pixels: int = _DEFAULTS["max_pixels"], backend: str = _DEFAULTS["backend"],
           precision: str = _DEFAULTS["precision"],
           jpeg_dct_scaling: bool = _DEFAULTS["jpeg_dct_scaling"],
           max_pca_dim: int = _DEFAULTS["max_pca_dim"], source: str = "orchard",
           num_partitions: int | None = None, read_threads: int = 8, parquet: bool = True,
           work_dir: str | None = None) -> dict[str, Any]:
    """The CLI's ``orchard update`` on Spark: brings the result in ``output`` up to date
    with ``input`` as it is now. Only new or changed images are featurized (on the
    executors), deleted ones are dropped, the exact PCA is refitted and every output
    rewritten. The options are ``run``'s; they must make the same descriptors as the run
    that made ``output`` (other settings are refused)."""
    options = dict(model=model, size=size, pooling=pooling, pca_components=pca_components,
                   pca_variance=pca_variance, batch=batch, threads=threads, limit=limit,
                   save_raw=save_raw, s3_endpoint=s3_endpoint, max_pixels=max_pixels,
                   backend=backend, precision=precision, jpeg_dct_scaling=jpeg_dct_scaling,
                   max_pca_dim=max_pca_dim, work_dir=work_dir or "")
    return execute(input, output, spark=spark, mode="update", option_style="api",
                   source=source, num_partitions=num_partitions, read_threads=read_threads,
                   parquet=parquet, options=options)


__all__ = [
    "ModelOptions", "Listing", "list_input", "keys_dataframe", "featurize_keys",
    "featurize_binary_files", "fit_pca", "transform", "run", "update", "check_executors",
    "ExecutorEnvironmentError",
]
