"""Shared plumbing for the conformance servers: a threaded JSON-over-HTTP server on 127.0.0.1.

Subclasses implement ``dispatch(method, path, query, body, headers) -> (status, payload)``.
``stop()`` closes the listener AND every open connection, so a client holding pooled
keep-alive connections sees the outage exactly as it would see a killed process.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ConformanceServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        return   # resets are routine when an outage is simulated; the stdlib would print a traceback


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"        # keep-alive, as the SDKs' connection pools expect
    disable_nagle_algorithm = True       # without it every response waits ~40-50 ms for an ACK
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 (stdlib's name)
        return   # library code never prints; requests are recorded in owner.requests

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        owner = self.server.owner
        if owner._dead:   # stopping: drop the request unanswered, as a killed process would
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            status, payload = 400, owner.error_payload(400, f"request body is not JSON: {exc}")
        else:
            try:
                status, payload = owner.dispatch(method, parts.path, parse_qs(parts.query), body, self.headers)
            except Exception as exc:   # a bug in the stand-in must surface as a 500, not a hang
                status, payload = 500, owner.error_payload(500, f"conformance server error: {exc!r}")
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        owner._answered(method, parts.path)


class ConformanceServer:
    """Base class: start in a daemon thread on 127.0.0.1 (a free port unless ``port`` is given)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._host, self._port = host, port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.RLock()         # guards the stored data and the connection set
        self._stop_rule: tuple[str, int] | None = None
        self._dead = False                     # set the moment an outage starts; requests then go unanswered
        self.requests: list[tuple[str, str]] = []   # (method, path) of every answered request

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> ConformanceServer:
        if self._httpd is not None:
            return self
        self._dead = False
        self._httpd = _Server((self._host, self._port), _Handler)
        self._httpd.owner = self
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (idempotent)."""
        self._dead = True
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)   # the handler thread's read returns and it exits
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def stop_after(self, path_suffix: str, count: int) -> None:
        """Stop (as an outage would) right after answering ``count`` requests ending in ``path_suffix``."""
        self._stop_rule = (path_suffix, count)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> ConformanceServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --- hooks for subclasses --------------------------------------------------------------
    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                 headers: Mapping[str, str]) -> tuple[int, Any]:
        raise NotImplementedError

    def error_payload(self, status: int, message: str) -> Any:
        return {"message": message}

    # --- internals ---------------------------------------------------------------------------
    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _answered(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))
            rule = self._stop_rule
            if rule is None or not path.endswith(rule[0]):
                return
            remaining = rule[1] - 1
            self._stop_rule = (rule[0], remaining) if remaining > 0 else None
            if remaining <= 0:
                self._dead = True
        if remaining <= 0:
            threading.Thread(target=self.stop, daemon=True).start()   # stop() joins the serving thread


# --- small vector helpers (pure Python: these servers hold dozens of vectors, not millions) ---

def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b))


def norm(a: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in a))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    denominator = norm(a) * norm(b)
    return dot(a, b) / denominator if denominator else 0.0


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
