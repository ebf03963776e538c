"""Tests of the S3 test infrastructure itself: the SeaweedFS server really checks
signatures and permissions, moto answers, the fault proxy forwards faithfully and injects
each fault on schedule, and the bulk helpers make what pagination tests need."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.s3 import fixtures as s3fx
from tests.s3.fault_proxy import FaultProxy, ProxyError, parse_fault
from tests.s3.fixtures import FruitsBucket

REPO_DIR = Path(__file__).resolve().parents[2]
ProxyFactory = Callable[..., FaultProxy]


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


# -- SeaweedFS: a real server that verifies signatures and permissions -----------------


def test_seaweedfs_refuses_wrong_secret(s3_server: s3fx.S3TestConfig, s3_bucket: str) -> None:
    bad = s3fx.make_client(s3_server.endpoint, s3_server.access_key_id,
                           s3_server.secret_access_key[:-4] + "XXXX", s3_server.region,
                           max_attempts=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        bad.list_objects_v2(Bucket=s3_bucket)
    assert _status(info.value) == 403
    assert _error_code(info.value) in ("SignatureDoesNotMatch", "AccessDenied")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        bad.put_object(Bucket=s3_bucket, Key="x", Body=b"x")
    assert _status(info.value) == 403


def test_seaweedfs_refuses_unknown_key_and_unsigned(s3_server: s3fx.S3TestConfig) -> None:
    unknown = s3fx.make_client(s3_server.endpoint, "AKIANOTAKNOWNKEY0000", "x" * 40,
                               s3_server.region, max_attempts=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        unknown.list_buckets()
    assert _status(info.value) == 403
    assert _error_code(info.value) in ("InvalidAccessKeyId", "AccessDenied")
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(s3_server.endpoint + "/", timeout=10)
    assert http.value.code == 403


def test_seaweedfs_readonly_identity_cannot_write(s3_server: s3fx.S3TestConfig,
                                                  s3_client: Any, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="dir/readable.txt", Body=b"hello")
    ro = s3fx.readonly_client(s3_server, max_attempts=1)
    assert ro.get_object(Bucket=s3_bucket, Key="dir/readable.txt")["Body"].read() == b"hello"
    assert s3fx.list_keys(ro, s3_bucket) == ["dir/readable.txt"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ro.put_object(Bucket=s3_bucket, Key="dir/forbidden.txt", Body=b"no")
    assert _status(info.value) == 403
    assert _error_code(info.value) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ro.delete_object(Bucket=s3_bucket, Key="dir/readable.txt")
    assert _status(info.value) == 403
    assert s3fx.list_keys(s3_client, s3_bucket) == ["dir/readable.txt"]


def test_seaweedfs_admin_round_trip(s3_client: Any, s3_bucket: str) -> None:
    body = os.urandom(300_000)
    s3_client.put_object(Bucket=s3_bucket, Key="a b/ü+%.bin", Body=body)
    head = s3_client.head_object(Bucket=s3_bucket, Key="a b/ü+%.bin")
    assert head["ContentLength"] == len(body)
    got = s3_client.get_object(Bucket=s3_bucket, Key="a b/ü+%.bin", Range="bytes=10-19")
    assert got["Body"].read() == body[10:20]
    assert s3_client.get_object(Bucket=s3_bucket, Key="a b/ü+%.bin")["Body"].read() == body
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3_client.get_object(Bucket=s3_bucket, Key="missing")
    assert _error_code(info.value) == "NoSuchKey"


def test_seaweedfs_multipart_upload(s3_client: Any, s3_bucket: str, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    path = tmp_path / "big.bin"
    data = os.urandom(12 * 1024 * 1024)
    path.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024,
                            multipart_chunksize=5 * 1024 * 1024)
    s3_client.upload_file(str(path), s3_bucket, "big.bin", Config=config)
    got = s3_client.get_object(Bucket=s3_bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


# -- moto ------------------------------------------------------------------------------


def test_moto_accepts_requests(s3_server: s3fx.S3TestConfig, moto_bucket: str) -> None:
    client = s3fx.moto_client(s3_server)
    client.put_object(Bucket=moto_bucket, Key="k 1", Body=b"v")
    assert client.get_object(Bucket=moto_bucket, Key="k 1")["Body"].read() == b"v"
    assert s3fx.list_keys(client, moto_bucket) == ["k 1"]


# -- the fault proxy -------------------------------------------------------------------


def test_fault_rule_schedules() -> None:
    def fired(spec: str, n: int = 12) -> list[int]:
        rule = parse_fault(spec)
        return [i for i in range(1, n + 1) if rule.decide()]

    assert fired("503:every=3") == [3, 6, 9, 12]
    assert fired("reset:first=2") == [1, 2]
    assert fired("500") == list(range(1, 13))
    assert fired("500:after=2,first=3") == [3, 4, 5]
    assert fired("slowdown:every=2,max=2") == [2, 4]
    a, b = fired("503:prob=0.5,seed=7", 200), fired("503:prob=0.5,seed=7", 200)
    assert a == b and 60 < len(a) < 140
    assert fired("503:prob=0.5,seed=8", 200) != a
    for bad in ("teapot", "503:every=0", "503:every", "503:prob=2", "503:bogus=1"):
        with pytest.raises(ProxyError):
            parse_fault(bad)


class _RecordingUpstream:
    """A raw HTTP/1.1 server that records the exact bytes of each request and answers
    each with a canned response, to check that the proxy changes no byte."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\nx-Odd-CASE:  spaced   value \r\nContent-Length: 5\r\n"
                b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello")

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(10)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        self.connections += 1
        with conn, conn.makefile("rb") as rfile:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = rfile.readline()
                    if not line:
                        return
                    head += line
                body = b""
                lower = head.lower()
                if b"transfer-encoding: chunked" in lower:
                    while True:
                        size_line = rfile.readline()
                        body += size_line
                        size = int(size_line.split(b";")[0], 16)
                        if size == 0:
                            while not body.endswith(b"\r\n\r\n"):  # trailers
                                body += rfile.readline()
                            break
                        body += rfile.read(size + 2)
                elif b"content-length:" in lower:
                    length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                    body = rfile.read(length)
                self.requests.append(head + body)
                conn.sendall(self.RESPONSE)

    def close(self) -> None:
        self._sock.close()
        self._thread.join(5)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_proxy_is_byte_faithful_with_keep_alive(fault_proxy: ProxyFactory) -> None:
    upstream = _RecordingUpstream()
    try:
        proxy = fault_proxy(upstream=f"http://127.0.0.1:{upstream.port}")
        requests = [
            # Host names the proxy, as a SigV4 client signs it; odd casing and spacing.
            (f"PUT /bucket/a%20b%2Bc?x-id=PutObject HTTP/1.1\r\nhost: 127.0.0.1:{proxy.port}"
             "\r\nX-Amz-Date:  20260101T000000Z\r\nx-amz-meta-k: v1\r\nx-amz-meta-k: v2\r\n"
             "Content-Length: 6\r\n\r\nabc\x00\xffz").encode("latin-1"),
            (f"PUT /bucket/chunked HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
             "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: t\r\n\r\n"
             ).encode(),
            f"GET /bucket/a%20b%2Bc HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n\r\n".encode(),
        ]
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
            for raw in requests:
                client.sendall(raw)
                assert _recv_exact(client, len(upstream.RESPONSE)) == upstream.RESPONSE
        assert upstream.requests == requests
        assert upstream.connections == 1  # one upstream connection, reused
        counts = proxy.counts()
        assert counts["connections"] == 1 and counts["forwarded"] == 3
    finally:
        upstream.close()


