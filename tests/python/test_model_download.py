"""Tests for scripts/models/download.py and the exporter's --download path.

A local http.server (in a thread) serves real torch checkpoints, so every test goes through
real HTTP, real streaming, hashing and renaming. What they establish:
- a download lands under its final name only when the whole body arrived and its sha256 is
  the pinned one; the .partial file never survives a failure (HTTP 404, body cut short,
  wrong hash) and a rerun then succeeds;
- a verified file already present is not downloaded again; a corrupt one is replaced;
- the base URL override ($ORCHARD_MODEL_DOWNLOAD_BASE or the argument) is what is fetched;
- the pins are the installed torchvision's URLs, and agree with the hash prefix torchvision
  checks;
- export_torchvision.py --download puts the checkpoint in the torch hub cache and exports
  from it: "weights": "imagenet", with the official URL and full sha256 in the sidecar;
- scripts/export-models --download reports a failed download and writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_DIR / "scripts" / "models"))

import download  # noqa: E402
import export_torchvision  # noqa: E402


@dataclass
class FileServer:
    """What the local server serves, and what it was asked for."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    truncated: set[str] = field(default_factory=set)  # paths whose body stops halfway
    requests: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    state: FileServer  # set per server below

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.state.requests.append(self.path)
        body = self.state.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.state.truncated:
            # Announce the whole length, send half, close: a dropped connection mid-body.
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture()
def server() -> Iterator[FileServer]:
    state = FileServer()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}/models"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def checkpoint_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_checkpoint() -> bytes:
    torch.manual_seed(0)
    return checkpoint_bytes(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 1)))


def pin(body: bytes, stem: str = "tiny") -> download.Pinned:
    """A pin named like torchvision's files: <stem>-<first 8 hex digits of the sha256>.pth."""
    sha = hashlib.sha256(body).hexdigest()
    return download.Pinned(f"https://download.pytorch.org/models/{stem}-{sha[:8]}.pth", sha,
                           len(body))


def serve(server: FileServer, pinned: download.Pinned, body: bytes) -> str:
    path = f"/models/{pinned.file_name}"
    server.files[path] = body
    return path


def logged() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


# ------------------------------------------------------------------------- download layer


