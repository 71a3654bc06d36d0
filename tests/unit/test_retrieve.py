"""Retrieve, Passage, the plait_retrieve hook, the hashing embedder and the memory index."""

from __future__ import annotations

import numpy as np
import pytest

import plait
from plait.hookspecs import hookimpl
from plait.plugins import plugin
from plait.retrieve import HashingEmbedder, Passage, Retriever
from plait.testing import DummyLM

TEXTS = ["Paris is the capital of France.", "Berlin is the capital of Germany.",
         "Bananas are rich in potassium."]


@pytest.fixture
def memory():
    retriever = plait.retriever("memory", embedder=plait.embedder("hashing"))
    retriever.add(TEXTS, ids=["fr", "de", "banana"])
    return retriever


def test_retrieve_uses_configured_rm_and_returns_passages(memory):
    plait.configure(rm=memory)
    pred = plait.Retrieve(k=2)("What is the capital of Germany?")
    assert [p.id for p in pred.passages] == ["de", "fr"]
    assert all(isinstance(p, Passage) for p in pred.passages)


def test_retrieve_without_rm_says_how_to_configure():
    with pytest.raises(plait.ConfigurationError, match=r"configure\(rm="):
        plait.Retrieve()("q")


def test_list_of_queries_is_fused_by_best_score(memory):
    pred = plait.Retrieve(k=2, retriever=memory)(["bananas are rich in potassium", "capital of France"])
    assert {p.id for p in pred.passages} == {"banana", "fr"}


def test_k_is_saved_and_loaded_with_the_program(tmp_path):
    class RAG(plait.Module):
        def __init__(self):
            super().__init__()
            self.retrieve = plait.Retrieve(k=5)
            self.answer = plait.Predict("context, question -> answer")

    program = RAG()
    program.retrieve.k = 7
    program.save(tmp_path / "rag.json")
    fresh = RAG()
    fresh.load(tmp_path / "rag.json")
    assert fresh.retrieve.k == 7


def test_passages_are_rendered_as_numbered_quotes_in_prompts(memory):
    lm = DummyLM([{"answer": "Berlin"}])
    context = plait.Retrieve(k=2, retriever=memory)("capital of Germany").passages
    plait.Predict("context, question -> answer")(context=context, question="Capital of Germany?", lm=lm)
    sent = "\n".join(str(m["content"]) for m in lm.history[-1]["messages"])
    assert "[1] «Berlin is the capital of Germany.»" in sent


def test_a_plugin_can_answer_or_wrap_retrieval(memory):
    class Canned:
        @hookimpl
        def plait_retrieve(self, retriever, queries, k):
            return [[Passage("canned", 1.0, "c")] for _ in queries]

    class Counter:
        calls = 0

        @hookimpl(wrapper=True)
        def plait_retrieve(self, retriever, queries, k, options):
            Counter.calls += 1
            return (yield)

    with plugin(Counter()):
        assert [p.id for p in memory("bananas potassium", k=1)] == ["banana"]
        with plugin(Canned()):
            assert memory(["a", "b"], k=1) == [[Passage("canned", 1.0, "c")], [Passage("canned", 1.0, "c")]]
    assert Counter.calls == 2   # the wrapper saw both calls, the canned answer too


def test_results_are_sorted_and_cut_to_k_whatever_the_retriever_returns():
    class Sloppy(Retriever):
        def search(self, queries, k, *, filter=None):
            return [[Passage("low", 0.1), Passage("high", 0.9), Passage("mid", 0.5)] for _ in queries]

    assert [p.text for p in Sloppy()("q", k=2)] == ["high", "mid"]


def test_a_retriever_that_drops_queries_is_an_error():
    class Broken(Retriever):
        def search(self, queries, k, *, filter=None):
            return []

    with pytest.raises(RuntimeError, match="every query"):
        Broken()(["a", "b"], k=1)


def test_filters_on_a_retriever_without_them_are_rejected():
    class Plain(Retriever):
        def search(self, queries, k, *, filter=None):
            return [[] for _ in queries]

    with pytest.raises(ValueError, match="does not support filters"):
        Plain()("q", k=1, filter={"a": 1})


def test_hashing_embedder_is_deterministic_and_normalised():
    embedder = HashingEmbedder(dim=64)
    first, again = embedder(["Some text here", ""]), HashingEmbedder(dim=64)(["Some text here", ""])
    assert first.shape == (2, 64) and first.dtype == np.float32
    assert np.array_equal(first, again)
    assert np.isclose(np.linalg.norm(first[0]), 1.0) and not first[1].any()
    assert embedder("one text").shape == (64,)
    with pytest.raises(ValueError, match="dim"):
        HashingEmbedder(dim=2)
    with pytest.raises(TypeError, match="strings"):
        embedder([1, 2])


def test_memory_index_rejects_a_changed_embedding_dimension():
    retriever = plait.retriever("memory", embedder=HashingEmbedder(dim=32))
    retriever.add(["a"])
    retriever.embedder = HashingEmbedder(dim=64)
    with pytest.raises(ValueError, match="dimension"):
        retriever.add(["b"])


async def test_async_retrieve(memory):
    pred = await plait.Retrieve(k=1, retriever=memory).acall("capital of France")
    assert [p.id for p in pred.passages] == ["fr"]


def test_demos_holding_passages_save_and_load_as_passages(tmp_path, memory):
    program = plait.ChainOfThought("context, question -> answer")
    context = plait.Retrieve(k=2, retriever=memory)("capital of Germany").passages
    program.predict.demos = [plait.Example(context=context, question="Capital of Germany?",
                                           reasoning="It says so.", answer="Berlin")]
    program.save(tmp_path / "rag.json")
    fresh = plait.ChainOfThought("context, question -> answer")
    fresh.load(tmp_path / "rag.json")
    assert fresh.predict.demos[0].context == context
    assert all(isinstance(p, Passage) for p in fresh.predict.demos[0].context)
    lm = DummyLM([{"reasoning": "r", "answer": "a"}, {"reasoning": "r", "answer": "a"}])
    program(context=context, question="q", lm=lm)
    fresh(context=context, question="q", lm=lm)
    assert lm.history[0]["messages"] == lm.history[1]["messages"]   # identical prompts after load
