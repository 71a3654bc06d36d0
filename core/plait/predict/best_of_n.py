"""BestOfN: run a module up to N times at temperature 1.0 and keep the best-rewarded prediction.

Each attempt runs a copy of the module whose predictors get ``temperature=1.0`` and a distinct
``seed`` (the predictor's own seed, or 0, plus the attempt index), so attempts differ and the LM
cache does not replay the first answer. The attempt loop is shared with Refine, which overrides
``_program`` (hints into the next attempt) and ``_learn`` / ``_alearn`` (feedback after a miss).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

from plait.primitives.module import Module
from plait.primitives.prediction import Prediction
from plait.settings import effective, settings

RewardFn = Callable[[dict[str, Any], Prediction], Any]


class BestOfN(Module):
    """``BestOfN(module, N, reward_fn, threshold)(**inputs)``: the first prediction whose
    ``reward_fn(inputs, prediction)`` reaches ``threshold`` (None: never stop early), else the
    best-rewarded one. A failed attempt (the module or the reward raised) counts towards
    ``fail_count`` (default N); reaching it re-raises that error, as does a run where every
    attempt failed. ``reward_fn`` returns a number, a bool, or a Prediction with a ``score``.
    """

    event_kind = "best_of_n.attempt"

    def __init__(self, module: Module, N: int, reward_fn: RewardFn,  # noqa: N803 - DSPy's name
                 threshold: float | None, fail_count: int | None = None):
        name = type(self).__name__
        if not isinstance(module, Module):
            raise TypeError(f"{name}(module=...) takes a plait Module (Predict, ChainOfThought, your own "
                            f"Module subclass), not {type(module).__name__}")
        if not isinstance(N, int) or isinstance(N, bool) or N < 1:
            raise ValueError(f"{name}(N={N!r}): N is the most attempts to make, an int >= 1")
        if not callable(reward_fn):
            raise TypeError(f"{name}(reward_fn=...) must be callable as reward_fn(inputs: dict, prediction) "
                            f"-> float; got {type(reward_fn).__name__}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise TypeError(f"{name}(threshold={threshold!r}): threshold must be a number (or None to "
                            f"always make all N attempts)")
        if fail_count is not None and (not isinstance(fail_count, int) or isinstance(fail_count, bool)
                                       or fail_count < 1):
            raise ValueError(f"{name}(fail_count={fail_count!r}): fail_count is how many failed attempts "
                             f"raise, an int >= 1; pass None for N (DSPy treats 0 as N too)")
        self.module = module
        # A reward that is itself a Module (an LM judge) is hidden from parameter discovery, so
        # optimizers tune the module being searched and not the judge.
        self.reward_fn = functools.partial(reward_fn) if isinstance(reward_fn, Module) else reward_fn
        self.threshold = threshold
        self.N = N
        self.fail_count = N if fail_count is None else fail_count

    # --- the attempt loop (sync and async share everything but the awaits) ------------------
    def forward(self, **kwargs: Any) -> Prediction:
        search = _Search(self, kwargs)
        for index in range(self.N):
            program = self._program(index, search)
            steps: list[Any] = []
            try:
                with settings.context(trace=steps):
                    prediction = program(**kwargs)
                    taken = list(steps)   # the reward's own LM calls are not part of the attempt
                    raw = self.reward_fn(kwargs, prediction)
            except Exception as error:
                search.failed(index, error)
                continue
            if search.scored(index, program, prediction, raw, taken):
                break
            if index < self.N - 1:
                self._learn(search, program, prediction, taken)
        return search.finish()

    async def aforward(self, **kwargs: Any) -> Prediction:
        search = _Search(self, kwargs)
        for index in range(self.N):
            program = self._program(index, search)
            steps: list[Any] = []
            try:
                with settings.context(trace=steps):
                    prediction = await program.acall(**kwargs)
                    taken = list(steps)
                    raw = self.reward_fn(kwargs, prediction)
                    if inspect.isawaitable(raw):
                        raw = await raw
            except Exception as error:
                search.failed(index, error)
                continue
            if search.scored(index, program, prediction, raw, taken):
                break
            if index < self.N - 1:
                await self._alearn(search, program, prediction, taken)
        return search.finish()

    # --- what subclasses change -------------------------------------------------------------
    def _program(self, index: int, search: _Search) -> Module:
        """A copy of the module whose predictors sample at temperature 1.0 with this attempt's seed."""
        return rollout_copy(self.module, index)

    def _learn(self, search: _Search, program: Module, prediction: Prediction, steps: list[Any]) -> None:
        """After an attempt below the threshold (not the last): nothing to learn in BestOfN."""

    async def _alearn(self, search: _Search, program: Module, prediction: Prediction, steps: list[Any]) -> None:
        self._learn(search, program, prediction, steps)


