"""ColBERT for plait: the ColBERTv2 server client and a local late-interaction index.

Install with ``pip install 'plait[colbert]'``. Registered retrievers:

- ``colbert``: ``plait.retriever("colbert", url="http://127.0.0.1:8893/search", post_requests=False)``
  -> :class:`ColBERTv2`, a client for any server speaking the ColBERTv2 protocol (DSPy's hosted
  indexes, colbert-ai's server, ``plait serve retriever``). Also ``plait.ColBERTv2(url=...)``.
- ``colbert-local``: ``plait.retriever("colbert-local", path="index/")`` ->
  :class:`LateInteractionIndex`, token-level MaxSim over MiniLM token embeddings (offline),
  persisted to a folder; ``plait serve retriever`` can host it.

Why our own late-interaction index rather than colbert-ai or PyLate: both, when built from a
plain encoder such as MiniLM, draw a random projection in each process unless the model is
saved once and always reloaded, so passages and queries encoded in different processes silently
disagree; colbert-ai also compiles C++ at first search and needs transformers<5. Ours uses the
encoder's own token vectors (no projection), so the vectors of a text are the same in every
process, and records the encoder's name in the index so a mismatch is an error, not bad results.

Importing this package imports neither httpx nor numpy nor transformers: they load when a
retriever is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from plait.backends import RetrieverBackend
from plait.plugins import hookimpl

__all__ = ["ColBERTv2", "ColBERTv2ConnectionError", "ColBERTv2Error", "HashingTokenEncoder",
           "LateInteractionIndex", "TokenEncoder", "TransformerTokenEncoder", "make_colbert_client",
           "make_colbert_local", "plait_register_retrievers"]

_LAZY = {"ColBERTv2": "plait_colbert.client", "ColBERTv2Error": "plait_colbert.client",
         "ColBERTv2ConnectionError": "plait_colbert.client", "LateInteractionIndex": "plait_colbert.local",
         "TokenEncoder": "plait_colbert.encoder", "TransformerTokenEncoder": "plait_colbert.encoder",
         "HashingTokenEncoder": "plait_colbert.encoder"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_colbert' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def make_colbert_client(**config: Any) -> Any:
    """Factory of ``plait.retriever("colbert", url=..., ...)``."""
    from plait_colbert.client import ColBERTv2
    return ColBERTv2(**config)


def make_colbert_local(**config: Any) -> Any:
    """Factory of ``plait.retriever("colbert-local", path=..., ...)``."""
    import numpy  # noqa: F401  (a missing numpy becomes MissingExtraError, not a late failure)

    from plait_colbert.local import LateInteractionIndex
    return LateInteractionIndex(**config)


@hookimpl
def plait_register_retrievers() -> list[RetrieverBackend]:
    return [
        RetrieverBackend("colbert", make_colbert_client, extra="colbert",
                         summary="client for a ColBERTv2 server (DSPy's protocol; plait serve hosts one)"),
        RetrieverBackend("colbert-local", make_colbert_local, extra="colbert",
                         requires=("numpy", "transformers", "torch"),
                         summary="local late-interaction index: MaxSim over MiniLM token vectors, on disk"),
    ]
