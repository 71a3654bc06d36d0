"""plait_chroma's mapping onto chromadb, checked against Mock(spec=...) clients and collections."""

from __future__ import annotations

import subprocess
import sys
from unittest.mock import Mock

import httpx
import pytest

import plait
from plait.errors import MissingExtraError, PlaitError

chromadb = pytest.importorskip("chromadb", reason="chromadb is not installed (pip install 'plait[chroma]')")
from chromadb.api.client import Client  # noqa: E402
from chromadb.api.models.Collection import Collection  # noqa: E402
from chromadb.errors import InvalidArgumentError, RateLimitError  # noqa: E402

from plait_chroma import ChromaUnavailableError  # noqa: E402
from plait_chroma.mapping import NativeWhere, chroma_metadata, to_where  # noqa: E402
from plait_chroma.retriever import ChromaRetriever, ChromadbRM  # noqa: E402

DIM = 16


def embedder():
    return plait.embedder("hashing", dim=DIM)


def mock_client(space: str = "cosine") -> Mock:
    collection = Mock(spec=Collection)
    collection.configuration_json = {"hnsw": {"space": space}, "embedding_function": {"type": "legacy"}}
    collection.query.return_value = answer([])
    client = Mock(spec=Client)
    client.get_or_create_collection.return_value = collection
    client.get_max_batch_size.return_value = 5461
    return client


def answer(*rows):
    """A chroma query result for rows of (id, text, metadata, distance)."""
    return {"ids": [[r[0] for r in row] for row in rows], "documents": [[r[1] for r in row] for row in rows],
            "metadatas": [[r[2] for r in row] for row in rows], "distances": [[r[3] for r in row] for row in rows]}


def connect_error() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


# --- collection set-up -----------------------------------------------------------------------
def test_collection_is_opened_without_chromas_embedding_function():
    client = mock_client()
    retriever = ChromaRetriever("docs", embedder(), client=client)
    call = client.get_or_create_collection.call_args
    assert call.args == ("docs",)
    assert call.kwargs["embedding_function"] is None
    assert call.kwargs["configuration"] == {"hnsw": {"space": "cosine"}}
    assert retriever.space == "cosine" and retriever.collection == "docs"


def test_hnsw_settings_go_into_a_new_collections_configuration():
    client = mock_client()
    ChromaRetriever("docs", embedder(), client=client, hnsw={"ef_search": 400, "space": "ignored"})
    assert client.get_or_create_collection.call_args.kwargs["configuration"] == {
        "hnsw": {"ef_search": 400, "space": "cosine"}}                   # distance= decides the space
    with pytest.raises(TypeError, match="hnsw= must be a dict"):
        ChromaRetriever("docs", embedder(), client=client, hnsw=400)


def test_existing_collection_keeps_its_space_unless_another_is_asked_for():
    assert ChromaRetriever("docs", embedder(), client=mock_client("l2")).space == "l2"
    with pytest.raises(ValueError, match="uses distance 'l2', not 'cosine'"):
        ChromaRetriever("docs", embedder(), client=mock_client("l2"), distance="cosine")


def test_invalid_collection_name_is_a_value_error():
    client = mock_client()
    client.get_or_create_collection.side_effect = InvalidArgumentError("Expected a name containing 3-512 characters")
    with pytest.raises(ValueError, match="chroma rejected collection='x'.*3-512"):
        ChromaRetriever("x", embedder(), client=client)


# --- add ---------------------------------------------------------------------------------------
def test_add_upserts_embeddings_documents_and_metadata_in_batches():
    client = mock_client()
    retriever = ChromaRetriever("docs", embedder(), client=client, batch_size=2)
    ids = retriever.add(["a b", "c d", "e f"], ids=["x", "y", "z"], metadata=[{"n": 1}, {}, None])
    assert ids == ["x", "y", "z"]
    calls = client.get_or_create_collection.return_value.upsert.call_args_list
    assert [call.kwargs["ids"] for call in calls] == [["x", "y"], ["z"]]
    assert calls[0].kwargs["documents"] == ["a b", "c d"]
    assert calls[0].kwargs["metadatas"] == [{"n": 1}, None]          # never an empty dict
    assert calls[1].kwargs["metadatas"] is None                      # no metadata in the whole batch
    assert calls[0].kwargs["embeddings"].shape == (2, DIM)
    client.get_max_batch_size.assert_not_called()


def test_default_batch_size_is_the_clients_maximum():
    client = mock_client()
    client.get_max_batch_size.return_value = 2
    ChromaRetriever("docs", embedder(), client=client).add(["a", "b", "c", "d", "e"])
    assert len(client.get_or_create_collection.return_value.upsert.call_args_list) == 3


