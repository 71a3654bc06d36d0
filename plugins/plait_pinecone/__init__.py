"""Pinecone retriever and indexer for plait: ``plait.retriever("pinecone", index=..., embedder=...)``.

Install with ``pip install 'plait[pinecone]'`` (the ``pinecone`` SDK, 10.x). Configuration:

- ``index``: the index name (looked up through the control plane), or ``index_host``: the
  index's own URL (skips the control plane; the way to use Pinecone Local, whose control plane
  speaks API 2025-01 while SDK 10 speaks 2026-07).
- ``api_key``: defaults to ``PINECONE_API_KEY``; a placeholder is used for servers on this
  machine (127.0.0.1 / localhost) when neither is set, since Pinecone Local ignores keys.
- ``host``: the control-plane URL (defaults to ``PINECONE_CONTROLLER_HOST``, else Pinecone's
  API); point it at a local server, e.g. ``http://localhost:5080``.
- ``embedder`` (required): any plait Embedder (texts -> vectors); Pinecone stores vectors only.
- ``namespace`` (default ""), ``text_field`` (the metadata key holding the text, default
  "text"), ``batch_size`` (vectors per upsert request, default 100, at most 1000).
- ``create_index=True`` creates a missing index with ``dimension`` (default: the embedder's)
  and ``metric`` ("cosine", "dotproduct" or "euclidean"), serverless in ``cloud``/``region``.
- ``client=``: an injected ``pinecone.Pinecone`` (control plane) or index handle (data plane).
- ``native_filter=``: a Pinecone filter dict ANDed into every query.

Filters: ``r(query, filter={"topic": "x", "year": [2001, 2002]})`` becomes Pinecone's
``{"$and": [{"topic": {"$eq": "x"}}, {"year": {"$in": [2001, 2002]}}]}``; a native Pinecone
filter (any key starting with ``$`` or any operator dict value) is passed through unchanged.

Scores are Pinecone's: cosine similarity (or dot product); for ``metric="euclidean"`` the
squared distance is negated so that higher is better, as everywhere in plait. The metric is
read from the index description; with ``index_host=`` pass ``metric=`` if it is not cosine.
``k`` is capped at Pinecone's 10,000.

Failures: the SDK retries connection errors and 5xx answers itself (3 retries with jittered
backoff, bounded); after that plait raises :class:`PineconeUnavailableError` naming the host.
A failed ``add`` says how many vectors landed before the failure (re-adding is idempotent).

Importing this package does not import ``pinecone``: the SDK loads on first use.
DSPy-style alias: ``PineconeRM(pinecone_index_name, k=3, embedder=..., api_key=..., host=...)``.
"""

from __future__ import annotations

from typing import Any

from plait.backends import RetrieverBackend
from plait.plugins import hookimpl
from plait_pinecone.retriever import PineconeRetriever, PineconeRM, PineconeUnavailableError, to_pinecone_filter

__all__ = ["PineconeRM", "PineconeRetriever", "PineconeUnavailableError", "make_pinecone_retriever",
           "plait_register_retrievers", "to_pinecone_filter"]


def make_pinecone_retriever(**config: Any) -> PineconeRetriever:
    """The factory behind ``plait.retriever("pinecone", ...)`` (checks the SDK is importable)."""
    import pinecone  # noqa: F401  (an ImportError here becomes MissingExtraError with the pip command)
    return PineconeRetriever(**config)


@hookimpl
def plait_register_retrievers() -> list[RetrieverBackend]:
    return [RetrieverBackend("pinecone", make_pinecone_retriever, extra="pinecone", requires=("pinecone",),
                             summary="Pinecone index (SaaS or Pinecone Local) over any plait embedder")]
