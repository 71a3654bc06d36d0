"""Refine: BestOfN that asks an LM for advice after each miss and feeds it to the next attempt.

After an attempt whose reward is below the threshold, a feedback step (``Predict(OfferFeedback)``)
sees the program's code and predictors, its inputs, the trajectory of predictor calls, its
outputs, the reward function's source and the reward, and returns advice per predictor name.
The next attempt's predictors each get an extra input field ``hint_`` holding their advice
(``"N/A"`` when none). The hint is added by wrapping the predictor's adapter (``hint_adapter``),
so the program's own code runs unchanged and the trace records the inputs without the hint.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

from plait.predict.best_of_n import BestOfN, RewardFn, _Search
from plait.predict.predict import Predict
from plait.primitives.module import Module
from plait.primitives.prediction import Prediction
from plait.settings import settings
from plait.signatures import InputField, OutputField, Signature

HINT_FIELD = "hint_"
HINT_DESC = "A hint to the module from an earlier run"


class OfferFeedback(Signature):
    """A program ran and its outputs scored below the target reward. Work out which of its
    modules are responsible, if any. Then, for every module named in `module_names`, write
    concrete, actionable advice for what it should do differently the next time it receives the
    same or similar inputs; the module will not see this run, only your advice. For a module that
    is not to blame, the advice is N/A."""

    program_code: str = InputField(desc="The source code of the program")
    modules_defn: str = InputField(desc="Each module of the program: its input and output fields and instructions")
    program_inputs: str = InputField(desc="The inputs the program was given")
    program_trajectory: str = InputField(desc="Each module call in order, with its inputs and outputs")
    program_outputs: str = InputField(desc="What the program returned")
    reward_code: str = InputField(desc="The source code of the reward function that scored the outputs")
    target_threshold: float = InputField(desc="The reward the outputs had to reach")
    reward_value: float = InputField(desc="The reward the outputs got")
    module_names: list[str] = InputField(desc="The modules to advise, by name")
    discussion: str = OutputField(desc="Which modules went wrong, if any, and how")
    advice: dict[str, str] = OutputField(
        desc="For each module name: the situation in which it went wrong and what it should do instead "
             "next time, concretely; N/A if it is not to blame")


class Refine(BestOfN):
    """``Refine(module, N, reward_fn, threshold)(**inputs)``: BestOfN whose attempts after the first
    get the feedback step's advice as a ``hint_`` input on every predictor. The feedback step uses
    the LM of the module's first predictor that has one (else the configured LM); if it fails, the
    next attempt runs with the advice it had (an event ``refine.feedback_failed`` says why)."""

    event_kind = "refine.attempt"

    def __init__(self, module: Module, N: int, reward_fn: RewardFn,  # noqa: N803 - DSPy's name
                 threshold: float | None, fail_count: int | None = None):
        super().__init__(module, N, reward_fn, threshold, fail_count)
        # read once: inspect.getsource reads and tokenizes the file
        self.module_code = source_of(type(module))
        self.reward_fn_code = source_of(reward_fn)

    def _program(self, index: int, search: _Search) -> Module:
        program = super()._program(index, search)
        if search.advice is not None:
            install_hints(program, search.advice, default="N/A")
        return program

    def _learn(self, search: _Search, program: Module, prediction: Prediction, steps: list[Any]) -> None:
        names = [name for name, _ in program.named_predictors()]
        try:
            with settings.context(trace=None):   # the feedback step is not part of the program's trace
                feedback = Predict(OfferFeedback)(**self._feedback_inputs(search, program, prediction, steps, names),
                                                  **_lm_option(program))
        except Exception as error:
            _feedback_failed(error)
            return
        search.advice = advice_by_name(feedback.advice, names)

    async def _alearn(self, search: _Search, program: Module, prediction: Prediction, steps: list[Any]) -> None:
        names = [name for name, _ in program.named_predictors()]
        try:
            with settings.context(trace=None):
                feedback = await Predict(OfferFeedback).acall(
                    **self._feedback_inputs(search, program, prediction, steps, names), **_lm_option(program))
        except Exception as error:
            _feedback_failed(error)
            return
        search.advice = advice_by_name(feedback.advice, names)

    def _feedback_inputs(self, search: _Search, program: Module, prediction: Prediction, steps: list[Any],
                         names: list[str]) -> dict[str, Any]:
        by_id = {id(predictor): name for name, predictor in program.named_predictors()}
        trajectory = [{"module_name": by_id.get(id(step[0]), type(step[0]).__name__),
                       "inputs": dict(step[1]), "outputs": dict(step[2].items())} for step in steps]
        outputs = dict(prediction.items()) if hasattr(prediction, "items") else prediction
        return {"program_code": self.module_code, "modules_defn": describe_predictors(program),
                "program_inputs": _json(search.kwargs), "program_trajectory": _json(trajectory),
                "program_outputs": _json(outputs), "reward_code": self.reward_fn_code,
                "target_threshold": self.threshold if self.threshold is not None else float("nan"),
                "reward_value": search.last_reward, "module_names": names}


# --- hints --------------------------------------------------------------------------------
def hint_adapter(inner: Any, hint: str) -> Any:
    """An adapter that wraps ``inner`` and adds an input field ``hint_`` holding ``hint`` to every
    call. ``inner`` is what the predictor had (an Adapter, a registered name, or None for
    automatic), resolved per call exactly as Predict would. A signature that already has
    ``hint_`` (nested Refine) keeps it, and the hints are joined."""
    global _hint_adapter_class
    if _hint_adapter_class is None:
        _hint_adapter_class = _define_hint_adapter()
    return _hint_adapter_class(inner, hint)


_hint_adapter_class: Any = None


def _define_hint_adapter() -> type:
    # Defined on first use: subclassing Adapter imports plait.adapters, which
    # ``import plait.predict`` must not pay for.
    from plait.adapters import Adapter, resolve_adapter

    class HintAdapter(Adapter):
        """See ``hint_adapter``."""

        name = "hint"

        def __init__(self, inner: Adapter | str | None, hint: str):
            super().__init__()
            self.inner = inner
            self.hint = hint
            self._hinted: dict[Any, Any] = {}

        def _with_hint(self, signature: Any, inputs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
            hinted = self._hinted.get(signature)
            if hinted is None:
                hinted = (signature if HINT_FIELD in signature.input_fields
                          else signature.append(HINT_FIELD, InputField(desc=HINT_DESC)))
                self._hinted[signature] = hinted
            earlier = inputs.get(HINT_FIELD)
            return hinted, {**inputs, HINT_FIELD: f"{earlier}\n{self.hint}" if earlier else self.hint}

        def __call__(self, lm: Any, lm_kwargs: Mapping[str, Any] | None, signature: Any,
                     demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
            hinted, hinted_inputs = self._with_hint(signature, inputs)
            return resolve_adapter(self.inner, lm)(lm, lm_kwargs, hinted, demos, hinted_inputs)

        async def acall(self, lm: Any, lm_kwargs: Mapping[str, Any] | None, signature: Any,
                        demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
            hinted, hinted_inputs = self._with_hint(signature, inputs)
            return await resolve_adapter(self.inner, lm).acall(lm, lm_kwargs, hinted, demos, hinted_inputs)

        # The rest of the contract goes to the inner adapter (with the hint where inputs are formatted).
        def _build_plan(self, signature: Any) -> Any:
            return resolve_adapter(self.inner).plan(signature)

        def format(self, signature: Any, demos: Sequence[Any], inputs: Mapping[str, Any], *, lm: Any = None) -> Any:
            hinted, hinted_inputs = self._with_hint(signature, inputs)
            return resolve_adapter(self.inner, lm).format(hinted, demos, hinted_inputs, lm=lm)

        def parse(self, signature: Any, text: str) -> dict[str, Any]:
            return resolve_adapter(self.inner).parse(signature, text)

        def format_completion(self, signature: Any, outputs: Mapping[str, Any]) -> str:
            return resolve_adapter(self.inner).format_completion(signature, outputs)

        def __repr__(self) -> str:
            return f"HintAdapter({self.inner!r}, hint={self.hint!r})"

    return HintAdapter


def install_hints(program: Module, hints: Mapping[str, str], default: str | None = None) -> None:
    """Give each predictor of ``program`` (by name) its hint, or ``default`` (None: no hint)."""
    for name, predictor in program.named_predictors():
        hint = hints.get(name, default)
        if hint is not None and hasattr(predictor, "adapter"):
            predictor.adapter = hint_adapter(predictor.adapter, hint)


def advice_by_name(advice: Any, names: list[str]) -> dict[str, str]:
    """The feedback's advice as {predictor name: text}. With one predictor, a single piece of
    advice under another key (small LMs misname it) or plain text is taken as its advice."""
    if isinstance(advice, Mapping):
        found = {str(key): str(value) for key, value in advice.items()}
        if len(names) == 1 and names[0] not in found and len(found) == 1:
            return {names[0]: next(iter(found.values()))}
        return found
    if len(names) == 1 and isinstance(advice, str) and advice.strip():
        return {names[0]: advice.strip()}
    return {}


# --- what the feedback step sees ----------------------------------------------------------
def describe_predictors(program: Module) -> str:
    """Each predictor's name, fields and instructions, as plain text."""
    blocks = []
    for name, predictor in program.named_predictors():
        signature = getattr(predictor, "signature", None)
        if signature is None:
            continue
        lines = [f"Module {name}", "  Input fields:"]
        lines += [f"    {field}: {spec.desc}" if spec.desc else f"    {field}"
                  for field, spec in signature.input_fields.items()]
        lines.append("  Output fields:")
        lines += [f"    {field}: {spec.desc}" if spec.desc else f"    {field}"
                  for field, spec in signature.output_fields.items()]
        instructions = " ".join((signature.instructions or "").split())
        lines.append(f"  Instructions: {instructions}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def source_of(obj: Any) -> str:
    """The source code of a function or class; for other objects, their class's source, then
    their docstring, then their name (the REPL and builtins have no source). Never a repr with a
    memory address: the text is part of a prompt, and should be the same in every process."""
    for candidate in (obj, type(obj)):
        try:
            return inspect.getsource(candidate)
        except (OSError, TypeError):
            continue
    doc = inspect.getdoc(obj)
    if doc:
        return doc
    return str(getattr(obj, "__qualname__", None) or type(obj).__qualname__)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "toDict", None)
    if callable(to_dict):
        return to_dict()
    return repr(value)


def _lm_option(program: Module) -> dict[str, Any]:
    for _, predictor in program.named_predictors():
        lm = getattr(predictor, "lm", None)
        if lm is not None:
            return {"lm": lm}
    return {}


def _feedback_failed(error: Exception) -> None:
    from plait.plugins import emit

    emit("refine.feedback_failed", source="Refine", error=f"{type(error).__name__}: {error}")
