"""The qdrant retriever holds to the retriever contract on qdrant-client's embedded engine:
``:memory:`` and a small on-disk ``path=`` index (plus reopening it from disk)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plait
from plait.testing.retriever_contract import CORPUS, QUERIES, RetrieverContract

pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install 'plait[qdrant]')")

DIM = 1024


def hashing() -> object:
    return plait.embedder("hashing", dim=DIM)


class TestQdrantMemory(RetrieverContract):
    @pytest.fixture
    def make_retriever(self):
        made = []

        def make():
            made.append(plait.retriever("qdrant", collection="contract", embedder=hashing()))
            return made[-1]
        yield make
        for retriever in made:
            retriever.close()

    def bad_config(self):
        plait.retriever("qdrant", embedder=hashing())          # no collection


class TestQdrantPath(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, tmp_path):
        made, counter = [], itertools.count()

        def make():
            made.append(plait.retriever("qdrant", collection="contract", path=tmp_path / f"index{next(counter)}",
                                        embedder=hashing()))
            return made[-1]
        yield make
        for retriever in made:
            retriever.close()

    def bad_config(self):
        plait.retriever("qdrant", collection="c", embedder=hashing(), path="/tmp/x", url="http://127.0.0.1:6333")


def _fill(retriever) -> None:
    ids, texts, metadata = zip(*CORPUS)
    retriever.add(list(texts), ids=list(ids), metadata=list(metadata))


def _ranked(passages) -> list[tuple[str, float]]:
    # Passages scoring 0 (no shared words) tie, and ties may come back in any order.
    return [(p.id, round(p.score, 5)) for p in passages if abs(p.score) > 1e-6]


def test_path_index_reopens_from_disk_with_the_same_answers(tmp_path):
    folder = tmp_path / "qdrant"
    first = plait.retriever("qdrant", collection="docs", path=folder, embedder=hashing(), batch_size=3)
    _fill(first)                    # 8 passages in 3 batches
    before = {query: _ranked(first(query, k=3)) for query in QUERIES}
    first.close()

    reopened = plait.retriever("qdrant", collection="docs", path=folder, embedder=hashing())
    try:
        assert len(reopened) == len(CORPUS)
        after = {query: _ranked(reopened(query, k=3)) for query in QUERIES}
        assert after == before
        passage = reopened("How is espresso coffee brewed?", k=1)[0]
        assert passage.id == "p-espresso" and passage.metadata["year"] == 2012
    finally:
        reopened.close()


def test_reopening_with_another_embedder_dimension_is_a_clear_error(tmp_path):
    folder = tmp_path / "qdrant"
    with plait.retriever("qdrant", collection="docs", path=folder, embedder=hashing()) as first:
        _fill(first)
    with plait.retriever("qdrant", collection="docs", path=folder, embedder=plait.embedder("hashing", dim=64)) as other:
        with pytest.raises(ValueError, match="1024-dimensional.*gives 64"):
            other("espresso", k=1)
        with pytest.raises(ValueError, match="1024-dimensional.*gives 64"):
            other.add(["one more"])


def test_named_vectors_round_trip_on_the_embedded_engine():
    with plait.retriever("qdrant", collection="named", vector_name="dense", embedder=hashing()) as retriever:
        _fill(retriever)
        info = retriever.client.get_collection("named")
        assert set(info.config.params.vectors) == {"dense"}
        assert retriever("What is castling in chess?", k=1)[0].id == "p-chess"


def test_native_filter_is_accepted():
    from qdrant_client import models

    with plait.retriever("qdrant", collection="native", embedder=hashing()) as retriever:
        _fill(retriever)
        native = models.Filter(must=[models.FieldCondition(key="metadata.year", range=models.Range(gte=2010))])
        found = retriever("capital city", k=8, filter=native)
        assert found and all(p.metadata["year"] >= 2010 for p in found)
        assert {p.id for p in found} == {pid for pid, _, meta in CORPUS if meta["year"] >= 2010}


@pytest.mark.parametrize("filter_, expected", [
    ({"verified": True, "topic": ["geography", "food"]}, {"p-paris", "p-espresso"}),
    ({"year": [1990, 1999]}, {"p-jazz", "p-volcano"}),
    ({"verified": [True, False], "topic": "music"}, {"p-jazz"}),
])
def test_portable_filters_match_the_memory_index(filter_, expected):
    memory = plait.retriever("memory", embedder=hashing())
    _fill(memory)
    with plait.retriever("qdrant", collection="filters", embedder=hashing()) as qdrant:
        _fill(qdrant)
        got = {p.id for p in qdrant("music city coffee", k=8, filter=filter_)}
        assert got == {p.id for p in memory("music city coffee", k=8, filter=filter_)} == expected


def test_euclid_distance_scores_are_higher_is_better():
    with plait.retriever("qdrant", collection="euclid", distance="euclid", embedder=hashing()) as retriever:
        _fill(retriever)
        found = retriever("Which planet has bright rings, Saturn?", k=3)
        assert found[0].id == "p-saturn"
        assert all(p.score <= 0 for p in found)          # minus the distance
        assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)


def test_qdrant_rm_alias_reads_a_dspy_style_collection():
    from qdrant_client import QdrantClient, models

    from plait_qdrant import QdrantRM

    client = QdrantClient(location=":memory:")
    embedder = hashing()
    texts = [text for _, text, _ in CORPUS]
    client.create_collection("dspy", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    client.upsert("dspy", points=[models.PointStruct(id=i, vector=vector.tolist(), payload={"document": text, "src": i})
                                  for i, (text, vector) in enumerate(zip(texts, embedder(texts)))])
    rm = QdrantRM("dspy", client, k=2, embedder=embedder)
    found = rm("How is espresso coffee brewed?")
    assert len(found) == 2 and found[0].long_text == texts[6]
    assert found[0].id == "6" and found[0].metadata == {"src": 6}
    assert {p.id for p in rm("capital", k=8, filter={"src": [0, 7]})} == {"0", "7"}
    rm.close()                                            # an injected client stays open
    assert client.count("dspy").count == len(texts)


# --- the portable filter means the same on qdrant as in the memory index (property) --------
# One value type per key: the memory index compares with Python's ==, where True == 1.
DOMAINS = {"colour": st.sampled_from(["red", "green", "blue"]), "size": st.integers(0, 3), "flag": st.booleans()}
metadata_strategy = st.fixed_dictionaries({}, optional={key: st.one_of(st.none(), values)
                                                       for key, values in DOMAINS.items()})
filter_strategy = st.dictionaries(st.sampled_from(sorted(DOMAINS)), st.none(), min_size=1).flatmap(
    lambda keys: st.fixed_dictionaries({key: st.one_of(DOMAINS[key], st.lists(DOMAINS[key], min_size=1, max_size=3))
                                        for key in keys}))


@settings(max_examples=40, deadline=None)
@given(metadatas=st.lists(metadata_strategy, min_size=1, max_size=8), filter_=filter_strategy)
def test_portable_filter_agrees_with_the_memory_index(metadatas, filter_):
    texts = [f"passage {i} about owls" for i in range(len(metadatas))]
    ids = [f"id{i}" for i in range(len(metadatas))]
    memory = plait.retriever("memory", embedder=plait.embedder("hashing", dim=64))
    memory.add(texts, ids=ids, metadata=metadatas)
    with plait.retriever("qdrant", collection="prop", embedder=plait.embedder("hashing", dim=64)) as qdrant:
        qdrant.add(texts, ids=ids, metadata=metadatas)
        want = {p.id for p in memory("owls", k=len(texts), filter=filter_)}
        assert {p.id for p in qdrant("owls", k=len(texts), filter=filter_)} == want
