"""``plait.LM``: one language model, whatever serves it.

``plait.LM("provider/model", **kwargs)`` finds the provider's backend through the
``plait_register_lms`` hook and builds it. Generation settings (temperature, max_tokens, ...)
become default request parameters; everything else (api_base, api_key, n_ctx, ...) configures
the backend. Every call goes through the ``plait_lm_call`` hook: the cache answers first, the
built-in implementation calls ``backend.generate`` with retries last.

Async calls (``arequest``, ``agenerate``, ``acall``) stay on the event loop when the backend
has ``agenerate`` and only plait's own hook implementations are registered; otherwise the
hook runs in a worker thread (see :func:`plait.plugins.acall_lm`). Inside
``plait.streamify`` a predictor's call streams (see :mod:`plait.streaming`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from plait.errors import PluginError
from plait.lm.history import inspect_history, local_timestamp, record
from plait.lm.types import SECRET_PARAMS, LMCapabilities, LMRequest, LMResponse, RequestContext, Usage
from plait.lm.usage import active_trackers
from plait.streaming import current_stream

# Request parameters understood across OpenAI-compatible and local backends.
GENERATION_PARAMS = frozenset({
    "temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k", "n", "stop", "seed",
    "presence_penalty", "frequency_penalty", "repeat_penalty", "logprobs", "top_logprobs",
    "response_format", "logit_bias", "timeout", "tools", "tool_choice", "min_p",
})
MAX_LM_HISTORY = 1_000

_call_lm: Any = None   # plait.plugins.call_lm, bound on first use (plugins are not import-time work)
_acall_lm: Any = None  # plait.plugins.acall_lm, likewise


def _load_call_lm() -> Any:
    global _call_lm
    from plait.plugins import call_lm
    _call_lm = call_lm
    return call_lm


def _load_acall_lm() -> Any:
    global _acall_lm
    from plait.plugins import acall_lm
    _acall_lm = acall_lm
    return acall_lm


class LM:
    """A language model. ``lm(prompt=...)`` / ``lm(messages=[...])`` returns a list of texts."""

    def __init__(self, model: str, *, model_type: str = "chat", cache: bool = True,
                 num_retries: int = 3, backend: Any = None, **kwargs: Any):
        if not isinstance(model, str) or not model:
            raise ValueError("plait.LM needs a 'provider/model' name, like 'openai/gpt-4o-mini' or 'llamacpp/smollm2-135m'")
        if model_type not in ("chat", "text"):
            raise ValueError(f"model_type must be 'chat' or 'text', not {model_type!r}")
        self.model = model
        self.model_type = model_type
        self.cache = cache
        self.num_retries = num_retries
        self.kwargs = {k: v for k, v in kwargs.items() if k in GENERATION_PARAMS}
        self._backend_kwargs = {k: v for k, v in kwargs.items() if k not in GENERATION_PARAMS}
        registry_built = backend is None
        if registry_built:
            from plait import registry   # lazy: resolving plugins is not import-time work
            registered, model_name = registry.resolve_lm(model)
            backend = registry.create("lm", registered.backend.name, model=model_name,
                                      model_type=model_type, **self._backend_kwargs)
        self.backend = backend
        self._injected_backend = None if registry_built else type(backend).__qualname__
        self.provider = model.split("/", 1)[0] if "/" in model else model
        self.history: deque[dict[str, Any]] = deque(maxlen=MAX_LM_HISTORY)

    # --- capabilities ---------------------------------------------------------------------
    @property
    def capabilities(self) -> LMCapabilities:
        caps = getattr(self.backend, "capabilities", None)
        return caps if isinstance(caps, LMCapabilities) else LMCapabilities()

    # --- the call path --------------------------------------------------------------------
    def build_request(self, *, messages: list[dict[str, Any]] | None = None, prompt: str | None = None,
                      prefill: str | None = None, context: RequestContext | None = None,
                      **params: Any) -> LMRequest:
        if (messages is None) == (prompt is None):
            raise ValueError("pass exactly one of messages=[...] (chat) or prompt='...' (text completion)")
        merged = {**self.kwargs, **params} if params else dict(self.kwargs)
        cache = merged.pop("cache", self.cache)
        return LMRequest(self.model, messages, prompt, merged, prefill, cache, context)

    def request(self, request: LMRequest) -> LMResponse:
        """Answer a prepared request through the ``plait_lm_call`` hook; records history and usage."""
        stream = current_stream()
        if stream is None:
            response = (_call_lm or _load_call_lm())(self, request)
        else:
            from plait.lm.streamed import stream_lm_call
            response = stream_lm_call(self, request, stream)
        if response is None:
            raise PluginError("no plugin answered plait_lm_call: the built-in plugin "
                              "'plait.builtins.lm_call' is missing; check PLAIT_PLUGINS")
        self._record(request, response)
        return response

    def generate(self, *, messages: list[dict[str, Any]] | None = None, prompt: str | None = None,
                 prefill: str | None = None, context: RequestContext | None = None,
                 **params: Any) -> LMResponse:
        """Build a request from messages or a prompt plus per-call parameters, and answer it."""
        return self.request(self.build_request(messages=messages, prompt=prompt, prefill=prefill,
                                               context=context, **params))

    async def arequest(self, request: LMRequest) -> LMResponse:
        """``request`` for async code: on the event loop when the backend is natively async."""
        stream = current_stream()
        if stream is None:
            response = await (_acall_lm or _load_acall_lm())(self, request)
        else:
            from plait.lm.streamed import astream_lm_call
            response = await astream_lm_call(self, request, stream)
        if response is None:
            raise PluginError("no plugin answered plait_lm_call: the built-in plugin "
                              "'plait.builtins.lm_call' is missing; check PLAIT_PLUGINS")
        self._record(request, response)
        return response

    async def agenerate(self, **kwargs: Any) -> LMResponse:
        return await self.arequest(self.build_request(**kwargs))

    def stream(self, *, messages: list[dict[str, Any]] | None = None, prompt: str | None = None,
               prefill: str | None = None, **params: Any) -> Iterator[str]:
        """Yield text chunks as the backend produces them (not cached; recorded in history at the end)."""
        request = self.build_request(messages=messages, prompt=prompt, prefill=prefill, **params)
        stream = getattr(self.backend, "stream", None)
        if stream is None or not self.capabilities.streaming:
            raise NotImplementedError(f"the {self.provider!r} backend cannot stream; call lm.generate(...) instead")
        chunks: list[str] = []
        for chunk in stream(request):
            chunks.append(chunk)
            yield chunk
        self._record(request, LMResponse(["".join(chunks)], Usage(), self.model))

    def __call__(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                 **params: Any) -> list[str]:
        """DSPy-style call: a list of completion texts."""
        if prompt is not None and messages is None and self.model_type == "chat":
            messages, prompt = [{"role": "user", "content": prompt}], None
        return self.generate(messages=messages, prompt=prompt, **params).outputs

    async def acall(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                    **params: Any) -> list[str]:
        if prompt is not None and messages is None and self.model_type == "chat":
            messages, prompt = [{"role": "user", "content": prompt}], None
        return (await self.agenerate(messages=messages, prompt=prompt, **params)).outputs

    def _record(self, request: LMRequest, response: LMResponse) -> None:
        usage = response.usage
        params = request.params
        record({"model": self.model, "messages": request.messages, "prompt": request.prompt,
                "prefill": request.prefill, "outputs": response.outputs,
                "params": {} if not params else dict(params) if SECRET_PARAMS.isdisjoint(params)
                else {k: v for k, v in params.items() if k not in SECRET_PARAMS},
                "usage": usage, "cost": usage.cost, "cached": response.cached,
                "timestamp": local_timestamp()}, self.history)
        trackers = active_trackers()
        if trackers:
            for tracker in trackers:
                tracker.add(self.model, usage, response.cached)

    # --- helpers --------------------------------------------------------------------------
    def inspect_history(self, n: int = 1) -> str:
        return inspect_history(n, lm=self)

    def copy(self, **kwargs: Any) -> LM:
        """A new LM sharing this one's backend, with some settings changed."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.history = deque(maxlen=MAX_LM_HISTORY)
        new.kwargs = dict(self.kwargs)
        for key, value in kwargs.items():
            if key in ("cache", "num_retries", "model_type"):
                setattr(new, key, value)
            elif key in GENERATION_PARAMS:
                new.kwargs[key] = value
            else:
                raise ValueError(f"LM.copy() can change generation settings, cache, num_retries or "
                                 f"model_type, not {key!r}: build a new plait.LM for backend settings")
        return new

    def dump_state(self) -> dict[str, Any]:
        """JSON-safe settings (never credentials) for saving with a program; ``LM(**state)``
        builds the same LM again, except where ``injected_backend`` names a backend object that
        was passed in (such an LM cannot be rebuilt from a file)."""
        state = {"model": self.model, "model_type": self.model_type, "cache": self.cache,
                 "num_retries": self.num_retries, **self.kwargs,
                 **{k: v for k, v in self._backend_kwargs.items()
                    if k not in SECRET_PARAMS and isinstance(v, (str, int, float, bool, type(None)))}}
        if self._injected_backend is not None:
            state["injected_backend"] = self._injected_backend
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> LM:
        return self   # an LM holds clients and locks: programs copied for optimisation share it

    def __repr__(self) -> str:
        return f"LM({self.model!r}, {self.kwargs})"
