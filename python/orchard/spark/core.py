"""Driver side of orchard.spark: listing, the featurize/PCA/transform jobs, and the outputs.

Everything here is a function of its arguments (no module state). Functions shipped to the
executors are built by ``_worker``'s factories from plain values, never from an object.

Data flow of ``run`` (see docs/spark.md):

1. The driver lists the input with Orchard's own storage (local or s3://, no hadoop-aws),
   in byte order of the key, and cuts the images into *units* of ``batch`` consecutive images
   (the CLI's batches). Units go to partitions as contiguous ranges (``parallelize``), so the
   content of every partition is fixed by the listing alone: a retried or speculative task
   recomputes exactly the same rows.
2. ``mapInArrow``: executors fetch their keys with the native client (``read_many``) and
   featurize each unit with a per-process cached model -> (idx, path, label, features,
   stage, message), persisted (memory and disk).
3. PCA: one PcaAccumulator per partition (``mapInArrow``), serialized, merged with
   ``treeReduce`` on bytes, finalized on the driver (k by components or variance).
4. Transform on the executors with the PcaModel JSON broadcast, and the exact CSV/NPY bytes
   rendered there too.
5. The driver streams the rendered chunks in row order (``toLocalIterator``: one partition
   in memory at a time) into features.csv, features.npy, features.parquet (and raw.npy),
   then writes pca.json, errors.csv and manifest.json, each under a temporary name, and
   publishes them (rename, or upload to S3) with the manifest last. Tasks write nothing:
   outputs are written once, by the driver, from the job's results, so task retries and
   speculation can neither duplicate nor lose a row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import orchard

from . import _worker
from .formatting import csv_line, npy_header

OUTCOME_DDL = ("idx long, path string, label string, features binary, stage string, "
               "message string")
KEYS_DDL = "idx long, path string, unit long"
ACCUMULATOR_DDL = "count long, accumulator binary"
CHUNK_DDL = "first_idx long, rows long, csv binary, npy binary, raw binary, paths binary"
DEFAULT_MAX_PIXELS = 89_478_485
PARQUET_ROW_GROUP = 65_536
RESULT_FILES = ("features.csv", "features.npy", "features.parquet", "raw.npy", "pca.json",
                "errors.csv")


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """How images become descriptors; the same meaning as the CLI's options.

    ``threads`` is per task (decode threads and the network's cores): Spark already runs one
    task per executor core, so the default 1 uses every core without oversubscribing it.
    """

    model: str = "mobilenet_v2"
    size: int = 0
    pooling: str | None = None
    threads: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    backend: str = orchard.DEFAULT_BACKEND

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.model, self.size, self.pooling, self.threads, self.max_pixels, self.backend)

    def featurizer(self) -> orchard.Featurizer:
        """A Featurizer with these options, for the driver (model checks and metadata)."""
        return orchard.Featurizer(model=self.model, size=self.size, pooling=self.pooling,
                                  threads=self.threads, max_pixels=self.max_pixels,
                                  backend=self.backend)


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


def partitions_for(spark: SparkSession, images: int, batch: int,
                   num_partitions: int | None) -> int:
    """The number of partitions keys_dataframe makes: ``num_partitions`` (default:
    default_partitions) capped at the number of units."""
    units = max(1, math.ceil(images / batch))
    return max(1, min(num_partitions or default_partitions(spark, images, batch), units))


def featurize_keys(keys: DataFrame, location: str, *, options: ModelOptions = ModelOptions(),
                   s3_endpoint: str | None = None, read_threads: int = 8) -> DataFrame:
    """Descriptors of the images named by ``keys`` (idx, path, unit), read from
    ``location`` by the executors with Orchard's native client. Returns (idx, path, label,
    features, stage, message); ``features`` is null for a failed image (stage and message
    say why)."""
    fn = _worker.featurize_keys_fn(location, s3_endpoint, options.as_tuple(), read_threads,
                                   rows_per_batch=1024)
    return keys.mapInArrow(fn, OUTCOME_DDL)


def featurize_binary_files(images: DataFrame, *, root: str = "",
                           options: ModelOptions = ModelOptions(), batch: int = 16) -> DataFrame:
    """Descriptors of a DataFrame with ``path`` and ``content`` columns, e.g.
    ``spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(dir)``.
    Paths are made relative to ``root`` (give the loaded folder, in any spelling: '/data/x',
    'file:///data/x'; '' keeps them whole) and labelled by their parent folder. Returns the
    same columns as featurize_keys, with idx = -1."""
    fn = _worker.featurize_content_fn(root, options.as_tuple(), batch)
    return images.select("path", "content").mapInArrow(fn, OUTCOME_DDL)


def fit_pca(features: DataFrame, dim: int, *, components: int | None = None,
            variance: float | None = None, max_dim: int = 8192, depth: int = 2
            ) -> tuple[orchard.PcaModel | None, int]:
    """Exact PCA of the non-null ``features`` rows: a PcaAccumulator per partition, merged
    as bytes by ``treeReduce`` on the executors, finalized here. Returns (model, count);
    model is None when fewer than 2 rows have a descriptor."""
    accs = (features.where(F.col("features").isNotNull()).select("features")
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
              keep_features: bool = False) -> DataFrame:
    """(idx, path, label, pc_1..pc_k float) of the rows that have a descriptor, projected on
    the executors with the model's JSON broadcast (and the descriptors kept if asked)."""
    spark = features.sparkSession
    shared = spark.sparkContext.broadcast(model.to_json())
    k = int(model.k)
    ddl = "idx long, path string, label string, " + ", ".join(f"pc_{j} float"
                                                              for j in range(1, k + 1))
    if keep_features:
        ddl += ", features binary"
    fn = _worker.transform_fn(shared, int(model.dim), k, keep_features)
    return (features.where(F.col("features").isNotNull())
            .select("idx", "path", "label", "features").mapInArrow(fn, ddl))


