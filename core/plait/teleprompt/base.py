"""The optimizer (teleprompter) contract and the helpers every optimizer shares.

An optimizer is pure: ``compile(student, *, trainset, teacher=None, valset=None)`` returns a NEW
program (the student is never mutated), keeps no run state on ``self``, reports progress only
through ``plait_event`` (``plait.plugins.emit``), and is deterministic for a given ``seed`` and
LM cache. Cost control: ``estimate_calls`` says how many LM calls a compile may make before it
starts, and ``budget=Budget(max_calls=..., max_tokens=...)`` stops it at a safe point.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from plait.errors import PlaitError
from plait.lm.usage import UsageTracker
from plait.primitives.example import Example
from plait.primitives.module import Module

T = TypeVar("T")
R = TypeVar("R")


class BudgetExceeded(PlaitError, RuntimeError):
    """A compile used up its LM call or token budget (raised at a safe point, then handled)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """Upper bounds for one compile: LM calls actually sent (cache hits are free) and tokens."""

    max_calls: int | None = None
    max_tokens: int | None = None

    def check(self, tracker: UsageTracker) -> None:
        sent = tracker.calls - tracker.cached_calls
        if self.max_calls is not None and sent >= self.max_calls:
            raise BudgetExceeded(f"the compile made {sent} LM calls, its budget is {self.max_calls}")
        if self.max_tokens is not None:
            used = tracker.total().total_tokens
            if used >= self.max_tokens:
                raise BudgetExceeded(f"the compile used {used} tokens, its budget is {self.max_tokens}")


@dataclass(frozen=True, slots=True)
class CallEstimate:
    """What ``estimate_calls`` returns: an upper bound on LM calls, and how it was reached."""

    max_calls: int
    detail: str = ""


class Teleprompter:
    """Base class for optimizers."""

    name: str = "teleprompter"

    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None) -> Module:
        raise NotImplementedError(f"{type(self).__name__} must implement compile(student, *, trainset, ...)")

    def estimate_calls(self, student: Module, *, trainset: Sequence[Example],
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        """An upper bound on the LM calls ``compile`` would make (before any cache hits)."""
        raise NotImplementedError(f"{type(self).__name__} does not estimate its LM calls")

    def get_params(self) -> dict[str, Any]:
        """The optimizer's configuration (DSPy has this; handy for logging)."""
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}


def check_trainset(trainset: Any, name: str = "trainset") -> list[Example]:
    """A list of Examples with input keys set, or a clear error naming the fix."""
    if trainset is None:
        raise ValueError(f"compile() needs {name}=[plait.Example(...).with_inputs(...), ...]")
    items = list(trainset)
    if not items:
        raise ValueError(f"{name} is empty: give at least one Example")
    for index, example in enumerate(items):
        if not isinstance(example, Example):
            raise TypeError(f"{name}[{index}] is a {type(example).__name__}, not a plait.Example")
        try:
            example.inputs()
        except ValueError:
            raise ValueError(f"{name}[{index}] has no input keys: call .with_inputs('question', ...) on it") from None
    return items


def parallel_map(fn: Callable[[T], R], items: Iterable[T], num_threads: int | None = None) -> list[R]:
    """``fn`` over ``items`` in threads, in order; each call runs in a copy of the caller's context."""
    items = list(items)
    threads = max(1, min(num_threads or 1, len(items) or 1))
    if threads == 1:
        return [contextvars.copy_context().run(fn, item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, item) for item in items]
        return [future.result() for future in futures]
