"""Executor side of orchard.spark: the functions Spark runs in the Python worker processes.

Per-process caches. Loading a network costs 0.1-1 s and 15-550 MB; a Spark task lasts a few
seconds. So each Python worker process keeps the Featurizer (and the Storage client, and the
parsed PCA model) it built for the first task and reuses it for every later task with the
same options: Spark reuses Python workers between tasks (``spark.python.worker.reuse``,
true by default), and a worker runs one task at a time. The caches below are that per-process
state; they live only in executors' Python workers. Driver-side code (core.py) never touches
them and holds no global state. Keys are the full options, so two jobs with different models
in one application never share a network. A lock guards them in case a task is run from
several threads (Spark itself does not).

The factories (``commit_segments_fn``...) return closures over plain values only (strings,
numbers, tuples), never over an object with methods: that is what cloudpickle ships to the
executors, as xgboost's Spark code does ("to avoid the `self` object to be pickled").

Images are read and featurized by the C++ core (``Featurizer._featurize_keys``: the
storage's reader, then the same batch featurization as the pipeline's work units), so a
failure has the stage and message the CLI would give it.

Descriptor layout in DataFrames: ``features`` is an ``array<float>`` column of ``dim``
values; failed images have a null ``features`` and a ``stage`` and ``message`` as in
errors.csv.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

import orchard
from orchard import _orchard

_LOCK = threading.Lock()
_FEATURIZERS: dict[tuple[Any, ...], orchard.Featurizer] = {}
_STORAGES: dict[tuple[str, str | None], orchard.Storage] = {}
_PCA_MODELS: dict[str, orchard.PcaModel] = {}  # at most a few: keyed by the model's JSON text

# Arrow schemas of what the functions below yield (Spark DDL twins are in core.py).
FEATURES_TYPE = pa.list_(pa.float32())
OUTCOME_SCHEMA = pa.schema([
    ("idx", pa.int64()),
    ("path", pa.string()),
    ("label", pa.string()),
    ("features", FEATURES_TYPE),
    ("stage", pa.string()),
    ("message", pa.string()),
])
ACCUMULATOR_SCHEMA = pa.schema([("count", pa.int64()), ("accumulator", pa.binary())])

# The "list" failure of a listed object whose name is not an image's (the core's text).
NOT_AN_IMAGE = "not an image file name (accepted: .jpg .jpeg .png .webp .bmp)"

Unit = tuple[int, Sequence[tuple[str, str]]]  # (unit number, [(key, content id)])


def featurizer(options: tuple[Any, ...]) -> orchard.Featurizer:
    """This process's Featurizer for ``options`` (ModelOptions.as_tuple()), built on first
    use."""
    with _LOCK:
        f = _FEATURIZERS.get(options)
        if f is None:
            model, size, pooling, threads, max_pixels, backend, precision, dct = options
            f = orchard.Featurizer(model=model, size=size, pooling=pooling, threads=threads,
                                   max_pixels=max_pixels, backend=backend, precision=precision,
                                   jpeg_dct_scaling=dct)
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


def _featurize_unit(f: orchard.Featurizer, s: orchard.Storage, keys: list[str],
                    read_threads: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
    """(indices, features, errors) of one unit read from ``s``, as Featurizer.featurize."""
    return f._featurize_keys(s, keys, max(1, min(read_threads, len(keys))))


# ---- the run's featurize job ----------------------------------------------------------------


def commit_segments_fn(location: str, s3_endpoint: str | None, options: tuple[Any, ...],
                       read_threads: int, output: str, generation: int, dim: int
                       ) -> Callable[[Iterable[Unit]], Iterator[tuple[str, int, int]]]:
    """mapPartitions function of ``run``: featurizes the partition's units (consecutive
    images of the pending list, ``batch`` per unit, as the CLI's work units) and commits
    them to the descriptor store of ``output`` as one segment named after generation and
    the partition's first unit. The name is a function of the partition's content, so a
    retried or speculative task replaces the segment instead of adding rows. Yields one
    (segment name, images, failed)."""

    def run(units: Iterable[Unit]) -> Iterator[tuple[str, int, int]]:
        f = featurizer(options)
        s = storage(location, s3_endpoint)
        first: int | None = None
        items: list[tuple[str, str, int, str | None, str | None]] = []
        blocks: list[np.ndarray] = []
        rows = 0
        failed = 0
        for number, images in units:
            if first is None:
                first = number
            keys = [key for key, _ in images]
            indices, features, errors = _featurize_unit(f, s, keys, read_threads)
            good = set(indices.tolist())
            why = {index: (stage, message) for index, stage, message in errors}
            for i, (key, content_id) in enumerate(images):
                if i in good:  # indices ascend, so descriptor rows follow item order
                    items.append((key, content_id, rows, None, None))
                    rows += 1
                else:
                    stage, message = why[i]
                    items.append((key, content_id, -1, stage, message))
                    failed += 1
            blocks.append(features)
        if first is None:
            return
        descriptors = (np.concatenate(blocks) if blocks else np.empty((0, dim), np.float32))
        name = _orchard._segment_name(generation, first)
        _orchard._commit_segment(output, s3_endpoint, name, dim, items, descriptors)
        yield name, len(items), failed

    return run


# ---- DataFrame building blocks --------------------------------------------------------------


def _features_column(n: int, good: Sequence[int], features: np.ndarray) -> pa.Array:
    """An array<float> column of n rows: features[j] at row good[j], null elsewhere."""
    dim = features.shape[1] if features.ndim == 2 else 0
    has = np.zeros(n, dtype=bool)
    has[list(good)] = True
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.where(has, dim, 0), out=offsets[1:])
    values = pa.array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1), pa.float32())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=FEATURES_TYPE,
                                    mask=pa.array(~has))


def _outcome_batch(idx: Sequence[int], paths: Sequence[str], features: pa.Array,
                   stages: list[str | None], messages: list[str | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(idx, pa.int64()), pa.array(paths, pa.string()),
         pa.array([orchard.label_of(p) for p in paths], pa.string()), features,
         pa.array(stages, pa.string()), pa.array(messages, pa.string())],
        schema=OUTCOME_SCHEMA)


def _outcomes(n: int, indices: np.ndarray, features: np.ndarray,
              errors: Iterable[tuple[int, str, str]]
              ) -> tuple[pa.Array, list[str | None], list[str | None]]:
    stages: list[str | None] = [None] * n
    messages: list[str | None] = [None] * n
    for index, stage, message in errors:
        stages[index], messages[index] = stage, message
    return _features_column(n, indices.tolist(), features), stages, messages


def featurize_keys_fn(location: str, s3_endpoint: str | None, options: tuple[Any, ...],
                      read_threads: int
                      ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: (idx, path, unit) rows of image keys relative to ``location`` ->
    OUTCOME_SCHEMA. Rows of one unit (consecutive images, as the CLI batches them) are
    featurized together; a partition holds whole units (keys_dataframe makes them so)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        f = featurizer(options)
        s = storage(location, s3_endpoint)
        unit_idx: list[int] = []
        unit_paths: list[str] = []
        current_unit = None

        def process() -> pa.RecordBatch:
            indices, features, errors = _featurize_unit(f, s, unit_paths, read_threads)
            return _outcome_batch(unit_idx, unit_paths,
                                  *_outcomes(len(unit_paths), indices, features, errors))

        for batch in batches:
            for i, p, u in zip(batch.column("idx").to_pylist(), batch.column("path").to_pylist(),
                               batch.column("unit").to_pylist()):
                if unit_idx and u != current_unit:
                    yield process()
                    unit_idx, unit_paths = [], []
                current_unit = u
                unit_idx.append(i)
                unit_paths.append(p)
        if unit_idx:
            yield process()

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
                named = [j for j, p in enumerate(paths) if orchard.has_image_extension(p)]
                result = f.featurize([content[start + j].as_py() for j in named])
                indices = np.array([named[i] for i in result.indices.tolist()], dtype=np.int64)
                errors = [(named[e.index], e.stage, e.message) for e in result.errors]
                image_names = set(named)
                errors += [(j, "list", NOT_AN_IMAGE) for j in range(len(paths))
                           if j not in image_names]
                yield _outcome_batch([-1] * len(paths), paths,
                                     *_outcomes(len(paths), indices, result.features, errors))

    return run


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


def features_matrix(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """(n, dim) float32 matrix of an array<float> column of n non-null rows of dim values."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    if n == 0:
        return np.empty((0, dim), np.float32)
    if column.null_count:
        raise ValueError("descriptor column holds nulls")
    offsets = column.offsets.to_numpy()
    if not np.all(np.diff(offsets) == dim):
        raise ValueError(f"descriptor rows are not {dim} float values")
    values = column.values.slice(int(offsets[0]), n * dim)
    return values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, dim)


def accumulate_fn(dim: int, max_dim: int
                  ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function: descriptor rows -> one row (count, accumulator bytes) per
    non-empty partition."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        acc = orchard.PcaAccumulator(dim, max_dim=max_dim)
        for b in batches:
            x = features_matrix(b.column("features"), dim)
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
                       ([("features", FEATURES_TYPE)] if keep_features else []))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = pca_model(model_json.value)
        for b in batches:
            x = features_matrix(b.column("features"), dim)
            y = model.transform(x) if len(x) else np.empty((0, k), np.float32)
            cols = [b.column("idx"), b.column("path"), b.column("label")]
            cols += [pa.array(y[:, j]) for j in range(k)]
            if keep_features:
                cols.append(b.column("features").cast(FEATURES_TYPE))
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    return run