# ---- outputs --------------------------------------------------------------------------------


class _Staging:
    """Where the result files are written before they are published.

    Local output: temporary names in the output folder, renamed on publish (atomic on one
    file system). s3:// output: a local temporary folder, uploaded on publish with Orchard's
    S3 client. The manifest is published last, so whoever sees it sees a complete result.
    An s3:// output is checked for writing when the staging is made, before any job runs,
    as the CLI does: a wrong bucket or a missing permission fails in seconds, not after the
    cluster has featurized the whole collection.
    """

    def __init__(self, output: str, s3_endpoint: str | None, work_dir: str | None) -> None:
        self.output = output
        self.s3_endpoint = s3_endpoint
        self.remote = _is_s3(output)
        if self.remote:
            _check_writable(output, s3_endpoint)
            self.dir = Path(tempfile.mkdtemp(prefix="orchard-spark-", dir=work_dir))
            self.tag = ""
        else:
            self.dir = Path(output)
            self.dir.mkdir(parents=True, exist_ok=True)
            self.tag = f".orchard-tmp-{uuid.uuid4().hex[:12]}"
        self.written: list[str] = []

    def path(self, name: str) -> Path:
        if name not in self.written:
            self.written.append(name)
        return self.dir / (f".{name}{self.tag}" if self.tag else name)

    def publish(self, names: Sequence[str]) -> None:
        for name in names:
            if name not in self.written:
                continue
            if self.remote:
                _upload(self.path(name), _join_url(self.output, name), self.s3_endpoint)
            else:
                os.replace(self.path(name), self.dir / name)

    def cleanup(self) -> None:
        if self.remote:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            for name in self.written:
                with contextlib.suppress(FileNotFoundError):
                    self.path(name).unlink()


def _is_s3(location: str) -> bool:
    return location.startswith(("s3://", "s3a://", "s3n://"))


