"""The chroma retriever holds to the retriever contract on chromadb's embedded PersistentClient,
and its dense results (and qdrant's) agree with the in-memory exact index."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plait
from plait.retrieve import Embedder, text_id
from plait.testing.retriever_contract import CORPUS, QUERIES, RetrieverContract

pytest.importorskip("chromadb", reason="chromadb is not installed (pip install 'plait[chroma]')")

DIM = 1024


def hashing() -> object:
    return plait.embedder("hashing", dim=DIM)


def _fill(retriever) -> None:
    ids, texts, metadata = zip(*CORPUS)
    retriever.add(list(texts), ids=list(ids), metadata=list(metadata))


class TestChromaPersistent(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, tmp_path):
        made, counter = [], itertools.count()

        def make():
            made.append(plait.retriever("chroma", collection="contract", path=tmp_path / f"db{next(counter)}",
                                        embedder=hashing()))
            return made[-1]
        yield make
        for retriever in made:
            retriever.close()

    def bad_config(self):
        plait.retriever("chroma", collection="contract", embedder=hashing())     # no path/host/client


def test_persistent_index_reopens_with_the_same_answers(tmp_path):
    with plait.retriever("chroma", collection="docs", path=tmp_path / "db", embedder=hashing(), batch_size=3) as first:
        _fill(first)
        before = {query: [p.id for p in first(query, k=1)] for query in QUERIES}
    with plait.retriever("chroma", collection="docs", path=tmp_path / "db", embedder=hashing()) as reopened:
        assert len(reopened) == len(CORPUS)
        assert {query: [p.id for p in reopened(query, k=1)] for query in QUERIES} == before
        assert reopened("How is espresso coffee brewed?", k=1)[0].metadata["year"] == 2012


@pytest.mark.parametrize("filter_, expected", [
    ({"verified": True, "topic": ["geography", "food"]}, {"p-paris", "p-espresso"}),
    ({"year": [1990, 1999]}, {"p-jazz", "p-volcano"}),
    ({"topic": "music"}, {"p-jazz"}),
])
def test_portable_filters_match_the_memory_index(tmp_path, filter_, expected):
    memory = plait.retriever("memory", embedder=hashing())
    _fill(memory)
    with plait.retriever("chroma", collection="filters", path=tmp_path / "db", embedder=hashing()) as chroma:
        _fill(chroma)
        got = {p.id for p in chroma("music city coffee", k=8, filter=filter_)}
        assert got == {p.id for p in memory("music city coffee", k=8, filter=filter_)} == expected


def test_native_where_documents(tmp_path):
    with plait.retriever("chroma", collection="native", path=tmp_path / "db", embedder=hashing()) as chroma:
        _fill(chroma)
        recent = {pid for pid, _, meta in CORPUS if meta["year"] >= 2010}
        assert {p.id for p in chroma("capital", k=8, where={"year": {"$gte": 2010}})} == recent
        assert {p.id for p in chroma("capital", k=8, filter={"year": {"$gte": 2010}})} == recent
        either = {"$or": [{"topic": "music"}, {"topic": "games"}]}
        assert {p.id for p in chroma("capital", k=8, filter=either)} == {"p-jazz", "p-chess"}
        with pytest.raises(ValueError, match="not both"):
            chroma("capital", k=2, filter={"topic": "music"}, where=either)


@pytest.mark.parametrize("distance", ["cosine", "ip", "l2"])
def test_scores_are_similarities_for_every_space(tmp_path, distance):
    memory = plait.retriever("memory", embedder=hashing())
    _fill(memory)
    with plait.retriever("chroma", collection="spaces", path=tmp_path / "db", embedder=hashing(),
                         distance=distance) as chroma:
        _fill(chroma)
        query = "Which planet has bright rings, Saturn?"
        exact = memory(query, k=3)
        found = chroma(query, k=3)
        assert found[0].id == "p-saturn"
        cosine = exact[0].score            # vectors are unit length: cosine = dot = 1 - |a-b|^2 / 2
        expected = {"cosine": cosine, "ip": cosine, "l2": -(2 - 2 * cosine)}[distance]
        assert found[0].score == pytest.approx(expected, abs=1e-4)


def test_chromadb_rm_alias_takes_a_chroma_embedding_function(tmp_path):
    from plait_chroma import ChromadbRM

    embedder = hashing()
    rm = ChromadbRM("dspy_docs", str(tmp_path / "db"), embedding_function=embedder.embed, k=2)
    _fill(rm)
    found = rm("What is castling in chess?")
    assert len(found) == 2 and found[0].long_text == dict((p, t) for p, t, _ in CORPUS)["p-chess"]
    rm.close()
    with pytest.raises(ValueError, match="needs an embedder"):
        ChromadbRM("dspy_docs", str(tmp_path / "db"))


def test_metadata_chroma_cannot_store_fails_before_any_write(tmp_path):
    with plait.retriever("chroma", collection="meta", path=tmp_path / "db", embedder=hashing()) as chroma:
        with pytest.raises(TypeError, match=r"'nested' holds a dict"):
            chroma.add(["fine", "not fine"], metadata=[{"a": 1}, {"nested": {"x": 1}}])
        assert len(chroma) == 0
        chroma.add(["tags", "empty", "nulls"], ids=["t", "e", "n"],
                   metadata=[{"tags": ["x", "y"]}, {}, {"gone": None, "kept": 1}])
        found = {p.id: dict(p.metadata) for p in chroma("tags empty nulls", k=3)}
        assert found == {"t": {"tags": ["x", "y"]}, "e": {}, "n": {"kept": 1}}


# --- dense results agree with the exact in-memory index ---------------------------------------
class SeededEmbedder(Embedder):
    """A vector drawn from a generator seeded by the text: continuous scores, so no ties, and
    top-k is decided by the index alone (what the agreement check needs)."""

    dim = 64

    def embed(self, texts):
        import numpy as np

        return np.stack([np.random.default_rng(int(text_id(text), 16)).standard_normal(self.dim).astype(np.float32)
                         for text in texts])


def test_qdrant_and_chroma_top_k_agree_with_the_exact_index(tmp_path):
    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install 'plait[qdrant]')")
    embedder = SeededEmbedder()
    corpus = [f"passage number {i}" for i in range(300)]
    ids = [f"d{i}" for i in range(len(corpus))]
    memory = plait.retriever("memory", embedder=embedder)
    memory.add(corpus, ids=ids)
    with plait.retriever("qdrant", collection="agree", embedder=embedder) as qdrant, \
            plait.retriever("chroma", collection="agree", path=tmp_path / "db", embedder=embedder) as chroma:
        qdrant.add(corpus, ids=ids)
        chroma.add(corpus, ids=ids)
        queries = [f"query {i}" for i in range(20)]
        exact = memory(queries, k=10)
        for backend in (qdrant, chroma):
            found = backend(queries, k=10)
            for want, got in zip(exact, found):
                assert [p.id for p in got] == [p.id for p in want], type(backend).__name__
                assert [p.score for p in got] == pytest.approx([p.score for p in want], abs=1e-4)


# --- the portable filter means the same on chroma as in the memory index (property) --------
# One value type per key (the memory index compares with Python's ==, where True == 1); no None
# in filters: chroma stores no null values, and refuses to filter on None with a clear error.
DOMAINS = {"colour": st.sampled_from(["red", "green", "blue"]), "size": st.integers(0, 3), "flag": st.booleans()}
metadata_strategy = st.fixed_dictionaries({}, optional={key: st.one_of(st.none(), values)
                                                       for key, values in DOMAINS.items()})
filter_strategy = st.dictionaries(st.sampled_from(sorted(DOMAINS)), st.none(), min_size=1).flatmap(
    lambda keys: st.fixed_dictionaries({key: st.one_of(DOMAINS[key], st.lists(DOMAINS[key], min_size=1, max_size=3))
                                        for key in keys}))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadatas=st.lists(metadata_strategy, min_size=1, max_size=8), filter_=filter_strategy)
def test_portable_filter_agrees_with_the_memory_index(tmp_path, metadatas, filter_):
    texts = [f"passage {i} about owls" for i in range(len(metadatas))]
    ids = [f"id{i}" for i in range(len(metadatas))]
    memory = plait.retriever("memory", embedder=plait.embedder("hashing", dim=64))
    memory.add(texts, ids=ids, metadata=metadatas)
    with plait.retriever("chroma", collection=f"prop-{uuid.uuid4().hex[:12]}", path=tmp_path / "db",
                         embedder=plait.embedder("hashing", dim=64)) as chroma:
        chroma.add(texts, ids=ids, metadata=metadatas)
        want = {p.id for p in memory("owls", k=len(texts), filter=filter_)}
        assert {p.id for p in chroma("owls", k=len(texts), filter=filter_)} == want
