"""`orchard` with s3:// input, output and model, against the local SeaweedFS server (which
verifies SigV4 signatures), directly and through the fault-injecting proxy."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.s3 import fixtures as s3fx
from tests.s3.fault_proxy import FaultProxy
from tests.s3.fixtures import FruitsBucket

RESULT_FILES = ["features.csv", "features.npy", "pca.json", "errors.csv"]


def _env(cfg: s3fx.S3TestConfig, tmp_path: Path, *, readonly: bool = False, secret: str | None = None) -> dict[str, str]:
    """A clean AWS environment: only the test server's credentials, no shared files, no IMDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3fx.aws_env(cfg, tmp_path, readonly=readonly))
    if secret is not None:
        env["AWS_SECRET_ACCESS_KEY"] = secret
    return env


def _orchard(build_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(build_dir / "orchard"), *args], capture_output=True, text=True, env=env,
                          timeout=600)


def _download(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    return {key[len(prefix):]: client.get_object(Bucket=bucket, Key=key)["Body"].read()
            for key in s3fx.list_keys(client, bucket, prefix)}


@pytest.fixture(scope="module")
def local_result(build_dir: Path, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    result = subprocess.run(
        [str(build_dir / "orchard"), "run", "-q", "--input",
         str(shared_dir / "data" / "fruits-360-mini" / "Training"), "--output", str(out), "--pca-components", "8"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def _assert_same_result(outputs: dict[str, bytes], local: Path) -> None:
    for name in RESULT_FILES:
        assert outputs[name] == (local / name).read_bytes(), f"{name} differs from the local run"
    assert b'"processed": 200' in outputs["manifest.json"]


def test_s3_to_s3_run_is_byte_identical_to_the_local_run(
    build_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, local_result: Path, tmp_path: Path,
) -> None:
    env = _env(s3_server, tmp_path)
    result = _orchard(build_dir, env, "run", "-q", "--s3-endpoint", s3_server.endpoint,
                      "--input", fruits_bucket.url + "Training", "--output", f"s3://{s3_bucket}/results",
                      "--pca-components", "8")
    assert result.returncode == 0, result.stderr
    outputs = _download(s3_client, s3_bucket, "results/")
    results = sorted(name for name in outputs if not name.startswith("_orchard/"))
    assert results == sorted(RESULT_FILES + ["manifest.json"])
    # The descriptor store sits beside the results: its description and committed segments.
    assert "_orchard/store.json" in outputs
    assert any(name.endswith(".npy") for name in outputs if name.startswith("_orchard/segments/"))
    _assert_same_result(outputs, local_result)
    # Secrets never reach outputs or messages.
    assert s3_server.secret_access_key not in result.stderr
    assert s3_server.secret_access_key.encode() not in outputs["manifest.json"]


def test_run_through_faults_gives_the_same_result(
    build_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, local_result: Path, tmp_path: Path, fault_proxy: Callable[..., FaultProxy],
) -> None:
    # About 40% of requests fail, but never more than 3 times for one target: the client's 5
    # attempts always suffice, so the run must come out whole (giving up is tested below).
    proxy = fault_proxy("503:every=7", "slowdown:every=11", "reset:every=13", "truncate:every=17,method=GET",
                        "500:every=19", max_faults_per_target=3)
    result = _orchard(build_dir, _env(s3_server, tmp_path), "run", "-q", "--s3-endpoint", proxy.endpoint,
                      "--input", fruits_bucket.url + "Training", "--output", f"s3://{s3_bucket}/results",
                      "--pca-components", "8")
    assert result.returncode == 0, result.stderr
    fired = proxy.counts()
    assert all(fired[kind] > 0 for kind in ("503", "slowdown", "reset", "truncate", "500")), fired
    _assert_same_result(_download(s3_client, s3_bucket, "results/"), local_result)


def test_output_failing_mid_upload_leaves_no_half_written_object(
    build_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, tmp_path: Path, fault_proxy: Callable[..., FaultProxy],
) -> None:
    # Every PUT fails after the write check: uploads give up, and nothing appears.
    proxy = fault_proxy("503:method=PUT")
    result = _orchard(build_dir, _env(s3_server, tmp_path), "run", "-q", "--s3-endpoint", proxy.endpoint,
                      "--input", fruits_bucket.url + "Training", "--output", f"s3://{s3_bucket}/results",
                      "--pca-components", "4", "--limit", "8")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "503" in result.stderr
    assert s3fx.list_keys(s3_client, s3_bucket, "results/") == []


def test_model_loaded_from_s3(
    build_dir: Path, repo_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, tmp_path: Path,
) -> None:
    for name in ("mobilenet_v2.onnx", "mobilenet_v2.json"):
        s3_client.upload_file(str(repo_dir / "models" / name), s3_bucket, f"models/{name}")
    env = _env(s3_server, tmp_path)
    common = ["run", "-q", "--s3-endpoint", s3_server.endpoint, "--input", fruits_bucket.url + "Test",
              "--pca-components", "3"]
    from_s3 = _orchard(build_dir, env, *common, "--model", f"s3://{s3_bucket}/models/mobilenet_v2.onnx",
                       "--output", str(tmp_path / "a"))
    assert from_s3.returncode == 0, from_s3.stderr
    local = _orchard(build_dir, env, *common, "--output", str(tmp_path / "b"))
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "a" / "features.csv").read_bytes() == (tmp_path / "b" / "features.csv").read_bytes()


def test_ls_counts_images_per_label(
    build_dir: Path, s3_server: s3fx.S3TestConfig, fruits_bucket: FruitsBucket, tmp_path: Path
) -> None:
    result = _orchard(build_dir, _env(s3_server, tmp_path), "ls", "--s3-endpoint", s3_server.endpoint,
                      fruits_bucket.url + "Test")
    assert result.returncode == 0, result.stderr
    assert "Plum 5" in result.stdout
    assert "50 images" in result.stdout
    assert "5 labels" in result.stdout


def test_objects_that_are_not_images_go_to_errors_csv(
    build_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, tmp_path: Path,
) -> None:
    for key in [k for k in fruits_bucket.keys if "/Test/Plum 5/" in k][:3]:
        s3_client.copy_object(Bucket=s3_bucket, Key="in/Plum 5/" + key.rsplit("/", 1)[1],
                              CopySource={"Bucket": fruits_bucket.bucket, "Key": key})
    s3_client.put_object(Bucket=s3_bucket, Key="in/Plum 5/notes.txt", Body=b"hello")
    s3_client.put_object(Bucket=s3_bucket, Key="in/Plum 5/fake.jpg", Body=b"not a jpeg")
    result = _orchard(build_dir, _env(s3_server, tmp_path), "run", "-q", "--s3-endpoint", s3_server.endpoint,
                      "--input", f"s3://{s3_bucket}/in", "--output", str(tmp_path / "out"), "--pca-components", "2")
    assert result.returncode == 0, result.stderr
    errors = (tmp_path / "out" / "errors.csv").read_text().splitlines()
    assert errors[1].startswith("Plum 5/fake.jpg,decode,")
    assert errors[2].startswith("Plum 5/notes.txt,list,")
    assert len((tmp_path / "out" / "features.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("case", ["missing bucket", "wrong secret", "read-only output", "empty prefix"])
def test_whole_run_problems_are_one_line_errors(
    build_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, tmp_path: Path, case: str,
) -> None:
    env = _env(s3_server, tmp_path)
    source, output = fruits_bucket.url + "Test", f"s3://{s3_bucket}/results"
    expected = {"missing bucket": "no-such-bucket-orchard", "wrong secret": "403",
                "read-only output": "not writable", "empty prefix": "nothing to process"}[case]
    if case == "missing bucket":
        source = "s3://no-such-bucket-orchard/x"
    elif case == "wrong secret":
        env = _env(s3_server, tmp_path, secret="wrong" + s3_server.secret_access_key)
    elif case == "read-only output":
        env = _env(s3_server, tmp_path, readonly=True)
    else:
        source = fruits_bucket.url + "nothing-here/"
    result = _orchard(build_dir, env, "run", "-q", "--s3-endpoint", s3_server.endpoint,
                      "--input", source, "--output", output, "--pca-components", "2")
    assert result.returncode == 1, result.stderr
    message = result.stderr.strip()
    assert message.count("\n") == 0, message
    assert expected in message, message
    assert s3_server.secret_access_key not in message
    if case != "empty prefix":
        assert s3fx.list_keys(s3_client, s3_bucket, "results/") == []


def test_update_on_s3_featurizes_only_the_change_and_equals_a_fresh_run(
    build_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, tmp_path: Path,
) -> None:
    """Input and output on S3: the store's content identity is size + ETag."""
    test_keys = [k for k in fruits_bucket.keys if "/Test/" in k][:30]
    train_keys = [k for k in fruits_bucket.keys if "/Training/" in k][:6]

    def copy(key: str, to: str) -> None:
        s3_client.copy_object(Bucket=s3_bucket, Key=to, CopySource={"Bucket": fruits_bucket.bucket, "Key": key})

    for key in test_keys:
        copy(key, "in/" + key.split("/Test/", 1)[1])
    env = _env(s3_server, tmp_path)
    common = ["-q", "--s3-endpoint", s3_server.endpoint, "--input", f"s3://{s3_bucket}/in", "--pca-components", "4",
              "--commit-images", "8"]
    first = _orchard(build_dir, env, "run", *common, "--output", f"s3://{s3_bucket}/out")
    assert first.returncode == 0, first.stderr

    # 6 new images, one deleted, one replaced by other bytes (same key, new ETag).
    for key in train_keys:
        copy(key, "in/new/" + key.rsplit("/", 1)[1])
    kept = sorted(k for k in s3fx.list_keys(s3_client, s3_bucket, "in/") if "/new/" not in k)
    s3_client.delete_object(Bucket=s3_bucket, Key=kept[0])
    copy(train_keys[0], kept[1])

    updated = _orchard(build_dir, env, "update", *common, "--output", f"s3://{s3_bucket}/out")
    assert updated.returncode == 0, updated.stderr
    assert "28 images reused from the descriptor store, 7 featurized" in updated.stderr, updated.stderr
    fresh = _orchard(build_dir, env, "run", *common, "--output", str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    outputs = _download(s3_client, s3_bucket, "out/")
    for name in RESULT_FILES:
        assert outputs[name] == (tmp_path / "fresh" / name).read_bytes(), f"{name} differs from a fresh run"


def test_ctrl_c_stops_a_run_within_seconds_even_while_s3_stalls(
    build_dir: Path, s3_server: s3fx.S3TestConfig, fruits_bucket: FruitsBucket, s3_bucket: str,
    tmp_path: Path, fault_proxy: Callable[..., FaultProxy],
) -> None:
    """Every image GET stalls for a minute: Ctrl-C must not wait for it (nor for the retries'
    back-off); the run says it was cancelled (exit 130) and --resume later completes it."""
    import signal
    import time

    proxy = fault_proxy("stall:method=GET,path=.jpg", stall_seconds=60)
    args = [str(build_dir / "orchard"), "run", "-q", "--s3-endpoint", proxy.endpoint, "--input",
            fruits_bucket.url + "Test", "--output", str(tmp_path / "out"), "--pca-components", "2"]
    run = subprocess.Popen(args, env=_env(s3_server, tmp_path), stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # listed, model loaded, workers stuck in GETs
    assert run.poll() is None, run.stderr.read() if run.stderr else ""
    start = time.monotonic()
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=30)
    assert time.monotonic() - start < 5, f"took {time.monotonic() - start:.1f} s to stop"
    assert run.returncode == 130, stderr
    assert "cancelled" in stderr and "--resume" in stderr, stderr
    assert not (tmp_path / "out" / "features.csv").exists()
    resumed = _orchard(build_dir, _env(s3_server, tmp_path), "run", "-q", "--s3-endpoint",
                       s3_server.endpoint, "--input", fruits_bucket.url + "Test", "--output",
                       str(tmp_path / "out"), "--pca-components", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr


def test_ctrl_c_stops_orchard_run_in_python_within_seconds_even_while_s3_stalls(
    s3_server: s3fx.S3TestConfig, fruits_bucket: FruitsBucket, tmp_path: Path,
    fault_proxy: Callable[..., FaultProxy],
) -> None:
    """The same from Python: orchard.run raises KeyboardInterrupt within seconds, although
    the main thread is inside C++ with every worker stuck in a stalled GET."""
    import signal
    import sys
    import time

    proxy = fault_proxy("stall:method=GET,path=.jpg", stall_seconds=60)
    script = (
        "import orchard, sys\n"
        "try:\n"
        f"    orchard.run({fruits_bucket.url + 'Test'!r}, {str(tmp_path / 'out')!r},\n"
        f"                s3_endpoint={proxy.endpoint!r}, pca_components=2)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt', flush=True)\n"
        "    sys.exit(7)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", script], env=_env(s3_server, tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # imported, listed, workers stuck in GETs
    assert run.poll() is None, run.communicate()
    start = time.monotonic()
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=30)
    assert time.monotonic() - start < 5, f"took {time.monotonic() - start:.1f} s to stop"
    assert run.returncode == 7 and "KeyboardInterrupt" in stdout, (stdout, stderr)


def test_an_s3_output_in_use_by_another_run_is_refused_and_a_stale_lock_taken_over(
    build_dir: Path, s3_server: s3fx.S3TestConfig, s3_client: Any, fruits_bucket: FruitsBucket,
    s3_bucket: str, tmp_path: Path,
) -> None:
    """The lease object _orchard/lock (created with If-None-Match: *): a live holder on another
    machine refuses the run and nothing is written; one silent for longer than its lease, or a
    dead process of this machine, is taken over with a warning; the run removes its lease."""
    import json
    import socket
    import time

    for key in [k for k in fruits_bucket.keys if "/Test/" in k][:6]:
        s3_client.copy_object(Bucket=s3_bucket, Key="in/" + key.split("/Test/", 1)[1],
                              CopySource={"Bucket": fruits_bucket.bucket, "Key": key})
    env = _env(s3_server, tmp_path)
    common = ["run", "-q", "--s3-endpoint", s3_server.endpoint, "--input", f"s3://{s3_bucket}/in",
              "--output", f"s3://{s3_bucket}/out", "--pca-components", "2"]

    def put_lease(host: str, pid: int, renewed_ago: int) -> None:
        lease = {"token": "other-run", "host": host, "pid": pid,
                 "renewed": int(time.time()) - renewed_ago, "lease_seconds": 120}
        s3_client.put_object(Bucket=s3_bucket, Key="out/_orchard/lock", Body=json.dumps(lease).encode())

    put_lease("worker-7", 4242, 5)
    busy = _orchard(build_dir, env, *common)
    assert busy.returncode == 1, busy.stderr
    assert "is in use by another orchard run (pid 4242 on worker-7" in busy.stderr, busy.stderr
    assert s3fx.list_keys(s3_client, s3_bucket, "out/") == ["out/_orchard/lock"]

    put_lease("worker-7", 4242, 600)
    stale = _orchard(build_dir, env, *common)
    assert stale.returncode == 0, stale.stderr
    assert "took over the lock" in stale.stderr and "has not renewed it for 6" in stale.stderr
    keys = s3fx.list_keys(s3_client, s3_bucket, "out/")
    assert "out/manifest.json" in keys and "out/_orchard/lock" not in keys

    dead = subprocess.Popen(["true"])
    dead.wait()
    put_lease(socket.gethostname(), dead.pid, 0)
    resumed = _orchard(build_dir, env, *common[:1], "--resume", *common[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert "on this machine) has ended" in resumed.stderr, resumed.stderr
