"""Helpers for tests that talk to the local S3 servers (see docs/testing-s3.md).

Configuration comes from ORCHARD_TEST_S3_* environment variables, or from the env file that
``scripts/s3-test-server start`` writes (KEY=VALUE lines); variables in the environment win.
Everything here is a plain function of its arguments: no module-level state, so pytest
fixtures (tests/python/conftest_s3.py), ad-hoc scripts and other test suites can share it.

boto3 clients are thread-safe; the bulk helpers use a thread pool on one client.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import subprocess
import unicodedata
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import boto3
import botocore.exceptions
from botocore.config import Config

REPO_DIR = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO_DIR / "scripts" / "s3-test-server"
DEFAULT_ENV_FILE = REPO_DIR / "build" / "s3-test-server.env"
ENV_PREFIX = "ORCHARD_TEST_"
FRUITS_DIR_NAME = "fruits-360-mini"


@dataclasses.dataclass(frozen=True)
class S3TestConfig:
    """Where the test servers are and which credentials they accept.

    ``endpoint`` is SeaweedFS: it verifies SigV4 and knows two identities, an admin and a
    read-only one. ``moto_endpoint`` is moto: any credentials, no signature check.
    """

    endpoint: str
    access_key_id: str
    secret_access_key: str
    readonly_access_key_id: str
    readonly_secret_access_key: str
    region: str
    moto_endpoint: str

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> S3TestConfig:
        def get(name: str) -> str:
            key = ENV_PREFIX + name
            if not values.get(key):
                raise KeyError(f"{key} is not set")
            return values[key]

        return cls(
            endpoint=get("S3_ENDPOINT"),
            access_key_id=get("S3_ACCESS_KEY_ID"),
            secret_access_key=get("S3_SECRET_ACCESS_KEY"),
            readonly_access_key_id=get("S3_READONLY_ACCESS_KEY_ID"),
            readonly_secret_access_key=get("S3_READONLY_SECRET_ACCESS_KEY"),
            region=values.get(ENV_PREFIX + "S3_REGION") or "us-east-1",
            moto_endpoint=get("MOTO_ENDPOINT"),
        )

    def as_env(self) -> dict[str, str]:
        """The ORCHARD_TEST_* variables, e.g. for a subprocess (CLI or C++ test)."""
        return {
            "ORCHARD_TEST_S3_ENDPOINT": self.endpoint,
            "ORCHARD_TEST_S3_ACCESS_KEY_ID": self.access_key_id,
            "ORCHARD_TEST_S3_SECRET_ACCESS_KEY": self.secret_access_key,
            "ORCHARD_TEST_S3_READONLY_ACCESS_KEY_ID": self.readonly_access_key_id,
            "ORCHARD_TEST_S3_READONLY_SECRET_ACCESS_KEY": self.readonly_secret_access_key,
            "ORCHARD_TEST_S3_REGION": self.region,
            "ORCHARD_TEST_MOTO_ENDPOINT": self.moto_endpoint,
        }


@dataclasses.dataclass(frozen=True)
class FruitsBucket:
    """The Fruits-360 sample in a bucket: s3://{bucket}/{prefix}<Test|Training>/<Class>/x.jpg
    (class folders contain spaces, e.g. "Test/Plum 5/r0_11.jpg")."""

    bucket: str
    prefix: str
    keys: list[str]
    local_dir: Path

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def read_env_file(path: Path) -> dict[str, str]:
    """Parses KEY=VALUE lines; blank lines and # comments are skipped. No shell expansion."""
    values: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def config_from_environ(environ: Mapping[str, str] | None = None) -> S3TestConfig | None:
    """The config from ``environ`` (default os.environ) if it sets ORCHARD_TEST_S3_ENDPOINT,
    else None; KeyError names a variable that is missing."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_PREFIX + "S3_ENDPOINT"):
        return S3TestConfig.from_mapping(environ)
    return None


def load_config(
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> S3TestConfig | None:
    """config_from_environ(environ) if set, else the config in ``env_file`` (default
    build/s3-test-server.env) if it exists (environment variables override its lines),
    else None."""
    environ = os.environ if environ is None else environ
    cfg = config_from_environ(environ)
    if cfg is not None:
        return cfg
    path = Path(env_file) if env_file is not None else DEFAULT_ENV_FILE
    if path.is_file():
        merged = dict(read_env_file(path))
        merged.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX) and v})
        return S3TestConfig.from_mapping(merged)
    return None


def server_running(env_file: Path) -> bool:
    """Whether ``scripts/s3-test-server status`` reports both servers up for env_file."""
    if not Path(env_file).is_file():
        return False
    result = subprocess.run([str(SERVER_SCRIPT), "status", "--env-file", str(env_file)],
                            capture_output=True, text=True, timeout=30, check=False)
    return result.returncode == 0


def start_servers(env_file: Path, timeout_s: float = 60.0) -> S3TestConfig:
    """Runs ``scripts/s3-test-server start`` (which also installs weed if needed) and
    returns the config it wrote. Raises RuntimeError with the script's output on failure."""
    # The first call on a fresh machine builds weed (minutes); the wait bounds only startup.
    result = subprocess.run(
        [str(SERVER_SCRIPT), "start", "--env-file", str(env_file), "--timeout", str(timeout_s)],
        capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/s3-test-server start failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}")
    return S3TestConfig.from_mapping(read_env_file(env_file))


