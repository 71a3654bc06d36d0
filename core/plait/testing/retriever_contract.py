"""The retriever contract: what every retriever, ours or a third party's, must do.

Use it from a test module::

    import pytest
    from plait.testing.retriever_contract import RetrieverContract

    class TestMyRetriever(RetrieverContract):
        @pytest.fixture
        def make_retriever(self, tmp_path):
            return lambda: MyRetriever(path=tmp_path / "index", embedder=...)   # an EMPTY index

        def bad_config(self):                        # optional: a constructor call that must fail
            MyRetriever(port="not a port")

Each test builds a fresh empty retriever with ``make_retriever()``. Set ``supports_filters``
on the retriever (``True``: ``search(..., filter={"key": value})`` is honoured) to run the
filter tests. Import this module only from tests: it imports pytest.
"""

from __future__ import annotations

from typing import Any

import pytest

from plait.retrieve.passage import Passage

# Distinct topics, each with words that only it uses, so lexical and dense retrievers alike
# must rank the right passage first for the queries below.
CORPUS: list[tuple[str, str, dict[str, Any]]] = [
    ("p-paris", "Paris is the capital of France and its largest city, on the river Seine.",
     {"topic": "geography", "year": 2001, "verified": True}),
    ("p-volcano", "A volcano erupts when molten magma rises through cracks in the earth's crust.",
     {"topic": "geology", "year": 1999, "verified": False}),
    ("p-photosynthesis", "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into glucose.",
     {"topic": "biology", "year": 2010, "verified": True}),
    ("p-chess", "In chess, castling moves the king two squares towards a rook.",
     {"topic": "games", "year": 2005, "verified": True}),
    ("p-jazz", "Jazz originated in New Orleans, blending blues, ragtime and brass band music.",
     {"topic": "music", "year": 1990, "verified": False}),
    ("p-saturn", "Saturn is the sixth planet from the Sun and is famous for its bright rings.",
     {"topic": "astronomy", "year": 2015, "verified": True}),
    ("p-espresso", "Espresso is brewed by forcing hot water through finely ground coffee beans.",
     {"topic": "food", "year": 2012, "verified": True}),
    ("p-tokyo", "東京は日本の首都です。Tokyo is the capital of Japan — naïve café résumé.",
     {"topic": "geography", "year": 2020, "verified": False}),
]
QUERIES = {
    "Which river flows through Paris, the capital of France?": "p-paris",
    "How does a volcano erupt with magma?": "p-volcano",
    "How do plants make glucose from sunlight in photosynthesis?": "p-photosynthesis",
    "What is castling in chess?": "p-chess",
    "Where did jazz music originate?": "p-jazz",
    "Which planet has bright rings, Saturn?": "p-saturn",
    "How is espresso coffee brewed?": "p-espresso",
}


def _fill(retriever: Any) -> list[str]:
    ids, texts, metadata = zip(*CORPUS)
    return retriever.add(list(texts), ids=list(ids), metadata=list(metadata))