def rollout_copy(module: Module, index: int) -> Module:
    """``module`` copied, each predictor with ``temperature=1.0`` and ``seed`` = its seed (or 0) + index."""
    program = module.deepcopy()
    for _, predictor in program.named_predictors():
        config = getattr(predictor, "config", None)
        if isinstance(config, dict):
            base = config.get("seed")
            seed = (base if isinstance(base, int) and not isinstance(base, bool) else 0) + index
            predictor.config = {**config, "temperature": 1.0, "seed": seed}
    return program


def commit_trace(steps: list[Any], program: Module, original: Module) -> None:
    """Add an attempt's trace to the caller's trace (if one is being recorded), naming the
    original predictors instead of their per-attempt copies so optimizers can map the steps."""
    outer = effective().get("trace")
    if outer is None or not steps:
        return
    if program is original:
        outer.extend(steps)
        return
    originals = {id(copied): kept for (_, copied), (_, kept)
                 in zip(program.named_predictors(), original.named_predictors())}
    outer.extend((originals.get(id(step[0]), step[0]), *step[1:]) for step in steps)


def as_reward(raw: Any, owner: str) -> float:
    """A reward as a float (bools and Predictions with a ``score`` included)."""
    if isinstance(raw, (int, float)):   # bool is an int
        return float(raw)
    if isinstance(raw, Prediction):
        return float(raw)   # raises ValueError naming the missing 'score'
    raise TypeError(f"{owner}: reward_fn returned {type(raw).__name__} {raw!r}; it must return a number, "
                    f"a bool, or a Prediction with a 'score' field")


class _Search:
    """One call's bookkeeping: the best attempt so far, errors, and Refine's advice."""

    __slots__ = ("owner", "kwargs", "best", "best_reward", "best_steps", "best_program", "errors",
                 "last_error", "last_reward", "advice")

    def __init__(self, owner: BestOfN, kwargs: dict[str, Any]):
        self.owner = owner
        self.kwargs = kwargs
        self.best: Prediction | None = None
        self.best_reward = -math.inf
        self.best_steps: list[Any] = []
        self.best_program: Module | None = None
        self.errors = 0
        self.last_error: Exception | None = None
        self.last_reward = -math.inf
        self.advice: dict[str, str] | None = None

    def failed(self, index: int, error: Exception) -> None:
        owner = self.owner
        self.errors += 1
        self.last_error = error
        _emit(owner, attempt=index + 1, error=f"{type(error).__name__}: {error}")
        if self.errors >= owner.fail_count:
            error.add_note(f"{type(owner).__name__}: attempt {index + 1} of {owner.N} failed; that makes "
                           f"{self.errors} failed attempts (fail_count={owner.fail_count})")
            raise error

    def scored(self, index: int, program: Module, prediction: Prediction, raw: Any, steps: list[Any]) -> bool:
        """Record a finished attempt; True when it reaches the threshold (stop)."""
        owner = self.owner
        reward = as_reward(raw, type(owner).__name__)
        self.last_reward = reward
        _emit(owner, attempt=index + 1, reward=reward)
        if self.best is None or reward > self.best_reward:
            self.best, self.best_reward, self.best_steps, self.best_program = prediction, reward, steps, program
        return owner.threshold is not None and reward >= owner.threshold

    def finish(self) -> Prediction:
        if self.best is None:   # every attempt failed (fewer than fail_count times)
            error = self.last_error
            assert error is not None   # N >= 1, so some attempt either succeeded or failed
            error.add_note(f"{type(self.owner).__name__}: all {self.owner.N} attempts failed; this is the last error")
            raise error
        assert self.best_program is not None
        commit_trace(self.best_steps, self.best_program, self.owner.module)
        return self.best


def _emit(owner: BestOfN, **data: Any) -> None:
    from plait.plugins import emit   # lazy: plugins load on first use, not at import

    emit(owner.event_kind, source=type(owner).__name__, of=owner.N, **data)
