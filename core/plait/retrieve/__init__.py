"""Retrieval: Passage, the Retriever and Embedder base classes, Retrieve, the in-memory index.

Names load their module on first use (adapters import ``Passage`` on the hot import path).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "Passage": "plait.retrieve.passage",
    "Embedder": "plait.retrieve.embedder", "HashingEmbedder": "plait.retrieve.embedder",
    "InMemoryRetriever": "plait.retrieve.memory",
    "Retrieve": "plait.retrieve.retrieve_module",
    "Retriever": "plait.retrieve.retriever", "check_add_args": "plait.retrieve.retriever",
    "matches_filter": "plait.retrieve.retriever", "retrieve": "plait.retrieve.retriever",
    "text_id": "plait.retrieve.retriever",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'plait.retrieve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