def test_download_is_verified_and_renamed_into_place(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = pin(tiny_checkpoint)
    path = serve(server, pinned, tiny_checkpoint)
    monkeypatch.setenv(download.BASE_URL_ENV, server.base)  # the environment override
    lines, log = logged()
    result = download.fetch(pinned, tmp_path / "checkpoints", log=log)
    assert result == tmp_path / "checkpoints" / pinned.file_name
    assert server.requests == [path]
    assert result.read_bytes() == tiny_checkpoint
    assert os.listdir(result.parent) == [pinned.file_name]  # no .partial left over
    state = torch.load(result, map_location="cpu")
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert any(f"{server.base}/{pinned.file_name}" in line for line in lines)


def test_present_verified_file_is_not_downloaded_again(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path
) -> None:
    pinned = pin(tiny_checkpoint)
    serve(server, pinned, tiny_checkpoint)
    first = download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    stamp = first.stat().st_mtime_ns
    lines, log = logged()
    second = download.fetch(pinned, tmp_path, base=server.base, log=log)
    assert second == first and second.stat().st_mtime_ns == stamp
    assert len(server.requests) == 1
    assert lines == [f"{first}: present, sha256 verified"]


def test_corrupt_present_file_is_replaced(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path
) -> None:
    pinned = pin(tiny_checkpoint)
    serve(server, pinned, tiny_checkpoint)
    dest = tmp_path / pinned.file_name
    dest.write_bytes(tiny_checkpoint[:100])
    download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    assert dest.read_bytes() == tiny_checkpoint
    assert len(server.requests) == 1


def test_wrong_hash_deletes_the_download_and_names_both_hashes(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path
) -> None:
    honest = pin(tiny_checkpoint)
    expected = hashlib.sha256(b"the file the pin was made for").hexdigest()
    pinned = download.Pinned(honest.url, expected, honest.size)
    serve(server, pinned, tiny_checkpoint)
    with pytest.raises(download.DownloadError) as error:
        download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    message = str(error.value)
    assert f"expected {expected}" in message
    assert f"got {honest.sha256}" in message
    assert os.listdir(tmp_path) == []


def test_http_404_is_an_error_that_names_the_url(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path
) -> None:
    pinned = pin(tiny_checkpoint)  # not served
    with pytest.raises(download.DownloadError) as error:
        download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    assert str(error.value).startswith(f"{server.base}/{pinned.file_name}: HTTP 404")
    assert os.listdir(tmp_path) == []


def test_interrupted_transfer_leaves_nothing_and_a_rerun_succeeds(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path
) -> None:
    pinned = pin(tiny_checkpoint)
    path = serve(server, pinned, tiny_checkpoint)
    server.truncated.add(path)
    with pytest.raises(download.DownloadError) as error:
        download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    half = len(tiny_checkpoint) // 2
    assert f"got {half} of {len(tiny_checkpoint)} bytes" in str(error.value)
    assert os.listdir(tmp_path) == []

    server.truncated.clear()
    result = download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    assert result.read_bytes() == tiny_checkpoint
    assert os.listdir(tmp_path) == [pinned.file_name]
    assert server.requests == [path, path]


def test_wrong_announced_size_stops_before_the_body(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path
) -> None:
    pinned = pin(tiny_checkpoint)
    serve(server, pinned, tiny_checkpoint + b"extra")
    with pytest.raises(download.DownloadError, match="announces"):
        download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    assert os.listdir(tmp_path) == []


def test_a_stale_partial_file_from_a_killed_run_is_overwritten(
    server: FileServer, tiny_checkpoint: bytes, tmp_path: Path
) -> None:
    pinned = pin(tiny_checkpoint)
    serve(server, pinned, tiny_checkpoint)
    (tmp_path / f"{pinned.file_name}.partial").write_bytes(b"x" * (len(tiny_checkpoint) * 2))
    result = download.fetch(pinned, tmp_path, base=server.base, log=lambda _: None)
    assert result.read_bytes() == tiny_checkpoint
    assert os.listdir(tmp_path) == [pinned.file_name]


# ------------------------------------------------------------------------------ exporter


def test_pins_are_torchvisions_urls_and_agree_with_its_hash_prefix() -> None:
    for name, pinned in export_torchvision.IMAGENET_CHECKPOINTS.items():
        assert pinned.url == export_torchvision.torchvision_weights(name).url
        # torch.hub.load_state_dict_from_url(check_hash=True) compares this prefix.
        prefix = torch.hub.HASH_REGEX.search(pinned.file_name).group(1)
        assert len(prefix) == 8 and pinned.sha256.startswith(prefix)
        assert len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0


@pytest.mark.slow
def test_export_downloads_then_uses_the_verified_checkpoint(
    server: FileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole path with a real ResNet50 state dict: --download, hub cache, export (~8 s)."""
    import torchvision

    torch.manual_seed(7)
    source = torchvision.models.resnet50(weights=None)
    body = checkpoint_bytes(source)
    pinned = pin(body, "resnet50")
    path = serve(server, pinned, body)
    monkeypatch.setitem(export_torchvision.IMAGENET_CHECKPOINTS, "resnet50", pinned)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    choice = export_torchvision.resolve_weights(
        "resnet50", "auto", 0, fetch=True, base=server.base
    )
    cached = tmp_path / "torch" / "hub" / "checkpoints" / pinned.file_name
    assert choice.kind == "imagenet" and choice.path == cached
    assert pinned.url in choice.source and pinned.sha256 in choice.source
    assert os.listdir(cached.parent) == [pinned.file_name]
    backbone = export_torchvision.build_backbone("resnet50", choice)
    torch.testing.assert_close(backbone[7][2].conv3.weight, source.layer4[2].conv3.weight)
    torch.testing.assert_close(backbone[1].running_mean, source.bn1.running_mean)

    # Offline afterwards: plain auto picks the verified file up, nothing is fetched.
    again = export_torchvision.resolve_weights("resnet50", "auto", 0)
    assert again == choice and server.requests == [path]

    # The export from it: the sidecar says imagenet and names URL and hash; the graph
    # computes what the downloaded weights compute. A rerun finds it current.
    out = tmp_path / "out"
    export_torchvision.export_preset("resnet50", choice, out, verify=False, skip_if_current=True)
    sidecar = json.loads((out / "resnet50.json").read_text())
    assert sidecar["weights"] == "imagenet" and sidecar["weights_source"] == choice.source
    assert "RANDOM" not in sidecar["description"]
    net = cv2.dnn.readNetFromONNX(str(out / "resnet50.onnx"))
    x = torch.randn(1, 3, 64, 64)
    net.setInput(x.numpy())
    with torch.no_grad():
        expected = backbone(x).numpy()
    np.testing.assert_allclose(net.forward("feature_map"), expected, rtol=1e-3, atol=1e-3)
    capsys.readouterr()
    export_torchvision.export_preset("resnet50", choice, out, verify=False, skip_if_current=True)
    assert "resnet50: up to date" in capsys.readouterr().out


def test_a_cached_checkpoint_with_the_wrong_sha256_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = export_torchvision.cached_checkpoint("vgg16")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not vgg16")
    with pytest.raises(SystemExit) as error:
        export_torchvision.resolve_weights("vgg16", "imagenet", 0)
    message = str(error.value)
    assert hashlib.sha256(b"not vgg16").hexdigest() in message
    assert export_torchvision.IMAGENET_CHECKPOINTS["vgg16"].sha256 in message
    with pytest.raises(SystemExit, match="--download fetches ImageNet weights"):
        export_torchvision.resolve_weights("vgg16", "random", 0, fetch=True)


def test_export_models_download_failure_writes_nothing(
    server: FileServer, tmp_path: Path
) -> None:
    """scripts/export-models --download against a mirror without the files: exit 1, the
    HTTP status and URL on stderr, no random model exported, no checkpoint left behind."""
    outputs = [REPO_DIR / "models" / f"{name}.{ext}"
               for name in ("vgg16", "resnet50") for ext in ("onnx", "json")]

    def stamps() -> dict[Path, int | None]:
        return {p: p.stat().st_mtime_ns if p.exists() else None for p in outputs}

    before = stamps()
    env = dict(os.environ, TORCH_HOME=str(tmp_path), **{download.BASE_URL_ENV: server.base})
    result = subprocess.run([str(REPO_DIR / "scripts" / "export-models"), "--download"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    vgg16 = export_torchvision.IMAGENET_CHECKPOINTS["vgg16"].file_name
    assert f"error: vgg16: {server.base}/{vgg16}: HTTP 404" in result.stderr
    assert "RANDOM" not in result.stderr
    assert server.requests == [f"/models/{vgg16}"]
    assert list((tmp_path / "hub" / "checkpoints").iterdir()) == []
    assert stamps() == before
