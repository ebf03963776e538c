"""Executor side of orchard.spark: the functions Spark runs on Arrow batches, in the Python
worker processes.

Per-process caches. Loading a network costs 0.1-1 s and 15-550 MB; a Spark task lasts a few
seconds. So each Python worker process keeps the Featurizer (and the Storage client, and the
parsed PCA model) it built for the first task and reuses it for every later task with the
same options: Spark reuses Python workers between tasks (``spark.python.worker.reuse``,
true by default), and a worker runs one task at a time. The caches below are that per-process
state; they live only in executors' Python workers. Driver-side code (core.py) never touches
them and holds no global state. Keys are the full options, so two jobs with different models
in one application never share a network. A lock guards them in case a task is run from
several threads (Spark itself does not).

The factories (``featurize_keys_fn``...) return closures over plain values only (strings,
numbers, tuples), never over an object with methods: that is what cloudpickle ships to the
executors, as xgboost's Spark code does ("to avoid the `self` object to be pickled").

Descriptor layout: ``features`` is a binary column holding one float32 little-endian row of
``dim`` values (4 * dim bytes); failed images have a null ``features`` and a ``stage`` and
``message`` as in errors.csv.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

import orchard

from .formatting import csv_rows

_LOCK = threading.Lock()
_FEATURIZERS: dict[tuple[Any, ...], orchard.Featurizer] = {}
_STORAGES: dict[tuple[str, str | None], orchard.Storage] = {}
_PCA_MODELS: dict[str, orchard.PcaModel] = {}  # at most a few: keyed by the model's JSON text

# Arrow schemas of what the functions below yield (Spark DDL twins are in core.py).
OUTCOME_SCHEMA = pa.schema([
    ("idx", pa.int64()),
    ("path", pa.string()),
    ("label", pa.string()),
    ("features", pa.binary()),
    ("stage", pa.string()),
    ("message", pa.string()),
])
ACCUMULATOR_SCHEMA = pa.schema([("count", pa.int64()), ("accumulator", pa.binary())])
CHUNK_SCHEMA = pa.schema([
    ("first_idx", pa.int64()),
    ("rows", pa.int64()),
    ("csv", pa.binary()),
    ("npy", pa.binary()),
    ("raw", pa.binary()),
    ("paths", pa.binary()),  # Arrow IPC stream of (path, label): for Parquet on the driver
])

# Status::ToString() puts "code_name: " before the message; errors.csv, like the CLI, keeps
# only the message.
_STATUS_PREFIX = re.compile(
    r"^(invalid_argument|not_found|io_error|corrupt_data|unsupported|resource_exhausted|"
    r"cancelled|internal): ")


def featurizer(options: tuple[Any, ...]) -> orchard.Featurizer:
    """This process's Featurizer for ``options`` = (model, size, pooling, threads,
    max_pixels, backend), built on first use."""
    with _LOCK:
        f = _FEATURIZERS.get(options)
        if f is None:
            model, size, pooling, threads, max_pixels, backend = options
            f = orchard.Featurizer(model=model, size=size, pooling=pooling, threads=threads,
                                   max_pixels=max_pixels, backend=backend)
            _FEATURIZERS[options] = f
        return f


def storage(location: str, s3_endpoint: str | None) -> orchard.Storage:
    with _LOCK:
        key = (location, s3_endpoint)
        s = _STORAGES.get(key)
        if s is None:
            s = orchard.Storage(location, s3_endpoint=s3_endpoint)
            _STORAGES[key] = s
        return s


def pca_model(model_json: str) -> orchard.PcaModel:
    with _LOCK:
        m = _PCA_MODELS.get(model_json)
        if m is None:
            if len(_PCA_MODELS) >= 4:
                _PCA_MODELS.clear()
            m = orchard.PcaModel.from_json(model_json)
            _PCA_MODELS[model_json] = m
        return m


def _read_many(s: orchard.Storage, keys: list[str], threads: int
               ) -> tuple[list[bytes | None], list[str | None]]:
    images, errors = s.read_many(keys, threads=threads)
    return list(images), list(errors)


def _outcome_batch(idx: Sequence[int], paths: Sequence[str], features: list[bytes | None],
                   stages: list[str | None], messages: list[str | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(idx, pa.int64()), pa.array(paths, pa.string()),
         pa.array([orchard.label_of(p) for p in paths], pa.string()),
         pa.array(features, pa.binary()), pa.array(stages, pa.string()),
         pa.array(messages, pa.string())],
        schema=OUTCOME_SCHEMA)


def _featurize_unit(f: orchard.Featurizer, images: list[bytes | None],
                    read_errors: list[str | None]) -> tuple[list[bytes | None], list[str | None],
                                                           list[str | None]]:
    """Descriptors of one unit; images[i] is None when it could not be read."""
    n = len(images)
    features: list[bytes | None] = [None] * n
    stages: list[str | None] = [None] * n
    messages: list[str | None] = [None] * n
    readable = [i for i in range(n) if images[i] is not None]
    for i in range(n):
        if images[i] is None:
            stages[i] = "read"
            messages[i] = _STATUS_PREFIX.sub("", read_errors[i] or "unreadable")
    if readable:
        result = f.featurize([images[i] for i in readable])
        rows = np.ascontiguousarray(result.features, dtype="<f4")
        for row, j in zip(rows, result.indices.tolist()):
            features[readable[j]] = row.tobytes()
        for e in result.errors:
            i = readable[e.index]
            stages[i] = e.stage
            messages[i] = e.message
    return features, stages, messages


def featurize_keys_fn(location: str, s3_endpoint: str | None, options: tuple[Any, ...],
                      read_threads: int, rows_per_batch: int
                      ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: (idx, path, unit) rows of image keys relative to ``location`` ->
    OUTCOME_SCHEMA. Rows of one unit (consecutive images, as the CLI batches them) are
    featurized together; a partition holds whole units (core.py makes them so)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        f = featurizer(options)
        s = storage(location, s3_endpoint)
        out: list[tuple[list[int], list[str], list[bytes | None], list[str | None],
                        list[str | None]]] = []
        out_rows = 0

        def process(idx: list[int], paths: list[str]) -> None:
            nonlocal out_rows
            images, errors = _read_many(s, paths, max(1, min(read_threads, len(paths))))
            out.append((idx, paths, *_featurize_unit(f, images, errors)))
            out_rows += len(idx)

        def flush() -> Iterator[pa.RecordBatch]:
            nonlocal out_rows
            if out:
                cols = [sum((o[c] for o in out), []) for c in range(5)]
                out.clear()
                out_rows = 0
                yield _outcome_batch(*cols)

        unit_idx: list[int] = []
        unit_paths: list[str] = []
        current_unit = None
        for batch in batches:
            for i, p, u in zip(batch.column("idx").to_pylist(), batch.column("path").to_pylist(),
                               batch.column("unit").to_pylist()):
                if unit_idx and u != current_unit:
                    process(unit_idx, unit_paths)
                    unit_idx, unit_paths = [], []
                    if out_rows >= rows_per_batch:
                        yield from flush()
                current_unit = u
                unit_idx.append(i)
                unit_paths.append(p)
        if unit_idx:
            process(unit_idx, unit_paths)
        yield from flush()

    return run


def featurize_content_fn(root: str, options: tuple[Any, ...], batch: int
                         ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function for ``spark.read.format("binaryFile")`` rows (path, content):
    -> OUTCOME_SCHEMA with idx = -1 and the path made relative to ``root`` (a prefix of
    every path, e.g. 'file:/data/fruits/' or 's3a://bucket/fruits/'; '' keeps full paths).
    Files whose name is not an image's fail with stage 'list', as in the CLI."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        f = featurizer(options)
        for b in batches:
            full = b.column("path").to_pylist()
            content = b.column("content")
            for start in range(0, len(full), batch):
                stop = min(start + batch, len(full))
                paths = [relative_path(p, root) for p in full[start:stop]]
                named = [bool(orchard.has_image_extension(p)) for p in paths]
                # Files whose name is not an image's never reach the decoder.
                images = [content[start + j].as_py() if named[j] else None
                          for j in range(len(paths))]
                read_errors = [None if image is not None else "no content" for image in images]
                features, stages, messages = _featurize_unit(f, images, read_errors)
                for j in range(len(paths)):
                    if not named[j]:
                        stages[j], messages[j] = "list", NOT_AN_IMAGE
                yield _outcome_batch([-1] * len(paths), paths, features, stages, messages)

    return run


NOT_AN_IMAGE = "not an image file name (accepted: .jpg .jpeg .png .webp .bmp)"


def relative_path(path: str, root: str) -> str:
    """``path`` without the ``root`` prefix. Hadoop spells local files 'file:/x' and users
    'file:///x' or '/x': those are made to agree first."""
    if not root:
        return path
    p, r = _normalize_uri(path), _normalize_uri(root)
    if not r.endswith("/"):
        r += "/"
    if not p.startswith(r):
        raise ValueError(f"path {path!r} is not below the root {root!r}")
    return p[len(r):]


def _normalize_uri(u: str) -> str:
    if u.startswith("file:///"):
        return "/" + u[len("file:///"):]
    if u.startswith("file:/"):
        return "/" + u[len("file:/"):].lstrip("/")
    return u


def _features_matrix(column: pa.Array, dim: int) -> np.ndarray:
    """(n, dim) float32 view of a binary column of n non-null float32 rows."""
    n = len(column)
    if n == 0:
        return np.empty((0, dim), np.float32)
    if column.null_count:
        raise ValueError("descriptor column holds nulls")
    column = column.cast(pa.binary()) if column.type != pa.binary() else column
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32, count=n + 1,
                            offset=column.offset * 4)
    if not np.all(np.diff(offsets) == 4 * dim):
        raise ValueError(f"descriptor rows are not {dim} float32 values")
    data = np.frombuffer(column.buffers()[2], dtype="<f4", count=n * dim, offset=int(offsets[0]))
    return data.reshape(n, dim)


def accumulate_fn(dim: int, max_dim: int
                  ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: descriptor rows -> one row (count, accumulator bytes) per
    non-empty partition."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        acc = orchard.PcaAccumulator(dim, max_dim=max_dim)
        for b in batches:
            x = _features_matrix(b.column("features"), dim)
            if len(x):
                acc.update(x)
        if acc.count:
            yield pa.RecordBatch.from_arrays(
                [pa.array([acc.count], pa.int64()), pa.array([acc.to_bytes()], pa.binary())],
                schema=ACCUMULATOR_SCHEMA)

    return run


def merge_accumulators(a: bytes, b: bytes) -> bytes:
    """treeReduce's operator: both sides are PcaAccumulator.to_bytes()."""
    left = orchard.PcaAccumulator.from_bytes(a)
    left.merge(orchard.PcaAccumulator.from_bytes(b))
    return left.to_bytes()


