"""LabeledFewShot: every predictor gets ``k`` training examples as demos (no LM calls)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.teleprompt.base import CallEstimate, Teleprompter, check_trainset
from plait.teleprompt.session import compile_session


def check_count(owner: str, name: str, value: Any, minimum: int = 0, *, optional: bool = False) -> None:
    """Raise a ValueError naming the argument unless ``value`` is an int >= ``minimum``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an int >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{owner}({name}={value!r}): {name} must be {allowed}")


def set_labeled_demos(program: Module, trainset: Sequence[Example], k: int, *, sample: bool,
                      rng: random.Random) -> None:
    """Give each predictor of ``program`` (a fresh copy) ``k`` training examples as demos.

    One ``rng`` serves every predictor in turn, so two predictors get different samples.
    Demos are copies: editing a demo never edits the caller's trainset.
    """
    count = min(k, len(trainset))
    for _, predictor in program.named_predictors():
        chosen = rng.sample(list(trainset), count) if sample else list(trainset[:count])
        predictor.demos = [example.copy() for example in chosen]


class LabeledFewShot(Teleprompter):
    """Demos straight from the labelled trainset: ``k`` per predictor, sampled with ``seed``.

    ``sample=False`` takes the first ``k`` examples instead (``compile(..., sample=False)`` as
    in DSPy also works).
    """

    name = "labeled-few-shot"

    def __init__(self, k: int = 16, *, sample: bool = True, seed: int = 0):
        check_count("LabeledFewShot", "k", k)
        self.k = k
        self.sample = sample
        self.seed = seed

    def estimate_calls(self, student: Module, *, trainset: Sequence[Example],
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        return CallEstimate(0, "LabeledFewShot copies training examples; it makes no LM calls")

    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None, sample: bool | None = None) -> Module:
        examples = check_trainset(trainset)
        estimate = self.estimate_calls(student, trainset=examples)
        with compile_session(self.name, None, estimate, trainset=len(examples)) as session:
            program = student.reset_copy()
            set_labeled_demos(program, examples, self.k, sample=self.sample if sample is None else sample,
                              rng=random.Random(self.seed))
            program._compiled = True
            session.result = {"demos_per_predictor": min(self.k, len(examples))}
        return program
