"""Parallel: run (module, example) pairs in threads; results in order, per-item errors collected.

``run_calls`` is the engine ``Module.batch`` shares: every call runs in its own copy of the
caller's context (so ``plait.context(lm=...)`` applies inside it and nothing leaks between
items), a failed item gives None and its exception is collected, and more than ``max_errors``
failures stop the run with ``BatchError`` (which carries what had finished).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from plait.primitives.example import Example
from plait.primitives.module import BatchError

Failure = tuple[int, Exception]


class Parallel:
    """``Parallel(num_threads=4)([(module, example), ...])`` -> results in input order.

    An example may be an Example (called with its ``inputs()``, or passed whole when
    ``access_examples=False``), a dict (keyword arguments), a tuple (positional arguments), or a
    list when the module is itself a Parallel. A failed item gives None; with
    ``return_failed_examples`` the return is ``(results, failed_examples, exceptions)``. More than
    ``max_errors`` failures (default ``plait.settings.max_errors``) raise BatchError.
    """

    def __init__(self, num_threads: int | None = None, max_errors: int | None = None,
                 access_examples: bool = True, return_failed_examples: bool = False,
                 provide_traceback: bool | None = None, disable_progress_bar: bool = False):
        if num_threads is not None:
            _positive_int("Parallel", "num_threads", num_threads)
        if max_errors is not None:
            _error_limit("Parallel", max_errors)
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.access_examples = access_examples
        self.return_failed_examples = return_failed_examples
        self.provide_traceback = provide_traceback
        self.disable_progress_bar = disable_progress_bar
        # the last run's failures, as DSPy exposes them
        self.failed_examples: list[Any] = []
        self.exceptions: list[Exception] = []

    def __call__(self, exec_pairs: Iterable[Sequence[Any]], num_threads: int | None = None) -> Any:
        return self.forward(exec_pairs, num_threads)

    def forward(self, exec_pairs: Iterable[Sequence[Any]], num_threads: int | None = None) -> Any:
        pairs = list(exec_pairs)
        calls = [self._call_for(index, pair) for index, pair in enumerate(pairs)]   # checked up front
        results, failures = run_calls(calls, num_threads=self.num_threads if num_threads is None else num_threads,
                                      max_errors=self.max_errors, provide_traceback=self.provide_traceback,
                                      display=not self.disable_progress_bar, task="Parallel")
        self.failed_examples = [pairs[index][1] for index, _ in failures]
        self.exceptions = [error for _, error in failures]
        if self.return_failed_examples:
            return results, list(self.failed_examples), list(self.exceptions)
        return results

    def _call_for(self, index: int, pair: Any) -> Callable[[], Any]:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not callable(pair[0]):
            raise TypeError(f"Parallel: exec_pairs[{index}] must be a (module, example) pair, got "
                            f"{type(pair).__name__}")
        module, example = pair
        if isinstance(example, Example):
            if not self.access_examples:
                return functools.partial(module, example)
            try:
                return functools.partial(module, **example.inputs())
            except ValueError as error:
                raise ValueError(f"Parallel: exec_pairs[{index}]'s example has no input keys; call "
                                 f".with_inputs('question', ...) on it, or pass access_examples=False") from error
        if isinstance(example, Mapping):
            return functools.partial(module, **example)
        if isinstance(example, tuple):
            return functools.partial(module, *example)
        if isinstance(example, list) and isinstance(module, Parallel):
            return functools.partial(module, example)
        raise TypeError(f"Parallel: exec_pairs[{index}]'s example is a {type(example).__name__}; pass an "
                        f"Example, a dict of keyword arguments, a tuple of positional arguments, or a list "
                        f"of pairs for a nested Parallel")


def run_calls(calls: Sequence[Callable[[], Any]], *, num_threads: int | None = None, max_errors: int | None = None,
              provide_traceback: bool | None = None, display: bool = True, task: str = "Parallel",
              thread_name_prefix: str = "plait-parallel") -> tuple[list[Any], list[Failure]]:
    """Run each call in a thread, each in a copy of the caller's context.

    Returns ``(results, failures)``: results in call order (None for a failed call) and
    ``(index, exception)`` pairs in index order. Raises BatchError once more than ``max_errors``
    calls failed (pending calls are cancelled, running ones finish first).
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from plait.plugins import emit
    from plait.settings import settings

    threads = _positive_int(task, "num_threads", settings.get("num_threads", 8) if num_threads is None else num_threads)
    limit = _error_limit(task, settings.get("max_errors") if max_errors is None else max_errors)
    total = len(calls)
    results: list[Any] = [None] * total
    failures: list[Failure] = []
    if not calls:
        return results, failures
    source = task.lower()
    emit("progress", source=source, task=task, done=0, total=total, display=display)
    pool = ThreadPoolExecutor(max_workers=min(threads, total), thread_name_prefix=thread_name_prefix)
    try:
        # one context copy per call: the caller's settings, and no leaks between calls
        futures = {pool.submit(contextvars.copy_context().run, call): index for index, call in enumerate(calls)}
        done = 0
        for future in as_completed(futures):
            index = futures[future]
            done += 1
            error = future.exception()
            if error is None:
                results[index] = future.result()
            elif not isinstance(error, Exception):
                raise error   # KeyboardInterrupt / SystemExit in a worker stop the run
            else:
                failures.append((index, error))
                _logger().warning("%s: item %d failed: %s: %s%s", task, index, type(error).__name__, error,
                                  "" if provide_traceback else " (provide_traceback=True logs the traceback)",
                                  exc_info=error if provide_traceback else None)
                if limit is not None and len(failures) > limit:
                    failures.sort(key=lambda failure: failure[0])
                    stop = BatchError(f"{task} stopped after {len(failures)} failed items (max_errors={limit}) "
                                      f"of {total}; the last failure (item {index}) is chained below. Fix the "
                                      f"program, or pass a larger max_errors")
                    stop.results, stop.failures = results, failures   # what had finished, for the caller
                    raise stop from error
            emit("progress", source=source, task=task, done=done, total=total,
                 postfix={"errors": len(failures)}, display=display)
    finally:
        # pending calls are cancelled; running ones finish, so nothing runs after we return
        pool.shutdown(wait=True, cancel_futures=True)
    failures.sort(key=lambda failure: failure[0])
    return results, failures


def _positive_int(task: str, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{task}({name}={value!r}): {name} must be an int >= 1")
    return value


def _error_limit(task: str, value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{task}(max_errors={value!r}): max_errors must be an int >= 0 or None")
    return value


def _logger() -> Any:
    import logging   # on first failure only

    return logging.getLogger("plait.parallel")
