"""Modules that call an LM: Predict, ChainOfThought, and the modules built from them.

Each name loads its module on first use, so ``plait.Predict`` does not pay for ReAct's or the
sandbox's imports.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "Predict": "plait.predict.predict", "ChainOfThought": "plait.predict.chain_of_thought",
    "majority": "plait.predict.aggregation", "default_normalize": "plait.predict.aggregation",
    "BestOfN": "plait.predict.best_of_n", "MultiChainComparison": "plait.predict.multi_chain",
    "Parallel": "plait.predict.parallel", "ProgramOfThought": "plait.predict.program_of_thought",
    "ReAct": "plait.predict.react", "Refine": "plait.predict.refine", "Tool": "plait.predict.tool",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'plait.predict' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
