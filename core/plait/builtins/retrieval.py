"""Built-in retrieval: the ``memory`` retriever, the ``hashing`` embedder and the last-resort
``plait_retrieve`` implementation that asks the retriever itself."""

from __future__ import annotations

from typing import Any

from plait.backends import EmbedderBackend, RetrieverBackend
from plait.hookspecs import hookimpl


def _memory(**config: Any) -> Any:
    from plait.retrieve.memory import InMemoryRetriever
    return InMemoryRetriever(**config)


def _hashing(**config: Any) -> Any:
    from plait.retrieve.embedder import HashingEmbedder
    return HashingEmbedder(**config)


@hookimpl
def plait_register_retrievers() -> list[RetrieverBackend]:
    return [RetrieverBackend("memory", _memory, extra="embeddings", requires=("numpy",),
                             summary="exact in-memory dense index over any embedder (small corpora)")]


@hookimpl
def plait_register_embedders() -> list[EmbedderBackend]:
    return [EmbedderBackend("hashing", _hashing, extra="embeddings", requires=("numpy",),
                            summary="feature hashing of words and bigrams (no model; lexical baseline)")]


@hookimpl(trylast=True)
def plait_retrieve(retriever: Any, queries: list[str], k: int, options: dict[str, Any]) -> list[list[Any]]:
    return retriever.search(queries, k, **options)
