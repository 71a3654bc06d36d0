"""``plait demo``: the seed's RAG program compiled on bundled HotPotQA with a local LM.

``run_demo(DemoConfig(...))`` indexes the corpus, evaluates the program zero-shot, compiles it
with BootstrapFewShot, evaluates it again, saves and reloads it, and returns a
:class:`DemoReport` whose ``table()`` compares the two runs. See docs/demo.md. Names load on
first use, so ``import plait.demo`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BETTER_LM": "defaults", "DEFAULT_DEV": "defaults", "DEFAULT_TRAIN": "defaults",
    "RETRIEVERS": "defaults", "SMALL_LM": "defaults",
    "DemoConfig": "pipeline", "build_index": "pipeline", "default_lm": "pipeline",
    "default_out_dir": "pipeline", "gold_retrieved": "pipeline", "run_demo": "pipeline",
    "RAG": "programs", "GenerateAnswer": "programs", "GenerateSearchQuery": "programs",
    "SimplifiedBaleen": "programs", "exact_match_and_passage": "programs", "make_program": "programs",
    "TABLE_COLUMNS": "report", "CompileStats": "report", "DemoReport": "report", "RunStats": "report",
    "SampleAnswer": "report", "format_table": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plait.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"plait.demo.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
