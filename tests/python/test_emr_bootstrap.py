"""deploy/emr-bootstrap.sh, run here as on an EMR node as far as this machine allows: the
real AWS CLI fetches the wheelhouse (the portable orchard wheel of deploy/build-wheel plus
deploy/make-wheelhouse's dependency wheels) from the local S3 server, pip installs it with
--no-index (no PyPI), and the node's self-test reads the wheel back through orchard's own S3
client. What cannot run here: Amazon Linux's dnf, the instance profile (IMDS) and EMR itself.

Needs ORCHARD_WHEEL_DIR (a folder holding the cp311 manylinux wheel; scripts/test builds it
with deploy/build-wheel) and the AWS CLI in .tools/awscli (scripts/install-deps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.s3 import fixtures as s3fx

PYTHON = "/usr/bin/python3.11"


@pytest.fixture(scope="module")
def portable_wheel() -> Path:
    folder = os.environ.get("ORCHARD_WHEEL_DIR")
    if not folder:
        pytest.skip("ORCHARD_WHEEL_DIR is not set (scripts/test sets it after deploy/build-wheel)")
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    wheels = sorted(Path(folder).glob(f"orchard_features-*-{tag}-{tag}-manylinux_*.whl"))
    assert wheels, f"no {tag} manylinux wheel in {folder}"
    return wheels[-1]


@pytest.fixture(scope="module")
def aws_cli(repo_dir: Path) -> Path:
    cli = repo_dir / ".tools" / "awscli" / "bin"
    assert (cli / "aws").is_file(), "the AWS CLI is missing: run scripts/install-deps"
    return cli


def _bootstrap(repo_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(repo_dir / "deploy" / "emr-bootstrap.sh"), *args],
                          capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_bootstrap_installs_from_s3_without_pypi_and_self_tests(
    repo_dir: Path, portable_wheel: Path, aws_cli: Path, s3_server: s3fx.S3TestConfig,
    s3_client: Any, s3_bucket: str, tmp_path: Path,
) -> None:
    house = tmp_path / "house"
    made = subprocess.run([str(repo_dir / "deploy" / "make-wheelhouse"), str(house), "--python",
                           "3.11"], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    shutil.copy(portable_wheel, house)
    for path in house.iterdir():
        s3_client.upload_file(str(path), s3_bucket, f"orchard/wheels/{path.name}")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIP_"))}
    env.update(s3fx.aws_env(s3_server, tmp_path))
    env["AWS_ENDPOINT_URL"] = s3_server.endpoint  # the AWS CLI's and orchard's endpoint
    env["PATH"] = f"{aws_cli}:{env['PATH']}"
    env["PIP_INDEX_URL"] = "http://127.0.0.1:9/unreachable"  # proof that no index is used
    prefix = tmp_path / "opt" / "orchard"
    result = _bootstrap(repo_dir, env, "--wheelhouse", f"s3://{s3_bucket}/orchard/wheels/",
                        "--prefix", str(prefix), "--python", PYTHON,
                        "--s3-endpoint", s3_server.endpoint)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "orchard.selftest: ok" in result.stdout, result.stdout
    assert f"read s3://{s3_bucket}/orchard/wheels/{portable_wheel.name}" in result.stdout
    venv_python = prefix / "venv" / "bin" / "python"
    assert (prefix / "env").read_text().startswith(f"PYSPARK_PYTHON={venv_python}\n")
    # The venv holds the wheel's orchard, with its bundled engine, not the source tree's.
    where = subprocess.run([str(venv_python), "-c", "import orchard; print(orchard.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.returncode == 0 and str(prefix) in where.stdout, where.stderr

    # A broken install fails the bootstrap loudly, naming the step: here a wheelhouse without
    # the wheel for this Python.
    s3_client.delete_object(Bucket=s3_bucket, Key=f"orchard/wheels/{portable_wheel.name}")
    broken = _bootstrap(repo_dir, env, "--wheelhouse", f"s3://{s3_bucket}/orchard/wheels/",
                        "--prefix", str(tmp_path / "opt2"), "--python", PYTHON)
    assert broken.returncode != 0
    assert "expected one orchard wheel for cp311" in broken.stderr, broken.stderr
    assert "FAILED (exit 1) while fetching the wheelhouse" in broken.stderr, broken.stderr
    assert (prefix / "venv").is_dir()  # the working install of the first run is untouched
