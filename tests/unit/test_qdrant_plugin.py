"""plait_qdrant's mapping onto qdrant-client, checked against a Mock(spec=QdrantClient)."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from types import SimpleNamespace
from unittest.mock import Mock

import pytest

import plait
from plait.errors import MissingExtraError, PlaitError

qdrant_client = pytest.importorskip("qdrant_client",
                                    reason="qdrant-client is not installed (pip install 'plait[qdrant]')")
from qdrant_client import QdrantClient, models  # noqa: E402
from qdrant_client.http.models import QueryResponse  # noqa: E402  (models.QueryResponse is fastembed's)
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse  # noqa: E402

from plait_qdrant import QdrantUnavailableError  # noqa: E402
from plait_qdrant.mapping import point_id, to_qdrant_filter  # noqa: E402
from plait_qdrant.retriever import QdrantRetriever  # noqa: E402

DIM = 16


def embedder():
    return plait.embedder("hashing", dim=DIM)


def mock_client(*, exists: bool = True, vectors=None) -> Mock:
    client = Mock(spec=QdrantClient)
    client.collection_exists.return_value = exists
    params = vectors if vectors is not None else models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    client.get_collection.return_value = SimpleNamespace(config=SimpleNamespace(params=SimpleNamespace(vectors=params)))
    client.query_points.return_value = QueryResponse(points=[])
    return client


def point(pid: str, score: float, text: str = "t", meta=None) -> models.ScoredPoint:
    return models.ScoredPoint(id=point_id(pid), version=0, score=score,
                              payload={"text": text, "plait_id": pid, "metadata": meta or {}})


def down_error() -> ResponseHandlingException:
    return ResponseHandlingException(ConnectionRefusedError(111, "Connection refused"))


# --- ids and payloads --------------------------------------------------------------------------
def test_point_ids_are_deterministic_uuids():
    assert point_id("doc-1") == point_id("doc-1") != point_id("doc-2")
    assert uuid.UUID(point_id("doc-1")).version == 5


def test_add_creates_the_collection_with_the_embedder_dimension_and_upserts_in_batches():
    client = mock_client(exists=False)
    retriever = QdrantRetriever("docs", embedder(), client=client, batch_size=2)
    ids = retriever.add(["a b", "c d", "e f"], ids=["x", "y", "z"], metadata=[{"n": 1}, None, {"n": 3}])
    assert ids == ["x", "y", "z"]
    create = client.create_collection.call_args
    assert create.args == ("docs",)
    assert create.kwargs["vectors_config"] == models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    batches = [call.kwargs["points"] for call in client.upsert.call_args_list]
    assert [len(batch.ids) for batch in batches] == [2, 1]
    assert batches[0].ids == [point_id("x"), point_id("y")]
    assert batches[0].payloads[0] == {"text": "a b", "plait_id": "x", "metadata": {"n": 1}}
    assert batches[0].payloads[1]["metadata"] == {}
    assert len(batches[1].vectors[0]) == DIM
    assert all(call.kwargs["wait"] is True for call in client.upsert.call_args_list)
    client.create_collection.assert_called_once()        # checked once, not per batch


def test_named_vectors_are_created_upserted_and_queried_by_name():
    client = mock_client(exists=False)
    retriever = QdrantRetriever("docs", embedder(), client=client, vector_name="dense", distance="dot")
    retriever.add(["a b"], ids=["x"])
    config = client.create_collection.call_args.kwargs["vectors_config"]
    assert config == {"dense": models.VectorParams(size=DIM, distance=models.Distance.DOT)}
    assert list(client.upsert.call_args.kwargs["points"].vectors) == ["dense"]
    retriever("a", k=2)
    assert client.query_points.call_args.kwargs["using"] == "dense"


def test_existing_collection_with_named_vectors_needs_vector_name():
    client = mock_client(vectors={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)})
    with pytest.raises(ValueError, match=r"named vectors \['dense'\].*vector_name="):
        QdrantRetriever("docs", embedder(), client=client)("q", k=1)
    with pytest.raises(ValueError, match="no vector named 'sparse'"):
        QdrantRetriever("docs", embedder(), client=client, vector_name="sparse")("q", k=1)


def test_existing_collection_dimension_or_distance_mismatch_is_a_clear_error():
    client = mock_client(vectors=models.VectorParams(size=384, distance=models.Distance.COSINE))
    with pytest.raises(ValueError, match="384-dimensional vectors but the embedder gives 16"):
        QdrantRetriever("docs", embedder(), client=client).add(["x"])
    client = mock_client(vectors=models.VectorParams(size=DIM, distance=models.Distance.DOT))
    with pytest.raises(ValueError, match="uses distance Dot, not Cosine"):
        QdrantRetriever("docs", embedder(), client=client, distance="cosine")("q", k=1)


def test_search_on_a_missing_collection_is_empty_without_querying():
    client = mock_client(exists=False)
    assert QdrantRetriever("docs", embedder(), client=client)(["a", "b"], k=3) == [[], []]
    client.query_points.assert_not_called()


# --- queries -----------------------------------------------------------------------------------
def test_single_query_uses_query_points_and_maps_points_to_passages():
    client = mock_client()
    client.query_points.return_value = QueryResponse(points=[point("b", 0.2, "B"), point("a", 0.9, "A", {"t": 1})])
    found = QdrantRetriever("docs", embedder(), client=client)("question", k=2)
    assert [(p.id, p.text, p.score, dict(p.metadata)) for p in found] == [("a", "A", 0.9, {"t": 1}),
                                                                         ("b", "B", 0.2, {})]
    call = client.query_points.call_args
    assert call.args == ("docs",) and call.kwargs["limit"] == 2 and call.kwargs["with_payload"] is True
    assert len(call.kwargs["query"]) == DIM and call.kwargs["query_filter"] is None


def test_several_queries_go_in_one_query_batch_points_call():
    client = mock_client()
    client.query_batch_points.return_value = [QueryResponse(points=[point("a", 0.5)]),
                                              QueryResponse(points=[point("b", 0.4)])]
    found = QdrantRetriever("docs", embedder(), client=client)(["one", "two"], k=1, filter={"t": 1})
    assert [[p.id for p in ps] for ps in found] == [["a"], ["b"]]
    requests = client.query_batch_points.call_args.kwargs["requests"]
    assert [r.limit for r in requests] == [1, 1]
    assert requests[0].filter == to_qdrant_filter({"t": 1}, models, "metadata")
    client.query_points.assert_not_called()


def test_search_params_reach_single_and_batch_queries():
    client = mock_client()
    client.query_batch_points.return_value = [QueryResponse(points=[]), QueryResponse(points=[])]
    params = models.SearchParams(hnsw_ef=256)
    retriever = QdrantRetriever("docs", embedder(), client=client, search_params=params)
    retriever("one", k=1)
    assert client.query_points.call_args.kwargs["search_params"] == params
    retriever(["one", "two"], k=1)
    assert all(r.params == params for r in client.query_batch_points.call_args.kwargs["requests"])


def test_a_short_batch_answer_is_an_error_not_partial_results():
    client = mock_client()
    client.query_batch_points.return_value = [QueryResponse(points=[point("a", 0.5)])]
    with pytest.raises(RuntimeError, match="1 result lists for 2 queries"):
        QdrantRetriever("docs", embedder(), client=client)(["one", "two"], k=1)


def test_euclid_scores_are_negated_distances():
    client = mock_client(vectors=models.VectorParams(size=DIM, distance=models.Distance.EUCLID))
    client.query_points.return_value = QueryResponse(points=[point("near", 0.1), point("far", 2.0)])
    found = QdrantRetriever("docs", embedder(), client=client)("q", k=2)
    assert [(p.id, p.score) for p in found] == [("near", -0.1), ("far", -2.0)]


# --- filters -----------------------------------------------------------------------------------
def test_portable_filter_translation():
    built = to_qdrant_filter({"topic": "geo", "year": [2001, 2002], "tags": ["a", "b"], "ok": True,
                              "ratio": 0.5, "gone": None, "mixed": [True, 3]}, models, "metadata")
    must = {getattr(c, "key", None): c for c in built.must}
    assert must["metadata.topic"].match == models.MatchValue(value="geo")
    assert must["metadata.year"].match == models.MatchAny(any=[2001, 2002])
    assert must["metadata.tags"].match == models.MatchAny(any=["a", "b"])
    assert must["metadata.ok"].match == models.MatchValue(value=True)
    assert must["metadata.ratio"].range == models.Range(gte=0.5, lte=0.5)
    empty = [c for c in built.must if isinstance(c, models.IsEmptyCondition)]
    assert empty and empty[0].is_empty.key == "metadata.gone"
    nested = [c for c in built.must if isinstance(c, models.Filter)]
    assert [c.match.value for c in nested[0].should] == [True, 3]


def test_filter_keys_are_top_level_without_a_metadata_field():
    built = to_qdrant_filter({"topic": "geo"}, models, None)
    assert built.must[0].key == "topic"


def test_native_filter_passes_through_and_bad_filters_are_rejected():
    native = models.Filter(must_not=[models.FieldCondition(key="x", match=models.MatchValue(value=1))])
    assert to_qdrant_filter(native, models, "metadata") is native
    with pytest.raises(TypeError, match="dict like"):
        to_qdrant_filter("topic=x", models, "metadata")
    with pytest.raises(TypeError, match="'metadata.x'"):
        to_qdrant_filter({"x": {"nested": 1}}, models, "metadata")
    with pytest.raises(ValueError, match="empty list"):
        to_qdrant_filter({"x": []}, models, "metadata")


# --- errors and retries ------------------------------------------------------------------------
def test_transient_errors_are_retried_then_succeed():
    client = mock_client()
    client.query_points.side_effect = [down_error(), UnexpectedResponse(503, "Unavailable", b"", {}),
                                       QueryResponse(points=[point("a", 0.5)])]
    retriever = QdrantRetriever("docs", embedder(), client=client, retry_delay=0.0)
    assert [p.id for p in retriever("q", k=1)] == ["a"]
    assert client.query_points.call_count == 3


def test_retries_are_bounded_and_the_error_names_the_server():
    client = mock_client()
    client.init_options = {"url": "http://qdrant.example:6333"}
    client.query_points.side_effect = down_error()
    retriever = QdrantRetriever("docs", embedder(), client=client, num_retries=2, retry_delay=0.0)
    with pytest.raises(QdrantUnavailableError, match=r"http://qdrant.example:6333.*after 3 attempts") as caught:
        retriever("q", k=1)
    assert client.query_points.call_count == 3
    assert isinstance(caught.value, PlaitError) and isinstance(caught.value, ConnectionError)


def test_non_transient_errors_are_not_retried():
    client = mock_client()
    client.query_points.side_effect = UnexpectedResponse(400, "Bad Request", b'{"status":"bad"}', {})
    with pytest.raises(UnexpectedResponse):
        QdrantRetriever("docs", embedder(), client=client, retry_delay=0.0)("q", k=1)
    assert client.query_points.call_count == 1


def test_a_failed_upsert_batch_says_what_was_written():
    client = mock_client()
    client.upsert.side_effect = [None, down_error(), down_error()]
    retriever = QdrantRetriever("docs", embedder(), client=client, batch_size=2, num_retries=1, retry_delay=0.0)
    with pytest.raises(QdrantUnavailableError, match=r"passages 2-3 of 5; the earlier ones were written"):
        retriever.add(["a", "b", "c", "d", "e"])


def test_real_client_against_a_closed_port_fails_fast_with_the_url():
    with socket.socket() as sock:       # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    retriever = plait.retriever("qdrant", collection="docs", url=url, embedder=embedder(),
                                num_retries=2, retry_delay=0.01)
    with pytest.raises(QdrantUnavailableError, match=f"{url}.*after 3 attempts"):
        retriever("q", k=1)
    retriever.close()


# --- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("config, message", [
    ({"embedder": "E"}, "collection="),
    ({"collection": "c"}, "needs an embedder"),
    ({"collection": "c", "embedder": "E", "path": "/tmp/x", "url": "http://h"}, "one of location=, path="),
    ({"collection": "c", "embedder": "E", "api_key": "k"}, "api_key= is for a Qdrant server"),
    ({"collection": "c", "embedder": "E", "distance": "hamming"}, "unknown distance"),
    ({"collection": "c", "embedder": "E", "batch_size": 0}, "batch_size must be"),
])
def test_bad_config_raises_clear_errors(config, message):
    if config.get("embedder") == "E":
        config = {**config, "embedder": embedder()}
    with pytest.raises(ValueError, match=message):
        plait.retriever("qdrant", **config)


def test_injected_client_must_look_like_a_qdrant_client_and_is_not_closed():
    with pytest.raises(TypeError, match="QdrantClient"):
        QdrantRetriever("docs", embedder(), client=object())
    client = mock_client()
    QdrantRetriever("docs", embedder(), client=client).close()
    client.close.assert_not_called()


def test_flat_payload_rejects_metadata_that_clashes_with_its_own_fields():
    retriever = QdrantRetriever("docs", embedder(), client=mock_client(), metadata_field=None)
    with pytest.raises(ValueError, match=r"\['text'\] clash"):
        retriever.add(["a"], metadata=[{"text": "other"}])


def test_missing_sdk_becomes_missing_extra_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "qdrant_client", None)     # import qdrant_client -> ImportError
    with pytest.raises(MissingExtraError, match=r"plait\[qdrant\]"):
        plait.retriever("qdrant", collection="c", embedder=embedder())


def test_the_dspy_alias_without_the_sdk_says_what_to_install(monkeypatch):
    from plait_qdrant import QdrantRM

    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'plait\[qdrant\]'"):
        QdrantRM("docs", None, embedder=embedder())


def test_importing_the_plugin_does_not_import_the_sdk():
    code = ("import plait_qdrant, plait.plugins, sys; plait.plugins.get_plugin_manager(); "
            "print('qdrant_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
