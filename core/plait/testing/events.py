"""Record the ``plait_event`` events a block of code emits (for tests of programs and plugins)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plait.hookspecs import hookimpl
from plait.plugins import plugin


class _Recorder:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    @hookimpl
    def plait_event(self, event: Any) -> None:
        self.events.append(event)


@contextmanager
def recorded_events() -> Iterator[list[Any]]:
    """``with recorded_events() as events:`` -- every Event emitted inside the block, in order."""
    events: list[Any] = []
    with plugin(_Recorder(events)):
        yield events
