"""The CLI against hostile options and files: every usage error exits 2 with one true line,
before any work; files whose first bytes condemn them are error rows, not hangs or OOM kills.

Each case here failed on the main of 2026-12-01 (exit 1 after loading the model, a 309-digit
range in the message, an OOM kill at --size 4096, a sidecar naming another model that ran).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest


def _run(build_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(build_dir / "orchard"), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def few_images(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real photos in two classes."""
    root = tmp_path_factory.mktemp("few")
    training = shared_dir / "data" / "fruits-360-mini" / "Training"
    for cls in sorted(p for p in training.iterdir() if p.is_dir())[:2]:
        (root / cls.name).mkdir()
        for image in sorted(cls.iterdir())[:3]:
            shutil.copy(image, root / cls.name / image.name)
    return root


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--commit-seconds", "-1"], "--commit-seconds: must be a positive number, not '-1'"),
        (["--commit-seconds", "inf"], "--commit-seconds: must be a positive number, not 'inf'"),
        (["--commit-seconds", "nan"], "--commit-seconds: must be a positive number, not 'nan'"),
        (["--max-pixels", "0"], "--max-pixels: must be a positive number, not '0'"),
        (["--limit", "-1"], "--limit: must be 0 or a positive number, not '-1'"),
        (["--pca-variance", "0"], "--pca-variance: must be more than 0 and at most 1, not '0'"),
        (["--pca-components", "0"], "--pca-components: must be a positive number, not '0'"),
        (["--backend", "tensorflow"], "--backend: tensorflow not in {onnxruntime,opencv-dnn}"),
        (["--model", "s3://bucket/model"], "--model in S3 must name its .onnx file or its .json"),
        (["--pca-components", "5000"], "--pca-components 5000 is more than the descriptor dimension 1280"),
        (["--size", "4096"], "inference at 4096x4096 with --batch 16 needs about"),
        (["--pooling", "flatten", "--max-pca-dim", "100"], "over the limit of 100 dims (--max-pca-dim)"),
    ],
)
def test_usage_errors_exit_2_with_one_true_line(
    build_dir: Path, few_images: Path, tmp_path: Path, extra: list[str], expected: str
) -> None:
    start = time.monotonic()
    result = _run(build_dir, "run", "-q", "-i", str(few_images), "-o", str(tmp_path / "out"), *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    # No absurd figures: no 300-digit range, no "0.0 GiB".
    assert not re.search(r"\d{20,}", result.stderr), result.stderr
    assert "0.0 GiB" not in result.stderr and "0.00 GiB" not in result.stderr
    assert time.monotonic() - start < 30  # refused before any image is featurized
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_an_output_that_needs_resume_or_overwrite_is_a_usage_error(
    build_dir: Path, few_images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = _run(build_dir, "run", "-q", "-i", str(few_images), "-o", str(out), "--pca-components", "2")
    assert first.returncode == 0, first.stderr
    again = _run(build_dir, "run", "-q", "-i", str(few_images), "-o", str(out))
    assert again.returncode == 2 and "is not empty" in again.stderr, again.stderr
    other = _run(build_dir, "run", "-q", "--resume", "-i", str(few_images), "-o", str(out),
                 "--size", "96")
    assert other.returncode == 2 and "other settings" in other.stderr, other.stderr
    nothing = _run(build_dir, "update", "-q", "-i", str(few_images), "-o", str(tmp_path / "new"))
    assert nothing.returncode == 2 and "nothing to update" in nothing.stderr, nothing.stderr


def test_a_sidecar_naming_another_model_file_is_refused(
    build_dir: Path, repo_dir: Path, few_images: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(repo_dir / "models" / "mobilenet_v2.onnx", models / "wanted.onnx")
    sidecar = json.loads((repo_dir / "models" / "mobilenet_v2.json").read_text())
    sidecar.pop("variants")
    for file, message in [("other.onnx", "describes other.onnx, not wanted.onnx"),
                          (str(repo_dir / "models" / "mobilenet_v2.onnx"), "beside the sidecar"),
                          ("../wanted.onnx", "beside the sidecar")]:
        sidecar["file"] = file
        (models / "wanted.json").write_text(json.dumps(sidecar))
        result = _run(build_dir, "run", "-q", "-i", str(few_images), "-o", str(tmp_path / "o"),
                      "--model", str(models / "wanted.onnx"))
        assert result.returncode == 2, result.stderr
        assert message in result.stderr, result.stderr


def test_files_condemned_by_their_first_bytes_are_error_rows(
    build_dir: Path, few_images: Path, tmp_path: Path
) -> None:
    """A 1.5 GB sparse file named .jpg and a JPEG header declaring 60000x60000 in front of 500 MB
    are refused from their first bytes: the run stays fast and small."""
    images = tmp_path / "in"
    shutil.copytree(few_images, images)
    cls = sorted(p for p in images.iterdir())[0]
    with open(cls / "huge.jpg", "wb") as f:
        f.truncate(1536 << 20)  # under the storage cap (2 GiB), over any image
    jpeg = bytearray(sorted((few_images / cls.name).glob("*.jpg"))[0].read_bytes())
    sof = jpeg.index(b"\xff\xc0") + 4
    jpeg[sof + 1:sof + 5] = (60000).to_bytes(2, "big") * 2
    with open(cls / "bomb.jpg", "wb") as f:
        f.write(jpeg)
        f.truncate(500 << 20)
    result = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M", str(build_dir / "orchard"), "run", "-q", "-i",
         str(images), "-o", str(tmp_path / "out"), "--pca-components", "2"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    errors = (tmp_path / "out" / "errors.csv").read_text()
    assert re.search(r"huge\.jpg,decode,.*more than any image within the pixel limit", errors), errors
    assert re.search(r"bomb\.jpg,decode,.*60000x60000", errors), errors
    maxrss_kb = int(re.search(r"maxrss_kb=(\d+)", result.stderr).group(1))
    assert maxrss_kb < 1_000_000, f"peak RSS {maxrss_kb} KB: a file was read whole"
