"""COPRO: search each predictor's instruction (and output prefix) with a prompt model.

For one predictor at a time (in ``named_predictors()`` order, each later one tuned with the
earlier ones already at their best): round 0 scores the current instruction and ``breadth - 1``
proposals written from it; each later round (``depth`` rounds in all) shows the prompt model the
best attempts so far with their scores (worst first) and scores ``breadth`` new proposals.
Candidates are deduplicated on (instruction, prefix), so a repeated proposal costs nothing. Each
candidate is scored with :class:`~plait.evaluate.Evaluate` on the valset (default: trainset),
and the best per predictor is kept (ties keep the earlier candidate, so the original wins ties).

At most ``depth * breadth`` candidates are scored per predictor, and the prompt model is called
``depth`` times per predictor (each call asks for several completions with ``n``).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.errors import AdapterParseError, ConfigurationError
from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.teleprompt import proposer
from plait.teleprompt.base import Budget, BudgetExceeded, CallEstimate, Teleprompter, check_trainset
from plait.teleprompt.session import CompileSession, compile_session

logger = logging.getLogger("plait.teleprompt")


@dataclass(slots=True)
class CoproCandidate:
    """One scored (instruction, prefix) for one predictor."""

    predictor: str
    instruction: str
    prefix: str
    score: float
    depth: int


class COPRO(Teleprompter):
    """Instruction optimizer: ``COPRO(metric=m, breadth=10, depth=3).compile(program, trainset=...)``.

    Args:
        metric: ``metric(example, prediction, trace=None) -> bool | float``.
        prompt_model: the LM that writes proposals (default: ``plait.settings.lm`` at compile time).
        breadth: candidates per round (round 0: the current instruction + ``breadth - 1`` proposals).
        depth: rounds per predictor.
        init_temperature: sampling temperature of the proposals.
        track_stats: attach per-round score statistics to the returned program
            (``results_best``, ``results_latest``, ``total_calls``, ``candidates``).
        num_threads: Evaluate's threads (default ``plait.settings.num_threads``).
        seed: kept for a uniform optimizer interface; COPRO draws no random numbers (its choices
            depend only on the LM's answers, which the LM cache makes repeatable).
        budget: stop at this many LM calls / tokens and return the best program found so far.
    """

    name = "copro"

    def __init__(self, metric: Callable[..., Any], prompt_model: Any = None, breadth: int = 10, depth: int = 3,
                 init_temperature: float = 1.4, track_stats: bool = False, num_threads: int | None = None,
                 seed: int = 0, budget: Budget | None = None):
        if not callable(metric):
            raise TypeError(f"COPRO(metric=...) needs a callable metric(example, prediction, trace=None), "
                            f"got {type(metric).__name__}")
        _check_int("breadth", breadth, 2, "round 0 scores the current instruction plus breadth - 1 proposals")
        _check_int("depth", depth, 1, "each round scores one batch of candidates")
        if num_threads is not None:
            _check_int("num_threads", num_threads, 1, "Evaluate needs at least one thread")
        if isinstance(init_temperature, bool) or not isinstance(init_temperature, (int, float)) or init_temperature < 0:
            raise ValueError(f"COPRO(init_temperature={init_temperature!r}): pass a number >= 0 (e.g. 1.4)")
        if budget is not None and not isinstance(budget, Budget):
            raise TypeError("COPRO(budget=...) takes plait.teleprompt.Budget(max_calls=..., max_tokens=...)")
        self.metric = metric
        self.prompt_model = prompt_model
        self.breadth = breadth
        self.depth = depth
        self.init_temperature = float(init_temperature)
        self.track_stats = track_stats
        self.num_threads = num_threads
        self.seed = seed
        self.budget = budget

    # --- cost -------------------------------------------------------------------------------
    def estimate_calls(self, student: Module, *, trainset: Sequence[Example],
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        """Upper bound, assuming the program calls each predictor once per example."""
        predictors = len(proposer.predictors_of(student))
        devset = len(check_trainset(valset if valset is not None else trainset,
                                    "valset" if valset is not None else "trainset"))
        evaluations = predictors * self.depth * self.breadth
        task_calls = evaluations * devset * predictors
        prompt_calls = predictors * self.depth
        return CallEstimate(task_calls + prompt_calls,
                            f"{evaluations} candidate evaluations x {devset} examples x {predictors} "
                            f"predictor calls + {prompt_calls} proposal calls (n completions each)")

    # --- compile ----------------------------------------------------------------------------
    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None, eval_kwargs: Mapping[str, Any] | None = None) -> Module:
        """A copy of ``student`` with the best instruction and prefix found for each predictor.

        ``teacher`` is unused (COPRO writes no demos). ``eval_kwargs`` go to Evaluate, as in DSPy
        (e.g. ``{"max_errors": 5}``).
        """
        from plait.evaluate import Evaluate
        from plait.settings import settings

        trainset = check_trainset(trainset)
        devset = check_trainset(valset, "valset") if valset is not None else trainset
        program = student.deepcopy()
        named = proposer.predictors_of(program)
        prompt_model = self.prompt_model if self.prompt_model is not None else settings.lm
        if prompt_model is None:
            raise ConfigurationError("COPRO needs a prompt model: pass COPRO(prompt_model=plait.LM(...)) "
                                     "or configure a default with plait.configure(lm=...)")
        estimate = self.estimate_calls(student, trainset=trainset, valset=valset)
        evaluate = Evaluate(**{"num_threads": self.num_threads, **(eval_kwargs or {}),
                               "devset": devset, "metric": self.metric})
        with compile_session(self.name, self.budget, estimate, predictors=len(named)) as session:
            search = _Search(self, evaluate, prompt_model, session, total=len(named) * self.depth * self.breadth)
            try:
                for name, predictor in named:
                    search.optimize(program, name, predictor)
            except BudgetExceeded as error:
                session.budget_hit(error)
            session.result = {"best_scores": {name: c.score for name, c in search.best.items()},
                              "evaluations": search.evaluations}
        if self.track_stats:
            program.results_best = search.results_best
            program.results_latest = search.results_latest
            program.total_calls = search.evaluations
            program.candidates = sorted(
                ({"predictor": c.predictor, "instruction": c.instruction, "prefix": c.prefix,
                  "score": c.score, "depth": c.depth} for c in search.all_candidates),
                key=lambda row: -row["score"])
        return program


class _Search:
    """One compile's state (never kept on the optimizer)."""

    def __init__(self, owner: COPRO, evaluate: Any, prompt_model: Any, session: CompileSession, total: int):
        self.owner = owner
        self.evaluate = evaluate
        self.prompt_model = prompt_model
        self.session = session
        self.total = total
        self.evaluations = 0
        self.best: dict[str, CoproCandidate] = {}
        self.all_candidates: list[CoproCandidate] = []
        self.results_best: dict[str, dict[str, list[float]]] = {}
        self.results_latest: dict[str, dict[str, list[float]]] = {}

    def optimize(self, program: Module, name: str, predictor: Any) -> None:
        """Tune one predictor in place on ``program``; it always ends at its best candidate."""
        base = predictor.signature
        last_output = list(base.output_fields)[-1]
        original = (base.instructions, base.output_fields[last_output].prefix)
        tried: dict[tuple[str, str], CoproCandidate] = {}
        self.results_best[name] = _empty_stats()
        self.results_latest[name] = _empty_stats()
        try:
            pending = [original]
            self.session.check()
            raw = self._propose(proposer.basic_instruction_signature(), {"basic_instruction": base.instructions},
                                self.owner.breadth - 1)
            pending += self._clean(raw, original[1])
            for depth in range(self.owner.depth):
                latest = []
                for instruction, prefix in pending:
                    if (instruction, prefix) in tried:
                        continue
                    self.session.check()
                    predictor.signature = _with_candidate(base, last_output, instruction, prefix)
                    score = self._score(program, is_original=(instruction, prefix) == original)
                    candidate = CoproCandidate(name, instruction, prefix, score, depth)
                    tried[(instruction, prefix)] = candidate
                    self.all_candidates.append(candidate)
                    latest.append(score)
                    if name not in self.best or score > self.best[name].score:
                        self.best[name] = candidate
                _record(self.results_latest[name], depth, latest)
                ranked = sorted(tried.values(), key=lambda c: c.score, reverse=True)
                _record(self.results_best[name], depth, [c.score for c in ranked[:10]])
                if depth == self.owner.depth - 1:
                    break
                self.session.check()
                shown = list(reversed(ranked[: self.owner.breadth]))   # worst first, best last
                history = proposer.format_attempts([(c.instruction, c.prefix, c.score) for c in shown])
                raw = self._propose(proposer.attempts_signature(), {"attempted_instructions": history},
                                    self.owner.breadth)
                pending = self._clean(raw, original[1])
        finally:
            chosen = self.best.get(name)
            predictor.signature = (base if chosen is None
                                   else _with_candidate(base, last_output, chosen.instruction, chosen.prefix))

    def _propose(self, signature: Any, inputs: dict[str, str], n: int) -> list[tuple[Any, Any]]:
        try:
            return proposer.propose_pairs(signature, inputs, prompt_model=self.prompt_model, n=n,
                                          temperature=self.owner.init_temperature)
        except AdapterParseError as error:   # no readable proposal this round: keep searching
            logger.warning("COPRO: the prompt model's proposals could not be read: %s", error)
            return []

    def _clean(self, raw: list[tuple[Any, Any]], fallback_prefix: str) -> list[tuple[str, str]]:
        pairs = []
        seen: set[tuple[str, str]] = set()
        for instruction, prefix in raw:
            pair = (proposer.clean_instruction(instruction), proposer.clean_prefix(prefix, fallback_prefix))
            if pair[0] and pair not in seen:
                seen.add(pair)
                pairs.append(pair)
        return pairs

    def _score(self, program: Module, *, is_original: bool) -> float:
        from plait.evaluate import EvaluationError
        try:
            score = float(self.evaluate(program).score)
        except EvaluationError as error:
            if is_original:   # the program or metric is broken as given: say so, do not search
                raise
            logger.warning("COPRO: a proposed instruction broke the program (%s); it scores 0", error)
            score = 0.0
        self.evaluations += 1
        self.session.progress("COPRO", self.evaluations, self.total, score=score)
        return score


def _with_candidate(base: Any, last_output: str, instruction: str, prefix: str) -> Any:
    return base.with_instructions(instruction).with_updated_fields(last_output, prefix=prefix)


def _empty_stats() -> dict[str, list[float]]:
    return {"depth": [], "max": [], "average": [], "min": [], "std": []}


def _record(stats: dict[str, list[float]], depth: int, scores: list[float]) -> None:
    if not scores:
        return
    stats["depth"].append(depth)
    stats["max"].append(max(scores))
    stats["average"].append(sum(scores) / len(scores))
    stats["min"].append(min(scores))
    stats["std"].append(statistics.pstdev(scores))


def _check_int(name: str, value: Any, minimum: int, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"COPRO({name}={value!r}): {name} must be an int >= {minimum} ({why})")
