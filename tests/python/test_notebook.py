"""notebooks/orchard_on_spark.ipynb, executed end to end with nbclient: Spark local[2], the
Fruits-360 Test split uploaded to the local S3 server (SeaweedFS), results written to another
bucket and read back. The notebook is committed without outputs; this test fails on any
cell that raises (the notebook checks its own results in its last cells)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("pyspark")

from tests.s3 import fixtures as s3fx  # noqa: E402
from tests.s3.fixtures import FruitsBucket  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "orchard_on_spark.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.slow
def test_notebook_runs_against_s3(s3_server: s3fx.S3TestConfig, s3_client: Any,
                                  fruits_bucket: FruitsBucket, s3_bucket: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "ORCHARD_NB_BUCKET": fruits_bucket.bucket,
        "ORCHARD_NB_INPUT_PREFIX": fruits_bucket.prefix + "Test",
        "ORCHARD_NB_OUTPUT": f"s3://{s3_bucket}/notebook",
        "ORCHARD_NB_S3_ENDPOINT": s3_server.endpoint,
        "ORCHARD_NB_MASTER": "local[2]",
        "ORCHARD_NB_SIZE": "96",
        "SPARK_LOCAL_IP": "127.0.0.1",
        **s3fx.aws_env(s3_server, tmp_path),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)  # the notebook picks its own Python
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    nb = client.execute()
    keys = s3fx.list_keys(s3_client, s3_bucket, "notebook/")
    assert any(k.startswith("notebook/_orchard/segments/") for k in keys)  # the descriptor store
    keys = [k for k in keys if not k.startswith("notebook/_orchard/")]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted(
        ["features.csv", "features.npy", "features.parquet", "pca.json", "errors.csv",
         "manifest.json"])
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # sample images, explained variance, 2-D scatter
