"""Chaos: `orchard run` killed with SIGKILL in every phase (listing, inference, committing,
accumulation, before the eigendecomposition, writing, publishing) and at random times, on
local and S3 outputs, then `--resume`d: every time the result is byte-identical to an
uninterrupted run (so no row is lost or duplicated) and no temporary file is left. A full
disk gives a clear error and no partial result; the run resumes once space is freed.

The kills land exactly where asked through the test hook ORCHARD_CRASH_AT=<point>:<n>
(src/util/crash_point.h: the process raises SIGKILL itself, which cannot be caught), plus
timed `kill -9` from outside at random moments. The seed is printed; ORCHARD_CHAOS_SEED
replays a failure.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.s3 import fixtures as s3fx

RESULTS = ["features.csv", "features.npy", "raw.npy", "pca.json", "errors.csv"]
OPTIONS = ["--pca-components", "5", "--batch", "3", "--commit-images", "6", "--save-raw", "-q"]
TRIALS = 20

# Crash points and how many times each runs for the input below (40 images, 2 broken, one
# .txt: 43 listed; 14 batches; 7 segments; 1 chunk of rows), so every count lands in its
# phase. "publish" runs only for s3:// outputs (local files are renamed in place).
POINTS = {"list": 43, "extract": 14, "commit": 7, "committed": 7, "accumulate": 1, "fit": 1,
          "write": 1}


@pytest.fixture(scope="module")
def chaos_input(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chaos") / "in"
    training = shared_dir / "data" / "fruits-360-mini" / "Training"
    for cls in sorted(p for p in training.iterdir() if p.is_dir()):
        (root / cls.name).mkdir(parents=True)
        for image in sorted(cls.iterdir())[:8]:
            shutil.copy(image, root / cls.name / image.name)
    (root / "zz").mkdir()
    (root / "zz" / "text.jpg").write_bytes(b"not a jpeg")
    (root / "zz" / "empty.png").write_bytes(b"")
    (root / "zz" / "notes.txt").write_text("hello")
    return root


def _orchard(build_dir: Path, *args: str, env: dict[str, str] | None = None,
             crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    run_env = dict(env or os.environ)
    run_env.pop("ORCHARD_CRASH_AT", None)
    if crash_at:
        run_env["ORCHARD_CRASH_AT"] = crash_at
    return subprocess.run([str(build_dir / "orchard"), *args], capture_output=True, text=True,
                          env=run_env, timeout=300)


def _kill_after(build_dir: Path, seconds: float, *args: str,
                env: dict[str, str] | None = None) -> int:
    """Starts a run, SIGKILLs it after `seconds` (if still running); its exit status."""
    proc = subprocess.Popen([str(build_dir / "orchard"), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=60)


def _moments(rng: random.Random, points: dict[str, int], run_seconds: float) -> list[Any]:
    """TRIALS moments: every crash point at least once, then random points and times."""
    moments: list[Any] = [(p, rng.randint(1, n)) for p, n in points.items()]
    while len(moments) < TRIALS - 6:
        p = rng.choice(list(points))
        moments.append((p, rng.randint(1, points[p])))
    moments += [rng.uniform(0.05, run_seconds) for _ in range(TRIALS - len(moments))]
    rng.shuffle(moments)
    return moments


def _seed() -> int:
    seed = int(os.environ.get("ORCHARD_CHAOS_SEED", time.time_ns() % 1_000_000))
    print(f"chaos seed {seed} (ORCHARD_CHAOS_SEED={seed} replays it)")
    return seed


def _reference(build_dir: Path, chaos_input: Path, out: Path) -> tuple[dict[str, bytes], float]:
    start = time.monotonic()
    result = _orchard(build_dir, "run", "-i", str(chaos_input), "-o", str(out), *OPTIONS)
    assert result.returncode == 0, result.stderr
    return {name: (out / name).read_bytes() for name in RESULTS}, time.monotonic() - start


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_gives_the_same_bytes_local(
        build_dir: Path, chaos_input: Path, tmp_path: Path) -> None:
    expected, seconds = _reference(build_dir, chaos_input, tmp_path / "reference")
    rng = random.Random(_seed())
    for trial, moment in enumerate(_moments(rng, POINTS, seconds)):
        out = tmp_path / f"out{trial}"
        args = ("run", "-i", str(chaos_input), "-o", str(out), *OPTIONS)
        # One or two crashes in a row before the resume that completes.
        for _ in range(rng.choice([1, 1, 2])):
            if isinstance(moment, tuple):
                crashed = _orchard(build_dir, *args, "--resume", crash_at=f"{moment[0]}:{moment[1]}")
                assert crashed.returncode in (-signal.SIGKILL, 0), (moment, crashed.stderr)
            else:
                _kill_after(build_dir, moment, *args, "--resume")
        resumed = _orchard(build_dir, *args, "--resume")
        assert resumed.returncode == 0, (moment, resumed.stderr)
        for name in RESULTS:
            assert (out / name).read_bytes() == expected[name], f"{name} differs after {moment}"
        leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name]
        assert not leftovers, f"temporary files left after {moment}: {leftovers}"


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_gives_the_same_bytes_s3(
        build_dir: Path, chaos_input: Path, tmp_path: Path, s3_server: s3fx.S3TestConfig,
        s3_client: Any, s3_bucket: str) -> None:
    expected, seconds = _reference(build_dir, chaos_input, tmp_path / "reference")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3fx.aws_env(s3_server, tmp_path))
    rng = random.Random(_seed())
    points = dict(POINTS, publish=6)  # features.csv, .npy, raw.npy, pca.json, errors, manifest
    for trial, moment in enumerate(_moments(rng, points, seconds)):
        prefix = f"chaos{trial}/"
        args = ("run", "-i", str(chaos_input), "-o", f"s3://{s3_bucket}/{prefix}",
                "--s3-endpoint", s3_server.endpoint, *OPTIONS)
        if isinstance(moment, tuple):
            crashed = _orchard(build_dir, *args, env=env, crash_at=f"{moment[0]}:{moment[1]}")
            assert crashed.returncode in (-signal.SIGKILL, 0), (moment, crashed.stderr)
        else:
            _kill_after(build_dir, moment, *args, env=env)
        resumed = _orchard(build_dir, *args, "--resume", env=env)
        assert resumed.returncode == 0, (moment, resumed.stderr)
        for name in RESULTS:
            body = s3_client.get_object(Bucket=s3_bucket, Key=prefix + name)["Body"].read()
            assert body == expected[name], f"{name} differs after {moment}"


def _user_namespaces_work() -> bool:
    """Whether this machine lets us mount a private tmpfs (user + mount namespaces)."""
    if shutil.which("unshare") is None:
        return False
    import tempfile
    with tempfile.TemporaryDirectory() as probe:
        try:
            return subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k",
                                   "tmpfs", probe], capture_output=True,
                                  timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


@pytest.mark.skipif(not _user_namespaces_work(),
                    reason="needs unshare -rm (user and mount namespaces) for a small tmpfs")
def test_a_full_disk_is_a_clear_error_and_the_run_resumes_once_space_is_freed(
        build_dir: Path, chaos_input: Path, tmp_path: Path) -> None:
    expected, _ = _reference(build_dir, chaos_input, tmp_path / "reference")
    disk = tmp_path / "disk"
    disk.mkdir()
    copy = tmp_path / "copy"
    # In a private mount namespace: a 160 KiB tmpfs as the output holds part of the 40
    # descriptors of 5 KiB each, then fills; then it grows to 64 MiB and the run resumes.
    orchard = build_dir / "orchard"
    script = f"""
