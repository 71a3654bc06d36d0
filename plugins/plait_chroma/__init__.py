"""Chroma retriever and indexer for plait: ``plait.retriever("chroma", collection=..., embedder=...)``.

Install with ``pip install 'plait[chroma]'``. Give one of ``path=`` (embedded PersistentClient),
``host=`` / ``port=`` (a ``chroma run`` server) or ``client=`` (your own chromadb client), plus
``collection=`` and ``embedder=`` (both required: plait computes every vector, so Chroma's
default embedding model, an ONNX download, is never used), ``distance=`` ("cosine" by default)
and ``k=``. See :class:`plait_chroma.retriever.ChromaRetriever` for scores, filters and retries.

``from plait_chroma import ChromadbRM`` is DSPy's ``ChromadbRM(collection_name, persist_directory)``.
Importing this package does not import chromadb: the SDK loads when a retriever is built.
"""

from __future__ import annotations

from typing import Any

from plait.backends import RetrieverBackend
from plait.plugins import hookimpl

__all__ = ["ChromaRetriever", "ChromaUnavailableError", "ChromadbRM", "make_chroma_retriever",
           "plait_register_retrievers"]


def make_chroma_retriever(**config: Any) -> Any:
    """Factory behind ``plait.retriever("chroma", ...)`` (imports chromadb)."""
    from plait_chroma.retriever import ChromaRetriever
    return ChromaRetriever(**config)


@hookimpl
def plait_register_retrievers() -> list[RetrieverBackend]:
    return [RetrieverBackend("chroma", make_chroma_retriever, extra="chroma", requires=("chromadb",),
                             summary="Chroma: embedded (path=) or a chroma server (host=/port=); where-filters")]


def __getattr__(name: str) -> Any:
    # The classes live in modules that are only imported when asked for (plugin loading stays cheap).
    if name in ("ChromaRetriever", "ChromadbRM"):
        from plait_chroma import retriever
        return getattr(retriever, name)
    if name == "ChromaUnavailableError":
        from plait_chroma.mapping import ChromaUnavailableError
        return ChromaUnavailableError
    raise AttributeError(f"module 'plait_chroma' has no attribute {name!r}")
