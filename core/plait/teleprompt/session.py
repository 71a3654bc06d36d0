"""One compile's bookkeeping, shared by the optimizers: usage tracking, budget checks, events.

``with compile_session(self.name, budget, estimate) as session:`` tracks every LM call made
inside (worker threads included, since they copy the caller's context), emits
``compile.start`` on entry and ``compile.end`` on exit, and ``session.check()`` raises
:class:`BudgetExceeded` at a safe point once the budget is used up (``session.budget_hit``
records it and emits ``compile.budget``). The session lives for one ``compile`` call, so an
optimizer keeps no run state on ``self``.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from plait.lm.usage import UsageTracker, track_usage
from plait.plugins import emit
from plait.teleprompt.base import Budget, BudgetExceeded, CallEstimate

R = TypeVar("R")

# The priority of the work running in this context (lower goes first); see PriorityGate.
_priority: contextvars.ContextVar[int] = contextvars.ContextVar("plait_compile_priority", default=0)


class PriorityGate:
    """At most ``slots`` holders at once; waiters with the lowest priority number go first.

    An optimizer that overlaps steps (random search scores one candidate while the next one is
    built) passes every program run through one gate, so no more than ``num_threads`` run at
    once and the earlier step is never starved by the later one.
    """

    def __init__(self, slots: int):
        self._free = max(1, slots)
        self._waiting: list[tuple[int, int]] = []   # a heap of (priority, arrival)
        self._arrivals = itertools.count()
        self._condition = threading.Condition()

    @contextmanager
    def hold(self, priority: int) -> Iterator[None]:
        with self._condition:
            ticket = (priority, next(self._arrivals))
            heapq.heappush(self._waiting, ticket)
            while self._free == 0 or self._waiting[0] != ticket:
                self._condition.wait()
            heapq.heappop(self._waiting)
            self._free -= 1
            if self._free and self._waiting:
                self._condition.notify_all()   # the next waiter may take another free slot
        try:
            yield
        finally:
            with self._condition:
                self._free += 1
                self._condition.notify_all()


class CompileSession:
    """The state of one compile (never stored on the optimizer)."""

    def __init__(self, source: str, budget: Budget | None, tracker: UsageTracker, quiet: bool):
        self.source = source
        self.budget = budget
        self.tracker = tracker
        self.quiet = quiet            # nested compiles (KNNFewShot per call) emit nothing
        self.started = time.perf_counter()
        self.stopped_by_budget = False
        self.result: dict[str, Any] = {}   # extra data for the compile.end event
        self.gate: PriorityGate | None = None   # set by optimizers that overlap their steps

    def slot(self) -> AbstractContextManager[Any]:
        """Hold one of the gate's slots (at this context's priority) around one program run."""
        gate = self.gate
        return nullcontext() if gate is None else gate.hold(_priority.get())

    @contextmanager
    def priority(self, value: int) -> Iterator[None]:
        """Work started inside (threads copy the context) waits for slots at this priority."""
        token = _priority.set(value)
        try:
            yield
        finally:
            _priority.reset(token)

    def check(self) -> None:
        """Raise BudgetExceeded when the budget is used up (call only at safe points)."""
        if self.budget is not None:
            self.budget.check(self.tracker)

    def budget_hit(self, error: BudgetExceeded) -> None:
        """Record that the compile stops early for its budget, once."""
        if self.stopped_by_budget:
            return
        self.stopped_by_budget = True
        if not self.quiet:
            emit("compile.budget", source=self.source, reason=str(error), **self.usage())

    def progress(self, task: str, done: int, total: int | None, *, display: bool = True,
                 **postfix: Any) -> None:
        if not self.quiet:
            emit("progress", source=self.source, task=task, done=done, total=total,
                 postfix=postfix or None, display=display)

    def usage(self) -> dict[str, int]:
        tracker = self.tracker
        return {"calls": tracker.calls, "cached_calls": tracker.cached_calls,
                "sent_calls": tracker.calls - tracker.cached_calls,
                "tokens": tracker.total().total_tokens}


@contextmanager
def compile_session(source: str, budget: Budget | None, estimate: CallEstimate | None, *,
                    quiet: bool = False, **start_data: Any) -> Iterator[CompileSession]:
    """Track one compile: ``compile.start`` now, ``compile.end`` (with ``session.result``) at the end."""
    if budget is not None and not isinstance(budget, Budget):
        raise TypeError(f"budget must be a plait.teleprompt.Budget(max_calls=..., max_tokens=...), "
                        f"not {type(budget).__name__}")
    with track_usage() as tracker:
        session = CompileSession(source, budget, tracker, quiet)
        if not quiet:
            emit("compile.start", source=source,
                 max_calls=None if estimate is None else estimate.max_calls,
                 detail="" if estimate is None else estimate.detail,
                 budget_calls=None if budget is None else budget.max_calls,
                 budget_tokens=None if budget is None else budget.max_tokens, **start_data)
        failed: BaseException | None = None
        try:
            yield session
        except BaseException as error:
            failed = error
            raise
        finally:
            if not quiet:
                emit("compile.end", source=source, seconds=round(time.perf_counter() - session.started, 6),
                     stopped_by_budget=session.stopped_by_budget,
                     error=None if failed is None else f"{type(failed).__name__}: {failed}",
                     **session.usage(), **session.result)



def ordered_until(fn: Callable[[int], R], count: int, num_threads: int, wanted: int,
                  is_hit: Callable[[R], bool]) -> Iterator[R]:
    """Yield ``fn(0)``, ``fn(1)``, ... in index order until ``wanted`` results were hits.

    Calls run ahead in up to ``num_threads`` threads, but only as far as looks needed: a new one
    starts while the hits expected from those not yet yielded (known hits, plus the running
    ones times the hit rate seen so far, 1 at first) fall short of the hits still wanted. So a
    run whose examples all pass makes no call it does not use, and one whose examples mostly
    fail keeps every thread busy. Results come back in index order whatever the timing, so the
    caller picks the same results as a sequential run. Closing the generator (or stopping after
    ``wanted`` hits) cancels what has not started and waits for what is running. Each call runs
    in its own copy of the caller's context; ``fn`` should return its failures, not raise them.
    """
    if wanted <= 0 or count <= 0:
        return
    threads = max(1, min(num_threads, count))
    hits = 0
    if threads == 1:
        for index in range(count):   # lazily: stopping early skips the rest
            result = contextvars.copy_context().run(fn, index)
            hits += bool(is_hit(result))
            yield result
            if hits >= wanted:
                return
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="plait-compile")
    futures: list[Future[R]] = []
    position = 0   # the next index to yield
    try:
        while position < count:
            while len(futures) < count and _should_start(futures, position, threads, wanted - hits, is_hit):
                futures.append(pool.submit(contextvars.copy_context().run, fn, len(futures)))
            future = futures[position]
            if not future.done():
                wait([f for f in futures[position:] if not f.done()], return_when=FIRST_COMPLETED)
                continue
            result = future.result()
            position += 1
            hits += bool(is_hit(result))
            yield result
            if hits >= wanted:
                return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _should_start(futures: list[Future[Any]], position: int, threads: int, needed: int,
                  is_hit: Callable[[Any], bool]) -> bool:
    ahead = futures[position:]
    running = sum(1 for future in ahead if not future.done())
    if running >= threads:
        return False
    finished = [future.result() for future in futures if future.done()]
    rate = (sum(1 for result in finished if is_hit(result)) + 1) / (len(finished) + 1)
    known = sum(1 for future in ahead if future.done() and is_hit(future.result()))
    return known + running * rate < needed
