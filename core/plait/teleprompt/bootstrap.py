"""BootstrapFewShot: demos taken from the teacher's own traces on training examples that pass.

For each training example (in order) the teacher runs under a trace; when the metric accepts
its prediction, every traced predictor step becomes a demo for the student predictor of the
same name, so intermediate steps need no labels. Later rounds retry a failed example at a fresh
sampling seed. Examples run in threads, but their outcomes are read in trainset order, so the
demos chosen never depend on thread timing.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from plait.errors import PlaitError
from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.settings import context, settings
from plait.teleprompt.base import Budget, BudgetExceeded, CallEstimate, Teleprompter, check_trainset
from plait.teleprompt.labeled import check_count, set_labeled_demos
from plait.teleprompt.session import CompileSession, compile_session, ordered_until

logger = logging.getLogger("plait.teleprompt")

Metric = Callable[..., Any]


class BootstrapError(PlaitError, RuntimeError):
    """Bootstrapping stopped because the teacher or the metric failed more than ``max_errors``
    times. The error that tipped it over is chained as ``__cause__``."""


@dataclass(slots=True)
class BootstrapResult:
    """What one bootstrap run produced (``BootstrapFewShot.bootstrap``)."""

    program: Module
    bootstrapped: list[int]          # trainset indices whose traces became demos
    attempted: int                   # examples whose outcome was read (in trainset order)
    errors: int                      # failed teacher runs or metric calls
    stopped_by_budget: bool = False


@dataclass(slots=True)
class _Attempt:
    """One training example's teacher runs (up to ``max_rounds``), done in a worker thread."""

    demos: dict[str, Example] | None = None   # predictor name -> demo, when a round passed
    errors: list[Exception] = field(default_factory=list)
    budget: BudgetExceeded | None = None      # the budget ran out before the example finished


@dataclass(frozen=True, slots=True)
class _Plan:
    """A bootstrap run's fixed inputs, read (never written) by the worker threads."""

    session: CompileSession
    teacher: Module
    trainset: list[Example]


