"""Test helpers for plait programs and plugins: DummyLM, recorded_events and the contract suites.

``LMContract`` and ``RetrieverContract`` import pytest, so they load only when asked for.
"""

from typing import Any

from plait.testing.dummy import DummyBackend, DummyLM, DummyLMExhausted
from plait.testing.events import recorded_events

__all__ = ["DummyBackend", "DummyLM", "DummyLMExhausted", "LMContract", "RetrieverContract", "recorded_events"]

_CONTRACTS = {"LMContract": "plait.testing.lm_contract", "RetrieverContract": "plait.testing.retriever_contract"}


def __getattr__(name: str) -> Any:
    if name in _CONTRACTS:
        import importlib
        return getattr(importlib.import_module(_CONTRACTS[name]), name)
    raise AttributeError(f"module 'plait.testing' has no attribute {name!r}")
