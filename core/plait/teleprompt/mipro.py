"""MIPROv2-style optimizer: candidate demo sets x grounded instruction proposals, searched jointly.

1. Demo sets, ``num_candidates`` per predictor: the student's own demos (none: zero-shot), a
   labeled-only set (LabeledFewShot), then BootstrapFewShot runs at different seeds (the first
   with ``max_bootstrapped_demos``, later ones with a random size from 1 to it).
2. Instructions, ``num_candidates`` per predictor: the current one, then grounded proposals
   by the prompt model (a dataset summary, the program's structure, a few demos, a random tip;
   see :mod:`plait.teleprompt.proposer`). Duplicates are dropped.
3. Search over (instruction index, demo-set index) per predictor: optuna's TPE sampler when
   optuna is installed (``plait[optimizers]``), else a seeded random search. Each trial is
   scored on a random minibatch of the valset (default: trainset); every
   ``minibatch_full_eval_steps`` trials (and after the last) the untried combination with the
   best mean minibatch score is scored on the whole valset. Without minibatches (or when the
   valset is no larger than ``minibatch_size``) every trial is a full evaluation. The best
   fully evaluated combination wins; the unchanged program is the baseline it must beat.

``auto`` presets (num_candidates / num_trials / valset cap): light 6 / 10 / 100, medium 12 /
20 / 300, heavy 18 / 40 / 1000. An explicit ``num_candidates`` or ``num_trials`` overrides the
preset's value; with ``auto=None`` both are required.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from plait.errors import ConfigurationError
from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.teleprompt import proposer
from plait.teleprompt.base import Budget, BudgetExceeded, CallEstimate, Teleprompter, check_trainset
from plait.teleprompt.samplers import Params, Sampler, make_sampler
from plait.teleprompt.session import CompileSession, compile_session

logger = logging.getLogger("plait.teleprompt")


@dataclass(frozen=True, slots=True)
class AutoPreset:
    num_candidates: int
    num_trials: int
    val_size: int


AUTO_PRESETS: dict[str, AutoPreset] = {
    "light": AutoPreset(num_candidates=6, num_trials=10, val_size=100),
    "medium": AutoPreset(num_candidates=12, num_trials=20, val_size=300),
    "heavy": AutoPreset(num_candidates=18, num_trials=40, val_size=1000),
}


_COMPILE_OVERRIDES = frozenset({"num_trials", "max_bootstrapped_demos", "max_labeled_demos", "seed", "minibatch",
                                "minibatch_size", "minibatch_full_eval_steps", "requires_permission_to_run"})


class MIPROv2(Teleprompter):
    """Joint instruction and demo optimization: ``MIPROv2(metric=m, auto="light").compile(p, trainset=...)``.

    Args:
        metric: ``metric(example, prediction, trace=None) -> bool | float``.
        prompt_model: writes the dataset summary and instructions (default: ``task_model``,
            else ``plait.settings.lm``).
        task_model: runs the program while bootstrapping and scoring (default: the program's own
            LMs / ``plait.settings.lm``).
        auto: "light", "medium", "heavy" (see the module doc) or None.
        num_candidates: demo sets and instructions per predictor (each includes the current one).
        max_bootstrapped_demos / max_labeled_demos: for the candidate demo sets; both 0 searches
            instructions only.
        num_trials: search trials (minibatch or full evaluations), besides the baseline.
        minibatch / minibatch_size / minibatch_full_eval_steps: see the module doc.
        num_threads: Evaluate's threads. seed: every random choice (sampler included).
        budget: stop at this many LM calls / tokens; the best fully evaluated program so far
            is returned.

    The returned program carries ``trial_logs`` (one dict per evaluation: trial, kind
    "baseline" | "minibatch" | "full", params, score, examples), ``score`` (its full-valset
    score, None if the budget ran out first) and ``instruction_candidates`` (per predictor).
    """

    name = "miprov2"

    def __init__(self, metric: Callable[..., Any], prompt_model: Any = None, task_model: Any = None,
                 auto: str | None = "light", num_candidates: int | None = None, max_bootstrapped_demos: int = 4,
                 max_labeled_demos: int = 4, num_trials: int | None = None, minibatch: bool = True,
                 minibatch_size: int = 35, minibatch_full_eval_steps: int = 5, num_threads: int | None = None,
                 seed: int = 0, budget: Budget | None = None, init_temperature: float = 1.0,
                 view_data_batch_size: int = 10):
        if not callable(metric):
            raise TypeError(f"MIPROv2(metric=...) needs a callable metric(example, prediction, trace=None), "
                            f"got {type(metric).__name__}")
        if auto is not None and auto not in AUTO_PRESETS:
            raise ValueError(f"MIPROv2(auto={auto!r}): auto must be one of {sorted(AUTO_PRESETS)} or None "
                             f"(None needs num_candidates=... and num_trials=...)")
        if auto is None and (num_candidates is None or num_trials is None):
            raise ValueError("MIPROv2(auto=None) needs num_candidates=... and num_trials=... (e.g. 6 and 10), "
                             "or pick a preset: auto='light', 'medium' or 'heavy'")
        for name, value, minimum in (("num_candidates", num_candidates, 1), ("num_trials", num_trials, 1),
                                     ("num_threads", num_threads, 1)):
            if value is not None:
                _check_int(name, value, minimum)
        for name, value, minimum in (("max_bootstrapped_demos", max_bootstrapped_demos, 0),
                                     ("max_labeled_demos", max_labeled_demos, 0), ("minibatch_size", minibatch_size, 1),
                                     ("minibatch_full_eval_steps", minibatch_full_eval_steps, 1),
                                     ("view_data_batch_size", view_data_batch_size, 1)):
            _check_int(name, value, minimum)
        if budget is not None and not isinstance(budget, Budget):
            raise TypeError("MIPROv2(budget=...) takes plait.teleprompt.Budget(max_calls=..., max_tokens=...)")
        self.metric = metric
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.auto = auto
        self.num_candidates = num_candidates
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.num_trials = num_trials
        self.minibatch = minibatch
        self.minibatch_size = minibatch_size
        self.minibatch_full_eval_steps = minibatch_full_eval_steps
        self.num_threads = num_threads
        self.seed = seed
        self.budget = budget
        self.init_temperature = init_temperature
        self.view_data_batch_size = view_data_batch_size

    def resolved_settings(self) -> AutoPreset:
        """num_candidates, num_trials and the valset cap after applying ``auto`` (cap 0: none)."""
        preset = AUTO_PRESETS.get(self.auto or "")
        return AutoPreset(
            num_candidates=self.num_candidates if self.num_candidates is not None else preset.num_candidates,
            num_trials=self.num_trials if self.num_trials is not None else preset.num_trials,
            val_size=preset.val_size if preset is not None else 0)

    # --- cost -------------------------------------------------------------------------------
    def estimate_calls(self, student: Module, *, trainset: Sequence[Example],
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        """Upper bound, assuming the program calls each predictor once per example."""
        trainset = check_trainset(trainset)
        valset = check_trainset(valset, "valset") if valset is not None else trainset
        predictors = len(proposer.predictors_of(student))
        plan = self.resolved_settings()
        val = min(len(valset), plan.val_size) if plan.val_size else len(valset)
        bootstraps = sum(kind == "bootstrap" for kind in self._demo_set_kinds(plan.num_candidates))
        per_bootstrap = self._bootstrap_estimate(student, trainset)
        proposals = 1 + predictors * (plan.num_candidates - 1)
        batch = self.minibatch_size if self._use_minibatch(val) else val
        full_evals = math.ceil(plan.num_trials / self.minibatch_full_eval_steps) if self._use_minibatch(val) else 0
        evaluations = predictors * (val + plan.num_trials * batch + full_evals * val)
        return CallEstimate(bootstraps * per_bootstrap + proposals + evaluations,
                            f"{bootstraps} bootstraps x {per_bootstrap} + {proposals} proposal calls + "
                            f"{predictors} predictors x ({val} baseline + {plan.num_trials} trials x {batch} "
                            f"+ {full_evals} full evaluations x {val}) examples")

    def _bootstrap_estimate(self, student: Module, trainset: list[Example]) -> int:
        from plait.teleprompt.bootstrap import BootstrapFewShot
        optimizer = BootstrapFewShot(metric=self.metric, max_bootstrapped_demos=self.max_bootstrapped_demos,
                                     max_labeled_demos=self.max_labeled_demos, seed=self.seed)
        return optimizer.estimate_calls(student, trainset=trainset).max_calls

    def _use_minibatch(self, val_size: int) -> bool:
        return self.minibatch and val_size > self.minibatch_size

    def _demo_set_kinds(self, count: int) -> list[str]:
        """What each candidate demo set is: "own" (the student's demos), "labeled", "bootstrap"."""
        if self.max_bootstrapped_demos == 0 and self.max_labeled_demos == 0:
            return ["own"]   # instructions only
        kinds = ["own"]
        if self.max_labeled_demos > 0 and count > 1:
            kinds.append("labeled")
        rest = "bootstrap" if self.max_bootstrapped_demos > 0 else "labeled"
        return kinds + [rest] * (count - len(kinds))

    # --- compile ----------------------------------------------------------------------------
    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None, **overrides: Any) -> Module:
        """A copy of ``student`` with the best instruction and demo set found per predictor.

        As in DSPy, ``num_trials``, ``max_bootstrapped_demos``, ``max_labeled_demos``, ``seed``,
        ``minibatch``, ``minibatch_size`` and ``minibatch_full_eval_steps`` may be given here for
        this compile only (the optimizer is not changed); ``requires_permission_to_run`` is
        accepted and ignored (plait never asks).
        """
        if overrides:
            unknown = sorted(set(overrides) - _COMPILE_OVERRIDES)
            if unknown:
                raise TypeError(f"MIPROv2.compile() got unexpected argument(s) {unknown}; it accepts "
                                f"{sorted(_COMPILE_OVERRIDES)} besides trainset, teacher and valset")
            overrides.pop("requires_permission_to_run", None)
            once = MIPROv2(**{**self.get_params(), **overrides})
            return once.compile(student, trainset=trainset, teacher=teacher, valset=valset)
        from plait.evaluate import Evaluate
        from plait.settings import settings

        trainset = check_trainset(trainset)
        valset = check_trainset(valset, "valset") if valset is not None else trainset
        proposer.predictors_of(student)
        prompt_model = next((lm for lm in (self.prompt_model, self.task_model, settings.lm) if lm is not None), None)
        if prompt_model is None:
            raise ConfigurationError("MIPROv2 needs an LM: pass prompt_model=/task_model=plait.LM(...) or "
                                     "configure a default with plait.configure(lm=...)")
        plan = self.resolved_settings()
        rng = random.Random(self.seed)
        if plan.val_size and len(valset) > plan.val_size:
            valset = rng.sample(valset, plan.val_size)
        estimate = self.estimate_calls(student, trainset=trainset, valset=valset)

        def task_context() -> Any:   # the task model runs the program (bootstrapping and scoring)
            return settings.context(lm=self.task_model) if self.task_model is not None else contextlib.nullcontext()

        with compile_session(self.name, self.budget, estimate, num_candidates=plan.num_candidates,
                             num_trials=plan.num_trials, valset=len(valset)) as session:
            run = _Run(self, student.deepcopy(), valset, rng, session,
                       Evaluate(devset=valset, metric=self.metric, num_threads=self.num_threads))
            try:
                with task_context():
                    run.demo_sets = self._demo_sets(student, trainset, teacher, plan.num_candidates, rng, session)
                run.instructions = proposer.propose_grounded(
                    run.base, dataset_summary=self._summary(trainset, prompt_model, session),
                    demo_sets=run.demo_sets, count=plan.num_candidates, prompt_model=prompt_model, rng=rng,
                    temperature=self.init_temperature, checkpoint=session.check,
                    on_proposal=run.count_proposal)
                with task_context():
                    run.search(plan.num_trials)
            except BudgetExceeded as error:
                session.budget_hit(error)
            result = run.result()
            session.result = {"score": result.score, "trials": len(result.trial_logs)}
        return result

    def _summary(self, trainset: list[Example], prompt_model: Any, session: CompileSession) -> str:
        session.check()
        return proposer.summarize_dataset(trainset, prompt_model=prompt_model, view_size=self.view_data_batch_size)

    def _demo_sets(self, student: Module, trainset: list[Example], teacher: Module | None, count: int,
                   rng: random.Random, session: CompileSession) -> list[list[list[Example]]]:
        """Per predictor, one demo list per candidate set (index 0: the student's own demos)."""
        from plait.teleprompt.bootstrap import BootstrapFewShot
        from plait.teleprompt.labeled import set_labeled_demos

        kinds = self._demo_set_kinds(count)
        programs: list[Module] = []
        bootstraps = 0
        for number, kind in enumerate(kinds):
            session.check()
            if kind == "own":
                programs.append(student)
            elif kind == "labeled":
                program = student.reset_copy()
                set_labeled_demos(program, trainset, self.max_labeled_demos, sample=True,
                                  rng=random.Random(self.seed + number))
                programs.append(program)
            else:
                # the first bootstrap reads the trainset in order; later ones a seeded shuffle of it,
                # with a random demo count, so the sets differ
                examples, size = list(trainset), self.max_bootstrapped_demos
                if bootstraps:
                    rng.shuffle(examples)
                    size = rng.randint(1, self.max_bootstrapped_demos)
                bootstraps += 1
                optimizer = BootstrapFewShot(metric=self.metric, max_bootstrapped_demos=size,
                                             max_labeled_demos=self.max_labeled_demos,
                                             num_threads=self.num_threads, seed=self.seed + number)
                result = optimizer.bootstrap(session, student, trainset=examples, teacher=teacher, display=False)
                if result.stopped_by_budget:
                    raise BudgetExceeded("the budget ran out while bootstrapping demo sets")
                programs.append(result.program)
            session.progress("MIPROv2 demo sets", number + 1, len(kinds))
        return [[list(program.predictors()[index].demos) for program in programs]
                for index in range(len(student.predictors()))]


