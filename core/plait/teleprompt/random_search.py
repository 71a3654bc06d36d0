"""BootstrapFewShotWithRandomSearch: several demo sets, each scored on a valset; the best wins.

Candidates, in order (their "seed" as in DSPy): -3 zero-shot, -2 labelled demos only, -1 an
unshuffled bootstrap, then 0, 1, ... bootstraps over a seeded shuffle of the trainset with a
seeded number of demos. Each is scored with :class:`plait.evaluate.Evaluate` (in threads); the
first best score wins, and ``stop_at_score`` ends the search early. Candidates are read in
order, so the result never depends on thread timing.
"""

from __future__ import annotations

import contextvars
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from plait.errors import PlaitError
from plait.evaluate import Evaluate, EvaluationError
from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.settings import settings
from plait.teleprompt.base import Budget, BudgetExceeded, CallEstimate, Teleprompter, check_trainset
from plait.teleprompt.bootstrap import BootstrapFewShot, Metric
from plait.teleprompt.labeled import check_count, set_labeled_demos
from plait.teleprompt.session import CompileSession, PriorityGate, compile_session

# candidate seeds below 0 (as in DSPy)
ZERO_SHOT, LABELED_ONLY, UNSHUFFLED = -3, -2, -1


class _Abandoned(PlaitError, RuntimeError):
    """Raised inside a candidate's evaluation once the search has stopped (never escapes)."""


@dataclass(slots=True)
class _Outcome:
    """One candidate: its program and score, or the budget error that stopped it."""

    program: Module | None = None
    score: float | None = None
    budget: BudgetExceeded | None = None


