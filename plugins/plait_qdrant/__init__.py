"""Qdrant retriever and indexer for plait: ``plait.retriever("qdrant", collection=..., embedder=...)``.

Install with ``pip install 'plait[qdrant]'``. Configuration mirrors ``QdrantClient``:
``location=":memory:"`` (the default), ``path=`` (embedded engine on disk), ``url=`` / ``api_key=`` /
``prefer_grpc=`` (a server), or ``client=`` (your own QdrantClient); plus ``collection=`` and
``embedder=`` (both required), ``vector_name=``, ``distance=`` ("cosine" by default), ``k=``.
See :class:`plait_qdrant.retriever.QdrantRetriever` for the payload layout, scores and retries.

``from plait_qdrant import QdrantRM`` is DSPy's ``QdrantRM(collection, client, k)`` alias.
Importing this package does not import qdrant-client: the SDK loads when a retriever is built.
"""

from __future__ import annotations

from typing import Any

from plait.backends import RetrieverBackend
from plait.plugins import hookimpl

__all__ = ["QdrantRM", "QdrantRetriever", "QdrantUnavailableError", "make_qdrant_retriever",
           "plait_register_retrievers"]


def make_qdrant_retriever(**config: Any) -> Any:
    """Factory behind ``plait.retriever("qdrant", ...)`` (imports qdrant-client)."""
    from plait_qdrant.retriever import QdrantRetriever
    return QdrantRetriever(**config)


@hookimpl
def plait_register_retrievers() -> list[RetrieverBackend]:
    return [RetrieverBackend("qdrant", make_qdrant_retriever, extra="qdrant", requires=("qdrant_client",),
                             summary="Qdrant: embedded (:memory:/path) or a server (url=); filters, named vectors")]


def __getattr__(name: str) -> Any:
    # The classes live in modules that are only imported when asked for (plugin loading stays cheap).
    if name in ("QdrantRetriever", "QdrantRM"):
        from plait_qdrant import retriever
        return getattr(retriever, name)
    if name == "QdrantUnavailableError":
        from plait_qdrant.mapping import QdrantUnavailableError
        return QdrantUnavailableError
    raise AttributeError(f"module 'plait_qdrant' has no attribute {name!r}")
