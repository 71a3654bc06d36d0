"""The chroma retriever against a real ``chroma run`` server on 127.0.0.1: the retriever contract
through ``host=``/``port=``, and an outage (the server killed mid-run) ending in bounded retries and
a clear error naming host:port, never partial results.

``chroma_server`` (session) starts ``chroma run --path TMP --host 127.0.0.1 --port FREE`` and waits
for its heartbeat (bounded); it stops it at the end (terminate, wait, then kill). It skips, saying
what to install, when chromadb (which ships the server) is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import plait
from plait.hookspecs import hookimpl
from plait.testing.retriever_contract import CORPUS, RetrieverContract

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT_S = 30.0        # the heartbeat answers in well under 3 s on this machine
STOP_TIMEOUT_S = 10.0


@dataclass
class ChromaServer:
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """terminate -> wait -> kill, on this server's own process only."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """An abrupt outage: SIGKILL, no graceful shutdown."""
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT_S)


def _chroma_command() -> str | None:
    beside = Path(sys.executable).with_name("chroma")     # the CLI installed with this interpreter's chromadb
    return str(beside) if beside.exists() else shutil.which("chroma")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_chroma_server(data_dir: Path) -> ChromaServer:
    """Start ``chroma run`` on a free loopback port; return once its heartbeat answers."""
    pytest.importorskip("chromadb", reason="chromadb (which ships `chroma run`) is not installed: "
                                           "pip install 'plait[chroma]'")
    command = _chroma_command()
    if command is None:
        pytest.skip("the `chroma` command (installed with chromadb) is not on PATH")
    port = _free_port()
    log_path = data_dir.with_suffix(".log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([command, "run", "--path", str(data_dir), "--host", "127.0.0.1",
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = ChromaServer("127.0.0.1", port, process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chroma run exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"chroma run did not answer its heartbeat within {STARTUP_TIMEOUT_S:.0f} s:\n"
                       f"{server.log_tail()}")


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[ChromaServer]:
    with tempfile.TemporaryDirectory(prefix="plait-chroma-") as tmp:
        server = start_chroma_server(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.stop()


def hashing() -> object:
    return plait.embedder("hashing", dim=1024)


class TestChromaServer(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, chroma_server):
        made = []

        def make():   # a fresh collection per retriever: every one starts empty
            made.append(plait.retriever("chroma", collection=f"contract-{uuid.uuid4().hex[:12]}",
                                        host=chroma_server.host, port=chroma_server.port, embedder=hashing()))
            return made[-1]
        yield make
        for retriever in made:
            retriever.client.delete_collection(retriever.collection)
            retriever.close()

    def bad_config(self):
        plait.retriever("chroma", collection="contract", host="127.0.0.1", port=70000, embedder=hashing())


class RetryRecorder:
    def __init__(self) -> None:
        self.attempts: list[int] = []

    @hookimpl
    def plait_event(self, event) -> None:
        if event.kind == "retriever.retry" and event.source == "chroma":
            self.attempts.append(event.data["attempt"])


def test_server_killed_mid_run_gives_bounded_retries_and_a_clear_error(tmp_path):
    from plait_chroma import ChromaUnavailableError

    server = start_chroma_server(tmp_path / "data")
    try:
        retriever = plait.retriever("chroma", collection="outage", host=server.host, port=server.port,
                                    embedder=hashing(), num_retries=2, retry_delay=0.05)
        ids, texts, metadata = zip(*CORPUS)
        retriever.add(list(texts), ids=list(ids), metadata=list(metadata))
        assert retriever("How is espresso coffee brewed?", k=1)[0].id == "p-espresso"

        server.kill()
        recorder = RetryRecorder()
        with plait.plugins.plugin(recorder, name="test-chroma-retries"):
            started = time.monotonic()
            with pytest.raises(ChromaUnavailableError, match=rf"{server.host}:{server.port}.*after 3 attempts"):
                retriever(["How is espresso coffee brewed?", "What is castling in chess?"], k=2)
            assert time.monotonic() - started < 5          # bounded: 2 short backoffs, no hang
            assert recorder.attempts == [1, 2]
            with pytest.raises(ChromaUnavailableError, match=r"upsert .*passages 0-0 of 1"):
                retriever.add(["written while the server is down"])
        retriever.close()
    finally:
        server.stop()


def test_unreachable_server_at_construction_names_host_and_port():
    from plait_chroma import ChromaUnavailableError

    pytest.importorskip("chromadb", reason="chromadb is not installed: pip install 'plait[chroma]'")
    port = _free_port()          # nothing listens there
    with pytest.raises(ChromaUnavailableError, match=rf"127.0.0.1:{port}.*connect"):
        plait.retriever("chroma", collection="nowhere", host="127.0.0.1", port=port, embedder=hashing(),
                        num_retries=1, retry_delay=0.01)
