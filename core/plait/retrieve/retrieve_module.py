"""Retrieve: the module programs call (``plait.Retrieve(k=3)(question).passages``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plait.errors import ConfigurationError, StateError
from plait.primitives.module import Module, Parameter
from plait.primitives.prediction import Prediction
from plait.retrieve.passage import Passage
from plait.settings import settings


class Retrieve(Module, Parameter):
    """Ask a retriever (``retriever=`` or ``plait.configure(rm=...)``) for the top ``k`` passages.

    A list of queries is fused into one list: each passage keeps its best score across the
    queries (passages are matched by id, else by text), then the top ``k`` are returned.
    ``k`` is saved with the program.
    """

    leaf_parameter = True

    def __init__(self, k: int = 3, *, retriever: Any = None):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"Retrieve(k=...) must be a positive int, got {k!r}")
        self.k = k
        self.retriever = retriever

    def _retriever(self) -> Any:
        retriever = self.retriever if self.retriever is not None else settings.rm
        if retriever is None:
            raise ConfigurationError("no retriever is configured: call plait.configure(rm=plait.retriever("
                                     "'bm25', ...)) or pass Retrieve(retriever=...)")
        return retriever

    def forward(self, query_or_queries: str | Sequence[str], k: int | None = None, *,
                filter: Any = None) -> Prediction:
        k = self.k if k is None else k
        queries = [query_or_queries] if isinstance(query_or_queries, str) else list(query_or_queries)
        results = self._retriever()(queries, k, filter=filter)
        return Prediction(passages=fuse(results, k))

    async def aforward(self, query_or_queries: str | Sequence[str], k: int | None = None, *,
                       filter: Any = None) -> Prediction:
        k = self.k if k is None else k
        queries = [query_or_queries] if isinstance(query_or_queries, str) else list(query_or_queries)
        results = await self._retriever().acall(queries, k, filter=filter)
        return Prediction(passages=fuse(results, k))

    # --- Parameter ------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        return {"k": self.k}

    def validate_state(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("k"), int) or state["k"] < 1:
            raise StateError(f"a Retrieve state must be {{'k': positive int}}, got {state!r}")

    def load_state(self, state: dict[str, Any]) -> None:
        self.validate_state(state)
        self.k = state["k"]

    def reset(self) -> None:
        pass   # k is configuration the user chose, not something learned

    def __repr__(self) -> str:
        return f"Retrieve(k={self.k})"


def fuse(results: list[list[Passage]], k: int) -> list[Passage]:
    if len(results) == 1:
        return results[0][:k]
    best: dict[str, Passage] = {}
    for passages in results:
        for passage in passages:
            key = passage.id if passage.id is not None else passage.text
            if key not in best or passage.score > best[key].score:
                best[key] = passage
    return sorted(best.values(), key=lambda p: -p.score)[:k]
