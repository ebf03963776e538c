"""python -m orchard.selftest, the check deploy/emr-bootstrap.sh runs on every node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import orchard
from orchard import selftest
from tests.s3 import fixtures as s3fx


def test_the_bundled_photo_gives_the_reference_descriptor() -> None:
    report = selftest.run()
    assert report["cosine_to_reference"] > 0.99999
    assert report["version"] == orchard.__version__


def test_a_wrong_descriptor_fails_the_self_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = tmp_path / "reference.npy"
    np.save(wrong, -np.load(selftest.REFERENCE))
    monkeypatch.setattr(selftest, "REFERENCE", str(wrong))
    with pytest.raises(selftest.SelfTestError, match="differs from the reference build's"):
        selftest.run()


def test_it_reads_through_orchards_s3_client_and_names_what_fails(
    s3_server: s3fx.S3TestConfig, s3_client: Any, s3_bucket: str, tmp_path: Path,
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="deploy/probe.bin", Body=b"x" * 123)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3fx.aws_env(s3_server, tmp_path))
    command = [sys.executable, "-m", "orchard.selftest", "--s3-endpoint", s3_server.endpoint]
    ok = subprocess.run([*command, "--read", f"s3://{s3_bucket}/deploy/probe.bin"],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("orchard.selftest: ok: orchard ")
    assert f"read s3://{s3_bucket}/deploy/probe.bin (123 bytes)" in ok.stdout
    missing = subprocess.run([*command, "--read", f"s3://{s3_bucket}/deploy/absent.bin"],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "FAILED: could not read s3://" in missing.stderr, missing.stderr