class BootstrapFewShot(Teleprompter):
    """Few-shot demos bootstrapped from the teacher's passing traces, topped up with labeled ones.

    Args:
        metric: ``metric(example, prediction, trace) -> bool | float``; None accepts every run.
        metric_threshold: a numeric metric passes when ``>=`` this; otherwise its truth value counts.
        teacher_settings: settings applied around each teacher run (``plait.context(**...)``),
            e.g. ``{"lm": bigger_lm}``.
        max_bootstrapped_demos: stop once this many examples gave demos.
        max_labeled_demos: top each predictor up to this many demos with labelled examples that
            were not bootstrapped; an uncompiled teacher also gets this many labelled demos
            (replacing its own; its predictors keep their LMs).
        max_rounds: tries per example; round r > 0 runs at ``temperature=1.0, seed=r`` so the
            LM (and its cache) gives a fresh answer.
        max_errors: failed runs tolerated (default ``plait.settings.max_errors``); one more
            raises :class:`BootstrapError`.
        num_threads: examples run at once (default ``plait.settings.num_threads``).
        seed: seeds the labelled samples; the same seed and LM answers give the same demos.
        budget: ``Budget(max_calls=..., max_tokens=...)``; when it runs out the compile stops
            at the next example and returns the program built from what it has.
    """

    name = "bootstrap-few-shot"

    def __init__(self, metric: Metric | None = None, metric_threshold: float | None = None,
                 teacher_settings: Mapping[str, Any] | None = None, max_bootstrapped_demos: int = 4,
                 max_labeled_demos: int = 16, max_rounds: int = 1, max_errors: int | None = None,
                 num_threads: int | None = None, seed: int = 0, budget: Budget | None = None):
        if metric is not None and not callable(metric):
            raise TypeError(f"BootstrapFewShot(metric=...) must be callable as metric(example, prediction, "
                            f"trace=None), not {type(metric).__name__}")
        if teacher_settings is not None and not isinstance(teacher_settings, Mapping):
            raise TypeError("BootstrapFewShot(teacher_settings=...) must be a dict of settings, "
                            "e.g. {'lm': plait.LM(...)}")
        if teacher_settings is not None and "trace" in teacher_settings:
            raise ValueError("BootstrapFewShot(teacher_settings=...) cannot set 'trace': bootstrapping "
                             "traces every teacher run itself")
        check_count("BootstrapFewShot", "max_bootstrapped_demos", max_bootstrapped_demos)
        check_count("BootstrapFewShot", "max_labeled_demos", max_labeled_demos)
        check_count("BootstrapFewShot", "max_rounds", max_rounds, 1)
        check_count("BootstrapFewShot", "max_errors", max_errors, optional=True)
        check_count("BootstrapFewShot", "num_threads", num_threads, 1, optional=True)
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors
        self.num_threads = num_threads
        self.seed = seed
        self.budget = budget

    # --- the Teleprompter contract --------------------------------------------------------
    def estimate_calls(self, student: Module, *, trainset: Sequence[Example],
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        """Every example run by the teacher in every round, one LM call per predictor (adapter
        retries and loops inside ``forward`` are not counted)."""
        if self.max_bootstrapped_demos == 0:
            return CallEstimate(0, "max_bootstrapped_demos=0: only labelled demos, no LM calls")
        per_run = max(1, len(student.named_predictors()))
        calls = len(trainset) * per_run * self.max_rounds
        return CallEstimate(calls, f"{len(trainset)} examples x {per_run} predictor calls x "
                                   f"{self.max_rounds} rounds (at most)")

    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None) -> Module:
        examples = check_trainset(trainset)
        estimate = self.estimate_calls(student, trainset=examples)
        with compile_session(self.name, self.budget, estimate, trainset=len(examples)) as session:
            result = self.bootstrap(session, student, trainset=examples, teacher=teacher)
            session.result = {"bootstrapped": len(result.bootstrapped), "attempted": result.attempted,
                              "errors": result.errors}
        return result.program

    # --- the work, reusable by other optimizers (random search, KNN) ------------------------
    def bootstrap(self, session: CompileSession, student: Module, *, trainset: list[Example],
                  teacher: Module | None = None, display: bool = True) -> BootstrapResult:
        """Bootstrap within ``session`` (its usage tracker and budget); returns a new program."""
        prepared = self._prepare_teacher(student, teacher, trainset)
        _check_structure(student, prepared)
        plan = _Plan(session, prepared, trainset)
        collected: dict[str, list[Example]] = {name: [] for name, _ in student.named_predictors()}
        bootstrapped: list[int] = []
        errors: list[Exception] = []
        attempted = 0
        stopped = False
        limit = self.max_errors if self.max_errors is not None else settings.get("max_errors")
        threads = self.num_threads or settings.get("num_threads") or 1
        total = len(trainset)
        if self.max_bootstrapped_demos > 0:
            session.progress("Bootstrapping", 0, total, display=display, bootstrapped=0)
            # a budget stop counts as a hit so the scheduler starts nothing after it
            outcomes = ordered_until(lambda index: self._attempt(plan, index), total, threads,
                                     self.max_bootstrapped_demos,
                                     lambda attempt: attempt.demos is not None or attempt.budget is not None)
            with closing(outcomes):
                for index, attempt in enumerate(outcomes):
                    if attempt.budget is not None:
                        session.budget_hit(attempt.budget)
                        stopped = True
                        break
                    attempted += 1
                    for error in attempt.errors:
                        errors.append(error)
                        logger.warning("bootstrap: training example %d failed: %s: %s", index,
                                       type(error).__name__, error)
                        if limit is not None and len(errors) > limit:
                            raise BootstrapError(
                                f"bootstrapping stopped after {len(errors)} failed teacher runs or metric "
                                f"calls (max_errors={limit}); the first was {type(errors[0]).__name__}: "
                                f"{errors[0]}. Fix the program or the metric, or pass a larger max_errors"
                            ) from error
                    if attempt.demos is not None:
                        bootstrapped.append(index)
                        for name, demo in attempt.demos.items():
                            collected[name].append(demo)
                    session.progress("Bootstrapping", attempted, total, display=display,
                                     bootstrapped=len(bootstrapped))
                    if len(bootstrapped) >= self.max_bootstrapped_demos:
                        break
        program = self._build_student(student, trainset, collected, set(bootstrapped))
        return BootstrapResult(program, bootstrapped, attempted, len(errors), stopped)

    def _prepare_teacher(self, student: Module, teacher: Module | None, trainset: list[Example]) -> Module:
        source = teacher if teacher is not None else student
        prepared = source.deepcopy()
        if self.max_labeled_demos and not getattr(source, "_compiled", False):
            # As in DSPy, an uncompiled teacher answers with labelled demos in its prompts (they
            # replace its own); unlike DSPy's reset copy, its predictors keep their LMs.
            set_labeled_demos(prepared, trainset, self.max_labeled_demos, sample=True,
                              rng=random.Random(self.seed))
        return prepared

    def _build_student(self, student: Module, trainset: list[Example],
                       collected: dict[str, list[Example]], bootstrapped: set[int]) -> Module:
        rng = random.Random(self.seed)
        unused = [example for index, example in enumerate(trainset) if index not in bootstrapped]
        rng.shuffle(unused)
        program = student.reset_copy()
        for name, predictor in program.named_predictors():
            augmented = collected[name][: self.max_bootstrapped_demos]
            size = max(0, min(self.max_labeled_demos - len(augmented), len(unused)))
            predictor.demos = augmented + [example.copy() for example in rng.sample(unused, size)]
        program._compiled = True
        return program

    # --- one example, in a worker thread ----------------------------------------------------
    def _attempt(self, plan: _Plan, index: int) -> _Attempt:
        example = plan.trainset[index]
        attempt = _Attempt()
        teacher = plan.teacher
        copied = False
        if any(example in predictor.demos for _, predictor in teacher.named_predictors()):
            # the example must not be its own demo; a private copy keeps threads apart
            teacher = _without_demo(teacher, example)
            copied = True
        inputs = example.inputs()
        for round_index in range(self.max_rounds):
            try:
                plan.session.check()
            except BudgetExceeded as error:
                attempt.budget = error
                return attempt
            if round_index > 0:
                if not copied:
                    teacher, copied = _private_copy(teacher), True
                for _, predictor in teacher.named_predictors():
                    predictor.config = {**predictor.config, "temperature": 1.0, "seed": round_index}
            trace: list[tuple[Any, dict[str, Any], Any]] = []
            try:
                with plan.session.slot():
                    with context(trace=trace, **self.teacher_settings):
                        prediction = teacher(**inputs)
                    passed = self._passes(example, prediction, trace)
            except Exception as error:  # counted against max_errors by the collecting thread
                attempt.errors.append(error)
                continue
            if passed:
                attempt.demos = _demos_from_trace(trace, teacher, f"{self.seed}:{index}")
                return attempt
        return attempt

    def _passes(self, example: Example, prediction: Any, trace: list[Any]) -> bool:
        return trace_passes(self.metric, self.metric_threshold, example, prediction, trace)


