"""ChainOfThought: Predict with a ``reasoning`` output field before the others."""

from __future__ import annotations

from typing import Any

from plait.primitives.module import Module
from plait.primitives.prediction import Prediction
from plait.predict.predict import Predict
from plait.signatures import OutputField, Signature, ensure_signature

# DSPy's prefix is "Reasoning: Let's think step by step in order to"; only the TemplateAdapter
# shows it, and there SmolLM2-135M answered that lead-in with "solve this problem." or nothing,
# where a plain "Reasoning:" got real reasoning (benchmarks/README.md, "Small local LMs").
REASONING_PREFIX = "Reasoning:"


class ChainOfThought(Module):
    """``ChainOfThought("question -> answer")`` answers with ``pred.reasoning`` and ``pred.answer``."""

    def __init__(self, signature: str | Signature | type[Signature], rationale_field: Any = None,
                 rationale_field_type: Any = str, **config: Any):
        base = ensure_signature(signature)
        field = rationale_field or OutputField(prefix=REASONING_PREFIX, desc="${reasoning}")
        self.predict = Predict(base.prepend("reasoning", field, rationale_field_type), **config)

    def forward(self, **kwargs: Any) -> Prediction:
        return self.predict(**kwargs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        return await self.predict.acall(**kwargs)
