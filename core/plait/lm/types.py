"""The data that crosses the LM hook: requests, responses, usage, backend capabilities.

Plain slotted dataclasses (no pydantic on the hot path). A request's cache key covers every
field that changes the answer and nothing else: never credentials, never the adapter context.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from plait.errors import LMBadRequestError

# Parameter names that carry credentials or transport details: never part of a cache key,
# never written to a saved program or to history.
SECRET_PARAMS = frozenset({"api_key", "api_token", "token", "authorization", "password", "secret",
                           "headers", "extra_headers", "client", "http_client", "organization"})


# cache_key memo: a request's plain-value identity -> its key. Bounded by entries and by the
# text it holds (it keeps prompts alive), and emptied when either bound is reached.
_KEY_MEMO: dict[tuple[Any, ...], str] = {}
_KEY_MEMO_ENTRIES = 1024
_KEY_MEMO_CHARS = 4_000_000
_key_memo_chars = 0


def _memo_key(model: Any, messages: Any, prompt: Any, params: dict[str, Any], prefill: Any
              ) -> tuple[Any, ...] | None:
    """A hashable value equal for two requests only if their cache-key JSON is equal, or None
    when the request holds anything else than plain values (each message exactly
    ``{"role": str, "content": str}``; params str, int, float, bool, None or lists of str):
    then the key is computed in full.

    Types are part of the value where == would blur them (1 == 1.0 == True, 0.0 == -0.0),
    since json.dumps writes them differently.
    """
    if type(model) is not str or (prompt is not None and type(prompt) is not str) \
            or (prefill is not None and type(prefill) is not str):
        return None
    plain_params: tuple[Any, ...] = ()
    if params:
        listed = []
        for name, value in params.items():
            if name in SECRET_PARAMS:   # left out of the key, so out of the memo too
                continue
            kind = type(value)
            if kind is float:
                value = repr(value)   # keeps -0.0 apart from 0.0
            elif kind is list or kind is tuple:
                if not all(type(item) is str for item in value):
                    return None
                value = tuple(value)
            elif not (kind is str or kind is int or kind is bool or value is None):
                return None
            listed.append((name, kind, value))
        plain_params = tuple(listed)
    # A flat tuple hashes and compares fastest: five fixed slots, then role, content per message.
    parts: list[Any] = [model, prompt, prefill, plain_params, messages is None]
    if messages is not None:
        if type(messages) is not list:
            return None
        for message in messages:
            if type(message) is not dict or len(message) != 2:
                return None
            role = message.get("role")
            content = message.get("content")
            if type(role) is not str or type(content) is not str:
                return None
            parts.append(role)
            parts.append(content)
    return tuple(parts)


def _remember_key(memo_key: tuple[Any, ...], key: str) -> None:
    global _key_memo_chars
    size = len(memo_key[1] or "") + sum(len(text) for text in memo_key[5:])
    if len(_KEY_MEMO) >= _KEY_MEMO_ENTRIES or _key_memo_chars + size > _KEY_MEMO_CHARS:
        _KEY_MEMO.clear()
        _key_memo_chars = 0
    if size <= _KEY_MEMO_CHARS:
        _KEY_MEMO[memo_key] = key
        _key_memo_chars += size


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
        """A stable hash of everything that determines the answer (computed once).

        The SHA-256 of a canonical JSON of model, messages, prompt, params (credentials
        removed) and prefill. Requests made only of plain strings and numbers are looked up in
        a small memo first (see :func:`_memo_key`), so repeating a request does not pay for the
        JSON and the hash again; the key is the same either way.
        """
        key = self._key
        if key is None:
            memo_key = _memo_key(self.model, self.messages, self.prompt, self.params, self.prefill)
            if memo_key is not None:
                key = _KEY_MEMO.get(memo_key)
            if key is None:
                params = {k: v for k, v in self.params.items() if k not in SECRET_PARAMS}
                payload = json.dumps([self.model, self.messages, self.prompt, params, self.prefill],
                                     sort_keys=True, separators=(",", ":"), default=repr, ensure_ascii=False)
                key = hashlib.sha256(payload.encode()).hexdigest()
                if memo_key is not None:
                    _remember_key(memo_key, key)
            self._key = key
        return key

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for history and logs (credentials removed)."""
        return {"model": self.model, "messages": self.messages, "prompt": self.prompt,
                "params": {k: v for k, v in self.params.items() if k not in SECRET_PARAMS},
                "prefill": self.prefill}


@dataclass(slots=True)
class LMResponse:
    """What a backend answered: one output text per choice (``n`` of them).

    ``tool_calls`` (native function calling) is None when no choice called a tool, else one
    list per choice of ``{"id": str, "name": str, "arguments": str}`` (arguments as the JSON
    text the model wrote).
    """

    outputs: list[str]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    cached: bool = False
    finish_reasons: list[str] | None = None
    raw: Any = None   # the backend's own response object, for debugging; never cached
    tool_calls: list[list[dict[str, Any]]] | None = None

    def copy(self) -> LMResponse:
        """A copy safe to hand to a caller (the cache copies on read)."""
        return LMResponse(list(self.outputs), Usage(self.usage.prompt_tokens, self.usage.completion_tokens,
                                                    self.usage.total_tokens, self.usage.cost),
                          self.model, self.cached,
                          None if self.finish_reasons is None else list(self.finish_reasons), None,
                          None if self.tool_calls is None else
                          [[dict(call) for call in calls] for calls in self.tool_calls])

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"outputs": self.outputs, "usage": self.usage.to_dict(), "model": self.model,
                                 "finish_reasons": self.finish_reasons}
        if self.tool_calls is not None:
            data["tool_calls"] = self.tool_calls
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LMResponse:
        usage = data.get("usage") or {}
        return cls(list(data["outputs"]), Usage(**usage), data.get("model", ""), False,
                   data.get("finish_reasons"), None, data.get("tool_calls"))


def local_text_prompt(request: LMRequest, capabilities: LMCapabilities, model_name: str,
                      provider: str) -> str | None:
    """For a local backend (llama.cpp, transformers): the text prompt to complete, or None when
    the request holds messages. Raises LMBadRequestError naming the fix for a prefill sent with a
    text prompt, and for messages sent to a model loaded as text-only."""
    if request.prompt is not None:
        if request.prefill:
            raise LMBadRequestError("prefill goes with messages, not with a text prompt: append "
                                    "it to the prompt instead", provider=provider)
        return request.prompt
    if not capabilities.chat:
        raise LMBadRequestError(f"{model_name!r} was loaded with model_type='text': pass "
                                "prompt='...' instead of messages", provider=provider)
    return None
