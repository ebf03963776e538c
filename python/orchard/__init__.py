"""Orchard: image collections to CNN descriptors and exact streaming PCA.

The same C++ core as the ``orchard`` CLI, through a pybind11 module (``orchard._orchard``).
This file keeps Python thin, as faiss does: it checks dtypes and shapes before a call
crosses into C++ and gives the results their Python types; everything else is the core.

Layout contract: a matrix of n vectors of dimension d is an (n, d) array; the C++ side
receives it as a C-contiguous float32 buffer (row i, column j at ``x[i * d + j]``).

Thread safety: a ``Featurizer`` or ``PcaAccumulator`` may be shared between threads (calls
on one object are serialised), but for parallel work use one per thread or process; a
``PcaModel`` is immutable and ``transform`` runs concurrently. Long calls release the GIL.
Errors are ``OrchardError`` subclasses (see docs/python.md); a bad image is not an error
but an ``ImageError`` record of ``featurize``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Union

import numpy as np

from . import _orchard
from ._orchard import (
    CancelledError,
    CorruptDataError,
    Featurizer,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OrchardError,
    PcaAccumulator,
    PcaModel,
    ResourceExhaustedError,
    ResultRows,
    ResultSink,
    SinkContext,
    Storage,
    StorageError,
    UnsupportedError,
    UsageError,
    build_info,
    check_writable,
    has_image_extension,
    label_of,
    list_models,
    model_search_path,
    upload_file,
)
from ._types import FeaturizeResult, ImageError

__version__: str = _orchard.__version__

__all__ = [
    "__version__",
    "OrchardError",
    "InvalidArgumentError",
    "UsageError",
    "NotFoundError",
    "StorageError",
    "CorruptDataError",
    "UnsupportedError",
    "ResourceExhaustedError",
    "CancelledError",
    "InternalError",
    "Featurizer",
    "FeaturizeResult",
    "ImageError",
    "PcaAccumulator",
    "PcaModel",
    "Storage",
    "ResultSink",
    "ResultRows",
    "SinkContext",
    "run",
    "update",
    "upload_file",
    "check_writable",
    "has_image_extension",
    "label_of",
    "build_info",
    "list_models",
    "model_search_path",
    "DEFAULT_MAX_PIXELS",
    "RUN_DEFAULTS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
]

# The defaults of a run's options, from the core (a default-constructed PipelineOptions):
# run(), update() and orchard.spark take theirs from here, so each lives in one place.
RUN_DEFAULTS: Dict[str, Any] = dict(_orchard.RUN_DEFAULTS)
# The core's default decompression-bomb guard (Pillow's MAX_IMAGE_PIXELS).
DEFAULT_MAX_PIXELS: int = RUN_DEFAULTS["max_pixels"]

# The models/ folder the wheel ships (mobilenet_v2): searched after $ORCHARD_MODEL_PATH.
_PACKAGE_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
if os.path.isdir(_PACKAGE_MODELS):
    _orchard._add_model_search_dir(_PACKAGE_MODELS)


def _onnxruntime_library() -> Optional[str]:
    """The libonnxruntime.so for the core: the copy the package bundles (the manylinux wheel
    of deploy/build-wheel ships one in orchard/_onnxruntime/ and does not depend on the
    onnxruntime package), else the one of the installed onnxruntime package (a dependency of
    a wheel built from source), found without importing it: importing would load a second
    copy of ONNX Runtime into the process."""
    import glob
    import importlib.util

    bundled = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "_onnxruntime", "libonnxruntime.so*")))
    if bundled:
        return bundled[-1]
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(folder, "capi", "libonnxruntime.so*")))
        if found:
            return found[-1]
    return None


# $ORCHARD_ONNXRUNTIME_LIB, when set, wins over both copies (the core reads it).
if not os.environ.get("ORCHARD_ONNXRUNTIME_LIB"):
    _ort_library = _onnxruntime_library()
    if _ort_library:
        _orchard._set_onnxruntime_library(_ort_library)

DEFAULT_BACKEND: str = _orchard.DEFAULT_BACKEND
DEFAULT_MODEL: str = _orchard.DEFAULT_MODEL

ImageLike = Union[bytes, bytearray, memoryview, np.ndarray]
ProgressCallback = Callable[[Dict[str, Any]], None]


def _shape_error(where: str, dim: int, shape: tuple) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{where}: expected a 2-D array of shape (n, {dim}), got shape {tuple(shape)}"
    )


def _as_matrix(x: Any, dim: int, where: str) -> np.ndarray:
    """x as a C-contiguous float32 (n, dim) array; shapes are checked before any copy."""
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != dim:
        raise _shape_error(where, dim, a.shape)
    return np.ascontiguousarray(a, dtype=np.float32)


# ---- Featurizer ---------------------------------------------------------------------------


def _featurize(self: Featurizer, images: Iterable[ImageLike]) -> FeaturizeResult:
    """Descriptors for a batch of encoded images (JPEG, PNG, WebP or BMP file contents).

    Every position ends up in exactly one of ``result.indices`` and ``result.errors``: a
    corrupt, unsupported or too large image is an ``ImageError``, never an exception.
    Raises TypeError if an element is not bytes-like (bytes, bytearray, memoryview, a uint8
    numpy array of the file's bytes). Decoding and inference run without the GIL.
    """
    if isinstance(images, (bytes, bytearray, memoryview, str)) or (
        isinstance(images, np.ndarray) and images.dtype != object
    ):
        raise TypeError(
            "featurize() takes a sequence of images (e.g. a list of bytes); "
            "wrap a single image in a list"
        )
    items = list(images)
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8:
                raise TypeError(
                    f"image {i}: numpy array of dtype {item.dtype}; expected uint8 (the encoded "
                    "file's bytes, not decoded pixels)"
                )
            if not item.flags.c_contiguous:
                items[i] = np.ascontiguousarray(item)
    indices, features, errors = self._featurize(items)
    return FeaturizeResult(indices, features, [ImageError(*e) for e in errors])


Featurizer.featurize = _featurize  # type: ignore[attr-defined]

# ---- PCA ----------------------------------------------------------------------------------


def _pca_update(self: PcaAccumulator, x: Any) -> PcaAccumulator:
    """Adds the rows of x, an (n, dim) array-like (converted to float32); returns self.

    A non-finite value raises InvalidArgumentError naming its row and column, and leaves the
    accumulator unchanged.
    """
    self._update(_as_matrix(x, self.dim, "PcaAccumulator.update"))
    return self


def _pca_transform(self: PcaModel, x: Any) -> np.ndarray:
    """(x - mean) @ components.T in float64, returned as float32 of shape (n, k)."""
    return self._transform(_as_matrix(x, self.dim, "PcaModel.transform"))


PcaAccumulator.update = _pca_update  # type: ignore[attr-defined]
PcaModel.transform = _pca_transform  # type: ignore[attr-defined]

# ---- Pipeline -----------------------------------------------------------------------------


def _output_mode(resume: bool, overwrite: bool) -> str:
    """The run's OutputMode name for the resume/overwrite flags of run()."""
    if resume and overwrite:
        raise InvalidArgumentError("give either resume or overwrite, not both")
    return "resume" if resume else "overwrite" if overwrite else "new"


def _run_with_sinks(input: str, output: str, *, mode: str, progress: Optional[ProgressCallback],
                    sinks: Sequence[ResultSink], parquet: bool, stacklevel: int,
                    **options: Any) -> Dict[str, Any]:
    all_sinks = list(sinks)
    if parquet:
        from .sinks import ParquetSink

        all_sinks.append(ParquetSink())
    summary = _orchard._run(input, output, progress=progress, sinks=all_sinks, mode=mode,
                            **options)
    for message in summary["warnings"]:
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
    return summary


def run(
    input: str,
    output: str,
    *,
    model: str = RUN_DEFAULTS["model"],
    size: int = RUN_DEFAULTS["size"],
    pooling: Optional[str] = RUN_DEFAULTS["pooling"],
    pca_components: int = RUN_DEFAULTS["pca_components"],
    pca_variance: float = RUN_DEFAULTS["pca_variance"],
    batch: int = RUN_DEFAULTS["batch"],
    threads: int = RUN_DEFAULTS["threads"],
    limit: int = RUN_DEFAULTS["limit"],
    save_raw: bool = RUN_DEFAULTS["save_raw"],
    max_pixels: int = RUN_DEFAULTS["max_pixels"],
    s3_endpoint: Optional[str] = RUN_DEFAULTS["s3_endpoint"],
    work_dir: str = RUN_DEFAULTS["work_dir"],
    backend: str = RUN_DEFAULTS["backend"],
    max_pca_dim: int = RUN_DEFAULTS["max_pca_dim"],
    progress: Optional[ProgressCallback] = None,
    precision: str = RUN_DEFAULTS["precision"],
    jpeg_dct_scaling: bool = RUN_DEFAULTS["jpeg_dct_scaling"],
    resume: bool = False,
    overwrite: bool = False,
    commit_images: int = RUN_DEFAULTS["commit_images"],
    commit_seconds: float = RUN_DEFAULTS["commit_seconds"],
    sinks: Sequence[ResultSink] = (),
    parquet: bool = False,
) -> Dict[str, Any]:
    """Runs the whole chain, as ``orchard run`` does, and returns its summary.

    ``input`` and ``output`` are local folders or s3:// prefixes; the output holds
    features.csv, features.npy, pca.json, errors.csv, manifest.json (and raw.npy with
    ``save_raw``, features.parquet with ``parquet``, and what ``sinks`` write), plus the
    descriptor store ``_orchard/``. Give at most one of ``pca_components`` and
    ``pca_variance`` (neither: variance 0.95).

    An output that is not empty is refused unless ``resume`` (continue the run whose
    descriptor store is there: stored images are not featurized again) or ``overwrite``
    (delete Orchard's files there first). Descriptors are committed to the store at least
    every ``commit_images`` images or ``commit_seconds`` seconds: the most work a crash can
    lose. See also ``update``.

    ``sinks``: more output formats, ``ResultSink`` objects (orchard.sinks). S3 settings come
    from the environment (AWS_*), ``s3_endpoint`` overrides the endpoint. ``progress``, if
    given, is called between batches with a dict (phase, total, processed, failed,
    elapsed_seconds); an exception it raises, an exception in a sink, or Ctrl-C, stops the
    run and is re-raised. Run-level warnings (e.g. random weights) are issued as
    RuntimeWarning and listed in the summary's ``warnings``. The summary also counts the
    images ``reused`` from the store and ``featurized`` by this run. The GIL is released
    while the run works. Defaults are the core's (``RUN_DEFAULTS``).
    """
    return _run_with_sinks(
        input, output, mode=_output_mode(resume, overwrite), progress=progress, sinks=sinks,
        parquet=parquet, stacklevel=2, model=model, size=size, pooling=pooling,
        pca_components=pca_components, pca_variance=pca_variance, batch=batch, threads=threads,
        limit=limit, save_raw=save_raw, max_pixels=max_pixels, s3_endpoint=s3_endpoint,
        work_dir=work_dir, backend=backend, max_pca_dim=max_pca_dim, precision=precision,
        jpeg_dct_scaling=jpeg_dct_scaling, commit_images=commit_images,
        commit_seconds=commit_seconds,
    )


def update(
    input: str,
    output: str,
    *,
    model: str = RUN_DEFAULTS["model"],
    size: int = RUN_DEFAULTS["size"],
    pooling: Optional[str] = RUN_DEFAULTS["pooling"],
    pca_components: int = RUN_DEFAULTS["pca_components"],
    pca_variance: float = RUN_DEFAULTS["pca_variance"],
    batch: int = RUN_DEFAULTS["batch"],
    threads: int = RUN_DEFAULTS["threads"],
    limit: int = RUN_DEFAULTS["limit"],
    save_raw: bool = RUN_DEFAULTS["save_raw"],
    max_pixels: int = RUN_DEFAULTS["max_pixels"],
    s3_endpoint: Optional[str] = RUN_DEFAULTS["s3_endpoint"],
    work_dir: str = RUN_DEFAULTS["work_dir"],
    backend: str = RUN_DEFAULTS["backend"],
    max_pca_dim: int = RUN_DEFAULTS["max_pca_dim"],
    progress: Optional[ProgressCallback] = None,
    precision: str = RUN_DEFAULTS["precision"],
    jpeg_dct_scaling: bool = RUN_DEFAULTS["jpeg_dct_scaling"],
    commit_images: int = RUN_DEFAULTS["commit_images"],
    commit_seconds: float = RUN_DEFAULTS["commit_seconds"],
    sinks: Sequence[ResultSink] = (),
    parquet: bool = False,
) -> Dict[str, Any]:
    """Brings the result in ``output`` (made by ``run``) up to date with ``input`` as it is
    now, as ``orchard update`` does: only new or changed images are featurized, deleted ones
    are dropped, the exact PCA is refitted and every output rewritten. The options are
    ``run``'s and must make the same descriptors (same model, size, pooling...): other
    settings are refused. Returns the summary, as ``run``."""
    return _run_with_sinks(
        input, output, mode="update", progress=progress, sinks=sinks, parquet=parquet,
        stacklevel=2, model=model, size=size, pooling=pooling, pca_components=pca_components,
        pca_variance=pca_variance, batch=batch, threads=threads, limit=limit,
        save_raw=save_raw, max_pixels=max_pixels, s3_endpoint=s3_endpoint, work_dir=work_dir,
        backend=backend, max_pca_dim=max_pca_dim, precision=precision,
        jpeg_dct_scaling=jpeg_dct_scaling, commit_images=commit_images,
        commit_seconds=commit_seconds,
    )
