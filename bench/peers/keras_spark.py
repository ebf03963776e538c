#!/usr/bin/env python3
"""The team's original chain, as a peer in bench/compare: Spark's binaryFile source -> Keras
MobileNetV2 (include_top=False, pooling="avg") in a Scalar Iterator pandas UDF -> pyspark.ml
PCA on the vectors, on local[T]. Written as Databricks' "featurization for transfer learning"
example and the course solutions write it: the model is built once on the driver, its weights
broadcast, and each UDF iterator builds the model once and predicts batch after batch.

    bench/peers/install                                  # .venv-peers: TensorFlow + PySpark
    .venv-peers/bin/python bench/peers/keras_spark.py --input samples/fruits-360-mini \
        --output /tmp/keras-out --threads 2

*** RANDOM WEIGHTS, SPEED ONLY ***: weights=None, because this machine cannot download the
ImageNet checkpoint. The FLOPs are those of the real network; the features are meaningless.

Choices, all the documented defaults unless said:
  - preprocessing per image: PIL decode, convert("RGB"), resize to 224x224 BILINEAR (the same
    stretch resize as the other peers; the Databricks example calls .resize([224, 224]), whose
    default filter is bicubic), keras mobilenet_v2.preprocess_input (x / 127.5 - 1);
  - model.predict(batch, verbose=0) per Arrow batch (Keras' default predict batch of 32);
    spark.sql.execution.arrow.maxRecordsPerBatch = 1024 as in the example; TensorFlow's own
    thread defaults in each Python worker (as in the example);
  - the images DataFrame repartitioned to --partitions (default T: one task per core, so the
    model is built T times) before the UDF;
  - the descriptors cached (one featurization pass), then pyspark.ml PCA: one fit with
    k = min(d, n), k for 95% read from its explainedVariance (Spark's PCA has no variance
    option), transform keeping the first k scores, features.csv written from the driver with
    pandas. (Spark's PCAModel.transform does not subtract the mean: the scores are
    shifted by a constant; the work is the same.)

Prints one JSON line with the phase timings (seconds) on stdout; session start-up is timed
apart from the run.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator

import pandas as pd  # at module level: pandas_udf reads the real type hints

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

WARNING = "RANDOM WEIGHTS (weights=None, no internet): SPEED ONLY, the features are meaningless"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="local[T]")
    parser.add_argument("--partitions", type=int, help="default: threads")
    parser.add_argument("--pca-variance", type=float, default=0.95)
    args = parser.parse_args()
    print(f"keras_spark: {WARNING}", file=sys.stderr)

    t0 = time.perf_counter()
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(f"local[{args.threads}]").appName("keras-featurize")
             .config("spark.driver.memory", "4g")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1024")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    t_session = time.perf_counter()

    import numpy as np
    import tensorflow as tf
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql.functions import col, pandas_udf, slice

    # Built once on the driver; the weights travel to the workers as a broadcast variable.
    model = tf.keras.applications.MobileNetV2(include_top=False, pooling="avg", weights=None,
                                              input_shape=(224, 224, 3))
    bc_model_weights = spark.sparkContext.broadcast(model.get_weights())
    t_model = time.perf_counter()

    def model_fn() -> "tf.keras.Model":
        import tensorflow as tf

        m = tf.keras.applications.MobileNetV2(include_top=False, pooling="avg", weights=None,
                                              input_shape=(224, 224, 3))
        m.set_weights(bc_model_weights.value)
        return m

    def preprocess(content: bytes) -> "np.ndarray":
        import io

        import numpy as np
        from PIL import Image
        from tensorflow.keras.applications.mobilenet_v2 import preprocess_input

        img = Image.open(io.BytesIO(content)).convert("RGB").resize((224, 224), Image.BILINEAR)
        return preprocess_input(np.asarray(img, dtype=np.float32))

    def featurize_series(m: "tf.keras.Model", content_series: pd.Series) -> pd.Series:
        batch = np.stack(content_series.map(preprocess))
        preds = m.predict(batch, verbose=0)
        return pd.Series([p.flatten() for p in preds])

    @pandas_udf("array<float>")
    def featurize_udf(content_series_iter: Iterator[pd.Series]) -> Iterator[pd.Series]:
        m = model_fn()  # once per iterator (task), not once per batch
        for content_series in content_series_iter:
            yield featurize_series(m, content_series)

    partitions = args.partitions or args.threads
    images = (spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg")
              .option("recursiveFileLookup", "true").load(str(args.input.resolve())))
    features = (images.repartition(partitions)
                .select(col("path"), featurize_udf(col("content")).alias("features"))
                .select("path", array_to_vector("features").alias("features"))
                .cache())
    n = features.count()
    t_featurize = time.perf_counter()

    d = len(features.first()["features"])
    pca = PCA(k=min(d, n), inputCol="features", outputCol="pca").fit(features)
    explained = np.cumsum(pca.explainedVariance.toArray())
    k = int(np.searchsorted(explained / explained[-1], args.pca_variance) + 1)
    t_pca = time.perf_counter()

    scores = (pca.transform(features)
              .select("path", slice(vector_to_array("pca"), 1, k).alias("pca"))
              .orderBy("path").toPandas())
    matrix = np.stack(scores["pca"].to_numpy()).astype(np.float32)
    table = pd.DataFrame(matrix, columns=[f"pc_{i + 1}" for i in range(k)])
    table.insert(0, "label", [p.rstrip("/").split("/")[-2] for p in scores["path"]])
    table.insert(0, "path", scores["path"])
    args.output.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output / "features.csv", index=False)
    np.save(args.output / "features.npy", matrix)
    t_write = time.perf_counter()
    spark.stop()

    print(json.dumps({
        "images": n, "dim": d, "k": k, "partitions": partitions, "weights": WARNING,
        "tensorflow": tf.__version__, "keras": tf.keras.__version__ if hasattr(tf.keras, "__version__") else "",
        "spark": spark.version, "threads": args.threads,
        "timings_seconds": {
            "session_start": t_session - t0, "driver_model": t_model - t_session,
            "featurize": t_featurize - t_model, "pca": t_pca - t_featurize,
            "transform_write": t_write - t_pca, "run": t_write - t_session, "total": t_write - t0,
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
