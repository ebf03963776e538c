"""docs/descriptor-store.md is true: its reader, run on a real run's store, gives exactly the
run's raw.npy, and the files are what the page says."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


def _doc_reader(repo_dir: Path) -> Any:
    text = (repo_dir / "docs" / "descriptor-store.md").read_text()
    code = re.search(r"## Reading it\n\n```python\n(.*?)```", text, re.S)
    assert code, "the reader's code block is missing from docs/descriptor-store.md"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "descriptor-store.md", "exec"), namespace)  # noqa: S102
    return namespace["stored_descriptors"]


def test_the_documented_reader_gives_the_runs_descriptors(
        repo_dir: Path, build_dir: Path, shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [str(build_dir / "orchard"), "run", "-q", "-i",
         str(shared_dir / "data" / "fruits-360-mini" / "Training"), "-o", str(out),
         "--pca-components", "4", "--save-raw", "--commit-images", "50", "--limit", "120"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    keys, matrix = _doc_reader(repo_dir)(out)
    raw = np.load(out / "raw.npy")
    paths = [line.split(",")[0] for line in (out / "features.csv").read_text().splitlines()[1:]]
    assert keys == paths
    assert np.array_equal(matrix, raw)

    store = json.loads((out / "_orchard" / "store.json").read_text())
    assert store["format"] == "orchard-store/1"
    assert store["descriptor_dim"] == 1280
    records = sorted((out / "_orchard" / "segments").glob("*.json"))
    # 120 images in batches of 16: a commit at the first batch boundary past 50 images.
    assert len(records) == 2
    first = json.loads(records[0].read_text())
    assert first["format"] == "orchard-segment/1" and first["rows"] == 64
    assert (out / "_orchard" / "segments" / first["descriptors"]).stat().st_size == 128 + 64 * 1280 * 4
