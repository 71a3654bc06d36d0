"""``plait.asyncify(program)``: an async callable that runs a program without blocking the loop.

A program with a native async path runs on the event loop: a coroutine function, a Module
that defines its own ``aforward`` (Predict, ChainOfThought, Retrieve, ...; their LM calls stay
on the loop when the backend has ``agenerate``), or another object with an async ``acall``.
Anything else runs in a worker thread, in a copy of the caller's context (settings overrides
and usage trackers carry over). Runs of asyncified programs on one event loop share a bound:
at most ``settings.async_max_workers`` (default 8) at once; the others wait their turn.

(This module is not named ``asyncify``: importing a submodule ``plait.asyncify`` would replace
the ``plait.asyncify`` function on the package with the module.)
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from plait.errors import ConfigurationError
from plait.settings import settings

__all__ = ["DEFAULT_ASYNC_MAX_WORKERS", "async_runner", "asyncify", "native_call"]

DEFAULT_ASYNC_MAX_WORKERS = 8

# Per event loop: (size, semaphore). A semaphore belongs to the loop it first waits on.
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary())


def asyncify(program: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``await asyncify(program)(**inputs)`` runs ``program`` (see the module docstring)."""
    return async_runner(program)


def native_call(program: Any) -> Callable[..., Awaitable[Any]] | None:
    """The coroutine function that runs ``program`` natively, or None when it has none.

    A Module whose ``aforward`` is Module's own (a thread offload of ``forward``) counts as
    having none: calling it (``__call__``) in a thread keeps what ``__call__`` adds, such as
    usage tracking.
    """
    if inspect.iscoroutinefunction(program):
        return program
    from plait.primitives.module import Module
    if isinstance(program, Module):
        return program.acall if type(program).aforward is not Module.aforward else None
    acall = getattr(program, "acall", None)
    if acall is not None and inspect.iscoroutinefunction(acall):
        return acall
    call = getattr(program, "__call__", None)
    return call if inspect.iscoroutinefunction(call) else None


def async_runner(program: Any, *, native: bool | None = None) -> Callable[..., Awaitable[Any]]:
    """The async callable behind :func:`asyncify`; ``native`` True insists on the native path,
    False insists on a worker thread, None picks (native when there is one)."""
    if not callable(program):
        raise TypeError(f"asyncify() takes a program (a plait.Module or a callable), not {type(program).__name__}")
    coroutine = native_call(program) if native is not False else None
    if native and coroutine is None:
        raise TypeError(f"{type(program).__name__} has no native async path (an async acall/aforward or "
                        f"an async function); drop is_async_program=True to run it in a worker thread")

    async def run(*args: Any, **kwargs: Any) -> Any:
        async with _limiter():
            if coroutine is not None:
                return await coroutine(*args, **kwargs)
            return await asyncio.to_thread(program, *args, **kwargs)   # copies the context

    run.__name__ = f"async_{getattr(program, '__name__', type(program).__name__)}"
    run.__doc__ = getattr(program, "__doc__", None)
    return run


def _limiter() -> asyncio.Semaphore:
    """This loop's semaphore, remade when the ``async_max_workers`` setting changes (runs in
    flight finish on the old one)."""
    size = settings.get("async_max_workers", DEFAULT_ASYNC_MAX_WORKERS)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigurationError(f"the async_max_workers setting must be a positive int, not {size!r}: "
                                 f"plait.configure(async_max_workers=8)")
    loop = asyncio.get_running_loop()
    current = _limiters.get(loop)
    if current is None or current[0] != size:
        current = _limiters[loop] = (size, asyncio.Semaphore(size))
    return current[1]
