"""A fake OpenAI-compatible server behind an httpx MockTransport, for the openai plugin's tests.

The real openai SDK sends real HTTP requests into the transport, so request building, response
parsing and the SDK's own exception classes are all exercised; only the socket is fake.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("openai", reason="the openai plugin's tests need the openai SDK: pip install 'plait[openai]'")
try:   # the openai SDK uses httpx2 (newer releases) or httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]

import plait

API_BASE = "http://127.0.0.1:9/v1"
Reply = Any   # an httpx Response, an exception to raise, or a callable(request) -> either


def chat_body(*texts: str, finish: str = "stop", usage: tuple[int, int] | None = (5, 3),
              model: str = "served-model") -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "x", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish} for i, text in enumerate(texts)]}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                         "total_tokens": usage[0] + usage[1]}
    return body


def text_body(*texts: str, finish: str = "stop", usage: tuple[int, int] = (4, 2)) -> dict[str, Any]:
    return {"id": "x", "object": "text_completion", "created": 1, "model": "served-model",
            "choices": [{"index": i, "text": text, "finish_reason": finish, "logprobs": None}
                        for i, text in enumerate(texts)],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]}}


def ok(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body)


def fail(status: int, message: str = "boom", headers: dict[str, str] | None = None,
         code: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "error", "code": code}},
                          headers=headers)


def sse(chunks: list[dict[str, Any]]) -> httpx.Response:
    lines = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, content=lines.encode(), headers={"content-type": "text/event-stream"})


def chat_chunk(text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class FakeServer:
    """Answers each request with the next scripted reply (the last one repeats); records requests."""

    def __init__(self, *replies: Reply):
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]

    @property
    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests), len(self.replies)) - 1
        reply = self.replies[index]
        if callable(reply) and not isinstance(reply, httpx.Response):
            reply = reply(request)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def make_lm(server: FakeServer, *, api_base: str | None = API_BASE, cache: bool = False,
            num_retries: int = 0, **kwargs: Any) -> plait.LM:
    """A plait.LM on the openai plugin whose HTTP goes to ``server`` (sync and async)."""
    kwargs.setdefault("api_key", "sk-test-key-0000")
    return plait.LM("openai/test-model", api_base=api_base, cache=cache, num_retries=num_retries,
                    http_client=server.client(), async_http_client=server.async_client(), **kwargs)


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make plait's retry sleeps instant and return the delays asked for."""
    import time
    delays: list[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    return delays