def trace_passes(metric: Metric | None, threshold: float | None, example: Example,
                 prediction: Any, trace: list[Any]) -> bool:
    """Whether a teacher's run counts: no metric passes everything; with a threshold the metric's
    number must reach it; otherwise a truthy bool / number, or a positive ``.score``."""
    if metric is None:
        return True
    value = metric(example, prediction, trace)
    if threshold is not None:
        return metric_number(value) >= threshold
    return bool(value) if isinstance(value, (bool, int, float)) else metric_number(value) > 0


def metric_number(value: Any) -> float:
    """A metric's value as a number: bools and numbers, or an object with a numeric ``.score``."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    score = value.get("score") if isinstance(value, Mapping) else getattr(value, "score", None)
    if isinstance(score, (int, float)):
        return float(score)
    raise TypeError(f"the metric returned {type(value).__name__} {value!r}; a metric must return a bool, "
                    "a number, or an object with a numeric .score")


def _private_copy(teacher: Module) -> Module:
    """A deep copy of the teacher that shares its demos (never edited; only their lists are
    replaced), which makes the copy per example cheap."""
    memo: dict[int, Any] = {id(demo): demo for _, predictor in teacher.named_predictors() for demo in predictor.demos}
    return copy.deepcopy(teacher, memo)


def _without_demo(teacher: Module, example: Example) -> Module:
    private = _private_copy(teacher)
    for _, predictor in private.named_predictors():
        predictor.demos = [demo for demo in predictor.demos if demo != example]
    return private


def _demos_from_trace(trace: list[tuple[Any, dict[str, Any], Any]], teacher: Module,
                      seed: str) -> dict[str, Example]:
    """One demo per teacher predictor that ran: its inputs and outputs from the trace."""
    names = {id(predictor): name for name, predictor in teacher.named_predictors()}
    steps: dict[str, list[Example]] = {}
    for predictor, inputs, prediction in trace:
        name = names.get(id(predictor))
        if name is None:   # a predictor outside the teacher (a metric's judge, a tool's own LM)
            continue
        steps.setdefault(name, []).append(Example(dict(inputs), augmented=True, **dict(prediction.items())))
    demos: dict[str, Example] = {}
    for name, found in steps.items():
        if len(found) == 1:
            demos[name] = found[0]
        else:
            # A predictor called several times (a loop): the last call or, half the time, an
            # earlier one, chosen by a seeded generator so reruns pick the same.
            rng = random.Random(f"{seed}:{name}")
            demos[name] = rng.choice(found[:-1]) if rng.random() < 0.5 else found[-1]
    return demos


def _check_structure(student: Module, teacher: Module) -> None:
    ours = student.named_predictors()
    theirs = teacher.named_predictors()
    if not ours:
        raise ValueError(f"{type(student).__name__} has no predictors to give demos to; an optimizer "
                         "needs a program with at least one Predict (or ChainOfThought)")
    if [name for name, _ in ours] != [name for name, _ in theirs]:
        raise ValueError(f"the teacher's predictors {[n for n, _ in theirs]} do not match the student's "
                         f"{[n for n, _ in ours]}: build the teacher from the same program class")
    for (name, mine), (_, other) in zip(ours, theirs):
        if list(mine.signature.fields) != list(other.signature.fields):
            raise ValueError(f"predictor {name!r}: the teacher's fields {list(other.signature.fields)} differ "
                             f"from the student's {list(mine.signature.fields)}; use the same signatures")
