"""What retriever plugins share for talking to servers: retries and all-or-nothing batches."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from plait.errors import RetrieverUnavailableError

T = TypeVar("T")
R = TypeVar("R")


def call_with_backoff(fn: Callable[[], T], *, is_transient: Callable[[BaseException], bool],
                      num_retries: int, retry_delay: float, source: str, target: str, what: str,
                      error_class: type[RetrieverUnavailableError] = RetrieverUnavailableError) -> T:
    """``fn()``, retrying transient failures ``num_retries`` times with jittered exponential backoff.

    Each retry emits a ``"retriever.retry"`` event; when the retries run out, ``error_class`` names
    the server (``target``) and the operation (``what``). Other errors propagate at once.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt >= num_retries:
                raise error_class(
                    f"{source.capitalize()} at {target} failed the {what} after {attempt + 1} attempts "
                    f"({type(error).__name__}: {error}); check that the server is running and reachable "
                    f"(or raise num_retries=)") from error
            delay = retry_delay * (2 ** attempt) * (0.5 + random.random() / 2)
            from plait.plugins import emit  # lazy: only on the (rare) retry path
            emit("retriever.retry", source=source, target=target, attempt=attempt + 1,
                 max_retries=num_retries, delay=delay, error=f"{type(error).__name__}: {error}")
            time.sleep(delay)
            attempt += 1


def run_all(operation: Callable[[T], R], items: list[T], workers: int) -> list[R]:
    """One request per item, in order; the first failure fails the whole batch (no partial lists)
    and cancels the requests not yet started."""
    if len(items) == 1 or workers == 1:
        return [operation(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(operation, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
