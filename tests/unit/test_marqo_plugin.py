"""plait_marqo without a server: configuration, the filter DSL, documents sent, retries, errors."""

from __future__ import annotations

import subprocess
import sys
from unittest.mock import Mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

marqo = pytest.importorskip("marqo", reason="the marqo client is not installed: pip install 'plait[marqo]'")
pytest.importorskip("numpy", reason="the hashing embedder needs numpy")

import plait  # noqa: E402
from plait.errors import ConfigurationError  # noqa: E402
from plait.retrieve import HashingEmbedder, matches_filter  # noqa: E402
from plait.testing.conformance._filter_dsl import parse_filter  # noqa: E402
from plait_marqo import MarqoRetriever, MarqoUnavailableError, to_marqo_filter  # noqa: E402

EMBEDDER = HashingEmbedder(dim=16)


def _client() -> tuple[Mock, Mock]:
    client = Mock(spec=marqo.Client)
    client.config = Mock(timeout=None)
    index = Mock(spec=marqo.index.Index)
    index.search.return_value = {"hits": []}
    index.add_documents.return_value = {"errors": False, "items": []}
    client.index.return_value = index
    return client, index


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    import plait_marqo.retriever as marqo_retriever
    sleeps: list[float] = []
    monkeypatch.setattr(marqo_retriever, "_sleep", sleeps.append)
    return sleeps


def test_importing_the_plugin_does_not_import_the_client():
    code = "import sys, plait_marqo; assert 'marqo' not in sys.modules, 'client imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_registered_as_retriever_with_its_extra():
    backend = plait.registry.backends("retriever")["marqo"]
    assert backend.backend.extra == "marqo" and backend.backend.requires == ("marqo",)


@pytest.mark.parametrize("config, error, message", [
    ({}, ValueError, "index="),
    ({"index": "i", "url": "localhost:8882"}, ValueError, "http"),
    ({"index": "i", "embedder": EMBEDDER, "model": "hf/e5-base-v2"}, ValueError, "not both"),
    ({"index": "i", "text_field": "_text"}, ValueError, "text_field"),
    ({"index": "i", "searchable_attributes": "text"}, TypeError, "list of field names"),
    ({"index": "i", "filter_string": {"a": 1}}, TypeError, "filter string"),
    ({"index": "i", "max_retries": -1}, ValueError, "max_retries"),
])
def test_bad_configuration_is_refused_before_any_network(config, error, message):
    with pytest.raises(error, match=message):
        plait.retriever("marqo", **config)


@pytest.mark.parametrize("portable, dsl", [
    (None, None),
    ({"topic": "geography"}, "topic:(geography)"),
    ({"title": "The Travels (vol. 2): part-1"}, r"title:(The Travels \(vol. 2\)\: part\-1)"),
    ({"year": [2001, 2002]}, "(year:2001 OR year:2002)"),
    ({"ok": True, "n": -1.5}, r"ok:true AND n:\-1.5"),
    ({"my field": "x"}, r"my\ field:(x)"),
])
def test_portable_filters_become_marqo_filter_strings(portable, dsl):
    assert to_marqo_filter(portable) == dsl


_text = st.text(alphabet="ab :()[]\\-*?\"'é東", min_size=1, max_size=8).filter(lambda s: s.strip() == s and s.strip())
_scalars = st.one_of(_text, st.sampled_from([2, 3, -4, 2.5, True, False]))   # no 0/1: True == 1 in Python
_keys = st.sampled_from(["topic", "year", "my field", "a:b"])


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(_keys, _scalars),
       portable=st.dictionaries(_keys, st.one_of(_scalars, st.lists(_scalars, min_size=1, max_size=3)),
                                min_size=1, max_size=3))
def test_translated_filters_select_what_the_portable_filter_selects(doc, portable):
    assert parse_filter(to_marqo_filter(portable))(doc) == matches_filter(doc, portable)


def test_custom_vectors_are_sent_as_mapped_tensor_fields():
    client, index = _client()
    retriever = MarqoRetriever("i", client=client, embedder=EMBEDDER, batch_size=2)
    retriever.add(["alpha", "beta", "gamma"], ids=["a", "b", "c"], metadata=[{"n": 1}, {}, {"tags": ["x"]}])
    assert client.config.timeout == 30.0                 # never the client's wait-forever default
    calls = index.add_documents.call_args_list
    assert [len(call.args[0]) for call in calls] == [2, 1]
    first = calls[0].args[0][0]
    assert first["_id"] == "a" and first["n"] == 1 and first["text"]["content"] == "alpha"
    assert len(first["text"]["vector"]) == 16
    assert calls[0].kwargs == {"tensor_fields": ["text"], "mappings": {"text": {"type": "custom_vector"}}}


