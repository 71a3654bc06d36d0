"""Settings on contextvars: ``plait.configure(...)`` sets process-wide defaults, ``with
plait.context(...)`` overrides them for the current context (thread or asyncio task) only.

Threads started by plait (Evaluate, Module.batch, optimizers) run in a copy of the caller's
context. For your own threads, wrap the target: ``threading.Thread(target=plait.settings.wrap(fn))``
or use :class:`ContextThreadPoolExecutor`.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULTS: dict[str, Any] = {
    "lm": None,                # the default LM (plait.LM)
    "rm": None,                # the default retriever (plait.Retrieve uses it)
    "adapter": None,           # None (automatic), an adapter name or an Adapter
    "adapter_retries": 1,      # re-asks with the parse error fed back, per call
    "trace": None,             # a list collecting (predictor, inputs, prediction) when set
    "num_threads": 8,          # default pool size for Evaluate / batch / optimizers
    "max_errors": 10,          # Evaluate / batch stop after this many failures
    "track_usage": False,      # attach LM usage to the Prediction of each top-level module call
    "display_progress": False,
    "async_max_workers": 8,    # programs one asyncify()'d callable runs at once per event loop
}

_overrides: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "plait_settings", default=None)
# The last merged view built by effective(): (global dict, overrides dict, merged dict). Both
# inputs are replaced, never mutated, so identity says whether the merge is still current.
_last_merged: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None


class Settings:
    """The settings object (``plait.settings``). Read a setting as an attribute."""

    def __init__(self) -> None:
        self._global: dict[str, Any] = dict(DEFAULTS)
        self._lock = threading.Lock()

    def configure(self, **values: Any) -> None:
        """Set process-wide defaults (visible to every thread that has no override)."""
        _check_names(values)
        with self._lock:
            merged = dict(self._global)
            merged.update(values)
            self._global = merged   # replaced, never mutated in place: readers need no lock

    @contextmanager
    def context(self, **values: Any) -> Iterator[None]:
        """Override settings inside a ``with`` block for this thread / task only."""
        _check_names(values)
        current = _overrides.get()
        mine = {**current, **values} if current else values
        token = _overrides.set(mine)
        try:
            yield
        finally:
            _overrides.reset(token)
            _forget_merged(mine)

    def get(self, name: str, default: Any = None) -> Any:
        overrides = _overrides.get()
        if overrides is not None and name in overrides:
            return overrides[name]
        return self._global.get(name, default)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        overrides = _overrides.get()
        if overrides is not None and name in overrides:
            return overrides[name]
        try:
            return self._global[name]
        except KeyError:
            raise AttributeError(f"plait.settings has no setting {name!r}; known: {sorted(self._global)}") from None

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def snapshot(self) -> dict[str, Any]:
        """Every setting as seen from the current context."""
        return {**self._global, **(_overrides.get() or {})}

    def reset(self) -> None:
        """Back to the defaults (tests)."""
        with self._lock:
            self._global = dict(DEFAULTS)

    # helpers for threads
    @staticmethod
    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` bound to a copy of the caller's context: use as a thread target."""
        ctx = contextvars.copy_context()

        def run(*args: Any, **kwargs: Any) -> T:
            return ctx.copy().run(fn, *args, **kwargs)

        return run

    def __repr__(self) -> str:
        return f"Settings({self.snapshot()!r})"


def _check_names(values: dict[str, Any]) -> None:
    for name in values:
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"invalid setting name {name!r}")


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in a copy of the submitting thread's context."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


settings = Settings()
configure = settings.configure
context = settings.context


def effective() -> dict[str, Any]:
    """Every setting as seen from the current context, for hot paths that read several.

    Cheap (no copy without overrides: the global dict itself), so the result is READ-ONLY.
    """
    global _last_merged
    overrides = _overrides.get()
    current = settings._global
    if not overrides:
        return current
    last = _last_merged
    if last is not None and last[0] is current and last[1] is overrides:
        return last[2]
    merged = {**current, **overrides}
    _last_merged = (current, overrides, merged)
    return merged


def _forget_merged(overrides: dict[str, Any]) -> None:
    """Drop effective()'s memo of a context that has ended, so it does not keep that context's
    values (an LM, a retriever) alive. Another thread may have replaced the memo meanwhile:
    then there is nothing of ours to drop."""
    global _last_merged
    last = _last_merged
    if last is not None and last[1] is overrides:
        _last_merged = None


def __getattr__(name: str) -> Any:
    # ``plait.settings`` is this module: forward ``plait.settings.lm`` etc. to the object.
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(settings, name)
