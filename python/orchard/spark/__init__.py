"""orchard.spark: Orchard's run (images -> CNN descriptors -> exact PCA -> matrix) with its
featurization spread over an Apache Spark cluster; the outputs are written by the same C++
code as ``orchard run``.

    from orchard.spark import run
    run("s3://bucket/fruits/Training", "s3://bucket/runs/1", spark=spark, pca_variance=0.95)

or ``spark-submit -m orchard.spark run --input ... --output ...`` (see ``__main__``;
``--resume`` continues an interrupted run, ``update`` brings a result up to date), or the
building blocks for pipelines that continue in Spark ML: ``list_input`` + ``keys_dataframe``
+ ``featurize_keys`` (images fetched by the executors with Orchard's S3 client),
``featurize_binary_files`` (a ``spark.read.format("binaryFile")`` DataFrame), ``fit_pca``
(per-partition accumulators merged with treeReduce), ``transform``. See docs/spark.md.

Executors need the ``orchard`` package (same version as the driver) in the Python that
spark.pyspark.python or PYSPARK_PYTHON names, and the model presets it ships or
$ORCHARD_MODEL_PATH. ``run`` and the building blocks check the first with a tiny job
(``check_executors``) and raise ``ExecutorEnvironmentError`` (an OrchardError) saying what
to fix. ``featurize_*`` and ``transform`` give descriptors as array<float>, or as Spark ML
vectors with ``features_type="vector"``.
"""

from __future__ import annotations

from .core import (
    ExecutorEnvironmentError,
    Listing,
    ModelOptions,
    check_executors,
    featurize_binary_files,
    featurize_keys,
    fit_pca,
    keys_dataframe,
    list_input,
    run,
    transform,
    update,
)

__all__ = [
    "ExecutorEnvironmentError",
    "Listing",
    "ModelOptions",
    "check_executors",
    "featurize_binary_files",
    "featurize_keys",
    "fit_pca",
    "keys_dataframe",
    "list_input",
    "run",
    "transform",
    "update",
]
