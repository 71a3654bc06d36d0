"""The demo's programs: the seed README's RAG and its multi-hop (SimplifiedBaleen-style) variant.

Both are ordinary plait modules written exactly as a user would write them (``import plait as
dspy`` style), so the demo shows the API, not demo-only machinery.
"""

from __future__ import annotations

from typing import Any

from plait.evaluate.metrics import answer_exact_match, answer_passage_match
from plait.predict import ChainOfThought
from plait.primitives.module import Module
from plait.primitives.prediction import Prediction
from plait.retrieve import Retrieve
from plait.signatures import InputField, OutputField, Signature

__all__ = ["GenerateAnswer", "GenerateSearchQuery", "RAG", "SimplifiedBaleen", "exact_match_and_passage",
           "make_program"]


class GenerateAnswer(Signature):
    """Answer questions with short factoid answers."""

    context = InputField(desc="may contain relevant facts")
    question = InputField()
    answer = OutputField(desc="often between 1 and 5 words")


class GenerateSearchQuery(Signature):
    """Write a simple search query that will help answer a complex question."""

    context = InputField(desc="may contain relevant facts")
    question = InputField()
    search_query = OutputField()


class RAG(Module):
    """Retrieve ``num_passages`` passages for the question, then answer with chain of thought."""

    def __init__(self, num_passages: int = 3):
        super().__init__()
        self.retrieve = Retrieve(k=num_passages)
        self.generate_answer = ChainOfThought(GenerateAnswer)

    def forward(self, question: str) -> Prediction:
        context = self.retrieve(question).passages
        prediction = self.generate_answer(context=context, question=question)
        return Prediction(context=context, answer=prediction.answer)


class SimplifiedBaleen(Module):
    """Multi-hop RAG: each hop writes a search query from what was found so far, retrieves
    ``passages_per_hop`` more passages (duplicates dropped), then the answer is generated."""

    def __init__(self, passages_per_hop: int = 3, max_hops: int = 2):
        super().__init__()
        if isinstance(max_hops, bool) or not isinstance(max_hops, int) or max_hops < 1:
            raise ValueError(f"max_hops must be a positive int, got {max_hops!r}")
        # one query writer per hop: each hop learns its own demos
        self.generate_query = [ChainOfThought(GenerateSearchQuery) for _ in range(max_hops)]
        self.retrieve = Retrieve(k=passages_per_hop)
        self.generate_answer = ChainOfThought(GenerateAnswer)

    def forward(self, question: str) -> Prediction:
        context: list[Any] = []
        seen: set[str] = set()
        for writer in self.generate_query:
            query = writer(context=context, question=question).search_query
            for passage in self.retrieve(query).passages:
                key = _passage_key(passage)
                if key not in seen:
                    seen.add(key)
                    context.append(passage)
        prediction = self.generate_answer(context=context, question=question)
        return Prediction(context=context, answer=prediction.answer)


def _passage_key(passage: Any) -> str:
    identifier = getattr(passage, "id", None)
    return f"id:{identifier}" if identifier else f"text:{getattr(passage, 'text', passage)}"


def exact_match_and_passage(example: Any, prediction: Any, trace: Any = None) -> bool:
    """The seed intro's multi-hop metric: the answer matches exactly AND the gold answer
    appears in some retrieved passage (so demos come from runs that really found it)."""
    return answer_exact_match(example, prediction) and answer_passage_match(example, prediction)


def make_program(multihop: bool, k: int) -> Module:
    """A fresh, uncompiled demo program."""
    return SimplifiedBaleen(passages_per_hop=k) if multihop else RAG(num_passages=k)
