"""Call history: every LM keeps its own, and a bounded process-wide one feeds inspect_history."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

MAX_GLOBAL_HISTORY = 10_000
_GLOBAL: deque[dict[str, Any]] = deque(maxlen=MAX_GLOBAL_HISTORY)
_lock = threading.Lock()


# time.strftime costs more than the rest of recording a call, and its text changes once a
# second: (the second, its text), shared by all threads (a tuple is replaced atomically).
_last_second: tuple[int, str] = (-1, "")


def local_timestamp() -> str:
    """The local time as ``YYYY-MM-DDTHH:MM:SS`` (what ``time.strftime`` gives), computed once per second."""
    global _last_second
    now = time.time()
    second = int(now)
    cached_second, text = _last_second
    if second != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
        _last_second = (second, text)
    return text


def record(entry: dict[str, Any], lm_history: deque[dict[str, Any]]) -> None:
    # deque.append is atomic in CPython; the lock only keeps the two histories in the same order
    with _lock:
        lm_history.append(entry)
        _GLOBAL.append(entry)


def global_history() -> list[dict[str, Any]]:
    return list(_GLOBAL)


def clear_history() -> None:
    with _lock:
        _GLOBAL.clear()


def format_history(entries: list[dict[str, Any]]) -> str:
    """The exact messages sent and the text received, oldest first."""
    out: list[str] = []
    for entry in entries:
        flags = " (cached)" if entry.get("cached") else ""
        out.append(f"\x1b[34m[{entry['timestamp']}] {entry['model']}{flags}\x1b[0m")
        if entry.get("messages") is not None:
            for message in entry["messages"]:
                out.append(f"\x1b[1m{message.get('role', '?').upper()}:\x1b[0m")
                out.append(str(message.get("content", "")))
        if entry.get("prompt") is not None:
            out.append("\x1b[1mPROMPT:\x1b[0m")
            out.append(entry["prompt"])
        if entry.get("prefill"):
            out.append("\x1b[1mASSISTANT (prefill):\x1b[0m")
            out.append(entry["prefill"])
        outputs = entry.get("outputs") or []
        for i, text in enumerate(outputs):
            label = "RESPONSE" if len(outputs) == 1 else f"RESPONSE {i + 1}/{len(outputs)}"
            out.append(f"\x1b[1m\x1b[32m{label}:\x1b[0m")
            out.append(text)
        out.append("")
    return "\n".join(out)


def inspect_history(n: int = 1, *, lm: Any = None, file: TextIO | None = None) -> str:
    """Print (to ``file``, default stdout) and return the last ``n`` calls, of ``lm`` or of any LM."""
    entries = list(lm.history)[-n:] if lm is not None else list(_GLOBAL)[-n:]
    text = format_history(entries)
    print(text, file=file or sys.stdout)  # the user asked to see it: this is the output
    return text
