"""orchard.spark: Orchard's chain (images -> CNN descriptors -> exact PCA -> matrix) on an
Apache Spark cluster, with the same numbers and the same output files as ``orchard run``.

    from orchard.spark import run
    run("s3://bucket/fruits/Training", "s3://bucket/runs/1", spark=spark, pca_variance=0.95)

or ``spark-submit -m orchard.spark run --input ... --output ...`` (see ``__main__``), or the
building blocks: ``list_input`` + ``keys_dataframe`` + ``featurize_keys`` (images fetched by
the executors with Orchard's S3 client), ``featurize_binary_files`` (a
``spark.read.format("binaryFile")`` DataFrame), ``fit_pca`` (per-partition accumulators
merged with treeReduce), ``transform``. See docs/spark.md.

Executors need the ``orchard`` package (same version as the driver) in the Python that
PYSPARK_PYTHON names, and the model presets it ships or $ORCHARD_MODEL_PATH.
"""

from __future__ import annotations

from .core import (
    Listing,
    ModelOptions,
    featurize_binary_files,
    featurize_keys,
    fit_pca,
    keys_dataframe,
    list_input,
    pca_json,
    run,
    transform,
)
from .formatting import csv_field, format_float32

__all__ = [
    "Listing",
    "ModelOptions",
    "csv_field",
    "featurize_binary_files",
    "featurize_keys",
    "fit_pca",
    "format_float32",
    "keys_dataframe",
    "list_input",
    "pca_json",
    "run",
    "transform",
]