class BootstrapFewShotWithRandomSearch(Teleprompter):
    """Random search over bootstrapped demo sets, scored by ``metric`` on ``valset``.

    ``compile`` returns the best candidate (a new program) with ``candidate_programs``, a list of
    ``(score, seed)`` best first, attached to it. Other arguments are BootstrapFewShot's; seeds
    ``s >= 0`` shuffle the trainset with ``random.Random(seed * 10007 + s)`` (DSPy's shuffles
    for the default ``seed=0``) and bootstrap between 1 and ``max_bootstrapped_demos`` demos.
    ``budget`` is checked before every candidate, every bootstrapped example and every scored
    example; when it runs out, the best program fully scored so far is returned (the zero-shot
    program if none was). With ``num_threads > 1`` the next candidate is built and scored while
    the current one finishes (never more than ``num_threads`` program runs at once), so
    ``stop_at_score`` or a budget may leave that next candidate's calls unused.
    """

    name = "bootstrap-random-search"

    def __init__(self, metric: Metric, teacher_settings: Mapping[str, Any] | None = None,
                 max_bootstrapped_demos: int = 4, max_labeled_demos: int = 16, max_rounds: int = 1,
                 num_candidate_programs: int = 16, num_threads: int | None = None,
                 max_errors: int | None = None, stop_at_score: float | None = None,
                 metric_threshold: float | None = None, seed: int = 0, budget: Budget | None = None):
        if not callable(metric):
            raise TypeError("BootstrapFewShotWithRandomSearch needs metric=fn, where fn(example, prediction, "
                            "trace=None) returns a bool or a number")
        check_count("BootstrapFewShotWithRandomSearch", "num_candidate_programs", num_candidate_programs)
        check_count("BootstrapFewShotWithRandomSearch", "max_bootstrapped_demos", max_bootstrapped_demos)
        self.metric = metric
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.num_candidate_programs = num_candidate_programs
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold
        self.seed = seed
        self.budget = budget
        self._bootstrapper(self.max_bootstrapped_demos)   # checks the shared arguments now

    def _bootstrapper(self, max_bootstrapped_demos: int) -> BootstrapFewShot:
        return BootstrapFewShot(metric=self.metric, metric_threshold=self.metric_threshold,
                                teacher_settings=self.teacher_settings,
                                max_bootstrapped_demos=max_bootstrapped_demos,
                                max_labeled_demos=self.max_labeled_demos, max_rounds=self.max_rounds,
                                max_errors=self.max_errors, num_threads=self.num_threads, seed=self.seed)

    def candidate_seeds(self) -> list[int]:
        return list(range(ZERO_SHOT, self.num_candidate_programs))

    def estimate_calls(self, student: Module, *, trainset: Sequence[Example],
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        """Every candidate scored on the whole valset, and every bootstrap run over the whole
        trainset for every round, one LM call per predictor."""
        per_run = max(1, len(student.named_predictors()))
        valset = trainset if valset is None else valset
        candidates = len(self.candidate_seeds())
        bootstraps = self.num_candidate_programs + 1 if self.max_bootstrapped_demos else 0
        scoring = candidates * len(valset) * per_run
        bootstrapping = bootstraps * len(trainset) * per_run * self.max_rounds
        return CallEstimate(scoring + bootstrapping,
                            f"{candidates} candidates x {len(valset)} valset examples + {bootstraps} "
                            f"bootstraps x {len(trainset)} examples x {self.max_rounds} rounds, "
                            f"x {per_run} predictor calls (at most)")

    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None, labeled_sample: bool = True) -> Module:
        examples = check_trainset(trainset)
        scoring_set = examples if valset is None else check_trainset(valset, "valset")
        estimate = self.estimate_calls(student, trainset=examples, valset=scoring_set)
        seeds = self.candidate_seeds()
        with compile_session(self.name, self.budget, estimate, trainset=len(examples),
                             valset=len(scoring_set), candidates=len(seeds)) as session:
            best, scores = self._search(session, student, teacher, examples, scoring_set, seeds, labeled_sample)
            session.result = {"best_score": scores[0][0] if scores else None,
                              "best_seed": scores[0][1] if scores else None, "scored": len(scores)}
        best.candidate_programs = scores
        return best

    def _search(self, session: CompileSession, student: Module, teacher: Module | None,
                trainset: list[Example], valset: list[Example], seeds: list[int],
                labeled_sample: bool) -> tuple[Module, list[tuple[float, int]]]:
        threads = self.num_threads or settings.get("num_threads") or 1
        max_errors = self.max_errors if self.max_errors is not None else settings.get("max_errors")
        evaluate = Evaluate(devset=valset, metric=self.metric, num_threads=threads, max_errors=max_errors)
        stop = threading.Event()
        # With threads, the next candidate is built and scored while this one finishes, so no
        # thread idles at the end of a candidate; one gate keeps the program runs of both at
        # num_threads, the earlier candidate first. Outcomes are read in candidate order.
        ahead = 2 if threads > 1 else 1
        session.gate = PriorityGate(threads)

        def run(position: int) -> _Outcome:
            with session.priority(position):
                return self._run_candidate(session, evaluate, stop, seeds[position], student, teacher,
                                           trainset, labeled_sample)

        best: Module | None = None
        best_score = float("-inf")
        scores: list[tuple[float, int]] = []
        session.progress("Random search", 0, len(seeds))
        pool = ThreadPoolExecutor(ahead, thread_name_prefix="plait-candidate")
        futures: list[Future[_Outcome]] = []
        try:
            for position, seed in enumerate(seeds):
                while len(futures) < min(len(seeds), position + ahead):
                    futures.append(pool.submit(contextvars.copy_context().run, run, len(futures)))
                outcome = futures[position].result()
                if outcome.budget is not None:
                    session.budget_hit(outcome.budget)
                    break
                assert outcome.program is not None and outcome.score is not None
                scores.append((outcome.score, seed))
                if outcome.score > best_score:   # ties keep the earlier candidate
                    best, best_score = outcome.program, outcome.score
                session.progress("Random search", position + 1, len(seeds), best_score=best_score,
                                 last_score=outcome.score)
                if self.stop_at_score is not None and outcome.score >= self.stop_at_score:
                    break
        finally:
            stop.set()   # a candidate still running skips its remaining examples
            pool.shutdown(wait=True, cancel_futures=True)
        if best is None:   # stopped before any candidate was scored
            best = student.reset_copy()
            best._compiled = True
        scores.sort(key=lambda item: item[0], reverse=True)   # stable: ties stay in search order
        return best, scores

    def _run_candidate(self, session: CompileSession, evaluate: Evaluate, stop: threading.Event, seed: int,
                       student: Module, teacher: Module | None, trainset: list[Example],
                       labeled_sample: bool) -> _Outcome:
        """Build one candidate and score it (in a candidate thread); budget stops are returned."""
        try:
            session.check()
            program = self._candidate(session, seed, student, teacher, trainset, labeled_sample)
        except BudgetExceeded as error:
            return _Outcome(budget=error)
        if program is None:   # its bootstrap ran out of budget: not a finished candidate
            return _Outcome(budget=BudgetExceeded("the budget ran out while bootstrapping"))
        skipped: list[BudgetExceeded] = []

        def gated(**inputs: Any) -> Any:
            if stop.is_set():
                raise _Abandoned("the random search has stopped")
            with session.slot():
                try:
                    session.check()
                except BudgetExceeded as error:
                    skipped.append(error)
                    raise
                return program(**inputs)

        try:
            score = float(evaluate(gated))
        except EvaluationError:
            if not skipped and not stop.is_set():
                raise
            score = None
        if skipped:   # some examples never ran: the score would be wrong
            return _Outcome(budget=skipped[0])
        if score is None:
            return _Outcome(budget=BudgetExceeded("the random search stopped"))
        return _Outcome(program, score)

    def _candidate(self, session: CompileSession, seed: int, student: Module, teacher: Module | None,
                   trainset: list[Example], labeled_sample: bool) -> Module | None:
        if seed == ZERO_SHOT:
            program = student.reset_copy()
            program._compiled = True
            return program
        if seed == LABELED_ONLY:
            program = student.reset_copy()
            set_labeled_demos(program, trainset, self.max_labeled_demos, sample=labeled_sample,
                              rng=random.Random(self.seed))
            program._compiled = True
            return program
        if seed == UNSHUFFLED:
            optimizer, examples = self._bootstrapper(self.max_bootstrapped_demos), trainset
        else:
            examples = list(trainset)
            random.Random(self.seed * 10007 + seed).shuffle(examples)
            size = random.Random(self.seed * 10007 + seed).randint(min(1, self.max_bootstrapped_demos),
                                                                  self.max_bootstrapped_demos)
            optimizer = self._bootstrapper(size)
        result = optimizer.bootstrap(session, student, trainset=examples, teacher=teacher, display=False)
        return None if result.stopped_by_budget else result.program
