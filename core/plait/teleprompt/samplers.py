"""Samplers for MIPROv2's search over categorical choices (which instruction, which demo set).

Both samplers share one ask/tell interface: ``ask() -> {name: index}``, ``tell(params, score)``
for the score of what ``ask`` returned, ``add(params, score)`` for an observation made outside
the loop (the baseline, a full evaluation). :class:`TPESampler` wraps optuna's TPE sampler
(``pip install 'plait[optimizers]'``); :class:`RandomSampler` is the seeded fallback used when
optuna is not installed.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

Params = dict[str, int]


class Sampler(Protocol):
    name: str

    def ask(self) -> Params: ...

    def tell(self, params: Params, score: float) -> None: ...

    def add(self, params: Params, score: float) -> None: ...


def load_optuna() -> Any:
    """The optuna module, or None when it is not installed (tests hide it to force the fallback)."""
    try:
        import optuna
    except ImportError:
        return None
    return optuna


def make_sampler(space: Mapping[str, int], seed: int, num_trials: int = 30) -> Sampler:
    """TPE when optuna is importable, else the seeded random search. ``space``: name -> choices."""
    optuna = load_optuna()
    if optuna is None:
        return RandomSampler(space, seed)
    return TPESampler(optuna, space, seed, startup_trials=max(3, num_trials // 3))


class RandomSampler:
    """Uniform choices from a seeded ``random.Random``; avoids combinations already observed
    while untried ones remain (so small spaces are covered instead of resampled)."""

    name = "random"
    _MAX_REDRAWS = 50

    def __init__(self, space: Mapping[str, int], seed: int):
        self.space = dict(space)
        self.rng = random.Random(seed)
        self.seen: set[tuple[int, ...]] = set()
        self.size = 1
        for count in self.space.values():
            self.size *= count

    def _key(self, params: Params) -> tuple[int, ...]:
        return tuple(params[name] for name in self.space)

    def ask(self) -> Params:
        params = self._draw()
        for _ in range(self._MAX_REDRAWS):
            if self._key(params) not in self.seen or len(self.seen) >= self.size:
                break
            params = self._draw()
        return params

    def _draw(self) -> Params:
        return {name: self.rng.randrange(count) for name, count in self.space.items()}

    def tell(self, params: Params, score: float) -> None:
        self.seen.add(self._key(params))

    add = tell


class TPESampler:
    """optuna's TPE (multivariate, seeded) through its ask/tell interface.

    ``startup_trials`` observations (the baseline and full evaluations count) are sampled at
    random before TPE models the scores; optuna's default of 10 would leave a 10-trial search
    random throughout, so MIPROv2 uses a third of its trials (at least 3).
    """

    name = "tpe"

    def __init__(self, optuna: Any, space: Mapping[str, int], seed: int, startup_trials: int = 10):
        self.optuna = optuna
        self.distributions = {name: optuna.distributions.CategoricalDistribution(list(range(count)))
                              for name, count in space.items()}
        with self._quiet():
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup_trials)
            self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.pending: dict[tuple[tuple[str, int], ...], list[Any]] = {}

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        # optuna logs every trial at INFO to stderr and warns that multivariate TPE is
        # experimental; plait never prints, so both are silenced for the duration of the call.
        logging = self.optuna.logging
        previous = logging.get_verbosity()
        logging.set_verbosity(logging.WARNING)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
                yield
        finally:
            logging.set_verbosity(previous)

    def ask(self) -> Params:
        with self._quiet():
            trial = self.study.ask(self.distributions)
        params = {name: int(trial.params[name]) for name in self.distributions}
        self.pending.setdefault(tuple(sorted(params.items())), []).append(trial)
        return params

    def tell(self, params: Params, score: float) -> None:
        trials = self.pending.get(tuple(sorted(params.items())))
        if not trials:
            raise ValueError(f"tell() got parameters {params} that ask() did not return")
        with self._quiet():
            self.study.tell(trials.pop(0), score)

    def add(self, params: Params, score: float) -> None:
        with self._quiet():
            trial = self.optuna.trial.create_trial(params=dict(params), distributions=self.distributions,
                                                   value=score)
            self.study.add_trial(trial)
