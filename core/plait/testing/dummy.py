"""DummyLM: a scripted LM that answers through the real adapter and hook path.

``DummyLM([{"answer": "Paris"}, ...])`` answers in order; ``DummyLM({"capital of France":
{"answer": "Paris"}})`` answers by the first key found in the last user message (or prompt);
``DummyLM(fn)`` calls ``fn(request)`` (an :class:`LMRequest`; ``request.context.inputs`` holds the
input values) and uses what it returns. An answer is a dict of output field values, formatted by
the calling adapter exactly as a perfect LM would write them, or a str sent back verbatim.

The backend is natively async (``agenerate``, ``astream``) and streams (``stream`` yields the
rendered answer ``stream_chunk_size`` characters at a time), so async and streaming programs
run their real code paths in tests. ``latency=`` (seconds) makes every call take that long:
``time.sleep`` for sync calls, ``asyncio.sleep`` for async ones.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Union

from plait.errors import LMBadRequestError, LMError
from plait.lm.base import LM
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage

Answer = Union[Mapping[str, Any], str]
Answers = Union[list[Answer], Mapping[str, Answer], Callable[[LMRequest], Answer]]


class DummyLMExhausted(LMError):
    """A list-scripted DummyLM was asked more often than it has answers."""


class DummyBackend:
    """The backend behind DummyLM and the ``dummy`` provider."""

    def __init__(self, answers: Answers | None = None, *, small_model: bool = False,
                 model_type: str = "chat", latency: float = 0.0, stream_chunk_size: int = 4):
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
            raise ValueError(f"latency must be a number of seconds >= 0, not {latency!r}")
        if isinstance(stream_chunk_size, bool) or not isinstance(stream_chunk_size, int) or stream_chunk_size < 1:
            raise ValueError(f"stream_chunk_size must be a positive int, not {stream_chunk_size!r}")
        self.answers = [] if answers is None else answers
        self.latency = float(latency)
        self.stream_chunk_size = stream_chunk_size
        self._next = 0
        self._lock = threading.Lock()
        self.calls = 0
        self.capabilities = LMCapabilities(chat=True, text=True, n=True, json_object=True,
                                           prefill=True, small_model=small_model, streaming=True)

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
        if self.latency:
            time.sleep(self.latency)
        return self._answer(request)

    async def agenerate(self, request: LMRequest) -> LMResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._answer(request)

    def stream(self, request: LMRequest) -> Iterator[str]:
        """The rendered answer in ``stream_chunk_size``-character pieces (one completion)."""
        if self.latency:
            time.sleep(self.latency)
        yield from self._pieces(request)

    async def astream(self, request: LMRequest) -> AsyncIterator[str]:
        if self.latency:
            await asyncio.sleep(self.latency)
        for piece in self._pieces(request):
            yield piece
            await asyncio.sleep(0)   # let other tasks run between chunks, as a network stream does

    def _pieces(self, request: LMRequest) -> list[str]:
        if int(request.params.get("n") or 1) != 1:
            raise LMBadRequestError("streaming yields one completion: drop n=... or use generate()",
                                    provider="dummy")
        with self._lock:
            self.calls += 1
        text = self._render(request, self._pick(request))
        size = self.stream_chunk_size
        return [text[start:start + size] for start in range(0, len(text), size)]

    def _answer(self, request: LMRequest) -> LMResponse:
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
                 cache: bool = False, model: str = "dummy/dummy", latency: float = 0.0,
                 stream_chunk_size: int = 4, **kwargs: Any):
        backend = DummyBackend(answers, small_model=small_model, latency=latency,
                               stream_chunk_size=stream_chunk_size)
        super().__init__(model, cache=cache, backend=backend, **kwargs)

    @property
    def calls(self) -> int:
        return self.backend.calls
