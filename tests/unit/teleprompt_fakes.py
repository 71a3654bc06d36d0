"""Shared pieces for the optimizer tests: numbered examples, rule-based LMs, an event recorder."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import plait
from plait.backends import Event
from plait.hookspecs import hookimpl
from plait.lm.types import LMRequest
from plait.testing import DummyLM

_NUMBER = re.compile(r"<(\d+)>")


def question(i: int) -> str:
    return f"what is <{i}>"


def number_of(text: str) -> int:
    match = _NUMBER.search(text)
    assert match is not None, f"no <n> in {text!r}"
    return int(match.group(1))


def numbered(count: int, start: int = 0) -> list[plait.Example]:
    """Examples "what is <i>" -> str(i); the answer is the number itself."""
    return [plait.Example(question=question(i), answer=str(i)).with_inputs("question")
            for i in range(start, start + count)]


def exact(example: plait.Example, prediction: Any, trace: Any = None) -> bool:
    return example.answer == prediction.answer


def demo_count(request: LMRequest) -> int:
    """Demos in a ChatAdapter request: system, a user/assistant pair per demo, the question."""
    return (len(request.messages) - 2) // 2


def demos_text(request: LMRequest) -> str:
    return "\n".join(str(message["content"]) for message in request.messages[1:-1])


class Rules:
    """A rule-based LM answer: ``answer(i, request) -> str | None`` (None: a wrong answer).

    Answers every signature of the tests: ``draft`` is ``d<i>``, ``answer`` comes from the rule.
    Records each request; optional latency (fixed, or jittered per question to shuffle the
    order threads finish in).
    """

    def __init__(self, answer: Callable[[int, LMRequest], str | None] | None = None, *,
                 latency: float = 0.0, jitter: bool = False, error: Callable[[int], bool] | None = None):
        self.answer = answer or (lambda i, request: str(i))
        self.latency = latency
        self.jitter = jitter
        self.error = error
        self.requests: list[LMRequest] = []
        self._lock = threading.Lock()

    def __call__(self, request: LMRequest) -> dict[str, Any]:
        with self._lock:
            self.requests.append(request)
        i = number_of(str(request.context.inputs["question"]))
        if self.latency:
            time.sleep(self.latency * ((i * 7919) % 5 + 1) / 5 if self.jitter else self.latency)
        if self.error is not None and self.error(i):
            raise plait.LMError(f"scripted failure for <{i}>")
        outputs = request.context.signature.output_fields
        result: dict[str, Any] = {}
        if "draft" in outputs:
            result["draft"] = f"d{i}"
        if "answer" in outputs:
            answer = self.answer(i, request)
            result["answer"] = "wrong" if answer is None else answer
        return result


def rule_lm(rules: Rules, *, cache: bool = False) -> DummyLM:
    # a model name of its own: cached answers never leak between tests
    return DummyLM(rules, cache=cache, model=f"dummy/rules-{uuid.uuid4().hex[:12]}")


class TwoStep(plait.Module):
    """question -> draft -> answer: the draft step has no label in the examples."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = plait.Predict("question -> draft")
        self.final = plait.Predict("question, draft -> answer")

    def forward(self, question: str) -> Any:
        draft = self.draft(question=question).draft
        return self.final(question=question, draft=draft)


class Recorder:
    """A plait_event listener keeping every event (register with ``plait.plugins.plugin``)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def plait_event(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event.kind == kind]


def demo_dicts(program: plait.Module) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(demo) for demo in predictor.demos] for name, predictor in program.named_predictors()}
