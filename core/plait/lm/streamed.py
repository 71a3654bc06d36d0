"""An LM call inside ``plait.streamify``: streamed from the backend, its fields sent as they arrive.

``LM.request`` / ``LM.arequest`` come here when a stream is active (see :mod:`plait.streaming`).
A call streams when the backend can (``capabilities.streaming`` and ``stream``; ``astream`` for
async callers, else the sync stream in a worker thread), it asks for one completion, and only
plait's own ``plait_lm_call`` implementations are registered, so no plugin is skipped: cache
lookup, the stream (retried like any call until its first chunk arrives), cache store. Any
other call, a cache hit included, is made as usual and its fields are sent whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.streaming import _CallStream, _Stream

__all__ = ["astream_lm_call", "stream_lm_call"]


def _can_stream(lm: Any, request: Any) -> bool:
    from plait.plugins import lm_call_is_builtin
    return (lm.capabilities.streaming and getattr(lm.backend, "stream", None) is not None
            and (request.params.get("n") or 1) == 1 and lm_call_is_builtin())


def stream_lm_call(lm: Any, request: Any, stream: _Stream) -> Any:
    """``LM.request`` inside streamify: answer ``request``, sending its fields as they arrive."""
    from plait.plugins import call_lm
    call = stream.start(request)
    if call is None:
        return call_lm(lm, request)
    return _answer(lm, request, call)


def _answer(lm: Any, request: Any, call: _CallStream) -> Any:
    from plait.builtins.cache import lookup, store
    from plait.plugins import call_lm
    response = None
    if _can_stream(lm, request):
        response = lookup(request)
        if response is None:
            response = _streamed(lm, request, call)
            store(request, response)
            call.finish()
            return response
    if response is None:
        response = call_lm(lm, request)
    _send_whole(call, response)
    return response


def _streamed(lm: Any, request: Any, call: _CallStream) -> Any:
    from plait.lm.retry import call_with_retries
    from plait.lm.types import LMResponse, Usage

    def start(req: Any) -> tuple[Iterator[str], str | None]:
        chunks = iter(lm.backend.stream(req))
        return chunks, next(chunks, None)   # a failure to connect surfaces here, so it is retried

    chunks, chunk = (call_with_retries(start, request, num_retries=lm.num_retries, source=lm.model)
                     if lm.num_retries else start(request))
    parts: list[str] = []
    try:
        while chunk is not None:
            parts.append(chunk)
            call.feed(chunk)
            chunk = next(chunks, None)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return LMResponse(["".join(parts)], Usage(), request.model)


async def astream_lm_call(lm: Any, request: Any, stream: _Stream) -> Any:
    """``LM.arequest`` inside streamify: ``astream`` on the event loop when the backend has it."""
    import asyncio

    from plait.builtins.cache import lookup, store
    from plait.plugins import acall_lm
    call = stream.start(request)
    if call is None:
        return await acall_lm(lm, request)
    response = None
    if _can_stream(lm, request):
        if getattr(lm.backend, "astream", None) is None:
            return await asyncio.to_thread(_answer, lm, request, call)
        response = lookup(request)
        if response is None:
            response = await _astreamed(lm, request, call)
            store(request, response)
            call.finish()
            return response
    if response is None:
        response = await acall_lm(lm, request)
    _send_whole(call, response)
    return response


async def _astreamed(lm: Any, request: Any, call: _CallStream) -> Any:
    from plait.lm.retry import acall_with_retries
    from plait.lm.types import LMResponse, Usage

    async def start(req: Any) -> tuple[Any, str | None]:
        chunks = lm.backend.astream(req).__aiter__()
        return chunks, await anext(chunks, None)

    chunks, chunk = (await acall_with_retries(start, request, num_retries=lm.num_retries, source=lm.model)
                     if lm.num_retries else await start(request))
    parts: list[str] = []
    try:
        while chunk is not None:
            parts.append(chunk)
            call.feed(chunk)
            chunk = await anext(chunks, None)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return LMResponse(["".join(parts)], Usage(), request.model)


def _send_whole(call: _CallStream, response: Any) -> None:
    outputs = getattr(response, "outputs", None)
    call.finish(outputs[0] if outputs else "")