def stop_servers(env_file: Path) -> None:
    subprocess.run([str(SERVER_SCRIPT), "stop", "--env-file", str(env_file)],
                   capture_output=True, text=True, timeout=60, check=False)


def make_client(
    endpoint: str,
    access_key_id: str,
    secret_access_key: str,
    region: str = "us-east-1",
    *,
    max_attempts: int = 3,
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard",
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    max_pool_connections: int = 16,
) -> Any:
    """A boto3 S3 client with path-style addressing (the test servers have no DNS for
    virtual-hosted buckets). ``max_attempts`` counts every attempt: 1 disables retries."""
    config = Config(
        region_name=region,
        # botocore's "max_attempts" counts retries only; "total_max_attempts" counts the
        # first attempt too, which is what max_attempts means here.
        retries={"total_max_attempts": max_attempts, "mode": retry_mode},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        s3={"addressing_style": "path"},
    )
    session = boto3.session.Session()  # own session: boto3's default one is global state
    return session.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key_id,
                          aws_secret_access_key=secret_access_key, config=config)


def admin_client(cfg: S3TestConfig, endpoint: str | None = None, **kwargs: Any) -> Any:
    """SeaweedFS admin client; ``endpoint`` overrides the URL (e.g. a FaultProxy's)."""
    return make_client(endpoint or cfg.endpoint, cfg.access_key_id, cfg.secret_access_key,
                       cfg.region, **kwargs)


def readonly_client(cfg: S3TestConfig, endpoint: str | None = None, **kwargs: Any) -> Any:
    """SeaweedFS client for the identity that may only Read and List."""
    return make_client(endpoint or cfg.endpoint, cfg.readonly_access_key_id,
                       cfg.readonly_secret_access_key, cfg.region, **kwargs)


def aws_env(cfg: S3TestConfig, scratch: Path, *, readonly: bool = False) -> dict[str, str]:
    """AWS_* variables that make Orchard's credential chain (or any SDK's) use only the test
    server's admin (or read-only) identity: no shared files (they point into ``scratch``,
    where nothing is written), no instance metadata."""
    return {
        "AWS_ACCESS_KEY_ID": cfg.readonly_access_key_id if readonly else cfg.access_key_id,
        "AWS_SECRET_ACCESS_KEY": (cfg.readonly_secret_access_key if readonly
                                  else cfg.secret_access_key),
        "AWS_REGION": cfg.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
    }


def moto_client(cfg: S3TestConfig, endpoint: str | None = None, **kwargs: Any) -> Any:
    """moto client; moto accepts any credentials, these are placeholders."""
    return make_client(endpoint or cfg.moto_endpoint, "testing", "testing", cfg.region,
                       **kwargs)


def unique_bucket_name(prefix: str = "orchard-test") -> str:
    """A valid, unique bucket name: lowercase, 3..63 characters."""
    prefix = prefix.lower().strip("-")[:40] or "orchard-test"
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def create_bucket(client: Any, prefix: str = "orchard-test") -> str:
    name = unique_bucket_name(prefix)
    client.create_bucket(Bucket=name)
    return name