set -u
mount -t tmpfs -o size=160k tmpfs {disk}
"{orchard}" run -i "{chaos_input}" -o {disk}/out {' '.join(OPTIONS)}
echo "first=$?"
ls -a {disk}/out
find {disk}/out -name '*.tmp-*' | sed 's/^/leftover /'
mount -o remount,size=64m tmpfs {disk}
"{orchard}" run -i "{chaos_input}" -o {disk}/out {' '.join(OPTIONS)} --resume
echo "second=$?"
cp -r {disk}/out {copy}
"""
    result = subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True,
                            text=True, timeout=300)
    assert "first=1" in result.stdout, result.stdout + result.stderr
    # One clear line from the failed run (the resumed run's summary follows it).
    first_error = result.stderr.splitlines()[0]
    assert first_error.startswith("orchard: cannot write "), result.stderr
    assert first_error.endswith("No space left on device"), result.stderr
    first_listing = result.stdout.split("first=1", 1)[1].split("second=", 1)[0]
    for name in RESULTS + ["manifest.json"]:
        assert f"\n{name}\n" not in first_listing, f"partial {name} after a full disk"
    assert "leftover" not in result.stdout, result.stdout
    assert "second=0" in result.stdout, result.stdout + result.stderr
    assert "reused from the descriptor store" in result.stderr, result.stderr
    for name in RESULTS:
        assert (copy / name).read_bytes() == expected[name], name
