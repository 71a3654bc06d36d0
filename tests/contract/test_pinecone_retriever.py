"""The pinecone retriever holds to the retriever contract, driving the REAL pinecone SDK.

No Pinecone engine can run here (SaaS; Pinecone Local is Docker-only), so the SDK talks to
plait's PineconeConformanceServer, a documented stand-in (tests/docker runs the real image).
"""

from __future__ import annotations

import itertools
import time

import pytest

pytest.importorskip("pinecone", reason="the pinecone SDK is not installed: pip install 'plait[pinecone]'")
pytest.importorskip("numpy", reason="the hashing embedder needs numpy: pip install 'plait[embeddings]'")

import plait
from plait.errors import ConfigurationError
from plait.testing.conformance import PineconeConformanceServer
from plait.testing.retriever_contract import CORPUS, RetrieverContract
from plait_pinecone import PineconeRM, PineconeUnavailableError

KEY = "conformance-key"
_names = itertools.count()


@pytest.fixture(scope="module")
def server():
    server = PineconeConformanceServer(api_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedder():
    return plait.embedder("hashing", dim=1024)


def _fill(retriever):
    ids, texts, metadata = zip(*CORPUS)
    return retriever.add(list(texts), ids=list(ids), metadata=list(metadata))


class TestPineconeRetriever(RetrieverContract):
    """Control plane and data plane: each retriever creates its own index."""

    @pytest.fixture
    def make_retriever(self, server, embedder):
        return lambda: plait.retriever("pinecone", index=f"contract-{next(_names)}", host=server.url, api_key=KEY,
                                       embedder=embedder, create_index=True)

    def bad_config(self):
        plait.retriever("pinecone", index="anything", api_key=KEY)   # no embedder


class TestPineconeRetrieverIndexHost(RetrieverContract):
    """Data plane only (index_host=, as with Pinecone Local): one index, a namespace per retriever."""

    @pytest.fixture(scope="class")
    @classmethod
    def shared_index_host(cls, server):
        import pinecone
        pinecone.Pinecone(api_key=KEY, host=server.url).indexes.create(name="shared", dimension=1024, metric="cosine")
        return server.index_host("shared")

    @pytest.fixture
    def make_retriever(self, shared_index_host, embedder):
        return lambda: plait.retriever("pinecone", index_host=shared_index_host, api_key=KEY,
                                       namespace=f"ns-{next(_names)}", embedder=embedder)

    def bad_config(self):
        plait.retriever("pinecone", embedder=plait.embedder("hashing"), api_key=KEY)   # no index


def test_outage_mid_batch_gives_bounded_retries_and_a_clear_error(embedder, monkeypatch):
    import pinecone._internal.http_client as http_client

    sleeps: list[float] = []
    monkeypatch.setattr(http_client, "_retry_sleep", sleeps.append)   # the SDK's documented seam for tests
    with PineconeConformanceServer(api_key=KEY) as server:
        retriever = plait.retriever("pinecone", index="outage", host=server.url, api_key=KEY, embedder=embedder,
                                    create_index=True, max_concurrency=1)
        _fill(retriever)
        assert retriever("How is espresso coffee brewed?", k=1)[0].id == "p-espresso"
        server.stop_after("/query", 1)          # the server dies after answering the next query
        started = time.perf_counter()
        with pytest.raises(PineconeUnavailableError, match="did not answer the query") as caught:
            retriever(["capital of France", "volcano magma", "jazz origins"], k=2)
        assert server.url.removeprefix("http://") in str(caught.value)   # names the host
        assert len(sleeps) in (1, 2, 3)                                     # bounded retries
        assert time.perf_counter() - started < 10
        assert not server.running
        with pytest.raises(PineconeUnavailableError):                      # and stays an error, no stale answers
            retriever("capital of France", k=2)


def test_failed_add_says_how_much_landed(embedder, monkeypatch):
    import pinecone._internal.http_client as http_client

    monkeypatch.setattr(http_client, "_retry_sleep", lambda seconds: None)
    with PineconeConformanceServer(api_key=KEY) as server:
        retriever = plait.retriever("pinecone", index="partial", host=server.url, api_key=KEY, embedder=embedder,
                                    create_index=True, batch_size=2)
        retriever("warm up the connection", k=1)
        server.stop_after("/vectors/upsert", 1)
        with pytest.raises(PineconeUnavailableError, match=r"2 of 5 vectors were upserted .*call add\(\) again"):
            retriever.add([f"passage number {i}" for i in range(5)], ids=[f"id-{i}" for i in range(5)])


def test_native_filters_pass_through_and_combine(server, embedder):
    retriever = plait.retriever("pinecone", index=f"native-{next(_names)}", host=server.url, api_key=KEY,
                                embedder=embedder, create_index=True, native_filter={"verified": {"$eq": True}})
    _fill(retriever)
    found = retriever("capital city planet rings coffee", k=8, filter={"year": {"$gte": 2010}})
    assert found and {p.id for p in found} <= {"p-photosynthesis", "p-saturn", "p-espresso"}
    assert all(p.metadata["verified"] is True and p.metadata["year"] >= 2010 for p in found)
    portable = retriever("capital city", k=8, filter={"topic": ["geography", "games"]})
    assert {p.id for p in portable} == {"p-paris", "p-chess"}      # tokyo is not verified


def test_sdk_surface_against_the_stand_in(server, embedder):
    """Every endpoint the stand-in claims, through the SDK's own strict response models."""
    import pinecone

    pc = pinecone.Pinecone(api_key=KEY, host=server.url)
    name = f"surface-{next(_names)}"
    retriever = plait.retriever("pinecone", client=pc, index=name, embedder=embedder, create_index=True,
                                namespace="docs")
    _fill(retriever)
    assert name in [model.name for model in pc.indexes.list()]
    description = pc.indexes.describe(name)
    assert description.status.ready and description.host.startswith("http://")
    index = pc.index(host=description.host)
    stats = index.describe_index_stats()
    assert stats.total_vector_count == len(CORPUS) and stats.namespaces["docs"].vector_count == len(CORPUS)
    fetched = index.fetch(ids=["p-chess"], namespace="docs")
    assert fetched.vectors["p-chess"].metadata["topic"] == "games" and len(fetched.vectors["p-chess"].values) == 1024
    retriever.delete(["p-chess"])
    assert "p-chess" not in {p.id for p in retriever("castling chess king rook", k=8)}
    pc.indexes.delete(name)
    assert name not in server.indexes


def test_scheme_less_index_hosts_keep_the_control_planes_scheme(embedder):
    with PineconeConformanceServer(scheme_less_hosts=True) as server:   # as Pinecone Local answers
        retriever = plait.retriever("pinecone", index="local", host=server.url, embedder=embedder, create_index=True)
        retriever.add(["Only passage about owls."], ids=["owl"])
        assert retriever("owls", k=1)[0].id == "owl"                     # no API key needed on 127.0.0.1


def test_clear_errors_for_missing_index_bad_key_and_wrong_dimension(server, embedder):
    missing = plait.retriever("pinecone", index="no-such-index", host=server.url, api_key=KEY, embedder=embedder)
    with pytest.raises(ConfigurationError, match="does not exist.*create_index=True"):
        missing("anything", k=1)
    wrong_key = plait.retriever("pinecone", index="x", host=server.url, api_key="wrong", embedder=embedder)
    with pytest.raises(ConfigurationError, match="api_key"):
        wrong_key("anything", k=1)
    name = f"dim-{next(_names)}"
    plait.retriever("pinecone", index=name, host=server.url, api_key=KEY, embedder=embedder,
                    create_index=True)("x", k=1)
    small = plait.retriever("pinecone", index=name, host=server.url, api_key=KEY,
                            embedder=plait.embedder("hashing", dim=64))
    with pytest.raises(ConfigurationError, match="dimension 1024.*64"):
        small("anything", k=1)


def test_euclidean_distances_become_higher_is_better(server, embedder):
    retriever = plait.retriever("pinecone", index=f"euclid-{next(_names)}", host=server.url, api_key=KEY,
                                embedder=embedder, create_index=True, metric="euclidean")
    _fill(retriever)
    found = retriever("How is espresso coffee brewed?", k=3)
    assert found[0].id == "p-espresso" and found[0].score <= 0
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)


def test_pinecone_rm_alias(server, embedder):
    rm = PineconeRM(f"alias-{next(_names)}", k=2, embedder=embedder, api_key=KEY, host=server.url, create_index=True)
    _fill(rm)
    passages = rm("Where did jazz music originate?")
    assert len(passages) == 2 and passages[0].id == "p-jazz" and passages[0].long_text.startswith("Jazz")