class _Run:
    """One compile's search state (never kept on the optimizer)."""

    def __init__(self, owner: MIPROv2, base: Module, valset: list[Example], rng: random.Random,
                 session: CompileSession, evaluate: Any):
        self.owner = owner
        self.base = base
        self.valset = valset
        self.rng = rng
        self.session = session
        self.evaluate = evaluate
        self.demo_sets: list[list[list[Example]]] = []
        self.instructions: list[list[str]] = []
        self.proposals = 0
        self.logs: list[dict[str, Any]] = []
        self.best: tuple[float, Params] | None = None
        self.full_scores: dict[tuple[tuple[str, int], ...], float] = {}
        self.minibatch_scores: dict[tuple[tuple[str, int], ...], tuple[Params, list[float]]] = {}

    def count_proposal(self) -> None:
        self.proposals += 1
        total = len(self.base.named_predictors()) * (self.owner.resolved_settings().num_candidates - 1)
        self.session.progress("MIPROv2 instructions", self.proposals, total)

    def space(self) -> dict[str, int]:
        space = {}
        for index, texts in enumerate(self.instructions):
            space[f"{index}_instruction"] = len(texts)
            if len(self.demo_sets[index]) > 1:
                space[f"{index}_demos"] = len(self.demo_sets[index])
        return space

    def build(self, params: Params) -> Module:
        program = self.base.deepcopy()
        for index, (_, predictor) in enumerate(program.named_predictors()):
            predictor.signature = predictor.signature.with_instructions(
                self.instructions[index][params[f"{index}_instruction"]])
            if f"{index}_demos" in params:
                predictor.demos = [demo.copy() for demo in self.demo_sets[index][params[f"{index}_demos"]]]
        return program

    def score(self, params: Params, devset: list[Example] | None, *, baseline: bool = False) -> float:
        from plait.evaluate import EvaluationError
        try:
            return float(self.evaluate(self.build(params), devset=devset).score)
        except EvaluationError as error:
            if baseline:   # the program or metric is broken as given: say so, do not search
                raise
            logger.warning("MIPROv2: candidate %s broke the program (%s); it scores 0", params, error)
            return 0.0

    def full(self, trial: int, params: Params, sampler: Sampler | None, *, kind: str = "full") -> None:
        known = self.full_scores.get(_key(params))
        if known is not None:   # a repeated combination (TPE may propose one again) costs nothing
            self.logs.append({"trial": trial, "kind": kind, "params": dict(params), "score": known, "examples": 0})
            return
        self.session.check()
        score = self.score(params, None, baseline=kind == "baseline")
        self.full_scores[_key(params)] = score
        self.logs.append({"trial": trial, "kind": kind, "params": dict(params), "score": score,
                          "examples": len(self.valset)})
        if sampler is not None:
            sampler.add(params, score)
        if self.best is None or score > self.best[0]:
            self.best = (score, dict(params))

    def search(self, num_trials: int) -> None:
        space = self.space()
        sampler = make_sampler(space, self.owner.seed, num_trials)
        self.full(0, {name: 0 for name in space}, sampler, kind="baseline")
        use_minibatch = self.owner._use_minibatch(len(self.valset))
        steps = self.owner.minibatch_full_eval_steps
        for trial in range(1, num_trials + 1):
            self.session.check()
            params = sampler.ask()
            if not use_minibatch:
                self.full(trial, params, None)
                sampler.tell(params, self.full_scores[_key(params)])
            else:
                batch = self.rng.sample(self.valset, self.owner.minibatch_size)
                score = self.score(params, batch)
                sampler.tell(params, score)
                self.logs.append({"trial": trial, "kind": "minibatch", "params": dict(params), "score": score,
                                  "examples": len(batch)})
                self.minibatch_scores.setdefault(_key(params), (dict(params), []))[1].append(score)
                if trial % steps == 0 or trial == num_trials:
                    self.full_of_best_mean(trial, sampler)
            self.session.progress("MIPROv2 trials", trial, num_trials, best=self.best[0] if self.best else None)

    def full_of_best_mean(self, trial: int, sampler: Sampler) -> None:
        """Score on the whole valset the combination with the best mean minibatch score not yet scored so."""
        ranked = [(sum(scores) / len(scores), params) for key, (params, scores) in self.minibatch_scores.items()
                  if key not in self.full_scores]
        if ranked:
            best_mean = max(mean for mean, _ in ranked)
            self.full(trial, next(params for mean, params in ranked if mean == best_mean), sampler)

    def result(self) -> Module:
        if self.best is None:   # the budget ran out before the baseline was scored
            program, score = self.base.deepcopy(), None
        else:
            program, score = self.build(self.best[1]), self.best[0]
            program._compiled = True
        program.trial_logs = self.logs
        program.score = score
        program.instruction_candidates = {name: list(texts) for (name, _), texts
                                          in zip(self.base.named_predictors(), self.instructions)}
        return program


def _key(params: Params) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(params.items()))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"MIPROv2({name}={value!r}): {name} must be an int >= {minimum}")
