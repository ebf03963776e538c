"""pytest plugin: the local S3 servers, buckets and the fault proxy as fixtures.

Registered from tests/python/conftest.py with ``pytest_plugins = ["conftest_s3"]``.
See docs/testing-s3.md.

Fixtures:
  s3_server      (session) S3TestConfig. Uses ORCHARD_TEST_S3_* from the environment or
                 a running build/s3-test-server.env; otherwise starts the servers with
                 scripts/s3-test-server (own env file) and stops them at session end.
  s3_client      (session) boto3 admin client for SeaweedFS.
  s3_bucket      (function) a fresh SeaweedFS bucket, emptied and deleted afterwards.
  moto_bucket    (function) the same on the moto server.
  fruits_bucket  (session) FruitsBucket: the Fruits-360 sample uploaded once.
  fault_proxy    (function) factory: fault_proxy("503:every=3", upstream=None, **kw) ->
                 a started FaultProxy (upstream defaults to SeaweedFS); all stopped after.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO_DIR = Path(__file__).resolve().parents[2]
if str(_REPO_DIR) not in sys.path:
    sys.path.insert(0, str(_REPO_DIR))  # makes tests.s3 importable

from tests.s3 import fixtures as s3fx  # noqa: E402
from tests.s3.fault_proxy import FaultProxy, FaultRule  # noqa: E402
from tests.s3.fixtures import FruitsBucket  # noqa: E402


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3fx.S3TestConfig]:
    cfg = s3fx.config_from_environ()
    if cfg is not None:
        yield cfg
        return
    if s3fx.server_running(s3fx.DEFAULT_ENV_FILE):  # started by hand; leave it running
        cfg = s3fx.load_config()
        assert cfg is not None
        yield cfg
        return
    env_file = tmp_path_factory.mktemp("s3-server") / "s3-test-server.env"
    try:
        cfg = s3fx.start_servers(env_file)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cfg
    finally:
        s3fx.stop_servers(env_file)


@pytest.fixture(scope="session")
def s3_client(s3_server: s3fx.S3TestConfig) -> Any:
    return s3fx.admin_client(s3_server)


@pytest.fixture()
def s3_bucket(s3_client: Any) -> Iterator[str]:
    name = s3fx.create_bucket(s3_client)
    try:
        yield name
    finally:
        s3fx.delete_bucket(s3_client, name)


@pytest.fixture()
def moto_bucket(s3_server: s3fx.S3TestConfig) -> Iterator[str]:
    client = s3fx.moto_client(s3_server)
    name = s3fx.create_bucket(client)
    try:
        yield name
    finally:
        s3fx.delete_bucket(client, name)


@pytest.fixture(scope="session")
def fruits_bucket(s3_client: Any) -> Iterator[FruitsBucket]:
    try:
        local = s3fx.find_fruits_dir()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    bucket = s3fx.create_bucket(s3_client, "orchard-fruits")
    prefix = "datasets/fruits-360-mini/"
    try:
        keys = s3fx.upload_folder(s3_client, local, bucket, prefix)
        yield FruitsBucket(bucket=bucket, prefix=prefix, keys=keys, local_dir=local)
    finally:
        s3fx.delete_bucket(s3_client, bucket)


@pytest.fixture()
def fault_proxy(request: pytest.FixtureRequest) -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(*faults: FaultRule | str, upstream: str | None = None,
             **kwargs: Any) -> FaultProxy:
        if upstream is None:
            upstream = request.getfixturevalue("s3_server").endpoint
        proxy = FaultProxy(upstream, faults, **kwargs)
        proxies.append(proxy)
        proxy.start()
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()