def _join_url(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


def _check_writable(output: str, s3_endpoint: str | None) -> None:
    """Probes the manifest's key (the CLI's probe): a multipart upload started and aborted."""
    try:
        orchard.check_writable(_join_url(output, "manifest.json"), s3_endpoint=s3_endpoint)
    except orchard.OrchardError as exc:
        raise type(exc)(f"output {output} is not writable: {exc}") from exc


def _upload(local: Path, url: str, s3_endpoint: str | None) -> None:
    """Uploads with Orchard's native client (multipart above 16 MiB, aborted on failure)."""
    orchard.upload_file(str(local), url, s3_endpoint=s3_endpoint)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def cli_model_json(info: dict[str, Any]) -> dict[str, Any]:
    """The "model" object of the CLI's manifest.json and pca.json, from Featurizer.model_info."""
    return {
        "name": info["name"],
        "file": os.path.basename(str(info["file"])),
        "sha256": info["sha256"],
        "weights": info["weights"],
        "random_weights": bool(info["random_weights"]),
        "weights_source": info["weights_source"],
        "backend": info["backend"],
        "precision": info["precision"],
        "feature_layer": info["feature_layer"],
        "input_size": list(info["input_size"]),
        "pooling": info["pooling"],
        "feature_shape": list(info["feature_shape"]),
        "descriptor_dim": int(info["dim"]),
    }


def pca_json(model: orchard.PcaModel, model_info: dict[str, Any]) -> str:
    """pca.json as the CLI writes it: the PcaModel's JSON plus the model that made the
    descriptors, keys sorted, one-space indent."""
    doc = json.loads(model.to_json())
    doc["model"] = cli_model_json(model_info)
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


@dataclasses.dataclass
class _Written:
    rows: int = 0
    seconds: float = 0.0


def _write_matrix(chunks: Iterator[Any], staging: _Staging, *, n: int, k: int, dim: int,
                  save_raw: bool, parquet: bool, ordered_by_idx: bool) -> _Written:
    """Streams the rendered chunks (CHUNK_DDL rows, in output order) into the files."""
    start = time.monotonic()
    written = _Written()
    pq_schema = pa.schema([("path", pa.string()), ("label", pa.string())] +
                          [(f"pc_{j}", pa.float32()) for j in range(1, k + 1)])
    with contextlib.ExitStack() as stack:
        csv_file = stack.enter_context(open(staging.path("features.csv"), "wb"))
        npy_file = stack.enter_context(open(staging.path("features.npy"), "wb"))
        raw_file = (stack.enter_context(open(staging.path("raw.npy"), "wb")) if save_raw
                    else None)
        writer = (stack.enter_context(pq.ParquetWriter(staging.path("features.parquet"),
                                                        pq_schema))
                  if parquet else None)
        csv_file.write(("path,label" + "".join(f",pc_{j}" for j in range(1, k + 1)) +
                        "\n").encode())
        npy_file.write(npy_header(n, k))
        if raw_file is not None:
            raw_file.write(npy_header(n, dim))
        last_idx = -1
        pending: list[pa.Table] = []
        pending_rows = 0
        for chunk in chunks:
            first_idx, rows = int(chunk["first_idx"]), int(chunk["rows"])
            if rows == 0:
                continue
            if ordered_by_idx:
                if first_idx <= last_idx:
                    raise orchard.InternalError(
                        f"rows arrived out of listing order ({first_idx} after {last_idx})")
                last_idx = first_idx
            csv_file.write(chunk["csv"])
            npy_file.write(chunk["npy"])
            if raw_file is not None:
                raw_file.write(chunk["raw"])
            if writer is not None:
                names = pa.ipc.open_stream(pa.py_buffer(chunk["paths"])).read_all()
                y = np.frombuffer(chunk["npy"], dtype="<f4").reshape(rows, k)
                cols = [names.column("path"), names.column("label")]
                cols += [pa.array(y[:, j]) for j in range(k)]
                pending.append(pa.Table.from_arrays(cols, schema=pq_schema))
                pending_rows += rows
                # Row groups of a fixed size, whatever the partitioning: the same rows give
                # the same file.
                while pending_rows >= PARQUET_ROW_GROUP:
                    table = pa.concat_tables(pending).combine_chunks()
                    writer.write_table(table.slice(0, PARQUET_ROW_GROUP),
                                       row_group_size=PARQUET_ROW_GROUP)
                    rest = table.slice(PARQUET_ROW_GROUP)
                    pending, pending_rows = [rest], rest.num_rows
            written.rows += rows
        if writer is not None and pending_rows:
            writer.write_table(pa.concat_tables(pending).combine_chunks(),
                               row_group_size=PARQUET_ROW_GROUP)
    if written.rows != n:
        raise orchard.InternalError(f"wrote {written.rows} rows, expected {n}")
    written.seconds = time.monotonic() - start
    return written


def _errors(outcomes: DataFrame, listing_errors: list[tuple[int, str, str, str]],
            by_idx: bool) -> Iterator[tuple[str, str, str]]:
    """(path, stage, message) of every failure, in output order: listing order (by idx) for
    listed keys, byte order of the path for DataFrames of files."""
    failed = outcomes.where(F.col("features").isNull()).select("idx", "path", "stage", "message")
    if by_idx:
        rows = ((r["idx"], r["path"], r["stage"], r["message"]) for r in failed.toLocalIterator())
        for _idx, path, stage, message in heapq.merge(listing_errors, rows, key=lambda r: r[0]):
            yield path, stage, message
    else:
        for r in failed.orderBy("path").toLocalIterator():
            yield r["path"], r["stage"], r["message"]


def validate(*, pca_components: int, pca_variance: float, batch: int, threads: int, size: int,
             limit: int, max_pixels: int) -> None:
    """The CLI's option checks (same messages, without the dashes)."""
    if pca_components and pca_variance:
        raise orchard.InvalidArgumentError("give either pca_components or pca_variance, not both")
    if pca_components < 0:
        raise orchard.InvalidArgumentError("pca_components must be positive")
    if pca_variance < 0.0 or pca_variance > 1.0:
        raise orchard.InvalidArgumentError("pca_variance must be in (0, 1]")
    if batch < 1 or batch > 4096:
        raise orchard.InvalidArgumentError("batch must be in 1..4096")
    if threads < 0 or threads > 1024:
        raise orchard.InvalidArgumentError("threads must be in 0..1024")
    if size < 0 or size > 4096:
        raise orchard.InvalidArgumentError("size must be in 1..4096")
    if limit < 0:
        raise orchard.InvalidArgumentError("limit must be positive")
    if max_pixels <= 0:
        raise orchard.InvalidArgumentError("max_pixels must be positive")


def run(input: str, output: str, *, spark: SparkSession | None = None,
        model: str = "mobilenet_v2", size: int = 0, pooling: str | None = None,
        pca_components: int = 0, pca_variance: float = 0.0, batch: int = 16, threads: int = 1,
        limit: int = 0, save_raw: bool = False, s3_endpoint: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS, backend: str = orchard.DEFAULT_BACKEND,
        max_pca_dim: int = 8192, source: str = "orchard", num_partitions: int | None = None,
        read_threads: int = 8, parquet: bool = True, work_dir: str | None = None
        ) -> dict[str, Any]:
    """The CLI's ``orchard run`` on a Spark cluster: same options, same files
    (features.csv, features.npy, pca.json, errors.csv, manifest.json, raw.npy with
    ``save_raw``) plus features.parquet (``parquet=False`` to skip it).

    ``source``: "orchard" (default) lists ``input`` on the driver with Orchard's storage and
    lets executors fetch the images with the native client (local folders must then be
    visible to every executor at the same path); "binaryFile" reads them with
    ``spark.read.format("binaryFile")`` (any Hadoop file system the cluster has, e.g. EMRFS
    s3://; ``limit`` is not supported there). ``threads``: per task (see ModelOptions).
    Returns a summary like orchard.run's.
    """
    run_start = time.monotonic()
    validate(pca_components=pca_components, pca_variance=pca_variance, batch=batch,
             threads=threads, size=size, limit=limit, max_pixels=max_pixels)
    if source not in ("orchard", "binaryFile"):
        raise orchard.InvalidArgumentError("source must be 'orchard' or 'binaryFile'")
    if source == "binaryFile" and limit:
        raise orchard.InvalidArgumentError("limit is not supported with source='binaryFile'")
    spark = spark or SparkSession.builder.getOrCreate()
    options = ModelOptions(model=model, size=size, pooling=pooling, threads=threads,
                           max_pixels=max_pixels, backend=backend)
    timings: dict[str, float] = {}

    # The model first, on the driver: a wrong model fails before any job.
    t = time.monotonic()
    driver_model = options.featurizer()
    info = dict(driver_model.model_info)
    dim = int(driver_model.dim)
    del driver_model
    if pca_components > dim:
        raise orchard.InvalidArgumentError(
            f"pca_components {pca_components} is more than the descriptor dimension {dim}")
    timings["model_load"] = time.monotonic() - t

    staging = _Staging(output, s3_endpoint, work_dir)
    manifest: dict[str, Any] = {
        "status": "ok",
        "options": {"input": input, "output": output, "model": model, "backend": backend,
                    "precision": info["precision"], "size": size, "pooling": pooling,
                    "pca_components": pca_components,
                    "pca_variance": pca_variance, "batch": batch, "threads": threads,
                    "limit": limit, "save_raw": save_raw, "max_pixels": max_pixels,
                    "source": source},
        "model": cli_model_json(info),
        "versions": {**orchard.build_info(), "spark": spark.version},
    }
    if info.get("random_weights"):
        manifest["warnings"] = [f"model '{info['name']}' has RANDOM weights: descriptors are "
                                "not meaningful"]
    outcomes: DataFrame | None = None
    try:
        t = time.monotonic()
        if source == "orchard":
            listing = list_input(input, s3_endpoint=s3_endpoint, limit=limit)
            listed = len(listing.keys)
            list_errors = listing.list_errors()
            images = listing.images
            keys = keys_dataframe(spark, images, batch=batch, num_partitions=num_partitions)
            partitions = partitions_for(spark, len(images), batch, num_partitions)
            outcomes = featurize_keys(keys, input, options=options, s3_endpoint=s3_endpoint,
                                      read_threads=read_threads)
        else:
            files = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
                     .load(input))
            if num_partitions:
                files = files.repartition(num_partitions, "path")
            partitions = files.rdd.getNumPartitions()
            list_errors = []
            outcomes = featurize_binary_files(files, root=input, options=options, batch=batch)
            listed = -1  # counted below
        timings["list"] = time.monotonic() - t
        outcomes = outcomes.persist(StorageLevel.MEMORY_AND_DISK)

        t = time.monotonic()
        pca, processed = fit_pca(outcomes, dim, components=pca_components or None,
                                 variance=pca_variance or None, max_dim=max_pca_dim)
        timings["featurize_and_accumulate"] = time.monotonic() - t

        # errors.csv: listing failures (driver) merged with the executors' ones.
        t = time.monotonic()
        failed = 0
        with open(staging.path("errors.csv"), "w", encoding="utf-8", newline="") as f:
            f.write("path,stage,message\n")
            for path, stage, message in _errors(outcomes, list_errors, source == "orchard"):
                f.write(csv_line((path, stage, message)))
                failed += 1
        timings["errors"] = time.monotonic() - t
        if listed < 0:
            listed = processed + failed
        manifest["counts"] = {"listed": listed, "processed": processed, "failed": failed}
        manifest["spark"] = {"version": spark.version, "master": spark.sparkContext.master,
                             "app_id": spark.sparkContext.applicationId,
                             "default_parallelism": spark.sparkContext.defaultParallelism,
                             "partitions": partitions, "source": source}

        if pca is None:
            reason = ("no image could be processed" if processed == 0
                      else "PCA needs at least 2 images")
            manifest["status"] = "failed"
            manifest["failure"] = reason
            timings["total"] = time.monotonic() - run_start
            manifest["timings_seconds"] = timings
            _write_text(staging.path("manifest.json"), _dump_manifest(manifest))
            staging.publish(["errors.csv", "manifest.json"])
            if listed == 0:
                raise orchard.NotFoundError(f"no file found in {input}: nothing to process")
            what = ("no image could be processed" if processed == 0
                    else "only 1 image could be processed; PCA needs at least 2")
            raise orchard.InvalidArgumentError(
                f"{what} ({listed} listed, {failed} failed: see errors.csv in {output})")

        t = time.monotonic()
        k = int(pca.k)
        projected = transform(outcomes, pca, keep_features=save_raw)
        if source != "orchard":
            projected = projected.orderBy("path")
        chunks = projected.mapInArrow(_worker.render_fn(dim, k, save_raw, rows_per_chunk=4096),
                                      CHUNK_DDL)
        _write_matrix(chunks.toLocalIterator(prefetchPartitions=True), staging, n=processed,
                      k=k, dim=dim, save_raw=save_raw, parquet=parquet,
                      ordered_by_idx=source == "orchard")
        _write_text(staging.path("pca.json"), pca_json(pca, info))
        timings["project_and_write"] = time.monotonic() - t

        explained = float(np.sum(pca.explained_variance_ratio))
        manifest["pca"] = {"k": k, "dim": dim, "requested_components": pca_components,
                           "requested_variance": 0.0 if pca_components else
                           (pca_variance or 0.95),
                           "explained_variance_ratio_sum": explained}
        seconds = time.monotonic() - run_start
        timings["total"] = seconds
        manifest["timings_seconds"] = timings
        _write_text(staging.path("manifest.json"), _dump_manifest(manifest))
        staging.publish([*RESULT_FILES, "manifest.json"])
        return {"listed": listed, "processed": processed, "failed": failed, "dim": dim, "k": k,
                "explained_variance": explained, "seconds": seconds,
                "images_per_second": processed / seconds if seconds > 0 else 0.0,
                "model_name": info["name"], "random_weights": bool(info["random_weights"]),
                "output": output, "partitions": partitions,
                "warnings": manifest.get("warnings", [])}
    finally:
        if outcomes is not None:
            outcomes.unpersist()
        staging.cleanup()


def _dump_manifest(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


__all__ = [
    "ModelOptions", "Listing", "list_input", "keys_dataframe", "featurize_keys",
    "featurize_binary_files", "fit_pca", "transform", "run", "pca_json", "validate",
]
