"""The backend object behind ``plait.LM("openai/<model>")``: one OpenAI SDK client per backend.

``generate`` / ``agenerate`` answer a :class:`plait.lm.types.LMRequest` with an
:class:`LMResponse`; ``stream`` yields text deltas. Requests are mapped to the SDK's keyword
arguments once per call with no intermediate objects; parameters the SDK does not name (vLLM's
``top_k``, llama.cpp's ``repeat_penalty``, ...) travel in ``extra_body``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from plait.errors import LMAuthError, LMBadRequestError, LMError, LMServerError
from plait.lm.types import SECRET_PARAMS, LMCapabilities, LMRequest, LMResponse, Usage

from plait_openai.errors import PROVIDER, TRANSPORT_ERRORS, is_schema_rejection, to_plait_error

OPENAI_URL = "https://api.openai.com/v1"
# Sent when no key is configured and the server is on this machine (such servers ignore keys).
LOCAL_PLACEHOLDER_KEY = "no-key-needed-for-local-server"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
JSON_OBJECT = {"type": "json_object"}
TOKEN_PARAMS = frozenset({"max_tokens", "max_completion_tokens"})
# Per-call parameters that are fine despite looking like transport details.
ALLOWED_PER_CALL = frozenset({"extra_headers"})
OPTIONS = ("api_base (or base_url)", "api_key", "organization", "project", "headers", "extra_body",
           "http_client", "async_http_client", "small_model", "function_calling")


def _sdk_params(method: Any) -> frozenset[str]:
    """Keyword arguments the installed SDK's create() names (others go in extra_body)."""
    return frozenset(inspect.signature(method).parameters) - {"self", "model", "messages", "prompt", "stream",
                                                              "stream_options", "extra_body"}


CHAT_PARAMS = _sdk_params(openai.resources.chat.Completions.create)
TEXT_PARAMS = _sdk_params(openai.resources.Completions.create)


def _is_local(url: str | None) -> bool:
    host = (urlsplit(url).hostname or "") if url else ""
    return host in LOCAL_HOSTS or host.startswith("127.") or host.endswith(".localhost")