def test_metadata_mapping():
    assert chroma_metadata({}, "p") is None
    assert chroma_metadata({"gone": None}, "p") is None
    assert chroma_metadata({"a": 1, "b": None, "tags": ["x", 2]}, "p") == {"a": 1, "tags": ["x", 2]}
    with pytest.raises(TypeError, match=r"passage 'p'.*'d' holds a dict"):
        chroma_metadata({"d": {"x": 1}}, "p")
    with pytest.raises(TypeError, match="non-empty list"):
        chroma_metadata({"tags": []}, "p")
    with pytest.raises(TypeError, match="keys must be strings"):
        chroma_metadata({1: "x"}, "p")


def test_dimension_mismatch_is_a_clear_value_error():
    client = mock_client()
    client.get_or_create_collection.return_value.upsert.side_effect = InvalidArgumentError(
        "Collection expecting embedding with dimension of 384, got 16")
    with pytest.raises(ValueError, match="'docs': .*dimension of 384, got 16; use the embedder that built it"):
        ChromaRetriever("docs", embedder(), client=client).add(["x"])


# --- search ------------------------------------------------------------------------------------
def test_query_maps_rows_to_passages_with_similarity_scores():
    client = mock_client()
    collection = client.get_or_create_collection.return_value
    collection.query.return_value = answer([("a", "A", {"t": 1}, 0.25), ("b", "B", None, 0.75)])
    found = ChromaRetriever("docs", embedder(), client=client)("question", k=2)
    assert [(p.id, p.text, p.score, dict(p.metadata)) for p in found] == [("a", "A", 0.75, {"t": 1}),
                                                                         ("b", "B", 0.25, {})]
    call = collection.query.call_args
    assert call.kwargs["n_results"] == 2 and call.kwargs["where"] is None
    assert call.kwargs["query_embeddings"].shape == (1, DIM)
    assert set(call.kwargs["include"]) == {"documents", "metadatas", "distances"}


@pytest.mark.parametrize("space, distance, score", [("cosine", 0.25, 0.75), ("ip", -1.5, 2.5), ("l2", 0.5, -0.5)])
def test_scores_per_space(space, distance, score):
    client = mock_client(space)
    client.get_or_create_collection.return_value.query.return_value = answer([("a", "A", None, distance)])
    assert ChromaRetriever("docs", embedder(), client=client)("q", k=1)[0].score == pytest.approx(score)


def test_several_queries_go_in_one_call_and_a_short_answer_is_an_error():
    client = mock_client()
    collection = client.get_or_create_collection.return_value
    collection.query.return_value = answer([("a", "A", None, 0.1)], [("b", "B", None, 0.2)])
    retriever = ChromaRetriever("docs", embedder(), client=client)
    assert [[p.id for p in ps] for ps in retriever(["one", "two"], k=1)] == [["a"], ["b"]]
    assert collection.query.call_count == 1
    collection.query.return_value = answer([("a", "A", None, 0.1)])
    with pytest.raises(RuntimeError, match="1 result lists for 2 queries"):
        retriever(["one", "two"], k=1)


# --- filters -----------------------------------------------------------------------------------
def test_portable_filter_translation():
    assert to_where({"topic": "geo"}) == {"topic": {"$eq": "geo"}}
    assert to_where({"topic": "geo", "year": [2001, 2002], "ok": True}) == {"$and": [
        {"topic": {"$eq": "geo"}}, {"year": {"$in": [2001, 2002]}}, {"ok": {"$eq": True}}]}
    assert to_where({}) is None


def test_native_where_documents_pass_through():
    either = {"$or": [{"a": 1}, {"b": 2}]}
    assert to_where(either) == either
    assert to_where({"year": {"$gte": 2000}}) == {"year": {"$gte": 2000}}
    assert to_where(NativeWhere({"x": 1})) == {"x": 1}


def test_bad_filters_are_rejected():
    with pytest.raises(TypeError, match="dict like"):
        to_where("topic=x")
    with pytest.raises(ValueError, match="cannot filter on None"):
        to_where({"x": None})
    with pytest.raises(ValueError, match="empty list"):
        to_where({"x": []})
    with pytest.raises(TypeError, match="'x' must be"):
        to_where({"x": [object()]})


def test_where_keyword_reaches_chroma_verbatim():
    client = mock_client()
    collection = client.get_or_create_collection.return_value
    retriever = ChromaRetriever("docs", embedder(), client=client)
    retriever("q", k=3, where={"topic": "geo"})
    assert collection.query.call_args.kwargs["where"] == {"topic": "geo"}
    retriever("q", k=3, filter={"topic": ["geo", "bio"]})
    assert collection.query.call_args.kwargs["where"] == {"topic": {"$in": ["geo", "bio"]}}


