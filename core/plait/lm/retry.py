"""Retries with exponential backoff and jitter, only for errors that say they are retryable."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from plait.errors import LMError

T = TypeVar("T")
A = TypeVar("A")


def backoff_delay(attempt: int, error: LMError, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    A server's Retry-After wins (capped); otherwise ``base * 2**attempt`` with "equal jitter"
    (half fixed, half random) so many clients do not retry in lockstep.
    """
    if error.retry_after is not None:
        return max(0.0, min(cap, error.retry_after))
    delay = min(cap, base * (2 ** attempt))
    return delay / 2 + random.random() * delay / 2


def call_with_retries(fn: Callable[[A], T], arg: A, *, num_retries: int, source: str = "",
                      sleep: Callable[[float], None] | None = None, base_delay: float = 0.5) -> T:
    """``fn(arg)``, retried up to ``num_retries`` times on retryable :class:`LMError`."""
    attempt = 0
    while True:
        try:
            return fn(arg)
        except LMError as error:
            if not error.retryable or attempt >= num_retries:
                raise
            delay = _announce_retry(error, attempt, num_retries, source, base_delay)
            (sleep or time.sleep)(delay)   # looked up per call so tests can patch time.sleep
            attempt += 1


async def acall_with_retries(fn: Callable[[A], Awaitable[T]], arg: A, *, num_retries: int, source: str = "",
                             sleep: Callable[[float], Awaitable[None]] | None = None,
                             base_delay: float = 0.5) -> T:
    """``await fn(arg)`` with :func:`call_with_retries`' policy, waiting with ``asyncio.sleep``
    so the event loop keeps serving other tasks between attempts."""
    attempt = 0
    while True:
        try:
            return await fn(arg)
        except LMError as error:
            if not error.retryable or attempt >= num_retries:
                raise
            await (sleep or asyncio.sleep)(_announce_retry(error, attempt, num_retries, source, base_delay))
            attempt += 1


def _announce_retry(error: LMError, attempt: int, num_retries: int, source: str, base_delay: float) -> float:
    """The wait before retry ``attempt + 1``, reported as an ``lm.retry`` event."""
    delay = backoff_delay(attempt, error, base=base_delay)
    from plait.plugins import emit  # lazy: only on the (rare) retry path
    emit("lm.retry", source=source, attempt=attempt + 1, max_retries=num_retries,
         delay=delay, error=f"{type(error).__name__}: {error}")
    return delay