def _display_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _is_json_schema(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "json_schema"


class OpenAIBackend:
    """An OpenAI-compatible chat or text completion model (see the package docstring)."""

    def __init__(self, model: str, *, model_type: str = "chat", api_key: str | None = None,
                 api_base: str | None = None, base_url: str | None = None,
                 organization: str | None = None, project: str | None = None,
                 headers: dict[str, str] | None = None, extra_body: dict[str, Any] | None = None,
                 http_client: Any = None, async_http_client: Any = None, small_model: bool = False,
                 function_calling: bool | None = None, **unknown: Any):
        if unknown:
            names = ", ".join(sorted(unknown))
            hint = (" plait retries by itself: pass num_retries=... to plait.LM."
                    if {"max_retries", "num_retries"} & set(unknown) else "")
            raise ValueError(f"the openai backend does not take {names}. Its options are "
                             f"{', '.join(OPTIONS)}; generation settings (temperature, max_tokens, "
                             f"...) are passed to plait.LM or per call.{hint}")
        if model_type not in ("chat", "text"):
            raise ValueError(f"model_type must be 'chat' or 'text', not {model_type!r}")
        if api_base and base_url and api_base != base_url:
            raise ValueError(f"api_base={api_base!r} and base_url={base_url!r} disagree: pass one of them")
        api_base = (api_base or base_url or os.environ.get("OPENAI_BASE_URL")
                    or os.environ.get("OPENAI_API_BASE") or None)
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            if not _is_local(api_base):
                where = f"the server at {_display_url(api_base)}" if api_base else "OpenAI"
                raise LMAuthError(f"no API key for {where}: pass api_key=... to plait.LM or set the "
                                  "OPENAI_API_KEY environment variable.", provider=PROVIDER)
            api_key = LOCAL_PLACEHOLDER_KEY
        self.model = model
        self.model_type = model_type
        self.api_base = _display_url(api_base or OPENAI_URL)
        self._secrets = (api_key,)
        self._client_options: dict[str, Any] = {
            "api_key": api_key, "base_url": api_base, "organization": organization, "project": project,
            "default_headers": headers, "max_retries": 0}   # plait's own loop retries
        self._client = openai.OpenAI(**self._client_options, http_client=http_client)
        self._async_http_client = async_http_client
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._chat = model_type == "chat"
        self._known = CHAT_PARAMS if self._chat else TEXT_PARAMS
        official = api_base is None or urlsplit(api_base).hostname == "api.openai.com"
        # OpenAI's chat API wants max_completion_tokens; every other server reads max_tokens.
        self._token_param = "max_completion_tokens" if self._chat and official else "max_tokens"
        self._extra_body: dict[str, Any] = dict(extra_body or {})
        # JSON modes exist for chat only: servers ignore response_format on text completions.
        self.capabilities = LMCapabilities(
            chat=self._chat, text=not self._chat, n=True, json_object=self._chat, json_schema=self._chat,
            prefill=False, small_model=bool(small_model), streaming=True,
            # Function calling: OpenAI's API has it; another server says so with function_calling=True
            # (llama.cpp needs --jinja, vLLM --enable-auto-tool-choice).
            tools=self._chat and (official if function_calling is None else bool(function_calling)))

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, api_base={self.api_base!r}, model_type={self.model_type!r})"

    # --- request mapping ---------------------------------------------------------------------
    def request_kwargs(self, request: LMRequest) -> dict[str, Any]:
        """The SDK create() keyword arguments for ``request``."""
        kwargs: dict[str, Any] = {"model": self.model}
        if self._chat:
            if request.prefill is not None:
                raise LMBadRequestError("the openai backend cannot continue a partial assistant turn "
                                        "(capabilities.prefill is False); send the prefix in the "
                                        "messages instead", provider=PROVIDER)
            kwargs["messages"] = (request.messages if request.messages is not None
                                  else [{"role": "user", "content": request.prompt}])
        else:
            if request.prompt is None:
                raise LMBadRequestError(f"model {self.model!r} was set up with model_type='text' and "
                                        "takes prompt='...', not messages; use model_type='chat' for "
                                        "chat messages", provider=PROVIDER)
            kwargs["prompt"] = request.prompt + (request.prefill or "")
        params = request.params
        target = self._token_param
        extra: dict[str, Any] = {}   # this call's parameters the SDK does not name
        for key, value in params.items():
            if value is None:
                continue
            if key in TOKEN_PARAMS:
                if key != target and target in params:
                    continue   # both given: the one this server reads wins
                key = target
            elif key == "response_format" and _is_json_schema(value) and not self.capabilities.json_schema:
                value = JSON_OBJECT
            elif key in SECRET_PARAMS and key not in ALLOWED_PER_CALL:
                raise ValueError(f"{key!r} cannot be a per-call parameter: pass it to plait.LM(...)")
            if key in self._known:
                kwargs[key] = value
            elif key == "extra_body" and isinstance(value, dict):
                extra.update(value)
            else:
                extra[key] = value
        if extra:
            kwargs["extra_body"] = {**self._extra_body, **extra} if self._extra_body else extra
        elif self._extra_body:
            kwargs["extra_body"] = self._extra_body
        return kwargs

    # --- sync ---------------------------------------------------------------------------------
    def _create_method(self, client: Any) -> Any:
        return client.chat.completions.create if self._chat else client.completions.create

    def _create(self, kwargs: dict[str, Any]) -> Any:
        create = self._create_method(self._client)
        try:
            return create(**kwargs)
        except openai.OpenAIError as exc:
            if not self._falls_back(kwargs, exc):
                failure = self._error(exc, kwargs)
            else:
                try:
                    return create(**kwargs)
                except openai.OpenAIError as again:
                    failure = self._error(again, kwargs)
        raise failure   # outside the except block: the SDK error (and its headers) is not chained

    def generate(self, request: LMRequest) -> LMResponse:
        kwargs = self.request_kwargs(request)
        wanted = kwargs.get("n") or 1
        outputs: list[str] = []
        reasons: list[str] = []
        calls: list[list[dict[str, Any]]] = []
        first = self._create(kwargs)
        usage = self._collect(first, outputs, reasons, calls)
        while len(outputs) < wanted:   # the server gave fewer choices than asked: ask again
            self._next_fill(kwargs, wanted - len(outputs))
            usage += self._collect(self._create(kwargs), outputs, reasons, calls)
        return LMResponse(outputs[:wanted], usage, getattr(first, "model", None) or self.model,
                          False, reasons[:wanted], first, calls[:wanted] if any(calls) else None)

    def stream(self, request: LMRequest) -> Iterator[str]:
        """Yield the completion's text as the server produces it (one choice)."""
        kwargs = self.request_kwargs(request)
        if (kwargs.get("n") or 1) != 1:
            raise LMBadRequestError("streaming yields one completion: drop n=... or use generate()",
                                    provider=PROVIDER)
        kwargs["stream"] = True
        chunks = self._create(kwargs)
        failure: LMError | None = None
        try:
            for chunk in chunks:
                text = self._delta(chunk)
                if text:
                    yield text
        except (openai.OpenAIError, *TRANSPORT_ERRORS) as exc:
            failure = self._error(exc, kwargs)
        finally:
            chunks.close()
        if failure is not None:
            raise failure

    # --- async --------------------------------------------------------------------------------
    def _async_client(self) -> Any:
        # One AsyncOpenAI per event loop: its connection pool belongs to the loop that made it.
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(**self._client_options, http_client=self._async_http_client)
            self._async_clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running event loop's async client and its pooled connections.

        Call it before a loop you made ends (``asyncio.run``); a later call opens a new client.
        """
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def close(self) -> None:
        """Close the sync client's pooled connections (it reconnects if used again)."""
        self._client.close()

    async def _acreate(self, kwargs: dict[str, Any]) -> Any:
        create = self._create_method(self._async_client())
        try:
            return await create(**kwargs)
        except openai.OpenAIError as exc:
            if not self._falls_back(kwargs, exc):
                failure = self._error(exc, kwargs)
            else:
                try:
                    return await create(**kwargs)
                except openai.OpenAIError as again:
                    failure = self._error(again, kwargs)
        raise failure

    async def agenerate(self, request: LMRequest) -> LMResponse:
        kwargs = self.request_kwargs(request)
        wanted = kwargs.get("n") or 1
        outputs: list[str] = []
        reasons: list[str] = []
        calls: list[list[dict[str, Any]]] = []
        first = await self._acreate(kwargs)
        usage = self._collect(first, outputs, reasons, calls)
        while len(outputs) < wanted:
            self._next_fill(kwargs, wanted - len(outputs))
            usage += self._collect(await self._acreate(kwargs), outputs, reasons, calls)
        return LMResponse(outputs[:wanted], usage, getattr(first, "model", None) or self.model,
                          False, reasons[:wanted], first, calls[:wanted] if any(calls) else None)

    async def astream(self, request: LMRequest) -> AsyncIterator[str]:
        """Async :meth:`stream`."""
        kwargs = self.request_kwargs(request)
        if (kwargs.get("n") or 1) != 1:
            raise LMBadRequestError("streaming yields one completion: drop n=... or use agenerate()",
                                    provider=PROVIDER)
        kwargs["stream"] = True
        chunks = await self._acreate(kwargs)
        failure: LMError | None = None
        try:
            async for chunk in chunks:
                text = self._delta(chunk)
                if text:
                    yield text
        except (openai.OpenAIError, *TRANSPORT_ERRORS) as exc:
            failure = self._error(exc, kwargs)
        finally:
            await chunks.close()
        if failure is not None:
            raise failure

    # --- shared helpers -----------------------------------------------------------------------
    def _falls_back(self, kwargs: dict[str, Any], exc: BaseException) -> bool:
        """On a server's refusal of json_schema: switch this request (and the backend) to json_object."""
        if not (_is_json_schema(kwargs.get("response_format")) and is_schema_rejection(exc)):
            return False
        self.capabilities = replace(self.capabilities, json_schema=False)
        kwargs["response_format"] = JSON_OBJECT
        return True

    def _error(self, exc: BaseException, kwargs: dict[str, Any]) -> LMError:
        timeout = kwargs.get("timeout", self._client.timeout)
        return to_plait_error(exc, base_url=self.api_base, model=self.model,
                              timeout=getattr(timeout, "read", timeout), secrets=self._secrets)

    @staticmethod
    def _next_fill(kwargs: dict[str, Any], missing: int) -> None:
        kwargs["n"] = missing
        seed = kwargs.get("seed")
        if isinstance(seed, int):   # a different (still reproducible) sample each time
            kwargs["seed"] = seed + 1

    def _collect(self, response: Any, outputs: list[str], reasons: list[str],
                 calls: list[list[dict[str, Any]]]) -> Usage:
        """Append the response's texts, finish reasons and tool calls; return its usage."""
        choices = getattr(response, "choices", None)
        if not choices:
            raise LMServerError(f"the server at {self.api_base} answered with no choices for model "
                                f"{self.model!r}", provider=PROVIDER)
        chat = self._chat
        for choice in choices:
            message = choice.message if chat else None
            text = (message.content if message is not None else None) if chat else choice.text
            outputs.append(text or "")
            reasons.append(choice.finish_reason or "")
            called = getattr(message, "tool_calls", None) if message is not None else None
            calls.append([{"id": call.id, "name": call.function.name, "arguments": call.function.arguments}
                          for call in called if getattr(call, "function", None) is not None]
                         if called else [])
        usage = response.usage
        if usage is None:
            return Usage()
        prompt_tokens = usage.prompt_tokens or 0
        completion_tokens = usage.completion_tokens or 0
        return Usage(prompt_tokens, completion_tokens,
                     usage.total_tokens or prompt_tokens + completion_tokens)

    def _delta(self, chunk: Any) -> str | None:
        choices = chunk.choices
        if not choices:
            return None
        choice = choices[0]
        if self._chat:
            return choice.delta.content if choice.delta is not None else None
        return choice.text