class RetrieverContract:
    """Subclass (named ``Test...``) and provide the ``make_retriever`` fixture."""

    def bad_config(self) -> None:
        """Override with a construction that must raise a clear error (ValueError/TypeError/PlaitError)."""
        pytest.skip("this retriever's test module defines no bad configuration to check")

    # --- basics ---------------------------------------------------------------------------
    def test_empty_index_returns_no_passages(self, make_retriever):
        retriever = make_retriever()
        assert retriever("anything at all", k=3) == []
        assert retriever(["one", "two"], k=3) == [[], []]

    def test_add_returns_the_given_ids(self, make_retriever):
        assert _fill(make_retriever()) == [pid for pid, _, _ in CORPUS]

    def test_default_ids_are_stable(self, make_retriever):
        first, second = make_retriever(), make_retriever()
        ids_a = first.add(["Alpha passage about owls.", "Beta passage about newts."])
        ids_b = second.add(["Alpha passage about owls.", "Beta passage about newts."])
        assert ids_a == ids_b and len(set(ids_a)) == 2 and all(isinstance(i, str) for i in ids_a)

    def test_relevant_passage_ranks_first(self, make_retriever):
        retriever = make_retriever()
        _fill(retriever)
        for query, expected in QUERIES.items():
            top = retriever(query, k=3)
            assert top and top[0].id == expected, f"{query!r}: got {[p.id for p in top]}"

    def test_returns_passages_with_text_score_id_metadata(self, make_retriever):
        retriever = make_retriever()
        _fill(retriever)
        passage = retriever("How is espresso coffee brewed?", k=1)[0]
        assert isinstance(passage, Passage)
        expected = dict((pid, (text, meta)) for pid, text, meta in CORPUS)["p-espresso"]
        assert passage.text == expected[0]
        assert isinstance(passage.score, float)
        assert {key: passage.metadata[key] for key in expected[1]} == expected[1]

    def test_k_is_respected_and_scores_are_sorted(self, make_retriever):
        retriever = make_retriever()
        _fill(retriever)
        for k in (1, 3, 5):
            passages = retriever("capital city of a country", k=k)
            assert len(passages) == k
            scores = [p.score for p in passages]
            assert scores == sorted(scores, reverse=True)
            assert len({p.id for p in passages}) == k

    def test_k_larger_than_the_index_returns_everything(self, make_retriever):
        retriever = make_retriever()
        retriever.add(["Only passage about owls.", "Second passage about newts."], ids=["a", "b"])
        assert {p.id for p in retriever("owls", k=50)} <= {"a", "b"}
        assert len(retriever("owls newts passage", k=50)) == 2

    def test_unicode_round_trips(self, make_retriever):
        retriever = make_retriever()
        _fill(retriever)
        found = retriever("capital of Japan Tokyo", k=3)
        tokyo = [p for p in found if p.id == "p-tokyo"]
        assert tokyo and tokyo[0].text == dict((p, t) for p, t, _ in CORPUS)["p-tokyo"]

    def test_batch_queries_match_single_queries(self, make_retriever):
        retriever = make_retriever()
        _fill(retriever)
        queries = list(QUERIES)[:3]
        batch = retriever(queries, k=2)
        assert [[p.id for p in ps] for ps in batch] == [[p.id for p in retriever(q, k=2)] for q in queries]

    def test_adding_an_existing_id_replaces_it(self, make_retriever):
        retriever = make_retriever()
        _fill(retriever)
        retriever.add(["Saturn is a ringed gas giant; its moon Titan has lakes of methane."], ids=["p-saturn"],
                      metadata=[{"topic": "astronomy", "year": 2024, "verified": True}])
        found = retriever("Titan methane lakes", k=len(CORPUS) + 2)
        saturn = [p for p in found if p.id == "p-saturn"]
        assert len(saturn) == 1 and "Titan" in saturn[0].text and saturn[0].metadata["year"] == 2024
        assert len(found) == len(CORPUS)

    def test_bad_arguments_raise_clear_errors(self, make_retriever):
        retriever = make_retriever()
        with pytest.raises((ValueError, TypeError)):
            retriever("query", k=0)
        with pytest.raises((ValueError, TypeError)):
            retriever.add("a bare string, not a list")
        with pytest.raises((ValueError, TypeError)):
            retriever.add(["one", "two"], ids=["only-one"])

    def test_bad_config_raises_clear_error(self):
        from plait.errors import PlaitError
        with pytest.raises((ValueError, TypeError, PlaitError)):
            self.bad_config()

    # --- filters --------------------------------------------------------------------------
    def test_filter_by_metadata(self, make_retriever):
        retriever = make_retriever()
        if not getattr(retriever, "supports_filters", False):
            pytest.skip(f"{type(retriever).__name__} does not support metadata filters")
        _fill(retriever)
        found = retriever("capital city", k=5, filter={"topic": "geography"})
        assert found and {p.id for p in found} <= {"p-paris", "p-tokyo"}
        assert all(p.metadata["topic"] == "geography" for p in found)

    def test_filter_rejected_when_unsupported(self, make_retriever):
        retriever = make_retriever()
        if getattr(retriever, "supports_filters", False):
            pytest.skip(f"{type(retriever).__name__} supports filters")
        with pytest.raises(ValueError, match="filter"):
            retriever("query", k=1, filter={"topic": "x"})
