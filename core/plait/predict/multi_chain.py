"""MultiChainComparison: compare M reasoning attempts and answer with a corrected rationale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.predict.predict import Predict
from plait.primitives.module import Module
from plait.primitives.prediction import Completions, Prediction
from plait.signatures import InputField, OutputField, Signature, ensure_signature

RATIONALE_PREFIX = "Accurate Reasoning: Thank you everyone. Let's now holistically"
ATTEMPT_DESC = "an earlier attempt: its reasoning and its (possibly wrong) prediction"
RATIONALE_DESC = "the corrected reasoning, after comparing every attempt"


class MultiChainComparison(Module):
    """``MultiChainComparison("question -> answer", M=3)(completions, question=...)``.

    ``completions`` are M earlier attempts (Predictions or dicts with ``reasoning`` or
    ``rationale`` plus the signature's last output field, e.g. from a ChainOfThought with
    ``n=M``). Each becomes an input ``reasoning_attempt_i`` that reads "«I'm trying to
    <rationale> I'm not sure but my prediction is <answer>»"; the prediction has a ``rationale``
    (the corrected reasoning) followed by the signature's outputs.
    """

    def __init__(self, signature: str | Signature | type[Signature], M: int = 3,  # noqa: N803 - DSPy's name
                 temperature: float = 0.7, **config: Any):
        if not isinstance(M, int) or isinstance(M, bool) or M < 1:
            raise ValueError(f"MultiChainComparison(M={M!r}): M is the number of attempts to compare, an int >= 1")
        base = ensure_signature(signature)
        if not base.output_fields:
            raise ValueError("MultiChainComparison needs a signature with at least one output field")
        self.M = M
        self.last_key = list(base.output_fields)[-1]
        extended = base
        for number in range(1, M + 1):
            extended = extended.append(f"reasoning_attempt_{number}",
                                       InputField(prefix=f"Student Attempt #{number}:", desc=ATTEMPT_DESC))
        extended = extended.prepend("rationale", OutputField(prefix=RATIONALE_PREFIX, desc=RATIONALE_DESC))
        self.predict = Predict(extended, temperature=temperature, **config)

    def attempts(self, completions: Any) -> dict[str, str]:
        """The ``reasoning_attempt_i`` inputs for ``completions`` (checks there are exactly M)."""
        rows = _rows(completions)
        if len(rows) != self.M:
            raise ValueError(f"MultiChainComparison was built for M={self.M} attempts but got {len(rows)} "
                             f"completions; pass exactly {self.M} (e.g. ChainOfThought(sig, n={self.M})) "
                             f"or build it with M={len(rows)}")
        inputs = {}
        for number, row in enumerate(rows, start=1):
            rationale = row.get("rationale", row.get("reasoning"))
            if rationale is None:
                raise ValueError(f"completion {number} has no 'reasoning' (or 'rationale') field; it has "
                                 f"{sorted(row)}. Produce the attempts with ChainOfThought")
            if self.last_key not in row:
                raise ValueError(f"completion {number} has no {self.last_key!r} field (the signature's last "
                                 f"output); it has {sorted(row)}")
            inputs[f"reasoning_attempt_{number}"] = (f"«I'm trying to {_first_line(rationale)} I'm not sure "
                                                     f"but my prediction is {_first_line(row[self.last_key])}»")
        return inputs

    def forward(self, completions: Any, **kwargs: Any) -> Prediction:
        return self.predict(**{**self.attempts(completions), **kwargs})

    async def aforward(self, completions: Any, **kwargs: Any) -> Prediction:
        return await self.predict.acall(**{**self.attempts(completions), **kwargs})


def _first_line(value: Any) -> str:
    return str(value).strip().split("\n")[0].strip()


def _rows(completions: Any) -> list[Mapping[str, Any]]:
    if isinstance(completions, Prediction):
        completions = completions.completions if completions.completions is not None else [completions]
    if isinstance(completions, Completions):
        return [row for row in completions._rows]
    if isinstance(completions, (list, tuple)):
        rows = []
        for index, item in enumerate(completions):
            if isinstance(item, Mapping):
                rows.append(item)
            elif hasattr(item, "items"):   # an Example / Prediction
                rows.append(dict(item.items()))
            else:
                raise TypeError(f"completions[{index}] is a {type(item).__name__}; pass Predictions or dicts")
        return rows
    raise TypeError(f"MultiChainComparison takes its attempts as a list of Predictions or dicts, a "
                    f"Completions, or a Prediction with completions; not {type(completions).__name__}")
