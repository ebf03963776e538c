"""Downloads a checkpoint over HTTP(S) into a folder, verified against a pinned sha256.

Used by export_torchvision.py --download (scripts/export-models --download) to fetch
torchvision's ImageNet checkpoints into the torch hub cache. No torch import: the module is
plain urllib + hashlib, so tests drive it against a local http.server.

Contract of fetch(pinned, folder):
- On success, folder/<file name of pinned.url> exists and its sha256 is pinned.sha256. A file
  that is already there and matches is not downloaded again; one that does not match is
  replaced (downloaded afresh).
- The body is streamed to folder/<name>.partial, flushed to disk, checked (length against
  Content-Length, sha256 against the pin) and only then renamed over the final name
  (os.replace, atomic on one filesystem). The final name therefore never holds a partial
  or unverified file.
- On any failure (HTTP status, connection error, interrupted body, wrong hash, Ctrl-C) the
  .partial file is removed and DownloadError (KeyboardInterrupt for Ctrl-C) is raised; a
  rerun starts over. A .partial left by a killed process is overwritten by the next run.
- Concurrent fetches into the same folder are serialized by an flock on the folder itself
  (Linux/macOS), so two exports never write the same .partial file at once.
- The source is pinned.url, or <base>/<file name> when a base URL is given
  (base argument, else $ORCHARD_MODEL_DOWNLOAD_BASE): mirrors and tests. The pinned sha256
  is checked either way, so a mirror can only serve the same bytes.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

BASE_URL_ENV = "ORCHARD_MODEL_DOWNLOAD_BASE"
CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 60.0  # per socket operation (connect, each read), not for the whole file
USER_AGENT = "orchard-export-models"


class DownloadError(Exception):
    """A download or verification failed; the message says what and where."""


@dataclass(frozen=True)
class Pinned:
    """A file to fetch: its canonical URL, full sha256 (hex) and size in bytes (or None)."""

    url: str
    sha256: str
    size: int | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[1]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_url(pinned: Pinned, base: str | None = None) -> str:
    """pinned.url, or <base>/<file name> for a base URL (argument, else the environment)."""
    if base is None:
        base = os.environ.get(BASE_URL_ENV)
    if not base:
        return pinned.url
    return f"{base.rstrip('/')}/{pinned.file_name}"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive flock on the folder's own descriptor: no lock file is left behind."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"{url}: cannot connect ({reason}); is this machine offline? (a mirror: "
            f"{BASE_URL_ENV})"
        ) from error
    if response.status != 200:
        response.close()
        raise DownloadError(f"{url}: HTTP {response.status} {response.reason}, expected 200")
    return response


def _stream(
    url: str, partial: Path, size: int | None, timeout: float, log: Callable[[str], None]
) -> str:
    """Streams url into partial; returns the sha256 of what was received."""
    digest = hashlib.sha256()
    received = 0
    with _open(url, timeout) as response:
        header = response.headers.get("Content-Length")
        announced = int(header) if header is not None and header.isdigit() else None
        if announced is not None and size is not None and announced != size:
            raise DownloadError(
                f"{url}: the server announces {announced} bytes, expected {size}: wrong file?"
            )
        total = announced if announced is not None else size
        step = max(total // 10, CHUNK_BYTES) if total else 64 * CHUNK_BYTES
        next_report = step
        log(f"downloading {url}" + (f" ({total / 1e6:.1f} MB)" if total else ""))
        try:
            out = partial.open("wb")
        except OSError as error:
            raise DownloadError(f"{partial}: cannot write ({error})") from error
        with out:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as error:
                    raise DownloadError(
                        f"{url}: transfer interrupted after {received} bytes ({error}); the "
                        "partial file was deleted, run again to download it again"
                    ) from error
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as error:
                    raise DownloadError(f"{partial}: cannot write ({error})") from error
                digest.update(chunk)
                received += len(chunk)
                if received >= next_report:
                    shown = f"{100 * received // total}%" if total else f"{received >> 20} MiB"
                    log(f"  {partial.name}: {shown}")
                    next_report += step
            out.flush()
            os.fsync(out.fileno())
    # http.client returns a short body without an error when the server closes early.
    if announced is not None and received != announced:
        raise DownloadError(
            f"{url}: transfer interrupted: got {received} of {announced} bytes; the partial "
            "file was deleted, run again to download it again"
        )
    return digest.hexdigest()


def _check_free_space(folder: Path, size: int | None) -> None:
    if size is None:
        return
    free = shutil.disk_usage(folder).free
    if free < size:
        raise DownloadError(
            f"{folder}: {free / 1e6:.0f} MB free, the download needs {size / 1e6:.0f} MB"
        )


def fetch(
    pinned: Pinned,
    folder: Path,
    *,
    base: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    log: Callable[[str], None] = _stderr,
) -> Path:
    """Makes folder/<file name> the verified file (see the module docstring); returns its path.

    Raises DownloadError. Thread- and process-safe for one folder (flock).
    """
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / pinned.file_name
    partial = dest.with_name(dest.name + ".partial")
    with _folder_lock(folder):
        if dest.is_file():
            actual = sha256_file(dest)
            if actual == pinned.sha256:
                log(f"{dest}: present, sha256 verified")
                return dest
            log(f"{dest}: sha256 {actual}, expected {pinned.sha256}: downloading it again")
        url = source_url(pinned, base)
        _check_free_space(folder, pinned.size)
        try:
            actual = _stream(url, partial, pinned.size, timeout, log)
            if actual != pinned.sha256:
                raise DownloadError(
                    f"{url}: sha256 mismatch: expected {pinned.sha256}, got {actual}; the "
                    "downloaded file was deleted"
                )
            os.replace(partial, dest)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        _fsync_folder(folder)
    log(f"{dest}: downloaded, sha256 {pinned.sha256} verified")
    return dest


def _fsync_folder(folder: Path) -> None:
    """Makes the rename durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
