"""plait_pinecone without a server: configuration, filter translation, batching, error mapping."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from unittest.mock import Mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pinecone = pytest.importorskip("pinecone", reason="the pinecone SDK is not installed: pip install 'plait[pinecone]'")
pytest.importorskip("numpy", reason="the hashing embedder needs numpy")

import plait  # noqa: E402
from plait.errors import ConfigurationError  # noqa: E402
from plait.retrieve import HashingEmbedder, matches_filter  # noqa: E402
from plait.testing.conformance.pinecone_server import matches as pinecone_matches  # noqa: E402
from plait_pinecone import PineconeRetriever, PineconeUnavailableError, to_pinecone_filter  # noqa: E402
from plait_pinecone.retriever import _index_url  # noqa: E402

EMBEDDER = HashingEmbedder(dim=16)


def _retriever(index_handle: Mock, **options) -> PineconeRetriever:
    return PineconeRetriever(client=index_handle, embedder=EMBEDDER, api_key="key", **options)


def _handle() -> Mock:
    handle = Mock(spec=pinecone.Index)
    handle.query.return_value = SimpleNamespace(matches=[])
    return handle


def test_importing_the_plugin_does_not_import_the_sdk():
    code = "import sys, plait_pinecone; assert 'pinecone' not in sys.modules, 'SDK imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_registered_as_retriever_with_its_extra():
    backend = plait.registry.backends("retriever")["pinecone"]
    assert backend.backend.extra == "pinecone" and backend.backend.requires == ("pinecone",)


@pytest.mark.parametrize("config, error, message", [
    ({"embedder": EMBEDDER, "api_key": "k"}, ValueError, "index="),
    ({"index": "i", "api_key": "k"}, ValueError, "needs an embedder"),
    ({"index": "i", "api_key": "k", "embedder": "not callable"}, TypeError, "callable"),
    ({"index": "i", "api_key": "k", "embedder": EMBEDDER, "metric": "manhattan"}, ValueError, "metric"),
    ({"index": "i", "api_key": "k", "embedder": EMBEDDER, "batch_size": 1001}, ValueError, "1..1000"),
    ({"index": "i", "api_key": "k", "embedder": EMBEDDER, "namespace": 3}, TypeError, "namespace"),
    ({"index": "i", "api_key": "k", "embedder": EMBEDDER, "k": 0}, ValueError, "k must"),
])
def test_bad_configuration_is_refused_before_any_network(config, error, message):
    with pytest.raises(error, match=message):
        plait.retriever("pinecone", **config)


def test_api_key_required_except_for_servers_on_this_machine(monkeypatch):
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    monkeypatch.delenv("PINECONE_CONTROLLER_HOST", raising=False)
    with pytest.raises(ConfigurationError, match="PINECONE_API_KEY"):
        PineconeRetriever("i", embedder=EMBEDDER)
    with pytest.raises(ConfigurationError, match="PINECONE_API_KEY"):
        PineconeRetriever("i", embedder=EMBEDDER, host="https://api.example.com")
    assert PineconeRetriever("i", embedder=EMBEDDER, host="http://localhost:5080")._api_key == "pclocal"
    monkeypatch.setenv("PINECONE_API_KEY", "from-env")
    assert PineconeRetriever("i", embedder=EMBEDDER)._api_key == "from-env"


@pytest.mark.parametrize("portable, native", [
    (None, None),
    ({}, None),
    ({"topic": "x"}, {"topic": {"$eq": "x"}}),
    ({"year": [2001, 2002]}, {"year": {"$in": [2001, 2002]}}),
    ({"topic": "x", "ok": True}, {"$and": [{"topic": {"$eq": "x"}}, {"ok": {"$eq": True}}]}),
    ({"year": {"$gte": 2005}}, {"year": {"$gte": 2005}}),                      # native: unchanged
    ({"$or": [{"a": 1}, {"b": 2}]}, {"$or": [{"a": 1}, {"b": 2}]}),
])
def test_portable_filters_become_pinecone_filters(portable, native):
    assert to_pinecone_filter(portable) == native


_scalars = st.sampled_from(["x", "y", "naïve café", 2, 3, 2.5, True, False])   # no 0/1: True == 1 in Python
_keys = st.sampled_from(["topic", "year", "ok"])


@settings(max_examples=200, deadline=None)
@given(metadata=st.dictionaries(_keys, _scalars),
       portable=st.dictionaries(_keys, st.one_of(_scalars, st.lists(_scalars, min_size=1, max_size=3)), max_size=3))
def test_translated_filters_select_what_the_portable_filter_selects(metadata, portable):
    translated = to_pinecone_filter(portable)
    expected = matches_filter(metadata, portable)
    assert (True if translated is None else pinecone_matches(metadata, translated)) == expected


def test_add_batches_upserts_and_stores_the_text_in_metadata():
    handle = _handle()
    retriever = _retriever(handle, namespace="ns", batch_size=100, text_field="body")
    texts = [f"passage {i}" for i in range(250)]
    ids = retriever.add(texts, metadata=[{"n": i} for i in range(250)])
    calls = handle.upsert.call_args_list
    assert [len(call.kwargs["vectors"]) for call in calls] == [100, 100, 50]
    assert all(call.kwargs["namespace"] == "ns" for call in calls)
    first = calls[0].kwargs["vectors"][0]
    assert first["id"] == ids[0] and first["metadata"] == {"n": 0, "body": "passage 0"} and len(first["values"]) == 16


def test_search_sends_one_query_per_text_with_metadata_and_translated_filter():
    handle = _handle()
    handle.query.side_effect = lambda **kw: SimpleNamespace(matches=[
        SimpleNamespace(id="a", score=0.9, metadata={"text": "alpha", "topic": "x"}),
        SimpleNamespace(id="b", score=0.4, metadata=None)])
    retriever = _retriever(handle, namespace="ns", native_filter={"ok": {"$eq": True}})
    results = retriever(["q1", "q2"], k=20_000, filter={"topic": "x"})
    assert handle.query.call_count == 2
    sent = handle.query.call_args.kwargs
    assert sent["top_k"] == 10_000 and sent["include_metadata"] is True and sent["namespace"] == "ns"
    assert sent["filter"] == {"$and": [{"ok": {"$eq": True}}, {"topic": {"$eq": "x"}}]}
    assert [(p.id, p.text, p.score, dict(p.metadata)) for p in results[0]] == [
        ("a", "alpha", 0.9, {"topic": "x"}), ("b", "", 0.4, {})]


@pytest.mark.parametrize("metadata, error, message", [
    ({"text": "clash"}, ValueError, "holds the passage text"),
    ({"nested": {"a": 1}}, TypeError, "nested dicts"),
    ({"missing": None}, TypeError, "None"),
    ({"mixed": ["a", 1]}, TypeError, "lists of strings"),
])
def test_metadata_pinecone_cannot_store_is_refused_before_sending(metadata, error, message):
    handle = _handle()
    with pytest.raises(error, match=message):
        _retriever(handle).add(["some text"], metadata=[metadata])
    handle.upsert.assert_not_called()


def test_sdk_errors_become_plait_errors_naming_the_host():
    from pinecone.errors.exceptions import ApiError, PineconeConnectionError, UnauthorizedError

    handle = _handle()
    retriever = _retriever(handle, index_host="http://127.0.0.1:5081")
    handle.query.side_effect = PineconeConnectionError("connection refused")
    with pytest.raises(PineconeUnavailableError, match=r"127\.0\.0\.1:5081 did not answer the query"):
        retriever("q", k=1)
    handle.query.side_effect = UnauthorizedError(message="bad key", status_code=401)
    with pytest.raises(ConfigurationError, match="api_key"):
        retriever("q", k=1)
    handle.query.side_effect = ApiError(message="Vector dimension 16 does not match", status_code=400)
    with pytest.raises(ValueError, match="rejected the query.*dimension"):
        retriever("q", k=1)


def test_a_failure_in_one_query_fails_the_whole_batch():
    from pinecone.errors.exceptions import PineconeTimeoutError

    handle = _handle()
    answers = iter([SimpleNamespace(matches=[]), PineconeTimeoutError("timed out")])

    def query(**kwargs):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    handle.query.side_effect = query
    with pytest.raises(PineconeUnavailableError):
        _retriever(handle, max_concurrency=1)(["first", "second", "third"], k=1)
    assert handle.query.call_count == 2       # the third query is never sent


def test_embedder_of_the_wrong_shape_is_reported():
    retriever = PineconeRetriever(client=_handle(), embedder=lambda texts: [[0.1, 0.2]], api_key="k")
    with pytest.raises(ValueError, match=r"shape \(1, 2\) for 2 texts"):
        retriever.add(["one", "two"])


@pytest.mark.parametrize("host, control, expected", [
    ("https://idx-abc.svc.pinecone.io", "https://api.pinecone.io", "https://idx-abc.svc.pinecone.io"),
    ("https://localhost:5081", "http://localhost:5080", "http://localhost:5081"),      # Pinecone Local
    ("localhost:5081", "http://localhost:5080", "http://localhost:5081"),
    ("https://idx.svc.pinecone.io", "http://localhost:5080", "https://idx.svc.pinecone.io"),
    ("http://127.0.0.1:9/index/x", "http://127.0.0.1:9", "http://127.0.0.1:9/index/x"),
])
def test_index_urls_keep_plain_http_only_for_local_simulators(host, control, expected):
    assert _index_url(host, control) == expected