def test_custom_vector_queries_go_as_context_without_q():
    client, index = _client()
    index.search.return_value = {"hits": [{"_id": "a", "_score": 0.7, "text": "alpha", "topic": "x",
                                           "_highlights": [{"text": "alpha"}]}]}
    retriever = MarqoRetriever("i", client=client, embedder=EMBEDDER, filter_string="ok:true",
                               searchable_attributes=["text"])
    [passage] = retriever("query", k=5, filter={"topic": "x"})
    sent = index.search.call_args.kwargs
    assert "q" not in sent and len(sent["context"]["tensor"][0]["vector"]) == 16
    assert sent["limit"] == 5 and sent["searchable_attributes"] == ["text"]
    assert sent["filter_string"] == "(ok:true) AND (topic:(x))"
    assert (passage.id, passage.text, passage.score, dict(passage.metadata)) == ("a", "alpha", 0.7, {"topic": "x"})


def test_server_side_embedding_sends_text_and_a_native_filter_string():
    client, index = _client()
    retriever = MarqoRetriever("i", client=client, text_field="document")
    retriever.add(["alpha"], ids=["a"])
    assert index.add_documents.call_args.args[0] == [{"_id": "a", "document": "alpha"}]
    assert index.add_documents.call_args.kwargs == {"tensor_fields": ["document"], "mappings": None}
    retriever("query", k=3, filter="year:[2000 TO 2010]")
    assert index.search.call_args.kwargs["q"] == "query"
    assert index.search.call_args.kwargs["filter_string"] == "year:[2000 TO 2010]"


def test_connection_errors_are_retried_with_backoff_then_reported(_no_backoff):
    from marqo.errors import BackendCommunicationError

    client, index = _client()
    index.search.side_effect = [BackendCommunicationError("refused"), {"hits": []}]
    retriever = MarqoRetriever("i", client=client, url="http://127.0.0.1:8882")
    assert retriever("q", k=1) == [] and _no_backoff == [0.25]
    index.search.side_effect = BackendCommunicationError("refused")
    with pytest.raises(MarqoUnavailableError, match=r"127\.0\.0\.1:8882 did not answer the search after 4 attempts"):
        retriever("q", k=1)
    assert _no_backoff == [0.25, 0.25, 0.5, 1.0]


def test_client_errors_are_not_retried():
    from marqo.errors import MarqoWebError

    client, index = _client()
    index.search.side_effect = MarqoWebError("bad filter", status_code=400, code="invalid_argument")
    with pytest.raises(ValueError, match="rejected the search: bad filter"):
        MarqoRetriever("i", client=client)("q", k=1)
    assert index.search.call_count == 1
    index.search.side_effect = MarqoWebError("no index", status_code=404, code="index_not_found")
    with pytest.raises(ConfigurationError, match="create_index=True"):
        MarqoRetriever("i", client=client)("q", k=1)


def test_rejected_documents_raise_with_the_reasons():
    client, index = _client()
    index.add_documents.return_value = {"errors": True, "items": [
        {"_id": "a", "status": 201}, {"_id": "b", "status": 400, "error": "vector has the wrong length"}]}
    with pytest.raises(ValueError, match="rejected 1 of 2 documents.*'b': vector has the wrong length"):
        MarqoRetriever("i", client=client).add(["alpha", "beta"], ids=["a", "b"])


@pytest.mark.parametrize("metadata, error, message", [
    ({"text": "clash"}, ValueError, "reserved"),
    ({"_private": 1}, ValueError, "reserved"),
    ({"nested": {"a": 1}}, TypeError, "lists of strings"),
])
def test_metadata_marqo_cannot_store_is_refused_before_sending(metadata, error, message):
    client, index = _client()
    with pytest.raises(error, match=message):
        MarqoRetriever("i", client=client).add(["some text"], metadata=[metadata])
    index.add_documents.assert_not_called()


def test_create_index_for_custom_vectors_uses_no_model():
    client, _ = _client()
    client.get_indexes.return_value = {"results": [{"indexName": "other"}]}
    MarqoRetriever("new", client=client, embedder=EMBEDDER, create_index=True)("q", k=1)
    client.create_index.assert_called_once_with("new", model="no_model",
                                                model_properties={"type": "no_model", "dimensions": 16})
