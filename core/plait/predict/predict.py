"""Predict: one LM step for a signature, with demos, per-call config and an LM override."""

from __future__ import annotations

from typing import Any

from plait.errors import ConfigurationError, SignatureError, StateError
from plait.primitives.example import Example
from plait.primitives.module import Module, Parameter, needs_usage_tracking
from plait.primitives.prediction import Prediction
from plait.primitives.saved_lms import saved_lm
from plait.settings import effective
from plait.signatures import Signature, ensure_signature

_CALL_OPTION_ORDER = ("signature", "demos", "config", "lm", "adapter")
_CALL_OPTIONS = frozenset(_CALL_OPTION_ORDER)


class Predict(Module, Parameter):
    """``Predict("question -> answer")(question="...")`` returns ``Prediction(answer=...)``.

    Per-call options (keyword arguments that are not input fields): ``config={...}`` (temperature,
    n, max_tokens, ...), ``lm=``, ``demos=``, ``signature=``, ``adapter=``.
    """

    leaf_parameter = True   # discovery does not look inside a Predict

    def __init__(self, signature: str | Signature | type[Signature], *, adapter: Any = None,
                 **config: Any):
        self.signature: Signature = ensure_signature(signature)
        self.config: dict[str, Any] = config
        self.demos: list[Example] = []
        self.lm: Any = None
        self.adapter = adapter

    # --- Parameter ------------------------------------------------------------------------
    def reset(self) -> None:
        self.demos = []
        self.lm = None

    def dump_state(self) -> dict[str, Any]:
        return {"signature": self.signature.dump_state(),
                "demos": [_demo_to_dict(demo) for demo in self.demos],
                "lm": self.lm.dump_state() if self.lm is not None and hasattr(self.lm, "dump_state") else None}

    def validate_state(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise StateError(f"a Predict state must be an object, got {type(state).__name__}")
        missing = {"signature", "demos"} - state.keys()
        if missing:
            raise StateError(f"Predict state lacks {sorted(missing)}")
        if not isinstance(state["demos"], list) or not all(isinstance(d, dict) for d in state["demos"]):
            raise StateError("Predict state 'demos' must be a list of objects")
        try:
            self.signature.load_state(state["signature"])
        except SignatureError as error:
            raise StateError(f"saved signature does not match this predictor: {error}") from error

    def load_state(self, state: dict[str, Any]) -> None:
        """Signature, demos and, as in DSPy, the saved LM (built first: a failure changes nothing)."""
        self.validate_state(state)
        lm = saved_lm(self, state)
        self.signature = self.signature.load_state(state["signature"])
        self.demos = [Example({key: _passages_from_json(value) for key, value in demo.items()})
                      for demo in state["demos"]]
        if lm is not None:
            self.lm = lm

    # --- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            raise TypeError(f"{type(self).__name__} takes keyword arguments named after its input fields, "
                            f"e.g. predict({', '.join(f'{n}=...' for n in self.signature.input_fields)})")
        if needs_usage_tracking():
            return Module.__call__(self, **kwargs)
        return self.forward(**kwargs)   # what Module.__call__ does then, one call shorter

    async def acall(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            raise TypeError(f"{type(self).__name__} takes keyword arguments named after its input fields")
        return await self.aforward(**kwargs)

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any], Signature, list, dict[str, Any]]:
        if _CALL_OPTIONS.isdisjoint(kwargs):   # the usual call: only input fields
            signature, demos, config, lm, adapter = self.signature, self.demos, self.config, self.lm, self.adapter
        else:
            options = {name: kwargs.pop(name) for name in _CALL_OPTION_ORDER if name in kwargs}
            signature = (ensure_signature(options["signature"]) if options.get("signature") is not None
                         else self.signature)
            demos = options["demos"] if options.get("demos") is not None else self.demos
            config = {**self.config, **options["config"]} if options.get("config") else self.config
            lm = options.get("lm") or self.lm
            adapter = options.get("adapter") or self.adapter
        lm = lm or effective().get("lm")
        if lm is None:
            raise ConfigurationError("no LM is configured: call plait.configure(lm=plait.LM('provider/model')) "
                                     "or pass lm=... to this module")
        if (config.get("n") or 1) > 1 and not config.get("temperature"):
            config = {**config, "temperature": 0.7}   # n identical greedy samples would be useless
        resolve = _resolve_adapter or _load_resolve_adapter()
        return lm, resolve(adapter, lm), config, signature, demos, kwargs

    def forward(self, **kwargs: Any) -> Prediction:
        lm, adapter, config, signature, demos, inputs = self._prepare(kwargs)
        completions = adapter(lm, config, signature, demos, inputs)
        return self._finish(completions, signature, inputs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        lm, adapter, config, signature, demos, inputs = self._prepare(kwargs)
        completions = await adapter.acall(lm, config, signature, demos, inputs)
        return self._finish(completions, signature, inputs)

    def _finish(self, completions: list[dict[str, Any]], signature: Signature, inputs: dict[str, Any]) -> Prediction:
        prediction = Prediction.from_completions(completions, signature=signature)
        trace = effective().get("trace")
        if trace is not None:
            trace.append((self, inputs, prediction))
        return prediction

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature!r})"


_resolve_adapter: Any = None


def _load_resolve_adapter() -> Any:
    # plait.adapters is imported on the first call, not when plait.predict is imported
    global _resolve_adapter
    from plait.adapters import resolve_adapter
    _resolve_adapter = resolve_adapter
    return resolve_adapter


def _demo_to_dict(demo: Any) -> dict[str, Any]:
    if isinstance(demo, Example):
        values = demo.toDict()
    elif isinstance(demo, dict):
        values = dict(demo)
    else:
        raise StateError(f"a demo must be an Example or a dict, got {type(demo).__name__}")
    return {key: _passages_to_json(value) for key, value in values.items()}


# Retrieved passages inside demos (a RAG program's context) are saved as tagged objects and come
# back as Passages, so a loaded program sends exactly the prompts the compiled one did.
_PASSAGE_TAG = "plait.Passage"


def _passages_to_json(value: Any) -> Any:
    from plait.retrieve.passage import Passage
    if isinstance(value, Passage):
        return {"type": _PASSAGE_TAG, **value.to_dict()}
    if isinstance(value, (list, tuple)) and any(isinstance(item, Passage) for item in value):
        return [_passages_to_json(item) for item in value]
    return value


def _passages_from_json(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") == _PASSAGE_TAG:
        from plait.retrieve.passage import Passage
        return Passage(value["text"], value.get("score", 0.0), value.get("id"), value.get("metadata") or {})
    if isinstance(value, list) and any(isinstance(item, dict) and item.get("type") == _PASSAGE_TAG for item in value):
        return [_passages_from_json(item) for item in value]
    return value
