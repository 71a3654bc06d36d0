"""DummyLM: a scripted LM that answers through the real adapter and hook path.

``DummyLM([{"answer": "Paris"}, ...])`` answers in order; ``DummyLM({"capital of France":
{"answer": "Paris"}})`` answers by the first key found in the last user message (or prompt);
``DummyLM(fn)`` calls ``fn(request)`` (an :class:`LMRequest`; ``request.context.inputs`` holds the
input values) and uses what it returns. An answer is a dict of output field values, formatted by
the calling adapter exactly as a perfect LM would write them, or a str sent back verbatim.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Union

from plait.errors import LMError
from plait.lm.base import LM
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage

Answer = Union[Mapping[str, Any], str]
Answers = Union[list[Answer], Mapping[str, Answer], Callable[[LMRequest], Answer]]


class DummyLMExhausted(LMError):
    """A list-scripted DummyLM was asked more often than it has answers."""


class DummyBackend:
    """The backend behind DummyLM and the ``dummy`` provider."""

    def __init__(self, answers: Answers | None = None, *, small_model: bool = False,
                 model_type: str = "chat"):
        self.answers = [] if answers is None else answers
        self._next = 0
        self._lock = threading.Lock()
        self.calls = 0
        self.capabilities = LMCapabilities(chat=True, text=True, n=True, json_object=True,
                                           prefill=True, small_model=small_model)

    def _pick(self, request: LMRequest) -> Answer:
        answers = self.answers
        if callable(answers):
            return answers(request)
        if isinstance(answers, Mapping):
            text = _last_user_text(request)
            for key, value in answers.items():
                if key in text:
                    return value
            raise LMError(f"DummyLM has no answer whose key appears in the prompt; keys: {list(answers)}")
        with self._lock:
            index = self._next
            self._next += 1
        if index >= len(answers):
            raise DummyLMExhausted(f"DummyLM ran out of answers: it was scripted with {len(answers)} "
                                   f"and was called for answer {index + 1}")
        return answers[index]

    def generate(self, request: LMRequest) -> LMResponse:
        with self._lock:
            self.calls += 1
        n = int(request.params.get("n") or 1)
        outputs = [self._render(request, self._pick(request)) for _ in range(n)]
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.messages or ()) + len(request.prompt or "")
        completion_chars = sum(len(o) for o in outputs)
        prompt_tokens, completion_tokens = prompt_chars // 4, completion_chars // 4   # ~4 chars a token
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        return LMResponse(outputs, usage, request.model)

    @staticmethod
    def _render(request: LMRequest, answer: Answer) -> str:
        if isinstance(answer, str):
            text = answer
        else:
            context = request.context
            if context is not None and context.adapter is not None and context.signature is not None:
                text = context.adapter.format_completion(context.signature, dict(answer))
            else:
                text = "\n".join(f"{key}: {value}" for key, value in answer.items())
        prefill = request.prefill
        if prefill and text.startswith(prefill):   # a backend continues after the prefill
            text = text[len(prefill):]
        return text


def _last_user_text(request: LMRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    for message in reversed(request.messages or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


class DummyLM(LM):
    """An LM for tests: scripted answers, real adapters, real hooks (caching off by default)."""

    def __init__(self, answers: Answers | None = None, *, small_model: bool = False,
                 cache: bool = False, model: str = "dummy/dummy", **kwargs: Any):
        super().__init__(model, cache=cache, backend=DummyBackend(answers, small_model=small_model), **kwargs)

    @property
    def calls(self) -> int:
        return self.backend.calls