def transform_fn(model_json: Any, dim: int, k: int, keep_features: bool
                 ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: (idx, path, label, features) -> (idx, path, label, pc_1..pc_k
    float32[, features]). ``model_json`` is a Broadcast of PcaModel.to_json()."""
    names = [f"pc_{j}" for j in range(1, k + 1)]
    schema = pa.schema([("idx", pa.int64()), ("path", pa.string()), ("label", pa.string())] +
                       [(n, pa.float32()) for n in names] +
                       ([("features", pa.binary())] if keep_features else []))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = pca_model(model_json.value)
        for b in batches:
            x = _features_matrix(b.column("features"), dim)
            y = model.transform(x) if len(x) else np.empty((0, k), np.float32)
            cols = [b.column("idx"), b.column("path"), b.column("label")]
            cols += [pa.array(y[:, j]) for j in range(k)]
            if keep_features:
                cols.append(b.column("features"))
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    return run


def render_fn(dim: int, k: int, save_raw: bool, rows_per_chunk: int
              ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: transformed rows (idx, path, label, pc_1..pc_k[, features]) in
    output order -> CHUNK_SCHEMA rows holding the exact bytes of features.csv lines and
    features.npy (raw.npy) data for up to ``rows_per_chunk`` rows, so the formatting work is
    spread over the executors and the driver only concatenates."""
    names = [f"pc_{j}" for j in range(1, k + 1)]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            for start in range(0, b.num_rows, rows_per_chunk):
                part = b.slice(start, rows_per_chunk)
                paths = part.column("path").to_pylist()
                labels = part.column("label").to_pylist()
                y = np.column_stack([part.column(n).to_numpy(zero_copy_only=False) for n in names]
                                    ).astype("<f4", copy=False) if k else np.empty((len(paths), 0))
                raw = b""
                if save_raw:
                    raw = _features_matrix(part.column("features"), dim).tobytes()
                sink = pa.BufferOutputStream()
                names_batch = pa.RecordBatch.from_arrays(
                    [part.column("path"), part.column("label")], names=["path", "label"])
                with pa.ipc.new_stream(sink, names_batch.schema) as w:
                    w.write_batch(names_batch)
                first = part.column("idx")[0].as_py() if part.num_rows else -1
                yield pa.RecordBatch.from_arrays(
                    [pa.array([first], pa.int64()), pa.array([part.num_rows], pa.int64()),
                     pa.array([csv_rows(paths, labels, y).encode("utf-8")], pa.binary()),
                     pa.array([np.ascontiguousarray(y, dtype="<f4").tobytes()], pa.binary()),
                     pa.array([raw], pa.binary()),
                     pa.array([sink.getvalue().to_pybytes()], pa.binary())],
                    schema=CHUNK_SCHEMA)

    return run
