"""Usage and cost accounting per program run: ``with plait.track_usage() as usage: ...``."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plait.lm.types import Usage


class UsageTracker:
    """Sums :class:`Usage` per model. Thread-safe; shared by the threads of one run."""

    def __init__(self) -> None:
        self._by_model: dict[str, Usage] = {}
        self._lock = threading.Lock()
        self.calls = 0
        self.cached_calls = 0

    def add(self, model: str, usage: Usage, cached: bool) -> None:
        with self._lock:
            self.calls += 1
            if cached:   # a cache hit costs nothing
                self.cached_calls += 1
                return
            current = self._by_model.get(model)
            self._by_model[model] = usage if current is None else current + usage

    def by_model(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {model: usage.to_dict() for model, usage in self._by_model.items()}

    def total(self) -> Usage:
        with self._lock:
            total = Usage()
            for usage in self._by_model.values():
                total = total + usage
            return total

    def __repr__(self) -> str:
        return f"UsageTracker(calls={self.calls}, cached={self.cached_calls}, by_model={self.by_model()})"


_trackers: contextvars.ContextVar[tuple[UsageTracker, ...]] = contextvars.ContextVar("plait_usage", default=())


def active_trackers() -> tuple[UsageTracker, ...]:
    return _trackers.get()


@contextmanager
def track_usage(tracker: UsageTracker | None = None) -> Iterator[UsageTracker]:
    """Collect the usage of every LM call made inside the block (nested blocks all see a call)."""
    tracker = tracker or UsageTracker()
    token = _trackers.set(_trackers.get() + (tracker,))
    try:
        yield tracker
    finally:
        _trackers.reset(token)
