"""The C++ engine checked against independent references: PyTorch running the same ONNX
weights on the same tensor (descriptors) and numpy (PCA), on real and random data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "models"))
from onnx_torch_reference import OnnxTorchReference  # noqa: E402


def _tool(build_dir: Path, name: str) -> Path:
    path = build_dir / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/build")
    return path


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _engine_descriptors(
    build_dir: Path, tmp_path: Path, model: str, size: int, pooling: str, batch: np.ndarray
) -> np.ndarray:
    tensor = tmp_path / "in.f32"
    out = tmp_path / "out.f32"
    np.ascontiguousarray(batch, dtype=np.float32).tofile(tensor)
    result = subprocess.run(
        [str(_tool(build_dir, "extract_probe")), model, str(size), pooling, str(len(batch)),
         str(tensor), str(out)],
        capture_output=True, text=True, check=True,
    )
    dim = int(result.stdout.strip())
    return np.fromfile(out, dtype=np.float32).reshape(len(batch), dim)


def _reference_descriptors(onnx_path: Path, batch: np.ndarray, pooling: str) -> np.ndarray:
    reference = OnnxTorchReference(onnx_path)
    fmap = reference.run({reference.input_name: batch.astype(np.float64)}, ["feature_map"])["feature_map"]
    if pooling == "avg":
        return fmap.mean(axis=(2, 3))
    if pooling == "max":
        return fmap.max(axis=(2, 3))
    return fmap.reshape(len(fmap), -1)


@pytest.mark.parametrize(
    "model,size,pooling",
    [("mobilenet_v2", 224, "avg"), ("mobilenet_v2", 224, "flatten"), ("mobilenet_v2", 100, "max"),
     ("vgg16", 100, "flatten"), ("vgg16", 224, "avg"), ("resnet50", 100, "avg")],
)
def test_descriptors_match_pytorch_on_the_same_tensor(
    build_dir: Path, repo_dir: Path, tmp_path: Path, model: str, size: int, pooling: str
) -> None:
    onnx_path = repo_dir / "models" / f"{model}.onnx"
    if not onnx_path.exists():
        pytest.fail(f"{onnx_path} missing: run scripts/export-models")
    rng = np.random.default_rng(3)
    # Inputs in the range the models' preprocessing produces.
    batch = rng.uniform(-2.0, 2.0, size=(3, 3, size, size)).astype(np.float32)
    ours = _engine_descriptors(build_dir, tmp_path, model, size, pooling, batch)
    theirs = _reference_descriptors(onnx_path, batch, pooling)
    assert ours.shape == theirs.shape
    assert _cosine(ours, theirs).min() >= 0.9999


def _run_cli(build_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_tool(build_dir, "orchard")), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def sample_run(build_dir: Path, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "out"
    result = _run_cli(
        build_dir, "run", "--input", str(shared_dir / "data" / "fruits-360-mini" / "Training"),
        "--output", str(out), "--pca-components", "16", "--save-raw", "--quiet",
    )
    assert result.returncode == 0, result.stderr
    return out


def test_pca_matches_numpy_on_real_descriptors(sample_run: Path) -> None:
    raw = np.load(sample_run / "raw.npy").astype(np.float64)
    model = json.loads((sample_run / "pca.json").read_text())
    assert raw.shape == (200, 1280)
    mean = raw.mean(axis=0)
    _, s, vt = np.linalg.svd(raw - mean, full_matrices=False)
    variance = s**2 / (len(raw) - 1)
    components = np.asarray(model["components"])
    assert np.allclose(model["mean"], mean, rtol=1e-9, atol=1e-9)
    # Exact PCA: each component matches numpy's up to sign.
    cos = np.abs((components * vt[:16]).sum(axis=1))
    assert cos.min() >= 0.9999
    assert np.allclose(model["explained_variance"], variance[:16], rtol=1e-6)
    assert np.allclose(model["explained_variance_ratio"], variance[:16] / variance.sum(), rtol=1e-6)
    # The written matrix is the projection of the raw descriptors.
    features = np.load(sample_run / "features.npy")
    assert features.dtype == np.float32 and features.shape == (200, 16)
    assert np.allclose(features, (raw - np.asarray(model["mean"])) @ components.T, rtol=1e-5, atol=1e-4)


def test_csv_holds_the_same_numbers_as_npy(sample_run: Path) -> None:
    lines = (sample_run / "features.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header == ["path", "label"] + [f"pc_{i}" for i in range(1, 17)]
    values = np.array([[np.float32(v) for v in line.rsplit(",", 16)[1:]] for line in lines[1:]])
    assert np.array_equal(values, np.load(sample_run / "features.npy"))  # floats round-trip
    paths = [line.rsplit(",", 16)[0].split(",")[0] for line in lines[1:]]
    assert paths == sorted(paths, key=lambda p: p.encode())  # byte order of the key
    assert {p.split("/")[0] for p in paths} == {"Cherry 3", "Orange 2", "Peach 3", "Plum 5", "apple_golden_1"}


@pytest.mark.parametrize("splits", [1, 7])
def test_pca_matches_numpy_on_random_matrices(build_dir: Path, tmp_path: Path, splits: int) -> None:
    rng = np.random.default_rng(splits)
    n, d, k = 400, 48, 10
    # A decaying spectrum and an offset mean, as CNN descriptors have.
    x = (rng.standard_normal((n, d)) * np.geomspace(10, 0.01, d) + 5.0).astype(np.float32)
    x.tofile(tmp_path / "x.f32")
    subprocess.run(
        [str(_tool(build_dir, "pca_probe")), str(n), str(d), str(tmp_path / "x.f32"), str(k), str(splits),
         str(tmp_path / "pca.json"), str(tmp_path / "y.f32")],
        check=True,
    )
    model = json.loads((tmp_path / "pca.json").read_text())
    x64 = x.astype(np.float64)
    _, s, vt = np.linalg.svd(x64 - x64.mean(axis=0), full_matrices=False)
    variance = s**2 / (n - 1)
    components = np.asarray(model["components"])
    assert np.abs((components * vt[:k]).sum(axis=1)).min() >= 0.9999
    assert np.allclose(model["explained_variance"], variance[:k], rtol=1e-6)
    # Sign convention: the largest-magnitude entry of each component is positive.
    assert all(c[np.argmax(np.abs(c))] > 0 for c in components)
    y = np.fromfile(tmp_path / "y.f32", dtype=np.float32).reshape(n, k)
    assert np.allclose(y, (x64 - x64.mean(axis=0)) @ components.T, rtol=1e-5, atol=1e-4)


def test_help_documents_every_run_option(build_dir: Path) -> None:
    result = _run_cli(build_dir, "run", "--help")
    assert result.returncode == 0
    for option in ["--input", "--output", "--model", "--pca-variance", "--pca-components", "--size", "--pooling",
                   "--batch", "--threads", "--limit", "--save-raw", "--fail-on-error", "--max-pixels"]:
        assert option in result.stdout, option


@pytest.mark.parametrize(
    "args",
    [["run"], ["run", "--input", "x"], ["run", "--input", "x", "--output", "y", "--batch", "0"],
     ["run", "--input", "x", "--output", "y", "--pca-components", "3", "--pca-variance", "0.9"],
     ["run", "--input", "x", "--output", "y", "--pooling", "median"], ["frobnicate"], []],
)
def test_usage_errors_exit_2_with_one_line(build_dir: Path, args: list[str]) -> None:
    result = _run_cli(build_dir, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "orchard:" in result.stderr


def test_unknown_model_is_a_usage_error(build_dir: Path, tmp_path: Path) -> None:
    result = _run_cli(build_dir, "run", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--model", "nope")
    assert result.returncode == 2
    assert "unknown model 'nope'" in result.stderr


def test_broken_images_are_reported_and_fail_on_error_sets_exit_1(
    build_dir: Path, shared_dir: Path, tmp_path: Path
) -> None:
    source = shared_dir / "data" / "fruits-360-mini" / "Test" / "Plum 5"
    images = tmp_path / "in" / "Plum 5"
    images.mkdir(parents=True)
    for path in sorted(source.iterdir())[:4]:
        (images / path.name).write_bytes(path.read_bytes())
    (images / "broken.jpg").write_bytes(b"")
    common = ["run", "--input", str(tmp_path / "in"), "--pca-components", "2", "--quiet"]
    ok = _run_cli(build_dir, *common, "--output", str(tmp_path / "a"))
    assert ok.returncode == 0, ok.stderr
    assert "1 failed" in ok.stderr
    errors = (tmp_path / "a" / "errors.csv").read_text().splitlines()
    assert errors[0] == "path,stage,message"
    assert errors[1].startswith("Plum 5/broken.jpg,decode,")
    strict = _run_cli(build_dir, *common, "--output", str(tmp_path / "b"), "--fail-on-error")
    assert strict.returncode == 1


def test_missing_input_fails_with_exit_1(build_dir: Path, tmp_path: Path) -> None:
    result = _run_cli(build_dir, "run", "--input", str(tmp_path / "absent"), "--output", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_inspect_summarises_a_run(build_dir: Path, sample_run: Path) -> None:
    result = _run_cli(build_dir, "inspect", str(sample_run))
    assert result.returncode == 0
    assert "200 processed" in result.stdout
    assert "Cherry 3" in result.stdout
    manifest = json.loads((sample_run / "manifest.json").read_text())
    assert manifest["model"]["sha256"] == json.loads(
        (Path(__file__).resolve().parents[2] / "models" / "mobilenet_v2.json").read_text())["sha256"]
    assert manifest["counts"] == {"listed": 200, "processed": 200, "failed": 0}
    assert "status:     ok" in result.stdout


def test_inspect_tells_a_mixed_or_unfinished_result_from_a_complete_one(
        build_dir: Path, sample_run: Path, shared_dir: Path, tmp_path: Path) -> None:
    """The manifest vouches for every result file (size, sha256): another run's file beside
    it, or no manifest at all, is reported and exits 1."""
    out = tmp_path / "copy"
    shutil.copytree(sample_run, out)
    other = _run_cli(build_dir, "run", "-q", "--input",
                     str(shared_dir / "data" / "fruits-360-mini" / "Training"), "--output",
                     str(tmp_path / "other"), "--pca-components", "3", "--limit", "5")
    assert other.returncode == 0, other.stderr
    shutil.copy(tmp_path / "other" / "features.npy", out / "features.npy")
    mixed = _run_cli(build_dir, "inspect", str(out))
    assert mixed.returncode == 1
    assert "status:     INCONSISTENT" in mixed.stdout
    assert "features.npy does not match the manifest" in mixed.stdout
    (out / "manifest.json").unlink()
    unfinished = _run_cli(build_dir, "inspect", str(out))
    assert unfinished.returncode == 1
    assert "INCOMPLETE" in unfinished.stderr


def test_inspect_reads_a_hostile_manifest_without_crashing_or_leaving_the_folder(
        build_dir: Path, tmp_path: Path) -> None:
    """A manifest of the wrong shape is reported (exit 1), never an uncaught exception; a
    "files" entry that names a path outside the folder is refused, not hashed."""
    out = tmp_path / "out"
    out.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not orchard's")
    sha = '"sha256": "' + "0" * 64 + '"'
    cases = {
        '{"counts": "many", "model": [1], "status": 7, "pca": {"k": "x"}}': "lists no result files",
        '{"counts": {"listed": 1e300}, "files": {}}': "status:",
        '{"files": {"../secret.txt": {"bytes": 13, ' + sha + '}}}': "invalid entry",
        '{"files": {"a": {"bytes": -1, ' + sha + '}}}': "invalid entry",
        '[1, 2]': "not a JSON object",
        '{"status": "ok"': "not valid JSON",
    }
    for text, expected in cases.items():
        (out / "manifest.json").write_text(text)
        result = _run_cli(build_dir, "inspect", str(out))
        assert result.returncode == 1, (text, result.stdout, result.stderr)
        assert expected in result.stdout + result.stderr, (text, result.stdout, result.stderr)
        assert "terminate" not in result.stderr


def test_formula_looking_names_are_neutralized_and_recoverable(
        build_dir: Path, shared_dir: Path, tmp_path: Path) -> None:
    """Folder and file names that a spreadsheet would run as formulas get one leading
    apostrophe in the CSVs; pandas reads them, and dropping one apostrophe gives the names."""
    import pandas as pd

    images = sorted((shared_dir / "data" / "fruits-360-mini" / "Training").rglob("*.jpg"))
    names = ["=SUM(A1)", "+cmd", "-apple", "@home", "'quoted", "plain"]
    for i, label in enumerate(names):
        (tmp_path / "in" / label).mkdir(parents=True)
        shutil.copy(images[2 * i], tmp_path / "in" / label / "a.jpg")
    (tmp_path / "in" / "=HYPERLINK(1).jpg").write_bytes(b"not an image")
    result = _run_cli(build_dir, "run", "-q", "--input", str(tmp_path / "in"), "--output",
                      str(tmp_path / "out"), "--pca-components", "2")
    assert result.returncode == 0, result.stderr
    features = pd.read_csv(tmp_path / "out" / "features.csv")
    for column in ("path", "label"):
        text = features[column].astype(str)
        assert not text.str.match(r"^[=+\-@]").any(), text.tolist()  # nothing a sheet would run
        features[column] = text.str.replace(r"^'", "", regex=True)
    assert sorted(features["label"]) == sorted(names)
    assert sorted(features["path"]) == sorted(f"{label}/a.jpg" for label in names)
    errors = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert errors["path"].tolist() == ["'=HYPERLINK(1).jpg"]
