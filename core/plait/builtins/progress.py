"""Built-in plugin: a text progress bar on stderr for ``progress`` events.

Listens to ``plait_event`` for events of kind ``"progress"`` (or ending in ``".progress"``, such
as ``"evaluate.progress"``) with data ``task``, ``done``, ``total`` and an optional ``postfix``
mapping (``{"score": 41.2}``). It draws when ``data.get("display", True)`` is truthy and stderr
is a terminal or ``PLAIT_PROGRESS=1``; ``PLAIT_PROGRESS=0`` turns it off. Redraws are throttled
to one per ``MIN_INTERVAL`` seconds per task, plus the final one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from plait.backends import Event
from plait.hookspecs import hookimpl

MIN_INTERVAL = 0.1
BAR_WIDTH = 24

_lock = threading.Lock()
# (source, task) -> [started at, last drawn at]
_tasks: dict[tuple[str, str], list[float]] = {}
_last_line_length = 0


def _enabled() -> bool:
    setting = os.environ.get("PLAIT_PROGRESS", "").strip()
    if setting == "0":
        return False
    if setting == "1":
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(task: str, done: int, total: int | None, elapsed: float,
           postfix: Mapping[str, Any] | None = None) -> str:
    """One progress line, e.g. ``evaluate  40%|#########.............| 4/10 [1.2s, 3.3it/s]``."""
    rate = f"{done / elapsed:.1f}it/s" if elapsed > 0 else "?it/s"
    if total:
        fraction = min(max(done / total, 0.0), 1.0)
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"{task} {fraction:4.0%}|{bar}| {done}/{total} [{elapsed:.1f}s, {rate}]"
    else:
        line = f"{task} {done} [{elapsed:.1f}s, {rate}]"
    if postfix:
        line += " " + ", ".join(f"{key}={_format_value(value)}" for key, value in postfix.items())
    return line


@hookimpl
def plait_event(event: Event) -> None:
    kind = event.kind
    if kind != "progress" and not kind.endswith(".progress"):
        return
    data = event.data
    if not data.get("display", True):
        return
    task = str(data.get("task", event.source or "progress"))
    done = int(data.get("done", 0))
    total = data.get("total")
    final = total is not None and done >= total
    now = time.monotonic()
    key = (event.source, task)
    with _lock:
        times = _tasks.get(key)
        if times is None:
            times = _tasks[key] = [now, -MIN_INTERVAL]
        if not final and now - times[1] < MIN_INTERVAL:
            return
        times[1] = now
        if final:
            del _tasks[key]
        if not _enabled():
            return
        _draw(render(task, done, total, now - times[0], data.get("postfix")), final)


def _draw(line: str, final: bool) -> None:
    """Overwrite the current line (caller holds the lock)."""
    global _last_line_length
    padding = " " * max(_last_line_length - len(line), 0)
    stream = sys.stderr
    stream.write("\r" + line + padding + ("\n" if final else ""))
    stream.flush()
    _last_line_length = 0 if final else len(line)
