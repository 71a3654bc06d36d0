"""The marqo retriever holds to the retriever contract, driving the REAL marqo client.

No Marqo engine can run here (Docker-only), so the client talks to plait's
MarqoConformanceServer, a documented stand-in (tests/docker runs the real image).
"""

from __future__ import annotations

import itertools
import time

import pytest

pytest.importorskip("marqo", reason="the marqo client is not installed: pip install 'plait[marqo]'")
pytest.importorskip("numpy", reason="the hashing embedder needs numpy: pip install 'plait[embeddings]'")

import plait
from plait.errors import ConfigurationError
from plait.testing.conformance import MarqoConformanceServer
from plait.testing.retriever_contract import CORPUS, RetrieverContract
from plait_marqo import MarqoRM, MarqoUnavailableError

_names = itertools.count()


@pytest.fixture(scope="module")
def server():
    server = MarqoConformanceServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedder():
    return plait.embedder("hashing", dim=1024)


def _fill(retriever):
    ids, texts, metadata = zip(*CORPUS)
    return retriever.add(list(texts), ids=list(ids), metadata=list(metadata))


class TestMarqoRetrieverCustomVectors(RetrieverContract):
    """plait embeds (custom_vector fields, a no_model index); Marqo runs no model."""

    @pytest.fixture
    def make_retriever(self, server, embedder):
        return lambda: plait.retriever("marqo", index=f"contract-{next(_names)}", url=server.url,
                                       embedder=embedder, create_index=True)

    def bad_config(self):
        plait.retriever("marqo", url="http://localhost:8882")   # no index


class TestMarqoRetrieverServerSideEmbedding(RetrieverContract):
    """Marqo embeds with the index's model (the stand-in substitutes a hashing model for it)."""

    @pytest.fixture
    def make_retriever(self, server):
        return lambda: plait.retriever("marqo", index=f"contract-{next(_names)}", url=server.url, create_index=True)

    def bad_config(self):
        plait.retriever("marqo", index="x", url="localhost:8882")   # not a URL


def test_outage_mid_batch_gives_bounded_retries_and_a_clear_error(embedder, monkeypatch):
    import plait_marqo.retriever as marqo_retriever

    sleeps: list[float] = []
    monkeypatch.setattr(marqo_retriever, "_sleep", sleeps.append)
    with MarqoConformanceServer() as server:
        retriever = plait.retriever("marqo", index="outage", url=server.url, embedder=embedder, create_index=True,
                                    max_concurrency=1)
        _fill(retriever)
        assert retriever("How is espresso coffee brewed?", k=1)[0].id == "p-espresso"
        server.stop_after("/search", 1)
        started = time.perf_counter()
        with pytest.raises(MarqoUnavailableError, match="did not answer the search after 4 attempts") as caught:
            retriever(["capital of France", "volcano magma", "jazz origins"], k=2)
        assert server.url in str(caught.value)
        assert sleeps == [0.25, 0.5, 1.0]                 # bounded: 3 retries with backoff, then the error
        assert time.perf_counter() - started < 10


def test_failed_add_says_how_much_landed(embedder, monkeypatch):
    import plait_marqo.retriever as marqo_retriever

    monkeypatch.setattr(marqo_retriever, "_sleep", lambda seconds: None)
    with MarqoConformanceServer() as server:
        retriever = plait.retriever("marqo", index="partial", url=server.url, embedder=embedder, create_index=True,
                                    batch_size=2)
        retriever("warm up", k=1)
        server.stop_after("/documents", 1)
        with pytest.raises(MarqoUnavailableError, match=r"2 of 5 documents were added .*call add\(\) again"):
            retriever.add([f"passage number {i}" for i in range(5)], ids=[f"id-{i}" for i in range(5)])


def test_rejected_documents_raise_with_marqos_reason(server):
    retriever = plait.retriever("marqo", index=f"reject-{next(_names)}", url=server.url, create_index=True,
                                embedder=plait.embedder("hashing", dim=1024))
    _fill(retriever)
    wrong = plait.retriever("marqo", index=retriever.index_name, url=server.url,
                            embedder=plait.embedder("hashing", dim=8))
    with pytest.raises(ValueError, match="rejected 1 of 1 documents.*custom_vector"):
        wrong.add(["a passage embedded with the wrong dimension"], ids=["bad"])


def test_filter_string_and_native_filters_combine(server, embedder):
    retriever = plait.retriever("marqo", index=f"native-{next(_names)}", url=server.url, embedder=embedder,
                                create_index=True, filter_string="verified:true")
    _fill(retriever)
    found = retriever("capital city planet rings coffee", k=8, filter="year:[2010 TO *]")
    assert {p.id for p in found} == {"p-photosynthesis", "p-saturn", "p-espresso"}
    portable = retriever("capital city", k=8, filter={"topic": ["geography", "games"]})
    assert {p.id for p in portable} == {"p-paris", "p-chess"}      # tokyo is not verified


def test_client_surface_against_the_stand_in(server, embedder):
    """The client calls the stand-in claims, through the real client."""
    import marqo

    client = marqo.Client(url=server.url)
    name = f"surface-{next(_names)}"
    retriever = plait.retriever("marqo", index=name, client=client, embedder=embedder, create_index=True)
    _fill(retriever)
    assert name in {entry["indexName"] for entry in client.get_indexes()["results"]}
    assert client.index(name).get_stats()["numberOfDocuments"] == len(CORPUS)
    assert client.index(name).get_document("p-chess")["topic"] == "games"
    retriever.delete(["p-chess"])
    assert "p-chess" not in {p.id for p in retriever("castling chess king rook", k=8)}
    client.delete_index(name)
    assert name not in server.indexes


def test_missing_index_is_a_configuration_error(server):
    retriever = plait.retriever("marqo", index="no-such-index", url=server.url)
    with pytest.raises(ConfigurationError, match="does not exist.*create_index=True"):
        retriever("anything", k=1)


def test_searchable_attributes_limit_the_tensor_fields(server):
    retriever = plait.retriever("marqo", index=f"attrs-{next(_names)}", url=server.url, create_index=True,
                                searchable_attributes=["missing_field"])
    _fill(retriever)
    assert retriever("How is espresso coffee brewed?", k=3) == []


def test_marqo_rm_alias(server):
    import marqo

    name = f"alias-{next(_names)}"
    plait.retriever("marqo", index=name, url=server.url, create_index=True, text_field="document").add(
        [text for _, text, _ in CORPUS], ids=[pid for pid, _, _ in CORPUS])
    rm = MarqoRM(name, marqo.Client(url=server.url), k=2)
    passages = rm("Where did jazz music originate?")
    assert len(passages) == 2 and passages[0].id == "p-jazz" and passages[0].text.startswith("Jazz")