def test_proxy_passes_signed_traffic(s3_server: s3fx.S3TestConfig, s3_client: Any,
                                     s3_bucket: str, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy()
    via = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    body = os.urandom(2 * 1024 * 1024 + 17)
    via.put_object(Bucket=s3_bucket, Key="via proxy/ü+%.bin", Body=body)
    assert s3_client.get_object(Bucket=s3_bucket, Key="via proxy/ü+%.bin")["Body"].read() == body
    assert via.get_object(Bucket=s3_bucket, Key="via proxy/ü+%.bin")["Body"].read() == body
    assert s3fx.list_keys(via, s3_bucket) == ["via proxy/ü+%.bin"]
    counts = proxy.counts()
    assert counts["forwarded"] == counts["requests"] == 3
    assert counts["connections"] == 1  # boto3 reused its connection through the proxy


def test_proxy_503_without_and_with_retries(s3_server: s3fx.S3TestConfig, s3_bucket: str,
                                            fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy("503:first=2")
    no_retry = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        no_retry.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert _status(info.value) == 503
    retrying = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=4)
    retrying.put_object(Bucket=s3_bucket, Key="k", Body=b"v")  # 503 once more, then OK
    assert proxy.counts()["503"] == 2
    assert proxy.counts()["forwarded"] == 1
    assert retrying.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"


def test_proxy_every_nth(s3_server: s3fx.S3TestConfig, s3_bucket: str,
                         fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy("500:every=3")
    client = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    outcomes = []
    for _ in range(6):
        try:
            client.head_bucket(Bucket=s3_bucket)
            outcomes.append("ok")
        except botocore.exceptions.ClientError as exc:
            outcomes.append(str(_status(exc)))
    assert outcomes == ["ok", "ok", "500", "ok", "ok", "500"]
    assert proxy.counts()["500"] == 2


def test_proxy_caps_faults_per_target(s3_server: s3fx.S3TestConfig, s3_bucket: str,
                                      fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy("503", max_faults_per_target=2)  # every request, but twice per target
    client = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    outcomes = []
    for key in ("a", "a", "a", "b", "a", "b", "b"):
        try:
            client.put_object(Bucket=s3_bucket, Key=key, Body=b"v")
            outcomes.append("ok")
        except botocore.exceptions.ClientError as exc:
            outcomes.append(str(_status(exc)))
    assert outcomes == ["503", "503", "ok", "503", "ok", "503", "ok"]
    proxy.reset()  # forgets which targets had their faults
    with pytest.raises(botocore.exceptions.ClientError):
        client.put_object(Bucket=s3_bucket, Key="a", Body=b"v")


def test_proxy_500_and_slowdown_bodies(s3_server: s3fx.S3TestConfig, s3_bucket: str,
                                       fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy("500:first=1", "slowdown:first=1")
    client = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.list_objects_v2(Bucket=s3_bucket)
    assert (_status(info.value), _error_code(info.value)) == (500, "InternalError")
    # The slowdown rule saw request 1 too (the 500 rule won it), so it fires on request 2.
    proxy.set_faults(["slowdown:first=1"])
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.list_objects_v2(Bucket=s3_bucket)
    assert (_status(info.value), _error_code(info.value)) == (503, "SlowDown")
    client.list_objects_v2(Bucket=s3_bucket)
    assert proxy.counts()["connections"] == 1  # error responses kept the connection


def test_proxy_reset(s3_server: s3fx.S3TestConfig, s3_bucket: str,
                     fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy("reset:first=2")
    no_retry = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    with pytest.raises(botocore.exceptions.HTTPClientError):
        no_retry.list_objects_v2(Bucket=s3_bucket)
    retrying = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=3)
    retrying.list_objects_v2(Bucket=s3_bucket)
    assert proxy.counts()["reset"] == 2


def test_proxy_stall_exceeds_client_timeout(s3_server: s3fx.S3TestConfig, s3_bucket: str,
                                            fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy("stall:first=1", stall_seconds=5)
    client = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1,
                               read_timeout=1)
    start = time.monotonic()
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        client.list_objects_v2(Bucket=s3_bucket)
    assert time.monotonic() - start < 4
    client.list_objects_v2(Bucket=s3_bucket)
    assert proxy.counts()["stall"] == 1


def test_proxy_truncates_body(s3_server: s3fx.S3TestConfig, s3_client: Any, s3_bucket: str,
                              fault_proxy: ProxyFactory) -> None:
    body = os.urandom(100_000)
    s3_client.put_object(Bucket=s3_bucket, Key="t", Body=body)
    proxy = fault_proxy("truncate:first=1,method=GET")
    client = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    response = client.get_object(Bucket=s3_bucket, Key="t")
    assert response["ContentLength"] == len(body)  # the head is intact ...
    with pytest.raises((botocore.exceptions.IncompleteReadError,
                        botocore.exceptions.ResponseStreamingError)):
        response["Body"].read()  # ... the body stops half-way
    assert client.get_object(Bucket=s3_bucket, Key="t")["Body"].read() == body
    assert proxy.counts()["truncate"] == 1


def test_proxy_seeded_probability(s3_server: s3fx.S3TestConfig, s3_bucket: str,
                                  fault_proxy: ProxyFactory) -> None:
    def pattern() -> tuple[list[bool], int]:
        proxy = fault_proxy("503:prob=0.3,seed=42")
        client = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
        seen = []
        for _ in range(20):
            try:
                client.head_bucket(Bucket=s3_bucket)
                seen.append(True)
            except botocore.exceptions.ClientError:
                seen.append(False)
        return seen, proxy.counts()["503"]

    first, n_faults = pattern()
    assert pattern() == (first, n_faults)
    assert 0 < n_faults < 20


def test_proxy_control_endpoint(fault_proxy: ProxyFactory, s3_server: s3fx.S3TestConfig,
                                s3_bucket: str) -> None:
    proxy = fault_proxy()
    control = proxy.endpoint + "/__fault_proxy__/"
    request = urllib.request.Request(control + "faults", data=b"503:first=1\n", method="PUT")
    urllib.request.urlopen(request, timeout=10).read()
    assert json.loads(urllib.request.urlopen(control + "faults", timeout=10).read()) == [
        "503:first=1"]
    client = s3fx.admin_client(s3_server, endpoint=proxy.endpoint, max_attempts=1)
    with pytest.raises(botocore.exceptions.ClientError):
        client.head_bucket(Bucket=s3_bucket)
    counts = json.loads(urllib.request.urlopen(control + "counts", timeout=10).read())
    assert counts["503"] == 1 and counts["requests"] == 1
    bad = urllib.request.Request(control + "faults", data=b"nonsense\n", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=10)
    assert info.value.code == 400


def test_proxy_cli(s3_server: s3fx.S3TestConfig, s3_bucket: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(REPO_DIR / "tests/s3/fault_proxy.py"), "--upstream",
         s3_server.endpoint, "--listen-port", "0", "--fault", "slowdown:first=1",
         "--max-seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        client = s3fx.admin_client(s3_server, endpoint=f"http://127.0.0.1:{port}",
                                   max_attempts=1)
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.head_bucket(Bucket=s3_bucket)
        assert _status(info.value) == 503
        client.head_bucket(Bucket=s3_bucket)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert json.loads(err.strip().splitlines()[-1])["slowdown"] == 1


# -- bulk helpers ----------------------------------------------------------------------


@pytest.mark.slow
def test_pagination_fixture_creates_more_than_1000_keys(s3_client: Any, s3_bucket: str) -> None:
    keys = s3fx.upload_many(s3_client, s3_bucket, 1100, prefix="many/")
    assert len(set(keys)) == 1100
    pages = list(s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=s3_bucket, Prefix="many/"))
    assert len(pages) >= 2
    listed = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    assert listed == keys
    odd = next(k for k in keys if "+" in k and "%" in k and "ü" in k)
    assert s3_client.get_object(Bucket=s3_bucket, Key=odd)["Body"].read() == odd.encode()


def test_fruits_bucket_matches_local_sample(s3_client: Any, fruits_bucket: FruitsBucket,
                                            tmp_path: Path) -> None:
    local = list(s3fx.iter_local_files(fruits_bucket.local_dir))
    assert len(fruits_bucket.keys) == len(local) > 200
    assert any(" " in key for key in fruits_bucket.keys)
    assert s3fx.list_keys(s3_client, fruits_bucket.bucket, fruits_bucket.prefix) == sorted(
        fruits_bucket.keys)
    sub = fruits_bucket.prefix + "Test/"
    paths = s3fx.download_prefix(s3_client, fruits_bucket.bucket, sub, tmp_path)
    assert paths
    for path in paths:
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (fruits_bucket.local_dir / "Test" / rel).read_bytes()
