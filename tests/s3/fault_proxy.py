"""A fault-injecting HTTP/1.1 reverse proxy for S3 client tests (standard library only).

The proxy sits between a client and an S3-compatible server, both on 127.0.0.1. Clean
traffic is forwarded byte for byte: the request head (including the Host header, which
SigV4 signs) and the response head and body are relayed exactly as received, so the
upstream sees a request signed for the proxy's address and verifies it as usual.

Faults are chosen per request by an ordered list of rules. Every rule whose filter
(method, path substring) matches a request counts it; the first rule whose schedule fires
on that count decides the request's fate. Kinds:

  500       HTTP 500 with an S3 ``InternalError`` XML body.
  503       HTTP 503 with an empty body (what a load balancer sends).
  slowdown  HTTP 503 with an S3 ``<Error><Code>SlowDown</Code>`` XML body.
  reset     read the request, then reset the TCP connection (RST) without a response.
  stall     read the request, then send nothing for ``stall_seconds``, then close.
  delay     sleep ``delay`` seconds (default ``stall_seconds``), then forward normally.
  truncate  forward, then send the upstream's response head (its real Content-Length)
            but only the first half of the body, then close the connection (a response
            without a body goes through whole before the close: filter with method=GET).

Schedules (comma-separated options after ``KIND:``):

  every=N        the Nth, 2Nth, ... matching request
  first=N        the first N matching requests
  after=N        only requests after the first N matching ones (combine with the others)
  prob=P,seed=S  each matching request with probability P, from a seeded RNG
  max=N          at most N injections by this rule
  method=GET     only this method;   path=/bucket/key   only targets containing this
  delay=SECONDS  for ``delay`` only

No schedule option means every matching request. Examples: ``503:every=3``,
``reset:first=2``, ``slowdown:prob=0.2,seed=7,max=50``, ``truncate:first=1,method=GET``.

``max_faults_per_target=N`` (``--max-faults-per-target``) caps the faults injected into
one request target (method and path with query): once a target has had N faults, its
later requests are counted by the rules but always forwarded. With N below the client's
retry budget, a dense fault schedule exercises every recovery path without ever making
one unlucky object exhaust its retries (the global ``every=N`` counters interleave across
concurrent requests, so without the cap a run is only probably clean).

Before a fault response the proxy reads the whole request body (answering
``Expect: 100-continue`` itself), so fault responses keep the client connection reusable,
as a real server's error would.

In-process use (pytest)::

    with FaultProxy("http://127.0.0.1:8333", [parse_fault("503:every=3")]) as proxy:
        endpoint = proxy.endpoint          # "http://127.0.0.1:<port>"
        ...
        assert proxy.counts()["503"] == 2

CLI use (prints the port on the first stdout line, runs until SIGINT/SIGTERM or
``--max-seconds``)::

    python tests/s3/fault_proxy.py --upstream http://127.0.0.1:8333 --listen-port 0 \\
        --fault 503:every=3 --fault reset:first=1

Control endpoint, for clients in other processes (C++ tests): paths under
``/__fault_proxy__/`` are answered by the proxy itself and never forwarded (S3 bucket
names cannot start with ``_``):

  GET  /__fault_proxy__/counts   JSON counts
  PUT  /__fault_proxy__/faults   body: fault specs, one per line; replaces the rules and
                                 resets the rule counters (an empty body clears them)
  POST /__fault_proxy__/reset    zero the counts and the rule counters

Thread safety: every public method of ``FaultProxy`` may be called from any thread.
Bounds: at most ``max_requests`` requests are served (then connections are closed),
``stall_seconds`` is capped at 120 s, and idle client connections close after
``idle_timeout`` seconds. ``stop()`` closes every connection and joins every thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import BinaryIO

KINDS = ("500", "503", "slowdown", "reset", "stall", "delay", "truncate")
CONTROL_PREFIX = b"/__fault_proxy__/"
MAX_STALL_SECONDS = 120.0
_MAX_HEAD_BYTES = 64 * 1024
_COPY_CHUNK = 64 * 1024


class ProxyError(Exception):
    """A malformed fault spec, or an HTTP framing error on either side."""


@dataclasses.dataclass
class FaultRule:
    """One scheduled fault; see the module docstring for the meaning of each field."""

    kind: str
    every: int | None = None
    first: int | None = None
    after: int = 0
    prob: float | None = None
    seed: int = 0
    max: int | None = None
    method: str | None = None
    path: str | None = None
    delay: float | None = None
    # Mutable state, guarded by the owning proxy's lock.
    seen: int = dataclasses.field(default=0, compare=False)
    fired: int = dataclasses.field(default=0, compare=False)
    _rng: random.Random | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ProxyError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        for name in ("every", "first", "max"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ProxyError(f"{name} must be >= 1, got {value}")
        if self.after < 0:
            raise ProxyError("after must be >= 0")
        if self.prob is not None and not 0.0 <= self.prob <= 1.0:
            raise ProxyError(f"prob must be in [0, 1], got {self.prob}")
        if self.method is not None:
            self.method = self.method.upper()
        self.reset()

    def reset(self) -> None:
        self.seen = 0
        self.fired = 0
        self._rng = random.Random(self.seed)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.path is None or self.path in target

    def decide(self, allowed: bool = True) -> bool:
        """Counts one matching request and returns whether the fault fires on it.

        ``allowed=False`` (an earlier rule already fired, or the target has had its cap of
        faults) counts the request without firing.
        """
        self.seen += 1
        n = self.seen - self.after
        fire = allowed and n > 0 and (self.max is None or self.fired < self.max)
        if self.first is not None:
            fire = fire and n <= self.first
        if self.every is not None:
            fire = fire and n % self.every == 0
        if self.prob is not None:
            assert self._rng is not None
            # Always draw, so the sequence depends only on the seed and the request order.
            fire = (self._rng.random() < self.prob) and fire
        if fire:
            self.fired += 1
        return fire

    def spec(self) -> str:
        opts = []
        for name in ("every", "first", "after", "prob", "seed", "max", "method", "path", "delay"):
            value = getattr(self, name)
            if value is not None and not (name in ("after", "seed") and value == 0):
                opts.append(f"{name}={value}")
        return self.kind + (":" + ",".join(opts) if opts else "")


def parse_fault(spec: str) -> FaultRule:
    """Parses ``KIND[:opt=value,...]``, e.g. ``503:every=3`` or ``reset:first=2``."""
    kind, _, rest = spec.strip().partition(":")
    kwargs: dict[str, object] = {}
    casts = {"every": int, "first": int, "after": int, "max": int, "seed": int,
             "prob": float, "delay": float, "method": str, "path": str}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in casts:
            raise ProxyError(f"bad option {item!r} in fault spec {spec!r}")
        try:
            kwargs[key] = casts[key](value)
        except ValueError as exc:
            raise ProxyError(f"bad value in fault spec {spec!r}: {exc}") from None
    return FaultRule(kind=kind.strip().lower(), **kwargs)  # type: ignore[arg-type]


@dataclasses.dataclass
class _Request:
    head: bytes  # request line + headers + blank line, exactly as received
    method: str
    target: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class _Closed(Exception):
    """The peer closed the connection cleanly between messages."""


def _read_head(rfile: BinaryIO) -> bytes:
    lines: list[bytes] = []
    size = 0
    while True:
        line = rfile.readline(_MAX_HEAD_BYTES + 1)
        if not line:
            if not lines:
                raise _Closed()
            raise ProxyError("connection closed inside a message head")
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerate stray CRLF between messages (RFC 9112 2.2)
        lines.append(line)
        size += len(line)
        if size > _MAX_HEAD_BYTES:
            raise ProxyError("message head too large")
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse_headers(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    text = head.decode("latin-1")
    first, *rest = text.split("\r\n" if "\r\n" in text else "\n")
    headers = []
    for line in rest:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ProxyError(f"malformed header line {line!r}")
        headers.append((key.strip().lower(), value.strip()))
    return first, headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _copy_exact(rfile: BinaryIO, n: int, out: socket.socket | None) -> bytes:
    """Reads exactly n bytes; sends them to out if given, else returns them."""
    parts: list[bytes] = []
    while n > 0:
        chunk = rfile.read(min(n, _COPY_CHUNK))
        if not chunk:
            raise ProxyError("connection closed inside a message body")
        n -= len(chunk)
        if out is not None:
            out.sendall(chunk)
        else:
            parts.append(chunk)
    return b"".join(parts)


def _copy_chunked(rfile: BinaryIO, out: socket.socket | None) -> bytes:
    """Relays a chunked body verbatim (sizes, extensions, trailers)."""
    parts: list[bytes] = []

    def emit(data: bytes) -> None:
        if out is not None:
            out.sendall(data)
        else:
            parts.append(data)

    while True:
        line = rfile.readline(_MAX_HEAD_BYTES)
        if not line:
            raise ProxyError("connection closed inside a chunked body")
        emit(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the blank line
                trailer = rfile.readline(_MAX_HEAD_BYTES)
                if not trailer:
                    raise ProxyError("connection closed inside chunked trailers")
                emit(trailer)
                if trailer in (b"\r\n", b"\n"):
                    return b"".join(parts)
        emit(_copy_exact(rfile, size + 2, None))  # data + CRLF


def _request_body_framing(req: _Request) -> tuple[str, int]:
    te = req.header("transfer-encoding")
    if te is not None and "chunked" in te.lower():
        return "chunked", 0
    length = req.header("content-length")
    return "length", int(length) if length else 0


def _xml_error(code: str, message: str, resource: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()


class FaultProxy:
    """A reverse proxy on 127.0.0.1 that forwards to ``upstream`` and injects faults.

    ``upstream`` is ``http://host:port`` (plain HTTP only). ``faults`` is an ordered list of
    rules or spec strings. ``start()`` binds and returns the port; ``stop()`` is idempotent.
    """

    def __init__(
        self,
        upstream: str,
        faults: Iterable[FaultRule | str] = (),
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        stall_seconds: float = 10.0,
        idle_timeout: float = 30.0,
        upstream_timeout: float = 60.0,
        max_requests: int = 1_000_000,
        max_faults_per_target: int | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ProxyError(f"upstream must be http://host:port, got {upstream!r}")
        self._upstream = (parsed.hostname, parsed.port)
        self._listen = (listen_host, listen_port)
        self._stall_seconds = min(float(stall_seconds), MAX_STALL_SECONDS)
        self._idle_timeout = idle_timeout
        self._upstream_timeout = upstream_timeout
        self._max_requests = max_requests
        if max_faults_per_target is not None and max_faults_per_target < 0:
            raise ProxyError(f"max_faults_per_target must be >= 0, got {max_faults_per_target}")
        self._max_faults_per_target = max_faults_per_target
        self._faults_per_target: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = [self._as_rule(f) for f in faults]
        self._counts: dict[str, int] = {}
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._port = 0
        self._request_ids = 0

    # -- public API -------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://{self._listen[0]}:{self._port}"

    def start(self) -> int:
        """Binds, starts serving in background threads, returns the listening port."""
        if self._listener is not None:
            return self._port
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self._listen)
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name=f"fault-proxy-{self._port}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()
        return self._port

    def stop(self) -> None:
        """Stops accepting, closes every connection, joins every thread (bounded)."""
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()

    def counts(self) -> dict[str, int]:
        """Returns a copy of the counters: ``connections`` (client connections accepted),
        ``requests`` (proxied requests, control requests excluded), ``forwarded`` (sent to
        the upstream without a fault), and one entry per fault kind injected."""
        with self._lock:
            result = {"connections": 0, "requests": 0, "forwarded": 0}
            result.update({k: 0 for k in KINDS})
            result.update(self._counts)
            return result

    def set_faults(self, faults: Iterable[FaultRule | str]) -> None:
        """Replaces the rules (their counters start from zero)."""
        rules = [self._as_rule(f) for f in faults]
        with self._lock:
            self._rules = rules
            self._faults_per_target.clear()

    def reset(self) -> None:
        """Zeroes the counts and every rule's counters."""
        with self._lock:
            self._counts.clear()
            self._faults_per_target.clear()
            for rule in self._rules:
                rule.reset()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _as_rule(fault: FaultRule | str) -> FaultRule:
        return parse_fault(fault) if isinstance(fault, str) else fault

    def _bump(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(self._idle_timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._bump("connections")
                self._conns.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                      name=f"fault-proxy-conn-{self._port}")
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        upstream: list[socket.socket | None] = [None]
        rfile = conn.makefile("rb")
        try:
            while not self._stop.is_set():
                try:
                    head = _read_head(rfile)
                except (TimeoutError, _Closed, OSError):
                    return
                first, headers = _parse_headers(head)
                parts = first.split(" ")
                if len(parts) != 3:
                    raise ProxyError(f"malformed request line {first!r}")
                req = _Request(head, parts[0].upper(), parts[1], headers)
                if req.target.encode("latin-1").startswith(CONTROL_PREFIX):
                    keep = self._control(req, rfile, conn)
                else:
                    keep = self._handle(req, rfile, conn, upstream)
                if not keep:
                    return
        except (ProxyError, OSError, ValueError):
            return
        finally:
            self._close_upstream(upstream)
            rfile.close()
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _choose(self, req: _Request) -> tuple[FaultRule | None, str]:
        """Counts the request; returns the rule that fires on it (if any) and a request id."""
        with self._lock:
            self._bump("requests")
            if self._counts["requests"] > self._max_requests:
                raise ProxyError("max_requests reached")
            target = (req.method, req.target)
            faulted = self._faults_per_target.get(target, 0)
            cap = self._max_faults_per_target
            capped = cap is not None and faulted >= cap
            chosen = None
            for rule in self._rules:
                may_fault = chosen is None and not capped
                if rule.matches(req.method, req.target) and rule.decide(may_fault):
                    chosen = rule
            if chosen is not None:
                self._faults_per_target[target] = faulted + 1
                self._bump(chosen.kind)
            else:
                self._bump("forwarded")
            self._request_ids += 1
            return chosen, f"FAULTPROXY{self._request_ids:08d}"

    def _read_request_body(self, req: _Request, rfile: BinaryIO, conn: socket.socket) -> bytes:
        """Reads the body locally, answering Expect: 100-continue (fault and control paths)."""
        if (req.header("expect") or "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        framing, length = _request_body_framing(req)
        if framing == "chunked":
            return _copy_chunked(rfile, None)
        return _copy_exact(rfile, length, None)

    def _send_simple(self, conn: socket.socket, req: _Request, status: str, body: bytes,
                     content_type: str = "application/xml", request_id: str = "") -> bool:
        close = (req.header("connection") or "").lower() == "close"
        payload = b"" if req.method == "HEAD" else body
        head = (
            f"HTTP/1.1 {status}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if req.method != 'HEAD' else 0}\r\n"
            f"x-amz-request-id: {request_id or 'FAULTPROXYCONTROL'}\r\n"
            "Server: orchard-fault-proxy\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        ).encode()
        conn.sendall(head + payload)
        return not close

    def _handle(self, req: _Request, rfile: BinaryIO, conn: socket.socket,
                upstream: list[socket.socket | None]) -> bool:
        rule, request_id = self._choose(req)
        if rule is None or rule.kind in ("delay", "truncate"):
            if rule is not None and rule.kind == "delay":
                self._stop.wait(min(rule.delay if rule.delay is not None
                                    else self._stall_seconds, MAX_STALL_SECONDS))
            return self._forward(req, rfile, conn, upstream,
                                 truncate=rule is not None and rule.kind == "truncate")
        self._read_request_body(req, rfile, conn)
        resource = urllib.parse.unquote(req.target.split("?", 1)[0])
        if rule.kind == "500":
            return self._send_simple(conn, req, "500 Internal Server Error", _xml_error(
                "InternalError", "We encountered an internal error. Please try again.",
                resource, request_id), request_id=request_id)
        if rule.kind == "503":
            return self._send_simple(conn, req, "503 Service Unavailable", b"", "text/plain",
                                     request_id)
        if rule.kind == "slowdown":
            return self._send_simple(conn, req, "503 Slow Down", _xml_error(
                "SlowDown", "Please reduce your request rate.", resource, request_id),
                request_id=request_id)
        if rule.kind == "reset":
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if rule.kind == "stall":
            self._stop.wait(self._stall_seconds)
            return False
        raise AssertionError(rule.kind)

    def _connect_upstream(self) -> socket.socket:
        sock = socket.create_connection(self._upstream, timeout=self._upstream_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conns.add(sock)  # so that stop() can interrupt a pending upstream read
        return sock

    def _close_upstream(self, upstream: list[socket.socket | None]) -> None:
        sock, upstream[0] = upstream[0], None
        if sock is not None:
            with self._lock:
                self._conns.discard(sock)
            sock.close()

    def _forward(self, req: _Request, rfile: BinaryIO, conn: socket.socket,
                 upstream: list[socket.socket | None], truncate: bool) -> bool:
        expect_continue = (req.header("expect") or "").lower() == "100-continue"
        framing, length = _request_body_framing(req)
        # The body is buffered before it is sent upstream, so a stale pooled upstream
        # connection can be replaced and the request resent without the client noticing.
        if expect_continue:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = _copy_chunked(rfile, None) if framing == "chunked" else _copy_exact(
            rfile, length, None)
        for attempt in range(2):
            up = upstream[0]
            reused = up is not None
            if up is None:
                up = upstream[0] = self._connect_upstream()
            up_rfile = up.makefile("rb")
            try:
                try:
                    up.sendall(req.head + body)
                    status_head = self._read_final_head(up_rfile)
                except (_Closed, ConnectionError, ProxyError):
                    up_rfile.close()
                    self._close_upstream(upstream)
                    if reused and attempt == 0:
                        continue
                    raise
                return self._relay_response(req, status_head, up_rfile, conn, upstream,
                                            truncate)
            finally:
                up_rfile.close()
        return False

    @staticmethod
    def _read_final_head(up_rfile: BinaryIO) -> bytes:
        while True:
            head = _read_head(up_rfile)
            status = int(head.split(b" ", 2)[1])
            if status == 100 or (100 < status < 200 and status != 101):
                continue  # interim responses: the client already got its 100 Continue
            return head

    def _relay_response(self, req: _Request, head: bytes, up_rfile: BinaryIO,
                        conn: socket.socket, upstream: list[socket.socket | None],
                        truncate: bool) -> bool:
        first, headers = _parse_headers(head)
        status = int(first.split(" ", 2)[1])
        conn_hdr = (_header(headers, "connection") or "").lower()
        client_close = (req.header("connection") or "").lower() == "close"
        te = (_header(headers, "transfer-encoding") or "").lower()
        cl = _header(headers, "content-length")
        no_body = req.method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if no_body:
            body_mode, length = "length", 0
        elif "chunked" in te:
            body_mode, length = "chunked", 0
        elif cl is not None:
            body_mode, length = "length", int(cl)
        else:
            body_mode, length = "eof", 0
        upstream_close = conn_hdr == "close" or body_mode == "eof"

        if truncate:
            if body_mode == "chunked":
                body = _copy_chunked(up_rfile, None)
            elif body_mode == "length":
                body = _copy_exact(up_rfile, length, None)
            else:
                body = up_rfile.read()
            conn.sendall(head + body[: len(body) // 2])
            if upstream_close:
                self._close_upstream(upstream)
            return False

        conn.sendall(head)
        if body_mode == "chunked":
            _copy_chunked(up_rfile, conn)
        elif body_mode == "length":
            _copy_exact(up_rfile, length, conn)
        else:
            while True:
                chunk = up_rfile.read1(_COPY_CHUNK)  # type: ignore[attr-defined]
                if not chunk:
                    break
                conn.sendall(chunk)
        if upstream_close:
            self._close_upstream(upstream)
        return not (upstream_close or client_close)

    def _control(self, req: _Request, rfile: BinaryIO, conn: socket.socket) -> bool:
        body = self._read_request_body(req, rfile, conn)
        action = req.target[len(CONTROL_PREFIX):].split("?", 1)[0]
        try:
            if req.method == "GET" and action == "counts":
                out = json.dumps(self.counts(), sort_keys=True).encode()
            elif req.method == "GET" and action == "faults":
                with self._lock:
                    out = json.dumps([r.spec() for r in self._rules]).encode()
            elif req.method == "PUT" and action == "faults":
                lines = body.decode().splitlines()
                self.set_faults([line for line in lines if line.strip()])
                out = b"{}"
            elif req.method == "POST" and action == "reset":
                self.reset()
                out = b"{}"
            else:
                return self._send_simple(conn, req, "404 Not Found", b'{"error": "unknown"}',
                                         "application/json")
        except ProxyError as exc:
            return self._send_simple(conn, req, "400 Bad Request",
                                     json.dumps({"error": str(exc)}).encode(),
                                     "application/json")
        return self._send_simple(conn, req, "200 OK", out, "application/json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="KIND[:opt=value,...], repeatable; see the module docstring")
    parser.add_argument("--stall-seconds", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="exit after this long (bounded lifetime)")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--max-faults-per-target", type=int, default=None,
                        help="forward a target's requests once it has had this many faults")
    args = parser.parse_args(argv)
    if args.listen_host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the proxy only listens on loopback")
    try:
        proxy = FaultProxy(args.upstream, args.fault, listen_host=args.listen_host,
                           listen_port=args.listen_port, stall_seconds=args.stall_seconds,
                           max_requests=args.max_requests,
                           max_faults_per_target=args.max_faults_per_target)
    except ProxyError as exc:
        parser.error(str(exc))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    port = proxy.start()
    print(port, flush=True)
    try:
        done.wait(args.max_seconds)
    finally:
        proxy.stop()
        print(json.dumps(proxy.counts(), sort_keys=True), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
