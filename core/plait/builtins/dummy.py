"""The ``dummy`` LM provider: ``plait.LM("dummy/any", answers=[...])`` (for tests and demos)."""

from __future__ import annotations

from typing import Any

from plait.backends import LMBackend
from plait.hookspecs import hookimpl


def _make_dummy(model: str, *, answers: Any = None, small_model: bool = False,
                model_type: str = "chat") -> Any:
    from plait.testing.dummy import DummyBackend
    return DummyBackend(answers, small_model=small_model, model_type=model_type)


@hookimpl
def plait_register_lms() -> list[LMBackend]:
    return [LMBackend(name="dummy", factory=_make_dummy,
                      summary="scripted answers through the real adapter path (tests)")]
