"""Start and stop ``python -m llama_cpp.server`` for the benchmarks (standard library only).

One thread by default (``--n_threads 1 --n_threads_batch 1``, OMP_NUM_THREADS=1): on the shared
2-core machine two threads collapse under load (DESIGN.md section 6).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(gguf: Path, log: Any, *, threads: int = 1, alias: str | None = None,
                 n_ctx: int = 2048, timeout_s: float = 90) -> tuple[subprocess.Popen[bytes], str]:
    """The server process and its OpenAI base URL, once ``/v1/models`` answers; output goes to
    ``log`` (an open binary file, named in every error)."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
               "--n_threads_batch", str(threads)]
    if alias:
        command += ["--model_alias", alias]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {process.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=1):
                return process, base
        except OSError:
            time.sleep(0.2)
    stop_server(process)
    raise RuntimeError(f"llama_cpp.server did not answer within {timeout_s:.0f} s; see {log.name}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()   # SIGTERM waits for an in-flight generation: bounded, then kill
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