async def test_acall_takes_where_too():
    client = mock_client()
    collection = client.get_or_create_collection.return_value
    collection.query.return_value = answer([("a", "A", None, 0.1)])
    found = await ChromaRetriever("docs", embedder(), client=client).acall("q", k=1, where={"t": 1})
    assert [p.id for p in found] == ["a"] and collection.query.call_args.kwargs["where"] == {"t": 1}


# --- errors and retries ------------------------------------------------------------------------
def test_transient_errors_are_retried_then_succeed():
    client = mock_client()
    collection = client.get_or_create_collection.return_value
    collection.query.side_effect = [connect_error(), RateLimitError("slow down"), answer([("a", "A", None, 0.1)])]
    found = ChromaRetriever("docs", embedder(), client=client, retry_delay=0.0)("q", k=1)
    assert [p.id for p in found] == ["a"] and collection.query.call_count == 3


def test_retries_are_bounded_and_the_error_names_the_target():
    client = mock_client()
    collection = client.get_or_create_collection.return_value
    collection.query.side_effect = connect_error()
    retriever = ChromaRetriever("docs", embedder(), client=client, num_retries=2, retry_delay=0.0)
    with pytest.raises(ChromaUnavailableError, match="failed the query after 3 attempts") as caught:
        retriever("q", k=1)
    assert collection.query.call_count == 3
    assert isinstance(caught.value, PlaitError) and isinstance(caught.value, ConnectionError)


def test_non_transient_errors_are_not_retried():
    client = mock_client()
    collection = client.get_or_create_collection.return_value
    collection.query.side_effect = InvalidArgumentError("bad where")
    with pytest.raises(InvalidArgumentError):
        ChromaRetriever("docs", embedder(), client=client, retry_delay=0.0)("q", k=1)
    assert collection.query.call_count == 1


def test_a_failed_upsert_batch_says_what_was_written():
    client = mock_client()
    client.get_or_create_collection.return_value.upsert.side_effect = [None, connect_error(), connect_error()]
    retriever = ChromaRetriever("docs", embedder(), client=client, batch_size=2, num_retries=1, retry_delay=0.0)
    with pytest.raises(ChromaUnavailableError, match=r"passages 2-3 of 5; the earlier ones were written"):
        retriever.add(["a", "b", "c", "d", "e"])


# --- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("config, message", [
    ({"embedder": "E", "path": "/tmp/x"}, "collection="),
    ({"collection": "docs", "path": "/tmp/x"}, "needs an embedder"),
    ({"collection": "docs", "embedder": "E"}, "one of path="),
    ({"collection": "docs", "embedder": "E", "path": "/tmp/x", "host": "h"}, "path and host"),
    ({"collection": "docs", "embedder": "E", "host": "h", "port": "8000"}, "port must be"),
    ({"collection": "docs", "embedder": "E", "path": "/tmp/x", "distance": "hamming"}, "unknown distance"),
    ({"collection": "docs", "embedder": "E", "path": "/tmp/x", "k": 0}, "k must be"),
])
def test_bad_config_raises_clear_errors(config, message):
    if config.get("embedder") == "E":
        config = {**config, "embedder": embedder()}
    with pytest.raises(ValueError, match=message):
        plait.retriever("chroma", **config)


def test_injected_client_must_look_like_a_chroma_client_and_is_not_closed():
    with pytest.raises(TypeError, match="chromadb client"):
        ChromaRetriever("docs", embedder(), client=object())
    client = mock_client()
    ChromaRetriever("docs", embedder(), client=client).close()
    client.close.assert_not_called()


def test_chromadb_rm_alias_maps_dspy_arguments():
    client = mock_client()
    rm = ChromadbRM("docs", embedding_function=embedder(), k=7, client=client)
    assert rm.k == 7 and rm.collection == "docs" and rm.client is client
    with pytest.raises(ValueError, match="not both"):
        ChromadbRM("docs", "/tmp/x", embedding_function=embedder(), embedder=embedder())


def test_missing_sdk_becomes_missing_extra_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "chromadb", None)       # import chromadb -> ImportError
    with pytest.raises(MissingExtraError, match=r"plait\[chroma\]"):
        plait.retriever("chroma", collection="docs", path="/tmp/x", embedder=embedder())


def test_the_dspy_alias_without_the_sdk_says_what_to_install(monkeypatch):
    from plait_chroma import ChromadbRM

    monkeypatch.setitem(sys.modules, "chromadb", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'plait\[chroma\]'"):
        ChromadbRM("docs", "/tmp/x", embedder=embedder())


def test_importing_the_plugin_does_not_import_the_sdk():
    code = ("import plait_chroma, plait.plugins, sys; plait.plugins.get_plugin_manager(); "
            "print('chromadb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
