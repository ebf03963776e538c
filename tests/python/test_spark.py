"""orchard.spark on real Spark: local[2], then a standalone cluster (a master and two
workers on 127.0.0.1, tests/python/spark_cluster.py), reading from and writing to the local
S3 server (SeaweedFS, which verifies SigV4). Every run is compared with the CLI on the same
images: same rows in the same order, same labels, PCA components with |cos| >= 0.999999,
values within 1e-6 relative, same errors.csv; and, when the Spark run cuts the images into
the CLI's batches (same --batch), the same bytes in every output but manifest.json (both
are written by the C++ run; the executors only featurize into the descriptor store).

The local tests run first and share one SparkSession; the cluster tests then stop it and
start their own (one SparkContext per process). Spark runs use the Test split (50 images)
or the Training split (200) at --size 96 to stay fast; the CLI reference uses the same size.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pyspark = pytest.importorskip("pyspark")
orchard = pytest.importorskip("orchard")

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.ml.linalg import DenseVector, VectorUDT  # noqa: E402
from pyspark.sql.types import ArrayType, FloatType  # noqa: E402

import orchard.spark as ospark  # noqa: E402
from orchard import _orchard  # noqa: E402
from orchard.spark import _worker  # noqa: E402
from orchard.spark._progress import JobProgress  # noqa: E402
from tests.s3 import fixtures as s3fx  # noqa: E402
from tests.s3.fixtures import FruitsBucket  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spark_cluster import StandaloneCluster  # noqa: E402

pytestmark = pytest.mark.slow
# Tests whose outcome does not depend on Spark's version (no Spark in them, or only the C++
# run's crash and resume): the second pass on another PySpark (.venv-spark4, scripts/test)
# deselects them with -m "not spark_once". See docs/spark.md, "Spark versions".
spark_once = pytest.mark.spark_once

SIZE = 96
FILES = ("features.csv", "features.npy", "pca.json", "errors.csv", "manifest.json",
         "features.parquet", "_orchard")  # _orchard/: the descriptor store
# The outputs that are the CLI's byte for byte when the descriptors are (not manifest.json:
# timings).
SAME_BYTES = ("features.csv", "features.npy", "pca.json", "errors.csv")


# ---- helpers --------------------------------------------------------------------------------


def session(master: str, env: dict[str, str], **conf: str) -> SparkSession:
    """A SparkSession on ``master`` whose executors get ``env`` (spark.executorEnv.*); stops
    another active session first (one SparkContext per process)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master == master:
            return active
        active.stop()
    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors' Python: this venv's
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    builder = (SparkSession.builder.master(master).appName("orchard-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.executor.memory", "512m"))
    for key, value in env.items():
        builder = builder.config(f"spark.executorEnv.{key}", value)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_features(path: Path) -> tuple[list[str], list[tuple[str, str]], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    values = np.array([[np.float32(v) for v in r[2:]] for r in body], dtype=np.float32)
    return header, [(r[0], r[1]) for r in body], values.reshape(len(body), len(header) - 2)


def component_signs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """+1 per component, or -1 where the two runs chose opposite signs, which is allowed only
    when the sign rule (largest-magnitude entry positive) is ambiguous: the two largest
    magnitudes of the component tie within rounding (seen with ReLU6-saturated channels)."""
    signs = np.ones(len(b))
    for j, (x, y) in enumerate(zip(a, b)):
        if float(np.dot(x, y)) > 0:
            continue
        top = np.sort(np.abs(y))[::-1]
        assert top[0] - top[1] <= 1e-6 * top[0], f"component {j + 1} has the opposite sign"
        signs[j] = -1
    return signs


def assert_same_bytes(spark_out: Path, cli_out: Path, names: tuple[str, ...] = SAME_BYTES
                      ) -> None:
    for name in names:
        assert (spark_out / name).read_bytes() == (cli_out / name).read_bytes(), name


def assert_same_result(spark_out: Path, cli_out: Path) -> None:
    """The Spark run's files against the CLI's: see the module doc."""
    header, rows, values = read_features(spark_out / "features.csv")
    cli_header, cli_rows, cli_values = read_features(cli_out / "features.csv")
    assert header == cli_header
    assert rows == cli_rows  # same paths, labels and order
    assert len(set(p for p, _ in rows)) == len(rows)  # no duplicated row
    pca = json.loads((spark_out / "pca.json").read_text())
    cli_pca = json.loads((cli_out / "pca.json").read_text())
    signs = component_signs(np.array(pca["components"]), np.array(cli_pca["components"]))
    np.testing.assert_allclose(values * signs, cli_values, rtol=1e-6,
                               atol=1e-6 * float(np.abs(cli_values).max()))
    # features.npy holds exactly the CSV's numbers (both written by the C++ sinks).
    npy = np.load(spark_out / "features.npy")
    assert npy.dtype == np.float32 and npy.shape == values.shape
    assert np.array_equal(npy, values)
    assert (spark_out / "features.npy").read_bytes()[:128] == \
        (cli_out / "features.npy").read_bytes()[:128]
    # PCA: same components up to rounding, same variances and model.
    assert sorted(pca) == sorted(cli_pca)
    assert pca["model"] == cli_pca["model"]
    assert pca["k"] == cli_pca["k"] and pca["dim"] == cli_pca["dim"]
    a, b = np.array(pca["components"]), np.array(cli_pca["components"])
    cos = np.abs(np.sum(a * b, axis=1)) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= 0.999999, cos
    np.testing.assert_allclose(pca["explained_variance"], cli_pca["explained_variance"], rtol=1e-9)
    np.testing.assert_allclose(pca["mean"], cli_pca["mean"], rtol=1e-9, atol=1e-12)
    assert (spark_out / "errors.csv").read_bytes() == (cli_out / "errors.csv").read_bytes()
    # Parquet: the same matrix.
    import pyarrow.parquet as pq

    table = pq.read_table(spark_out / "features.parquet")
    assert table.column_names == header
    assert table.column("path").to_pylist() == [p for p, _ in rows]
    assert table.column("label").to_pylist() == [lab for _, lab in rows]
    parquet_values = np.column_stack([table.column(c).to_numpy() for c in header[2:]])
    assert np.array_equal(parquet_values, values)
    manifest = json.loads((spark_out / "manifest.json").read_text())
    cli_manifest = json.loads((cli_out / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert manifest["counts"] == cli_manifest["counts"]
    assert manifest["model"] == cli_manifest["model"]
    assert manifest["pca"]["k"] == cli_manifest["pca"]["k"]
    # What the cluster did: the executors featurized every image the store lacked, the
    # driver's finishing run none.
    spark_facts, cli_store = manifest["spark"], cli_manifest["store"]
    assert (spark_facts["featurized_on_executors"] + spark_facts["reused"] ==
            cli_store["featurized"] + cli_store["reused"])
    assert manifest["store"]["featurized"] == 0


def cli_run(build_dir: Path, input_dir: Path, out: Path, *args: str) -> Path:
    result = subprocess.run([str(build_dir / "orchard"), "run", "-q", "--input", str(input_dir),
                             "--output", str(out), "--size", str(SIZE), *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fruits_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "fruits-360-mini"


@pytest.fixture(scope="module")
def cli_test5(build_dir: Path, fruits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cli_run(build_dir, fruits_dir / "Test", tmp_path_factory.mktemp("cli") / "test5",
                   "--pca-components", "5")


@pytest.fixture(scope="module")
def messy_dir(fruits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images plus what must become errors.csv rows, and names that need CSV quoting."""
    root = tmp_path_factory.mktemp("messy")
    sources = sorted((fruits_dir / "Test").rglob("*.jpg"))[:12]
    for i, src in enumerate(sources):
        label = ["Plum, red", 'Say "cheese"', "Cherry 3"][i % 3]
        (root / label).mkdir(exist_ok=True)
        shutil.copy(src, root / label / f"img_{i:02d}.jpg")
    shutil.copy(sources[0], root / "at_root.jpg")  # label ''
    (root / "Cherry 3" / "notes.txt").write_text("not an image")
    truncated = sources[1].read_bytes()
    (root / "Cherry 3" / "truncated.jpg").write_bytes(truncated[: len(truncated) // 2])
    (root / "Cherry 3" / "empty.png").write_bytes(b"")
    (root / "Cherry 3" / "text.jpeg").write_bytes(b"hello, I am not a JPEG")
    return root


@pytest.fixture(scope="module")
def local_spark(s3_server: s3fx.S3TestConfig, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[SparkSession]:
    env = s3fx.aws_env(s3_server, tmp_path_factory.mktemp("aws"))
    spark = session("local[2]", env)
    yield spark


# ---- executor helpers ---------------------------------------------------------------------


@spark_once
def test_relative_paths() -> None:
    for root in ("/data/fruits", "/data/fruits/", "file:/data/fruits", "file:///data/fruits"):
        assert _worker.relative_path("file:/data/fruits/Plum 5/r0_1.jpg", root) == "Plum 5/r0_1.jpg"
    assert _worker.relative_path("s3a://b/x/a/b.jpg", "s3a://b/x") == "a/b.jpg"
    assert _worker.relative_path("s3a://b/x/a/b.jpg", "") == "s3a://b/x/a/b.jpg"
    with pytest.raises(ValueError, match="not below"):
        _worker.relative_path("file:/elsewhere/a.jpg", "/data/fruits")


@spark_once
def test_deploy_files_are_valid(repo_dir: Path) -> None:
    """Shell syntax and shellcheck of deploy's scripts, JSON of the IAM policies and EMR
    configurations, and deploy/emr-requirements.txt shipped in the wheelhouse the bootstrap
    installs from (tests/python/test_emr_bootstrap.py runs it)."""
    deploy = repo_dir / "deploy"
    scripts = sorted([*deploy.glob("*.sh"),
                      *(deploy / name for name in ("build-wheel", "test-wheel", "make-wheelhouse"))])
    assert all(p.is_file() for p in scripts)
    assert "emr-bootstrap.sh" in {p.name for p in scripts}
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        # -x: follow what the scripts source (deploy/wheel/debian-mirrors.sh).
        result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stdout
    for path in deploy.rglob("*.json"):
        json.loads(path.read_text())
    # The nodes' pins travel in the wheelhouse, which the bootstrap installs them from.
    assert 'cp "$repo/deploy/emr-requirements.txt"' in (deploy / "make-wheelhouse").read_text()
    assert '"$work/wheels/emr-requirements.txt"' in (deploy / "emr-bootstrap.sh").read_text()


# ---- local[2] -------------------------------------------------------------------------------


def test_local_run_same_as_cli_and_idempotent(local_spark: SparkSession, fruits_dir: Path,
                                              cli_test5: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = ospark.run(str(fruits_dir / "Test"), str(out), spark=local_spark, size=SIZE,
                         pca_components=5, num_partitions=3)
    assert (summary["listed"], summary["processed"], summary["failed"], summary["k"]) == \
        (50, 50, 0, 5)
    assert (summary["featurized"], summary["reused"], summary["partitions"],
            summary["segments"]) == (50, 0, 3, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary file left
    assert_same_result(out, cli_test5)
    assert_same_bytes(out, cli_test5)  # the CLI's batches of 16: the CLI's bytes
    # One segment per task, named after the generation and the partition's first unit.
    records = sorted(p.name for p in (out / "_orchard" / "segments").glob("*.json"))
    assert records == [_orchard._segment_name(1, u) + ".json" for u in (0, 1, 2)]
    # A second run into the same folder is refused unless asked...
    with pytest.raises(orchard.InvalidArgumentError, match="not empty.*resume.*overwrite") as e:
        ospark.run(str(fruits_dir / "Test"), str(out), spark=local_spark, size=SIZE,
                   pca_components=5)
    assert "--" not in str(e.value)
    # ... resuming a finished run featurizes nothing and rewrites the same files...
    first = {name: (out / name).read_bytes() for name in FILES
             if name not in ("manifest.json", "_orchard")}
    again = ospark.run(str(fruits_dir / "Test"), str(out), spark=local_spark, size=SIZE,
                       pca_components=5, resume=True)
    assert (again["featurized"], again["reused"], again["partitions"]) == (0, 50, 0)
    for name, data in first.items():
        assert (out / name).read_bytes() == data, name
    # ... and overwriting with another partitioning and smaller batches changes nothing but
    # the descriptors' last bits (other batches): the CLI's result up to rounding.
    ospark.run(str(fruits_dir / "Test"), str(out), spark=local_spark, size=SIZE,
               pca_components=5, batch=8, num_partitions=5, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert len(list((out / "_orchard" / "segments").glob("*.json"))) == 5
    assert_same_result(out, cli_test5)


def test_errors_quoting_limit_and_save_raw_as_the_cli(local_spark: SparkSession, build_dir: Path,
                                                       messy_dir: Path, tmp_path: Path) -> None:
    cli = cli_run(build_dir, messy_dir, tmp_path / "cli", "--pca-components", "3", "--save-raw")
    out = tmp_path / "spark"
    summary = ospark.run(str(messy_dir), str(out), spark=local_spark, size=SIZE,
                         pca_components=3, batch=4, save_raw=True)
    assert summary["failed"] == 4 and summary["processed"] == 13
    assert_same_result(out, cli)
    errors = (out / "errors.csv").read_text()
    assert "notes.txt,list," in errors and "truncated.jpg,decode," in errors
    raw, cli_raw = np.load(out / "raw.npy"), np.load(cli / "raw.npy")
    np.testing.assert_allclose(raw, cli_raw, rtol=1e-6, atol=1e-6 * float(np.abs(cli_raw).max()))
    # --limit stops the listing at the N-th image, as the CLI does.
    cli_limited = cli_run(build_dir, messy_dir, tmp_path / "cli-limit", "--pca-components", "2",
                          "--limit", "9")
    limited = tmp_path / "spark-limit"
    ospark.run(str(messy_dir), str(limited), spark=local_spark, size=SIZE, pca_components=2,
               limit=9, batch=4)
    assert_same_result(limited, cli_limited)


def test_binary_file_source_is_refused_with_directions(local_spark: SparkSession,
                                                      fruits_dir: Path, tmp_path: Path) -> None:
    """A run keeps a descriptor store, which needs Orchard's listing: source='binaryFile'
    is refused before anything is read or written, pointing to the building blocks."""
    tracker = local_spark.sparkContext.statusTracker()
    local_spark.sparkContext.setJobGroup("binary-file", "must not run")
    try:
        for run in (ospark.run, ospark.update):
            with pytest.raises(orchard.InvalidArgumentError,
                               match="featurize_binary_files.*fit_pca.*transform"):
                run(str(fruits_dir / "Test"), str(tmp_path / "out"), spark=local_spark,
                    size=SIZE, source="binaryFile")
        assert tracker.getJobIdsForGroup("binary-file") == []
    finally:
        local_spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_building_blocks(local_spark: SparkSession, fruits_dir: Path, cli_test5: Path) -> None:
    """The public pieces: binaryFile DataFrame -> descriptors -> fit_pca -> transform."""
    files = (local_spark.read.format("binaryFile").option("recursiveFileLookup", "true")
             .load(str(fruits_dir / "Test")))
    options = ospark.ModelOptions(size=SIZE)
    outcomes = ospark.featurize_binary_files(files, root=str(fruits_dir / "Test"),
                                             options=options).cache()
    features_type = outcomes.schema["features"].dataType
    assert isinstance(features_type, ArrayType) and isinstance(features_type.elementType,
                                                               FloatType)
    row = outcomes.where("features IS NOT NULL").first()
    assert isinstance(row["features"], list) and len(row["features"]) == 1280
    model, count = ospark.fit_pca(outcomes, 1280, components=5)
    assert count == 50 and model is not None and model.k == 5
    projected = ospark.transform(outcomes, model).orderBy("path").toPandas()
    _, rows, values = read_features(cli_test5 / "features.csv")
    assert list(zip(projected["path"], projected["label"])) == rows
    np.testing.assert_allclose(projected[[f"pc_{j}" for j in range(1, 6)]].to_numpy(), values,
                               rtol=1e-6, atol=1e-6 * float(np.abs(values).max()))
    outcomes.unpersist()


def test_features_as_spark_ml_vectors(local_spark: SparkSession, messy_dir: Path) -> None:
    """features_type="vector": dense Spark ML vectors (null for a failed image) that
    pyspark.ml estimators take, and that fit_pca and transform read as they read arrays."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler

    files = (local_spark.read.format("binaryFile").option("recursiveFileLookup", "true")
             .load(str(messy_dir)))
    with pytest.raises(orchard.InvalidArgumentError, match="features_type"):
        ospark.featurize_binary_files(files, features_type="list")
    options = ospark.ModelOptions(size=SIZE)
    vectors = ospark.featurize_binary_files(files, root=str(messy_dir), options=options,
                                            features_type="vector").cache()
    assert isinstance(vectors.schema["features"].dataType, VectorUDT)
    assert vectors.columns == ["idx", "path", "label", "features", "stage", "message"]
    rows = vectors.orderBy("path").collect()
    failed = [r for r in rows if r["features"] is None]
    assert len(rows) - len(failed) == 13  # binaryFile skips the empty file: 3 failed
    assert {r["stage"] for r in failed} == {"decode", "list"}
    good = vectors.where("features IS NOT NULL")
    assert {type(r["features"]) for r in rows if r not in failed} == {DenseVector}
    assert {len(r["features"]) for r in rows if r not in failed} == {1280}
    clusters = KMeans(k=3, seed=1, maxIter=5).fit(good)
    assert len(clusters.clusterCenters()) == 3
    assert clusters.transform(good).select("prediction").distinct().count() >= 2
    scaled = StandardScaler(inputCol="features", outputCol="scaled", withMean=True).fit(good)
    assert len(scaled.mean) == 1280
    # The same descriptors as the array column; fit_pca and transform read both.
    arrays = ospark.featurize_binary_files(files, root=str(messy_dir),
                                           options=options).orderBy("path").collect()
    assert [r["path"] for r in rows] == [a["path"] for a in arrays]
    for v, a in zip(rows, arrays):
        if a["features"] is None:
            assert v["features"] is None
        else:
            np.testing.assert_array_equal(v["features"].toArray(), np.float32(a["features"]))
    model, count = ospark.fit_pca(vectors, 1280, components=4)
    assert count == 13 and model is not None and model.k == 4
    projected = ospark.transform(vectors, model, keep_features=True, features_type="vector")
    assert isinstance(projected.schema["features"].dataType, VectorUDT)
    assert projected.columns == ["idx", "path", "label", "pc_1", "pc_2", "pc_3", "pc_4",
                                 "features"]
    first = projected.orderBy("path").first()
    x = np.float32(next(a["features"] for a in arrays if a["path"] == first["path"]))
    np.testing.assert_allclose([first[f"pc_{j}"] for j in range(1, 5)],
                               model.transform(x[None, :])[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(first["features"].toArray(), x)
    vectors.unpersist()


def test_fit_pca_tree_merge_equals_one_pass(local_spark: SparkSession) -> None:
    """Accumulators of 7 partitions merged by treeReduce give the one-pass PCA."""
    rng = np.random.default_rng(7)
    dim = 24
    x = (rng.standard_normal((500, dim)) * np.linspace(5, 0.1, dim)).astype(np.float32)
    rows = [(i, f"c{i % 3}/{i:04d}.jpg", f"c{i % 3}", x[i].tolist(), None, None)
            for i in range(len(x))]
    rows.append((500, "bad.jpg", "", None, "decode", "corrupt"))  # failures are skipped
    df = local_spark.createDataFrame(local_spark.sparkContext.parallelize(rows, 7),
                                     ospark.core.OUTCOME_DDL)
    one = orchard.PcaAccumulator(dim)
    one.update(x)
    for kw in ({"components": 6}, {"variance": 0.9}):
        model, count = ospark.fit_pca(df, dim, depth=3, **kw)
        expected = one.finalize(**kw)
        assert count == 500 and model.k == expected.k
        cos = np.abs(np.sum(np.asarray(model.components) * np.asarray(expected.components), 1))
        assert cos.min() >= 0.999999
        np.testing.assert_allclose(model.explained_variance, expected.explained_variance,
                                   rtol=1e-9)
    assert ospark.fit_pca(df.limit(0), dim, components=2) == (None, 0)


def test_s3_input_same_as_cli(local_spark: SparkSession, s3_server: s3fx.S3TestConfig,
                              fruits_bucket: FruitsBucket, cli_test5: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver lists the bucket and the executors fetch with Orchard's client (their
    credentials come from spark.executorEnv.*)."""
    for key, value in s3fx.aws_env(s3_server, tmp_path).items():
        monkeypatch.setenv(key, value)  # the driver's listing
    out = tmp_path / "out"
    ospark.run(fruits_bucket.url + "Test", str(out), spark=local_spark, size=SIZE,
               pca_components=5, s3_endpoint=s3_server.endpoint)
    assert_same_result(out, cli_test5)


def test_s3_output(local_spark: SparkSession, s3_server: s3fx.S3TestConfig, s3_client: Any,
                   s3_bucket: str, fruits_bucket: FruitsBucket, cli_test5: Path, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3fx.aws_env(s3_server, tmp_path).items():
        monkeypatch.setenv(key, value)
    for overwrite in (False, True):  # an overwrite replaces the objects: same keys, bytes
        summary = ospark.run(fruits_bucket.url + "Test", f"s3://{s3_bucket}/runs/1",
                             spark=local_spark, size=SIZE, pca_components=5,
                             s3_endpoint=s3_server.endpoint, num_partitions=2,
                             overwrite=overwrite)
        assert summary["featurized"] == 50 and summary["segments"] == 2
        local = tmp_path / "downloaded"
        shutil.rmtree(local, ignore_errors=True)
        s3fx.download_prefix(s3_client, s3_bucket, "runs/1/", local)
        assert sorted(p.name for p in local.iterdir()) == sorted(FILES)
        assert len(list((local / "_orchard" / "segments").glob("*.json"))) == 2
        assert_same_result(local, cli_test5)
        assert_same_bytes(local, cli_test5)


def test_unwritable_s3_output_fails_before_any_job(
        local_spark: SparkSession, s3_server: s3fx.S3TestConfig, s3_client: Any, s3_bucket: str,
        fruits_bucket: FruitsBucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3fx.aws_env(s3_server, tmp_path, readonly=True).items():
        monkeypatch.setenv(key, value)
    tracker = local_spark.sparkContext.statusTracker()
    local_spark.sparkContext.setJobGroup("unwritable-output", "must not run")
    try:
        with pytest.raises(orchard.StorageError, match=r"output s3://.* is not writable.*403"):
            ospark.run(fruits_bucket.url + "Test", f"s3://{s3_bucket}/denied", spark=local_spark,
                       size=SIZE, pca_components=5, s3_endpoint=s3_server.endpoint)
        # Only the executors' check ran (one task per core), not the featurize job.
        jobs = tracker.getJobIdsForGroup("unwritable-output")
        assert len(jobs) == 1, jobs
        stages = tracker.getJobInfo(jobs[0]).stageIds
        assert [tracker.getStageInfo(s).numTasks for s in stages] == \
            [local_spark.sparkContext.defaultParallelism]
    finally:
        local_spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert s3fx.list_keys(s3_client, s3_bucket, "denied/") == []  # the probe left nothing


# A driver whose executors run another Python: for each Python of argv[3:], a session, then
# run and a building block, each timed. Prints {python: {call: [seconds, exception class,
# message] or null}} as JSON.
_FOREIGN_EXECUTORS = """
import json, os, sys, time
from pyspark.sql import SparkSession
import orchard.spark as ospark

images, output = sys.argv[1:3]
result = {}
for python in sys.argv[3:]:
    os.environ["PYSPARK_PYTHON"] = python  # read when the SparkContext starts
    spark = (SparkSession.builder.master("local[2]").appName("orchard-foreign-executors")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1").getOrCreate())
    spark.sparkContext.setLogLevel("OFF")
    calls = {"run": lambda: ospark.run(images, output, spark=spark, size=96),
             "fit_pca": lambda: ospark.fit_pca(spark.createDataFrame(
                 [([1.0, 2.0],)], "features array<float>"), 2, components=1)}
    result[python] = {}
    for name, call in calls.items():
        start = time.monotonic()
        try:
            call()
            result[python][name] = None
        except Exception as exc:
            result[python][name] = [time.monotonic() - start, type(exc).__name__, str(exc)]
    spark.stop()
print(json.dumps(result))
"""


def test_executors_without_orchard_fail_fast_with_directions(fruits_dir: Path,
                                                             tmp_path: Path) -> None:
    """Executors whose Python lacks orchard (the venv's base Python: the quick start from a
    venv that is not activated), cannot start PySpark's worker, or does not exist: run and the
    building blocks raise ExecutorEnvironmentError at once, naming the executors' Python and
    the fix, not a Java trace; the output is not touched."""
    base = sys._base_executable  # type: ignore[attr-defined]
    assert base != sys.executable
    probe = subprocess.run([base, "-c", "import orchard"], capture_output=True)
    assert probe.returncode != 0, f"{base} has orchard: the test needs a Python without it"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_PYTHON", None)
    isolated = tmp_path / "isolated-python"  # ignores PYTHONPATH: cannot even load pyspark
    isolated.write_text(f'#!/bin/sh\nexec {base} -I "$@"\n')
    isolated.chmod(0o755)
    reasons = {base: "ModuleNotFoundError: No module named 'orchard'",
               str(isolated): "No module named 'pyspark'",
               str(tmp_path / "no-such-python"): "Cannot run program"}
    output = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _FOREIGN_EXECUTORS, str(fruits_dir / "Test"),
                           str(output), *reasons], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(reasons)
    for python, reason in reasons.items():
        for name, outcome in results[python].items():
            assert outcome is not None, f"{name} did not fail with executor Python {python}"
            seconds, kind, message = outcome
            assert kind == "ExecutorEnvironmentError", (name, message)
            assert seconds < 30, (name, seconds)
            assert reason in message and python in message, (name, message)
            for fix in ("spark.pyspark.python", "PYSPARK_PYTHON", sys.executable,
                        f"orchard-features {orchard.__version__}", "What executors need"):
                assert fix in message, (name, fix, message)
            assert "\tat " not in message and "org.apache.spark" not in message, message
            assert len(message) < 1500, message
    assert not output.exists()  # checked before the output is prepared


@spark_once
def test_executor_reports_other_versions_are_refused() -> None:
    """Reports of the check job: another orchard version on an executor is an error too."""
    from orchard.spark import _environment as env

    ok = {"python": "/venv/bin/python", "python_version": "3.11.2", "host": "w1",
          "orchard": "1.2.0", "orchard_path": "/venv/orchard/__init__.py", "build": {}}
    assert env.problems([ok, ok], "1.2.0", "/venv/bin/python") is None
    old = {**ok, "host": "w2", "python": "/opt/py/bin/python3", "orchard": "1.1.0",
           "orchard_path": "/opt/py/orchard/__init__.py"}
    message = env.problems([ok, old], "1.2.0", "/venv/bin/python")
    assert message is not None
    assert "orchard 1.1.0" in message and "/opt/py/bin/python3 on w2" in message
    assert "not the driver's 1.2.0" in message and "spark.pyspark.python" in message
    # A failed probe job is summed up by the worker's Python error, not the JVM's trace.
    trace = ("An error occurred while calling o1.collect.\n: org.apache.spark.SparkException: "
             "Job aborted\n\tat org.apache.spark.Foo(Foo.scala:1)\norg.apache.spark.api.python."
             "PythonException: Traceback (most recent call last):\n  File \"w.py\", line 1\n"
             "pyspark.errors.exceptions.base.PySparkRuntimeError: [PYTHON_VERSION_MISMATCH] "
             "Python in worker has different version\n\tat org.apache.spark.Bar(Bar.scala:2)")
    assert env.failure_summary(RuntimeError(trace)).startswith(
        "pyspark.errors.exceptions.base.PySparkRuntimeError: [PYTHON_VERSION_MISMATCH]")
    assert env.failure_summary(RuntimeError(
        "Job aborted due to stage failure: most recent failure: Lost task 0.0 (TID 0) "
        "(127.0.0.1 executor driver): java.io.IOException: Cannot run program \"/x/py\"")) \
        == 'java.io.IOException: Cannot run program "/x/py"'
    assert env.failure_summary(RuntimeError(
        "most recent failure: Lost task 0.0 (TID 0) (localhost executor driver): "
        "org.apache.spark.SparkException: \nError from python worker:\n  /usr/bin/python3: "
        "No module named pyspark.daemon\nPYTHONPATH was:\n  /x/pyspark.zip")) == \
        "/usr/bin/python3: No module named pyspark.daemon"


@spark_once
def test_main_usage_errors_exit_2(tmp_path: Path) -> None:
    def main(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchard.spark", "run", "--input",
                               str(tmp_path), "--output", str(tmp_path / "o"), *args],
                              capture_output=True, text=True, timeout=120)

    both = main("--pca-components", "3", "--pca-variance", "0.5")
    assert both.returncode == 2, both.stderr
    model = main("--model", "no_such_model")
    assert model.returncode == 2 and "no_such_model" in model.stderr, model.stderr
    batch = main("--batch", "0")
    assert batch.returncode == 2 and "--batch must be in 1..4096" in batch.stderr, batch.stderr
    source = main("--source", "binaryFile")
    assert source.returncode == 2 and "featurize_binary_files" in source.stderr, source.stderr
    both_modes = main("--resume", "--overwrite")
    assert both_modes.returncode == 2, both_modes.stderr


def test_main_runs_in_the_active_session(local_spark: SparkSession, fruits_dir: Path,
                                         cli_test5: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from orchard.spark.__main__ import main

    out = tmp_path / "out"
    code = main(["run", "--input", str(fruits_dir / "Test"), "--output", str(out), "--size",
                 str(SIZE), "--pca-components", "5", "--batch", "16"])
    assert code == 0
    assert "50 images -> 50 x 5 matrix" in capsys.readouterr().err
    assert_same_result(out, cli_test5)
    assert SparkSession.getActiveSession() is local_spark  # not stopped: it was not main's


def test_fewer_than_two_images_fail_like_the_cli(local_spark: SparkSession, tmp_path: Path
                                                 ) -> None:
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "a" / "x.txt").write_text("no image")
    with pytest.raises(orchard.InvalidArgumentError, match="no image could be processed"):
        ospark.run(str(tmp_path / "in"), str(tmp_path / "out"), spark=local_spark, size=SIZE)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["_orchard", "errors.csv", "manifest.json"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(orchard.NotFoundError, match="nothing to process"):
        ospark.run(str(tmp_path / "empty"), str(tmp_path / "out2"), spark=local_spark, size=SIZE)


def test_python_option_errors_name_no_flags(local_spark: SparkSession, fruits_dir: Path,
                                            tmp_path: Path) -> None:
    """The core checks the options (one set of rules for every front end) and, from Python,
    names them as arguments: never as --flags."""
    tracker = local_spark.sparkContext.statusTracker()
    local_spark.sparkContext.setJobGroup("bad-options", "must not run")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"batch": 0}, "batch must be in 1..4096"),
        ({"threads": -1}, "threads must be in 0..1024"),
        ({"size": 5000}, "size must be"),
        ({"pca_variance": 1.5}, "pca_variance must be in"),
        ({"limit": -1}, "limit must be 0 \\(all\\) or more"),
        ({"max_pixels": 0}, "max_pixels must be positive"),
        ({"pca_components": 3, "pca_variance": 0.5}, "pca_components or pca_variance"),
        ({"resume": True, "overwrite": True}, "resume or overwrite"),
    ]
    try:
        for kwargs, message in bad:
            with pytest.raises(orchard.InvalidArgumentError, match=message) as e:
                ospark.run(str(fruits_dir / "Test"), str(tmp_path / "out"), spark=local_spark,
                           **kwargs)
            assert "--" not in str(e.value), str(e.value)
        assert tracker.getJobIdsForGroup("bad-options") == []
    finally:
        local_spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@spark_once
def test_resume_after_a_killed_driver(fruits_dir: Path, cli_test5: Path, tmp_path: Path) -> None:
    """The driver is killed (SIGKILL, by the core's crash point) as the C++ run writes its
    first output chunk, after the executors committed every segment. The rerun with
    --resume featurizes nothing and writes the outputs of an uninterrupted CLI run, byte for
    byte."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "orchard.spark", "run", "--input", str(fruits_dir / "Test"),
               "--output", str(out), "--size", str(SIZE), "--pca-components", "5",
               "--master", "local[2]", "--partitions", "3", "--quiet"]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "ORCHARD_CRASH_AT": "write:1"}
    crashed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert not (out / "features.csv").exists() and not (out / "manifest.json").exists()
    assert len(list((out / "_orchard" / "segments").glob("*.json"))) == 3
    del env["ORCHARD_CRASH_AT"]
    resumed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "(0 featurized in 0 partitions, 50 reused from the descriptor store)" in \
        resumed.stderr, resumed.stderr
    assert_same_bytes(out, cli_test5)
    assert_same_result(out, cli_test5)


def test_update_after_adding_and_removing_images_equals_a_fresh_run(
        local_spark: SparkSession, fruits_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    source = sorted((fruits_dir / "Test").rglob("*.jpg"))
    assert len(source) == 50
    root = tmp_path / "in"

    def put(path: Path) -> None:
        target = root / path.relative_to(fruits_dir / "Test")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)

    for path in source[:40]:
        put(path)
    out = tmp_path / "out"
    ospark.run(str(root), str(out), spark=local_spark, size=SIZE, pca_components=4,
               num_partitions=2)
    removed = source[:40][::13]  # 4 images, from the first and the later partitions
    for path in removed:
        (root / path.relative_to(fruits_dir / "Test")).unlink()
    for path in source[40:]:
        put(path)
    watched: list[tuple[str, dict[str, Any]]] = []

    class Watched(JobProgress):  # the featurize job is watched (progress: see below)
        def __init__(self, sc: Any, label: str, **kw: Any) -> None:
            watched.append((label, kw))
            super().__init__(sc, label, **kw)

    monkeypatch.setattr(ospark.core, "JobProgress", Watched)
    monkeypatch.setattr(ospark.core, "PROGRESS_INTERVAL_SECONDS", 0.1)
    with caplog.at_level(logging.INFO, logger="orchard.spark"):
        summary = ospark.update(str(root), str(out), spark=local_spark, size=SIZE,
                                pca_components=4)
    assert (summary["processed"], summary["featurized"], summary["reused"]) == (46, 10, 36)
    assert summary["segments"] == 1  # the 10 new images: one unit, one partition
    logged = caplog.text
    assert "10 images to featurize, 36 reused" in logged and "1 segments committed" in logged
    assert f"executors import orchard {orchard.__version__} ({sys.executable} on" in logged
    assert watched == [(f"{out}: featurize", {"tasks": 1, "images": 10, "interval": 0.1})]
    fresh = tmp_path / "fresh"
    ospark.run(str(root), str(fresh), spark=local_spark, size=SIZE, pca_components=4)
    assert_same_result(out, fresh)
    paths = [p for p, _ in read_features(out / "features.csv")[1]]
    assert not {str(p.relative_to(fruits_dir / "Test")) for p in removed} & set(paths)
    # An update with other settings is refused: the stored descriptors would not match.
    with pytest.raises(orchard.InvalidArgumentError, match="(?s)other settings.*overwrite") as e:
        ospark.update(str(root), str(out), spark=local_spark, size=SIZE + 32, pca_components=4)
    assert "--" not in str(e.value)


def test_progress_is_logged_while_a_job_runs(local_spark: SparkSession,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """JobProgress logs the tasks of the job started in its block, every interval, and
    nothing once the block is left; jobs that ran before are not counted."""
    sc = local_spark.sparkContext
    sc.parallelize(range(3), 3).count()  # an earlier job

    def slow(x: int) -> int:
        time.sleep(1.0)
        return x

    with caplog.at_level(logging.INFO, logger="orchard.spark"):
        # 3 rounds of 1 s on 2 cores. The tracker's counts trail the tasks by up to a
        # listener update, so only a count seen between the rounds is asked for.
        with JobProgress(sc, "out: featurize", tasks=6, images=60, interval=0.2) as progress:
            assert sc.parallelize(range(6), 6).map(slow).sum() == 15
        lines = progress.lines
        time.sleep(0.5)
    assert progress.lines == lines >= 3
    found = [tuple(map(int, m)) for m in re.findall(
        r"out: featurize: (\d) of 6 tasks done, (\d) running; about (\d+) of 60 images; "
        r"\d+ s", caplog.text)]
    assert len(found) == lines, caplog.text
    assert all(images == 10 * done for done, _, images in found)
    assert any(0 < done < 6 for done, _, _ in found), caplog.text  # seen in the middle
    assert "s left" in caplog.text


@spark_once
def test_a_partition_committed_twice_is_stored_once(fruits_dir: Path, cli_test5: Path,
                                                    tmp_path: Path) -> None:
    """A retried or speculative task commits its partition again under the same segment
    name: the segment is replaced, never added, so no row is duplicated."""
    source, out = str(fruits_dir / "Test"), str(tmp_path / "out")
    options = {"size": SIZE, "pca_components": 5}
    pending = _orchard._find_pending_images(source, out, mode="new", **options)
    images, generation, dim = pending["images"], pending["generation"], pending["dim"]
    assert (len(images), pending["reused"], generation, dim) == (50, 0, 1, 1280)
    units = [(u, images[s:s + 16]) for u, s in enumerate(range(0, len(images), 16))]
    task = _worker.commit_segments_fn(source, None, ospark.ModelOptions(size=SIZE).as_tuple(),
                                      4, out, generation, dim)
    first = list(task(iter(units[:2])))
    assert first == [(_orchard._segment_name(generation, 0), 32, 0)]
    assert list(task(iter(units[:2]))) == first  # the duplicate attempt
    assert list(task(iter(units[2:]))) == [(_orchard._segment_name(generation, 2), 18, 0)]
    assert len(list((tmp_path / "out" / "_orchard" / "segments").glob("*.json"))) == 2
    summary = _orchard._run(source, out, mode="resume", **options)
    assert (summary["processed"], summary["featurized"], summary["reused"]) == (50, 0, 50)
    assert_same_bytes(tmp_path / "out", cli_test5)
    # A malformed segment never reaches the store.
    with pytest.raises(orchard.InvalidArgumentError, match="rows"):
        _orchard._commit_segment(out, None, _orchard._segment_name(generation, 9), dim,
                                 [("a.jpg", "1", 0, None, None)], np.zeros((2, dim), np.float32))
    with pytest.raises(orchard.InvalidArgumentError, match="generation"):
        _orchard._commit_segment(out, None, "not-a-name", dim, [], np.zeros((0, dim), np.float32))


# ---- standalone cluster ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[StandaloneCluster]:
    active = SparkSession.getActiveSession()
    if active is not None:  # free the cores and the one SparkContext
        active.stop()
    with StandaloneCluster(workers=2, cores=1, memory="1g") as c:
        yield c


@pytest.fixture(scope="module")
def cli_training8(build_dir: Path, fruits_dir: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cli_run(build_dir, fruits_dir / "Training", tmp_path_factory.mktemp("cli") / "tr8",
                   "--pca-components", "8")


class ExecutorKiller(threading.Thread):
    """Kills one executor JVM once the first job has finished some of its tasks but not all."""

    def __init__(self, spark: SparkSession, cluster: StandaloneCluster, min_done: int) -> None:
        super().__init__(daemon=True)
        self.tracker = spark.sparkContext.statusTracker()
        self.cluster = cluster
        self.min_done = min_done
        self.stop_event = threading.Event()
        self.killed: dict[str, Any] = {}

    def run(self) -> None:
        while not self.stop_event.is_set() and not self.killed:
            for stage in self.tracker.getActiveStageIds():
                info = self.tracker.getStageInfo(stage)
                if info is None or info.numTasks < 2 * self.min_done:
                    continue
                if self.min_done <= info.numCompletedTasks < info.numTasks:
                    pid = self.cluster.kill_one_executor()
                    self.killed = {"pid": pid, "stage": stage, "done": info.numCompletedTasks,
                                   "tasks": info.numTasks}
                    return
            time.sleep(0.05)


def test_cluster_s3_run_survives_a_killed_executor(
        cluster: StandaloneCluster, s3_server: s3fx.S3TestConfig, s3_client: Any, s3_bucket: str,
        fruits_bucket: FruitsBucket, cli_training8: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = s3fx.aws_env(s3_server, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the driver's listing (executors: executorEnv only)
    spark = session(cluster.master_url, env, **{"spark.task.maxFailures": "4",
                                                "spark.cores.max": "2"})
    try:
        assert spark.sparkContext.defaultParallelism == 2
        killer = ExecutorKiller(spark, cluster, min_done=3)
        killer.start()
        summary = ospark.run(fruits_bucket.url + "Training", f"s3://{s3_bucket}/cluster",
                             spark=spark, size=SIZE, pca_components=8, batch=4,
                             num_partitions=20, s3_endpoint=s3_server.endpoint)
        killer.stop_event.set()
        killer.join()
        assert killer.killed, "no executor was killed mid-job:\n" + cluster.logs()
        print(f"killed executor {killer.killed}")
        assert summary["processed"] == 200 and summary["failed"] == 0
        out = tmp_path / "out"
        s3fx.download_prefix(s3_client, s3_bucket, "cluster/", out)
        assert_same_result(out, cli_training8)  # no lost, no duplicated row
        # The cluster replaced the executor and the application kept both workers.
        deadline = time.monotonic() + 30
        while len(cluster.executor_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert killer.killed["pid"] not in cluster.executor_pids()
    finally:
        spark.stop()
