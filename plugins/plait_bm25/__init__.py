"""BM25 for plait: ``plait.retriever("bm25", path=None, k1=1.5, b=0.75, stopwords="en", stemmer=None)``.

A lexical retriever that runs in-process on bm25s (no server, no model): the embedded default
for demos and a strong baseline for dense retrievers. With ``path=`` the corpus and bm25s's
index files are persisted to a folder and loaded back on construction. Install with
``pip install 'plait[bm25]'``.

Importing this package does not import bm25s: it loads when a retriever is created.
"""

from __future__ import annotations

from typing import Any

from plait.backends import RetrieverBackend
from plait.plugins import hookimpl

__all__ = ["BM25Retriever", "CorruptIndexError", "make_bm25_retriever", "plait_register_retrievers"]


def make_bm25_retriever(**config: Any) -> Any:
    from plait_bm25.retriever import BM25Retriever
    return BM25Retriever(**config)


@hookimpl
def plait_register_retrievers() -> list[RetrieverBackend]:
    return [RetrieverBackend("bm25", make_bm25_retriever, extra="bm25", requires=("bm25s",),
                             summary="in-process BM25 (bm25s), optionally persisted to a folder")]


def __getattr__(name: str) -> Any:
    # Classes load on first use so that plugin discovery never imports more than this file.
    if name == "BM25Retriever":
        from plait_bm25.retriever import BM25Retriever
        return BM25Retriever
    if name == "CorruptIndexError":
        from plait_bm25.storage import CorruptIndexError
        return CorruptIndexError
    raise AttributeError(f"module 'plait_bm25' has no attribute {name!r}")
