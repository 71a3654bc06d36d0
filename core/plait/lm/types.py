"""The data that crosses the LM hook: requests, responses, usage, backend capabilities.

Plain slotted dataclasses (no pydantic on the hot path). A request's cache key covers every
field that changes the answer and nothing else: never credentials, never the adapter context.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Parameter names that carry credentials or transport details: never part of a cache key,
# never written to a saved program or to history.
SECRET_PARAMS = frozenset({"api_key", "api_token", "token", "authorization", "password", "secret",
                           "headers", "extra_headers", "client", "http_client", "organization"})


@dataclass(slots=True)
class Usage:
    """Token counts (and cost in USD when the backend knows prices) for one or more calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens,
                     self.total_tokens + other.total_tokens, cost)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "cost": self.cost}


@dataclass(frozen=True, slots=True)
class LMCapabilities:
    """What a backend can do; adapters and modules read this to choose their strategy."""

    chat: bool = True               # accepts messages
    text: bool = False              # accepts a raw prompt (text completion)
    n: bool = True                  # returns several choices for one request
    json_object: bool = False       # response_format={"type": "json_object"}
    json_schema: bool = False       # response_format={"type": "json_schema", ...}
    prefill: bool = False           # continues a partial assistant turn (LMRequest.prefill)
    small_model: bool = False       # a small local model: prefer the template adapter
    streaming: bool = False
    tools: bool = False             # native function calling


@dataclass(slots=True)
class RequestContext:
    """Who is asking: the signature and adapter behind a request. Not part of the cache key."""

    signature: Any = None
    adapter: Any = None
    inputs: Any = None        # the input field values (a dict) the request was formatted from


@dataclass(slots=True)
class LMRequest:
    """One fully formatted call. Exactly one of ``messages`` (chat) or ``prompt`` (text) is set.

    ``params`` holds generation settings (temperature, max_tokens, n, stop, seed,
    response_format, ...). ``prefill`` is text the assistant turn starts with; the returned
    outputs do not repeat it.
    """

    model: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prefill: str | None = None
    cache: bool = True
    context: RequestContext | None = None
    _key: str | None = None

    def cache_key(self) -> str:
        """A stable hash of everything that determines the answer (computed once)."""
        key = self._key
        if key is None:
            params = {k: v for k, v in self.params.items() if k not in SECRET_PARAMS}
            payload = json.dumps([self.model, self.messages, self.prompt, params, self.prefill],
                                 sort_keys=True, separators=(",", ":"), default=repr, ensure_ascii=False)
            key = self._key = hashlib.sha256(payload.encode()).hexdigest()
        return key

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for history and logs (credentials removed)."""
        return {"model": self.model, "messages": self.messages, "prompt": self.prompt,
                "params": {k: v for k, v in self.params.items() if k not in SECRET_PARAMS},
                "prefill": self.prefill}


@dataclass(slots=True)
class LMResponse:
    """What a backend answered: one output text per choice (``n`` of them)."""

    outputs: list[str]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    cached: bool = False
    finish_reasons: list[str] | None = None
    raw: Any = None   # the backend's own response object, for debugging; never cached

    def copy(self) -> LMResponse:
        """A copy safe to hand to a caller (the cache copies on read)."""
        return LMResponse(list(self.outputs), Usage(self.usage.prompt_tokens, self.usage.completion_tokens,
                                                    self.usage.total_tokens, self.usage.cost),
                          self.model, self.cached,
                          None if self.finish_reasons is None else list(self.finish_reasons), None)

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "usage": self.usage.to_dict(), "model": self.model,
                "finish_reasons": self.finish_reasons}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LMResponse:
        usage = data.get("usage") or {}
        return cls(list(data["outputs"]), Usage(**usage), data.get("model", ""), False,
                   data.get("finish_reasons"))
