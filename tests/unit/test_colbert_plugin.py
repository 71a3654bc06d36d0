"""plait_colbert: the ColBERTv2 client (against a scripted stdlib server on 127.0.0.1, both
transports) and the local late-interaction index (hashing token encoder: no model)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

import plait
from plait.errors import StateError
from plait.testing.retriever_contract import CORPUS, RetrieverContract
from plait_colbert import client as client_module
from plait_colbert import storage
from plait_colbert.client import ColBERTv2, ColBERTv2ConnectionError, ColBERTv2Error
from plait_colbert.encoder import HashingTokenEncoder, TokenEncoder, TransformerTokenEncoder
from plait_colbert.local import LateInteractionIndex, maxsim_scores

HITS = [{"text": "Paris is in France.", "pid": 7, "score": 21.5, "rank": 1, "prob": 0.7},
        {"text": "Lyon is in France.", "pid": 9, "score": 19.0, "rank": 2, "prob": 0.2},
        {"text": "Nice is in France.", "pid": 3, "score": 12.0, "rank": 3, "prob": 0.1}]


class FakeColBERT:
    """A scripted ColBERTv2 server: ``answers`` is consumed one per request (the last one repeats)."""

    def __init__(self):
        self.answers: list[tuple[int, object, float]] = [(200, {"topk": HITS}, 0.0)]
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                parts = urlsplit(self.path)
                fake.requests.append({"method": self.command, "path": parts.path,
                                      "query": {k: v[0] for k, v in parse_qs(parts.query).items()}, "body": body})
                status, payload, delay = fake.answers.pop(0) if len(fake.answers) > 1 else fake.answers[0]
                time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):   # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/search"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeColBERT()
    yield server
    server.close()


@pytest.fixture
def no_sleep(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(client_module, "_sleep", pauses.append)
    return pauses


@pytest.fixture(params=["httpx", "urllib"])
def transport(request):
    return request.param


# --- the client ---------------------------------------------------------------------------------

def test_get_request_speaks_the_protocol_and_builds_passages(fake, transport):
    retriever = ColBERTv2(fake.url, transport=transport)
    passages = retriever("Where is Paris?", k=2)
    assert fake.requests == [{"method": "GET", "path": "/search", "query": {"query": "Where is Paris?", "k": "2"},
                              "body": None}]
    assert [(p.text, p.id, p.score) for p in passages] == [("Paris is in France.", "7", 21.5),
                                                           ("Lyon is in France.", "9", 19.0)]
    assert passages[0].metadata == {"rank": 1, "prob": 0.7}
    assert passages[0].long_text == "Paris is in France."


def test_post_request_sends_json(fake, transport):
    retriever = ColBERTv2(fake.url, post_requests=True, transport=transport)
    assert [p.id for p in retriever("q", k=3)] == ["7", "9", "3"]
    assert fake.requests[0]["method"] == "POST" and fake.requests[0]["body"] == {"query": "q", "k": 3}


def test_dspy_style_port_and_simplify(fake):
    base, port = fake.url.rsplit(":", 1)
    retriever = ColBERTv2(base, port=int(port.split("/")[0]))
    assert retriever.url == fake.url.removesuffix("/search")
    assert retriever("q", k=1, simplify=True) == ["Paris is in France."]
    assert fake.requests[0]["path"] == "/"


def test_registered_as_colbert_and_batch_queries(fake):
    retriever = plait.retriever("colbert", url=fake.url, k=1)
    assert isinstance(retriever, ColBERTv2)
    assert [[p.id for p in ps] for ps in retriever(["a", "b"])] == [["7"], ["7"]]
    assert [r["query"]["query"] for r in fake.requests] == ["a", "b"]


def test_server_errors_are_retried_with_backoff_then_succeed(fake, no_sleep, transport):
    fake.answers = [(503, {"message": "warming up"}, 0), (502, b"bad gateway", 0), (200, {"topk": HITS}, 0)]
    retriever = ColBERTv2(fake.url, retries=2, backoff=0.5, transport=transport)
    assert len(retriever("q", k=3)) == 3
    assert len(fake.requests) == 3 and no_sleep == [0.5, 1.0]


def test_persistent_server_errors_give_a_clear_error_naming_the_url(fake, no_sleep):
    fake.answers = [(500, {"detail": "index missing"}, 0)]
    with pytest.raises(ColBERTv2ConnectionError, match=r"127\.0\.0\.1.*3 attempts.*HTTP 500: index missing"):
        ColBERTv2(fake.url, retries=2)("q", k=1)
    assert len(fake.requests) == 3


def test_unreachable_server_bounded_retries(no_sleep, transport):
    server = FakeColBERT()
    url = server.url
    server.close()    # nothing listens there any more
    retriever = ColBERTv2(url, retries=3, transport=transport)
    with pytest.raises(ColBERTv2ConnectionError, match="did not answer after 4 attempts") as caught:
        retriever(["first", "second"], k=1)
    assert caught.value.url == url and url in str(caught.value)
    assert len(no_sleep) == 3


def test_a_failing_query_in_a_batch_gives_no_partial_results(fake, no_sleep):
    fake.answers = [(200, {"topk": HITS}, 0), (500, {"message": "boom"}, 0)]
    with pytest.raises(ColBERTv2ConnectionError):
        ColBERTv2(fake.url, retries=1)(["ok", "fails"], k=1)


def test_timeouts_are_retried_then_reported(fake, no_sleep, transport):
    fake.answers = [(200, {"topk": HITS}, 0.6)]
    with pytest.raises(ColBERTv2ConnectionError, match="2 attempts"):
        ColBERTv2(fake.url, timeout=0.15, retries=1, transport=transport)("slow", k=1)


def test_client_errors_are_not_retried(fake, no_sleep, transport):
    fake.answers = [(422, {"error": True, "message": "k must be between 1 and 100, got 0"}, 0)]
    with pytest.raises(ColBERTv2Error, match="HTTP 422.*k must be between") as caught:
        ColBERTv2(fake.url, transport=transport)("q", k=2)
    assert caught.value.status == 422 and len(fake.requests) == 1 and no_sleep == []


@pytest.mark.parametrize("payload, problem", [
    ({"error": True, "message": "index not loaded"}, "returned an error: index not loaded"),
    ({"hits": []}, "without a 'topk' list"),
    ({"topk": [{"pid": 1, "score": 2.0}]}, "without a 'text' string"),
    ({"topk": [{"text": "t", "pid": 1, "score": "high"}]}, "non-numeric score"),
    (b"<html>not json</html>", "did not answer JSON"),
    ([1, 2], "not an object"),
])
def test_malformed_answers_raise_clear_errors(fake, payload, problem):
    fake.answers = [(200, payload, 0)]
    with pytest.raises(ColBERTv2Error, match=problem):
        ColBERTv2(fake.url)("q", k=1)


def test_k_above_the_protocol_limit_is_refused_before_any_request(fake):
    with pytest.raises(ValueError, match="max_k=100"):
        ColBERTv2(fake.url)("q", k=101)
    assert fake.requests == []


def test_hits_without_pid_or_score_and_extra_hits_are_cut_to_k(fake):
    fake.answers = [(200, {"topk": [{"long_text": "only long text"}, {"text": "b", "pid": "x", "score": 1}]}, 0)]
    passages = ColBERTv2(fake.url)("q", k=1)
    assert [(p.text, p.id, p.score) for p in passages] == [("only long text", None, 0.0)]


def test_add_and_clear_use_the_plait_extension(fake, transport):
    fake.answers = [(200, {"ids": ["a", "b"]}, 0), (200, {"cleared": True}, 0)]
    retriever = ColBERTv2(fake.url, transport=transport)
    assert retriever.add(["one", "two"], ids=["a", "b"], metadata=[{"x": 1}, None]) == ["a", "b"]
    retriever.clear()
    assert [(r["method"], r["path"]) for r in fake.requests] == [("POST", "/add"), ("POST", "/clear")]
    assert fake.requests[0]["body"] == {"texts": ["one", "two"], "ids": ["a", "b"], "metadata": [{"x": 1}, {}]}


def test_add_on_a_read_only_server_names_the_fix(fake):
    fake.answers = [(403, {"error": True, "message": "this server is read-only; allow_writes = true"}, 0)]
    with pytest.raises(ColBERTv2Error, match="HTTP 403.*allow_writes"):
        ColBERTv2(fake.url).add(["text"])
    with pytest.raises(ColBERTv2Error, match="does not end in /search"):
        ColBERTv2(fake.url.removesuffix("/search") + "/api/query").add(["text"])


@pytest.mark.parametrize("kwargs, problem", [
    ({"url": "localhost:8893"}, "http"), ({"url": "http://h", "port": "abc"}, "port"),
    ({"url": "http://h/search", "k": 0}, "k must"), ({"url": "http://h/search", "retries": -1}, "retries"),
    ({"url": "http://h/search", "timeout": 0}, "timeout"),
    ({"url": "http://h/search", "transport": "curl"}, "transport"),
])
def test_bad_client_config(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        ColBERTv2(**kwargs)


def test_filters_are_refused_by_the_protocol_client(fake):
    with pytest.raises(ValueError, match="does not support filters"):
        ColBERTv2(fake.url)("q", k=1, filter={"topic": "x"})


def test_importing_the_plugin_loads_no_sdk():
    code = ("import sys, plait_colbert, plait_server; "
            "print(sorted(m for m in ('httpx', 'numpy', 'transformers', 'torch', 'fastapi', 'uvicorn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the local late-interaction index ----------------------------------------------------------

class TestLateInteractionHashingContract(RetrieverContract):
    @pytest.fixture
    def make_retriever(self):
        return lambda: plait.retriever("colbert-local", encoder="hashing")

    def bad_config(self):
        plait.retriever("colbert-local", encoder="no-such-encoder")


class TestLateInteractionPersistedContract(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, tmp_path):
        folders = iter(range(100))
        return lambda: LateInteractionIndex(tmp_path / f"index-{next(folders)}", encoder="hashing")

    def bad_config(self):
        LateInteractionIndex(k=0, encoder="hashing")


def _filled(path=None, encoder=None):
    index = LateInteractionIndex(path, encoder=encoder or HashingTokenEncoder(64))
    pids, texts, metas = zip(*CORPUS)
    index.add(list(texts), list(pids), list(metas))
    return index


def test_maxsim_matches_a_brute_force_computation_across_chunks():
    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (3, 1, 0, 7, 2, 5)]
    query = rng.standard_normal((4, 8)).astype(np.float32)
    expected = [0.0 if not len(doc) else float((query @ doc.T).max(axis=1).sum()) for doc in docs]
    for chunk_tokens in (1, 4, 10, 10_000):
        packed = storage.pack(docs, 8, chunk_tokens=chunk_tokens)
        assert np.allclose(maxsim_scores(query, packed), expected, atol=1e-5)
    assert np.allclose(maxsim_scores(np.zeros((0, 8), np.float32), storage.pack(docs, 8)), 0.0)


def test_index_is_saved_and_loaded_from_its_folder(tmp_path):
    original = _filled(tmp_path / "idx")
    query = "How is espresso coffee brewed?"
    expected = [(p.id, p.score, dict(p.metadata)) for p in original(query, k=3)]
    reopened = LateInteractionIndex(tmp_path / "idx", encoder=HashingTokenEncoder(64))
    assert len(reopened) == len(CORPUS)
    assert [(p.id, p.score, dict(p.metadata)) for p in reopened(query, k=3)] == expected
    assert sorted(f.name for f in (tmp_path / "idx").iterdir())[0] == "manifest.json"
    assert len(list((tmp_path / "idx").glob("tokens-*.npy"))) == 1   # stale token files removed


def test_a_failed_save_leaves_the_previous_index_intact(tmp_path, monkeypatch):
    index = _filled(tmp_path / "idx")

    def crash(path, document):
        raise OSError("disk full")
    monkeypatch.setattr(storage, "save_state", crash)
    with pytest.raises(OSError, match="disk full"):
        index.add(["A brand new passage about owls."], ids=["p-owl"])
    with pytest.raises(OSError, match="disk full"):
        index.clear()
    assert len(index) == len(CORPUS) and index("owls", k=1)[0].id != "p-owl"   # memory unchanged too
    monkeypatch.undo()
    reopened = LateInteractionIndex(tmp_path / "idx", encoder=HashingTokenEncoder(64))
    assert len(reopened) == len(CORPUS) and reopened("owls", k=1)[0].id != "p-owl"
    reopened.add(["A brand new passage about owls."], ids=["p-owl"])   # next save cleans up
    assert len(list((tmp_path / "idx").glob("tokens-*.npy"))) == 1


def test_an_index_refuses_a_different_encoder(tmp_path):
    _filled(tmp_path / "idx")
    with pytest.raises(StateError, match="hashing-64.*hashing-128.*same encoder"):
        LateInteractionIndex(tmp_path / "idx", encoder=HashingTokenEncoder(128))


def test_damaged_index_folders_raise_state_errors(tmp_path):
    _filled(tmp_path / "idx")
    manifest = tmp_path / "idx" / "manifest.json"
    document = json.loads(manifest.read_text())
    document["passages"] = document["passages"][:-1]
    manifest.write_text(json.dumps(document))
    with pytest.raises(StateError, match="inconsistent"):
        LateInteractionIndex(tmp_path / "idx", encoder=HashingTokenEncoder(64))
    manifest.write_text("{not json")
    with pytest.raises(StateError, match="not a readable"):
        LateInteractionIndex(tmp_path / "idx", encoder=HashingTokenEncoder(64))
    manifest.write_text(json.dumps({"format": "something.else"}))
    with pytest.raises(StateError, match="not a colbert-local index"):
        LateInteractionIndex(tmp_path / "idx", encoder=HashingTokenEncoder(64))


def test_clear_empties_the_index_and_its_folder(tmp_path):
    index = _filled(tmp_path / "idx")
    index.clear()
    assert len(index) == 0 and index("espresso", k=3) == []
    assert len(LateInteractionIndex(tmp_path / "idx", encoder=HashingTokenEncoder(64))) == 0


def test_metadata_that_is_not_json_is_refused_before_anything_changes(tmp_path):
    index = _filled(tmp_path / "idx")
    with pytest.raises(TypeError, match="p-bad.*not JSON-safe"):
        index.add(["text"], ids=["p-bad"], metadata=[{"when": object()}])
    assert len(index) == len(CORPUS)


def test_empty_texts_and_filters_with_no_match():
    index = LateInteractionIndex(encoder="hashing")
    index.add(["", "owls hoot at night"], ids=["empty", "owl"], metadata=[{"t": 1}, {"t": 2}])
    assert [p.id for p in index("owls", k=2)] == ["owl", "empty"]
    assert index("owls", k=2, filter={"t": 3}) == []
    assert [p.id for p in index("owls", k=2, filter={"t": [1]})] == ["empty"]


def test_bad_encoders_and_paths_are_refused(tmp_path):
    class Broken(TokenEncoder):
        name, dim = "broken", 4

        def encode(self, texts, *, is_query=False):
            return [np.zeros((2, 5), np.float32) for _ in texts]

    with pytest.raises(ValueError, match=r"shape \(2, 5\).*\(tokens, 4\)"):
        LateInteractionIndex(encoder=Broken()).add(["x"])
    with pytest.raises(TypeError, match="TokenEncoder"):
        LateInteractionIndex(encoder=object())
    with pytest.raises(TypeError, match="encoder options"):
        LateInteractionIndex(encoder=HashingTokenEncoder(), dim=3)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        LateInteractionIndex(tmp_path / "file", encoder="hashing")
    with pytest.raises(ValueError, match="not a local model folder"):
        TransformerTokenEncoder(model=tmp_path)
    with pytest.raises(ValueError, match="max_length"):
        TransformerTokenEncoder(max_length=0)