def list_objects(client: Any, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    """Every object under prefix (ListObjectsV2, all pages), in key order."""
    objects: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(page.get("Contents", []))
    return objects


def list_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    return [obj["Key"] for obj in list_objects(client, bucket, prefix)]


def _delete_batches(client: Any, bucket: str, objects: list[dict[str, str]]) -> int:
    for start in range(0, len(objects), 1000):
        response = client.delete_objects(Bucket=bucket, Delete={
            "Objects": objects[start:start + 1000], "Quiet": True})
        if response.get("Errors"):
            raise RuntimeError(f"DeleteObjects on {bucket}: {response['Errors'][:3]}")
    return len(objects)


def empty_bucket(client: Any, bucket: str) -> int:
    """Aborts pending multipart uploads, deletes every object version and delete marker
    (for buckets that had versioning on), then every remaining key. Returns the number of
    versions and keys deleted."""
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    versions: list[dict[str, str]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            versions.append({"Key": item["Key"], "VersionId": item["VersionId"]})
    deleted = _delete_batches(client, bucket, versions)
    deleted += _delete_batches(client, bucket, [{"Key": k} for k in list_keys(client, bucket)])
    return deleted


def delete_bucket(client: Any, bucket: str) -> None:
    """Empties and deletes the bucket; a bucket that is already gone is fine.

    SeaweedFS cannot remove the "null" delete markers that deleting objects leaves in a
    bucket whose versioning was suspended, so such a bucket stays (with a warning); the
    server's data dir goes away at stop."""
    try:
        empty_bucket(client, bucket)
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketNotEmpty":
            raise
        warnings.warn(f"bucket {bucket} could not be emptied (versioning delete markers?)",
                      stacklevel=2)


def _map_parallel(fn: Any, items: Sequence[Any], workers: int) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(fn, items))


def upload_folder(client: Any, folder: Path, bucket: str, prefix: str = "",
                  workers: int = 8) -> list[str]:
    """Uploads every file under folder as ``prefix + relative/posix/path`` with boto3's
    ``upload_file`` (what users do; names may contain spaces). Returns the sorted keys."""
    folder = Path(folder)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    keys = [prefix + p.relative_to(folder).as_posix() for p in files]
    _map_parallel(lambda fk: client.upload_file(str(fk[0]), bucket, fk[1]),
                  list(zip(files, keys, strict=True)), workers)
    return sorted(keys)


def download_prefix(client: Any, bucket: str, prefix: str, dest: Path,
                    workers: int = 8) -> list[Path]:
    """Downloads every object under prefix to dest/<key without prefix>; returns the paths."""
    dest = Path(dest)
    keys = list_keys(client, bucket, prefix)

    def one(key: str) -> Path:
        path = dest / key[len(prefix):].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(path))
        return path

    return _map_parallel(one, keys, workers)


# Key shapes that S3 clients get wrong: spaces, non-ASCII (NFC), '+' (which form encoding
# turns into a space), '%' (which a double decode mangles), and nested "directories".
_KEY_TEMPLATES = (
    "plain/{i:05d}.bin",
    "with space/obj {i:05d}.bin",
    "ünïcødé/föö-{i:05d}-日本.bin",
    "plus+sign/a+b+{i:05d}.bin",
    "percent%/p%20q%2F{i:05d}%.bin",
    "mixed ü+%/x {i:05d} +%.bin",
)


def generated_keys(n: int, prefix: str = "") -> list[str]:
    """n distinct keys cycling through the awkward shapes above, sorted as S3 lists them
    (by UTF-8 bytes)."""
    keys = [prefix + unicodedata.normalize("NFC", _KEY_TEMPLATES[i % len(_KEY_TEMPLATES)]
                                           .format(i=i)) for i in range(n)]
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def upload_many(client: Any, bucket: str, n: int, prefix: str = "many/",
                workers: int = 16) -> list[str]:
    """Puts n tiny objects (body = the key in UTF-8) in parallel, for pagination tests.
    Returns the keys in listing order."""
    keys = generated_keys(n, prefix)
    _map_parallel(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode("utf-8")),
                  keys, workers)
    return keys


def find_fruits_dir(shared_dir: Path | None = None) -> Path:
    """The Fruits-360 sample: shared_dir, $ORCHARD_SHARED_DIR or REPO/../shared, then
    data/fruits-360-mini. Raises FileNotFoundError when absent."""
    base = Path(shared_dir or os.environ.get("ORCHARD_SHARED_DIR") or REPO_DIR.parent / "shared")
    path = base / "data" / FRUITS_DIR_NAME
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found; set ORCHARD_SHARED_DIR")
    return path


def iter_local_files(folder: Path) -> Iterator[Path]:
    return iter(sorted(p for p in Path(folder).rglob("*") if p.is_file()))
