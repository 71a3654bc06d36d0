"""Small Parameter subclasses for the primitives tests (the real Predict lives elsewhere)."""

from __future__ import annotations

from typing import Any

from plait.errors import StateError
from plait.primitives import Example, Module, Parameter, Prediction


class FakePredict(Module, Parameter):
    """Predict-like: a signature string, demos and instructions; echoes its inputs."""

    leaf_parameter = True

    def __init__(self, signature: str = "question -> answer", instructions: str = ""):
        self.signature = signature
        self.instructions = instructions
        self.demos: list[Example] = []
        self.lm: Any = None

    def dump_state(self) -> dict[str, Any]:
        return {"signature": self.signature, "instructions": self.instructions,
                "demos": [demo.toDict() for demo in self.demos]}

    def validate_state(self, state: dict[str, Any]) -> None:
        if state.get("signature") != self.signature:
            raise StateError(f"signature {state.get('signature')!r} does not match {self.signature!r}")
        if not isinstance(state.get("demos"), list):
            raise StateError("'demos' must be a list")
        if not isinstance(state.get("instructions"), str):
            raise StateError("'instructions' must be a string")

    def load_state(self, state: dict[str, Any]) -> None:
        self.validate_state(state)
        self.instructions = state["instructions"]
        self.demos = [Example(demo) for demo in state["demos"]]

    def reset(self) -> None:
        self.demos = []
        self.instructions = ""

    def forward(self, **kwargs: Any) -> Prediction:
        return Prediction(answer=f"{self.instructions}:{sorted(kwargs.items())}")


class Counter(Parameter):
    """A learnable unit that is not a Module and not a predictor (no signature)."""

    def __init__(self, value: int = 0):
        self.value = value

    def dump_state(self) -> dict[str, Any]:
        return {"value": self.value}

    def validate_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state.get("value"), int):
            raise StateError(f"'value' must be an int, got {state.get('value')!r}")

    def load_state(self, state: dict[str, Any]) -> None:
        self.value = state["value"]

    def reset(self) -> None:
        self.value = 0


class TwoStep(Module):
    """A program with a predictor, a nested module, a list, a tuple, a dict and a Counter."""

    def __init__(self) -> None:
        super().__init__()
        self.first = FakePredict("question -> draft")
        self.inner = Inner()
        self.steps = [FakePredict("draft -> a"), [FakePredict("draft -> b")]]
        self.pair = (FakePredict("x -> y"),)
        self.by_name = {"k": FakePredict("k -> v"), "nested": {"deep": FakePredict("d -> e")}}
        self.count = Counter(1)

    def forward(self, question: str) -> Prediction:
        return self.first(question=question)


class Inner(Module):
    def __init__(self) -> None:
        self.predict = FakePredict("draft -> answer")   # no super().__init__(): still discovered


def learned(program: Module) -> dict[str, Any]:
    """Every parameter's state: to check a program was or was not changed."""
    return {name: parameter.dump_state() for name, parameter in program.named_parameters()}


def teach(program: Module, tag: str) -> None:
    """Give every FakePredict demos and instructions, and every Counter a value."""
    for index, (name, parameter) in enumerate(program.named_parameters()):
        if isinstance(parameter, FakePredict):
            parameter.instructions = f"{tag}-{name}"
            parameter.demos = [Example(question=f"{tag}-q{index}", answer=f"{tag}-a{index}")]
        elif isinstance(parameter, Counter):
            parameter.value = len(tag) * 10 + index
