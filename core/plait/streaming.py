"""Streaming: ``plait.streamify(program)`` yields output-field text as the LM writes it.

While a streamified program runs, every LM call made for a predictor (a request whose context
names an adapter that can parse its answers incrementally, like ChatAdapter) streams from the
backend when it can (``capabilities.streaming`` and ``backend.stream``/``astream``, one
completion, only plait's own ``plait_lm_call`` implementations registered). The adapter's
parser turns chunks into :class:`StreamResponse` objects as each field's text arrives; the
completed text then goes through the normal parse, so the final Prediction is the one a
non-streamed call gives. A call that cannot stream (a cache hit, ``n > 1``, a backend without
streaming, another plugin on the LM call) is made normally and its fields are sent whole, one
piece each. Adapters without an incremental parser (JSON, template) send nothing; their
results arrive in the final Prediction.

Streamed calls are cached and recorded in the LM's history like others, with empty usage
(backends do not report token counts for streams). A failure before the first chunk is
retried like any LM call; after it, it is raised (the chunks were already sent). If the
adapter re-asks after a parse error, the re-ask streams too. The LM side is
:mod:`plait.lm.streamed`.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["StreamListener", "StreamResponse", "streamify"]


@dataclass(frozen=True, slots=True)
class StreamResponse:
    """A piece of one output field's text; ``is_last_chunk`` marks the field's last piece."""

    predict_name: str
    signature_field_name: str
    chunk: str
    is_last_chunk: bool = False


class StreamListener:
    """Selects a field to stream: ``StreamListener(signature_field_name="answer")``.

    Without ``predict``/``predict_name`` the field must be an output of exactly one predictor
    of the program. A listener streams one field once per run unless ``allow_reuse=True``
    (then every call of that predictor streams it, e.g. in a loop).
    """

    def __init__(self, signature_field_name: str, predict: Any = None, predict_name: str | None = None,
                 allow_reuse: bool = False):
        if not isinstance(signature_field_name, str) or not signature_field_name:
            raise ValueError(f"StreamListener needs the name of an output field, like "
                             f"StreamListener(signature_field_name='answer'), not {signature_field_name!r}")
        self.signature_field_name = signature_field_name
        self.predict = predict
        self.predict_name = predict_name
        self.allow_reuse = allow_reuse

    def __repr__(self) -> str:
        return f"StreamListener({self.signature_field_name!r}, predict_name={self.predict_name!r})"


class StreamAbandoned(Exception):
    """Raised inside a streamified program whose consumer stopped reading, to end it early."""


@dataclass(frozen=True, slots=True)
class _Target:
    predictor: Any
    name: str
    field: str
    allow_reuse: bool


class _Stream:
    """One run of a streamified program: where pieces go and which fields are wanted."""

    def __init__(self, push: Callable[[Any], None], named: list[tuple[str, Any]],
                 targets: tuple[_Target, ...] | None):
        self.push = push
        self.named = named
        self.targets = targets          # None: every output field of every predictor
        self.closed = False
        self.used: set[int] = set()     # targets that streamed once (and allow no reuse)

    def start(self, request: Any) -> _CallStream | None:
        """The per-call streamer for ``request``, or None when nothing of it is wanted."""
        if self.closed:
            raise StreamAbandoned("the consumer of this stream stopped reading")
        context = request.context
        signature = getattr(context, "signature", None)
        adapter = getattr(context, "adapter", None)
        if signature is None or adapter is None:
            return None   # a direct lm(...) call inside the program: not a predictor's output
        outputs = signature.output_fields
        fields: dict[str, tuple[str, int | None]] = {}
        if self.targets is None:
            name = next((n for n, p in self.named if getattr(p, "signature", None) is signature), "")
            fields = {field: (name, None) for field in outputs}
        else:
            for index, target in enumerate(self.targets):
                if (target.field in outputs and getattr(target.predictor, "signature", None) is signature
                        and (target.allow_reuse or index not in self.used)):
                    fields[target.field] = (target.name, index)
        make_parser = getattr(adapter, "stream_parser", None)
        parser = make_parser(signature) if fields and make_parser is not None else None
        return None if parser is None else _CallStream(self, parser, fields)


class _CallStream:
    """Feeds one LM call's text to the adapter's parser and sends the wanted pieces."""

    __slots__ = ("stream", "parser", "fields")

    def __init__(self, stream: _Stream, parser: Any, fields: dict[str, tuple[str, int | None]]):
        self.stream = stream
        self.parser = parser
        self.fields = fields

    def feed(self, text: str) -> None:
        self._send(self.parser.feed(text))

    def finish(self, text: str = "") -> None:
        self._send(self.parser.finish(text))

    def _send(self, pieces: list[tuple[str, str, bool]]) -> None:
        stream = self.stream
        if stream.closed:
            raise StreamAbandoned("the consumer of this stream stopped reading")
        for field, text, last in pieces:
            wanted = self.fields.get(field)
            if wanted is None:
                continue
            name, index = wanted
            stream.push(StreamResponse(name, field, text, last))
            if last and index is not None:
                stream.used.add(index)


_current: contextvars.ContextVar[_Stream | None] = contextvars.ContextVar("plait_stream", default=None)
current_stream = _current.get   # LM.request reads this: None unless inside streamify


# --- streamify ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Done:
    result: Any


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


def streamify(program: Any, stream_listeners: Sequence[StreamListener] | None = None,
              include_final_prediction: bool = True, *, async_streaming: bool = True,
              is_async_program: bool | None = None,
              include_final_prediction_in_output_stream: bool | None = None) -> Callable[..., Any]:
    """Wrap ``program`` so that calling it yields :class:`StreamResponse` pieces as output
    field text arrives, then the program's result (the final Prediction).

    ``stream_listeners`` select fields (default: every output field of every predictor).
    With ``include_final_prediction=False`` the result is yielded only when no piece was.
    ``async_streaming=True`` (the default) returns an async generator function (the program
    runs as a task: natively async where it can, else in a worker thread); ``False`` a plain
    generator function (the program runs in a worker thread). ``is_async_program`` forces
    (True) or forbids (False) calling ``program.acall``. Settings and other contextvars of the
    caller are seen by the program.
    """
    if not callable(program):
        raise TypeError(f"streamify() takes a program (a plait.Module or a callable), not {type(program).__name__}")
    if include_final_prediction_in_output_stream is not None:   # DSPy's name for it
        include_final_prediction = include_final_prediction_in_output_stream
    listeners = tuple(stream_listeners or ())
    _resolve(listeners, _named(program))   # bad listeners fail now, not at the first call

    from plait.async_tools import async_runner
    run_async = async_runner(program, native=is_async_program)

    def open_stream(push: Callable[[Any], None]) -> _Stream:
        named = _named(program)   # per run: predictors may have been replaced since
        return _Stream(push, named, _resolve(listeners, named) if listeners else None)

    if async_streaming:
        async def stream_async(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            import asyncio

            loop = asyncio.get_running_loop()
            loop_thread = threading.get_ident()
            queue: asyncio.Queue[Any] = asyncio.Queue()

            def push(item: Any) -> None:
                if threading.get_ident() == loop_thread:
                    queue.put_nowait(item)
                else:
                    loop.call_soon_threadsafe(queue.put_nowait, item)

            stream = open_stream(push)

            async def produce() -> None:
                _current.set(stream)   # a task runs in its own copy of the context
                try:
                    result = await run_async(*args, **kwargs)
                except asyncio.CancelledError:
                    raise
                except BaseException as error:
                    push(_Failed(error))
                else:
                    push(_Done(result))

            task = loop.create_task(produce())
            try:
                emitted = False
                while True:
                    item = await queue.get()
                    if type(item) is StreamResponse:
                        emitted = True
                        yield item
                    elif type(item) is _Done:
                        if include_final_prediction or not emitted:
                            yield item.result
                        return
                    else:
                        raise item.error
            finally:
                stream.closed = True
                if not task.done():
                    task.cancel()

        return stream_async

    def stream_sync(*args: Any, **kwargs: Any) -> Iterator[Any]:
        import queue

        items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stream = open_stream(items.put)
        call = _sync_call(program, is_async_program)

        def work() -> None:
            _current.set(stream)
            try:
                result = call(*args, **kwargs)
            except BaseException as error:
                items.put(_Failed(error))
            else:
                items.put(_Done(result))

        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(work,), name="plait-streamify", daemon=True).start()
        try:
            emitted = False
            while True:
                item = items.get()
                if type(item) is StreamResponse:
                    emitted = True
                    yield item
                elif type(item) is _Done:
                    if include_final_prediction or not emitted:
                        yield item.result
                    return
                else:
                    raise item.error
        finally:
            stream.closed = True

    return stream_sync


def _sync_call(program: Any, native: bool | None) -> Callable[..., Any]:
    """What the sync variant's worker thread calls: ``program`` itself, or, for a program that
    is only async (or ``is_async_program=True``), its coroutine under a new event loop."""
    import inspect

    from plait.async_tools import native_call
    only_async = inspect.iscoroutinefunction(program) or inspect.iscoroutinefunction(
        getattr(program, "__call__", None))
    coroutine = native_call(program) if native or (native is None and only_async) else None
    if coroutine is None:
        return program

    def run(*args: Any, **kwargs: Any) -> Any:
        import asyncio
        return asyncio.run(coroutine(*args, **kwargs))

    return run


def _named(program: Any) -> list[tuple[str, Any]]:
    named_predictors = getattr(program, "named_predictors", None)
    return list(named_predictors()) if callable(named_predictors) else []


def _resolve(listeners: Sequence[StreamListener], named: list[tuple[str, Any]]) -> tuple[_Target, ...]:
    """Each listener's predictor, its name and field, checked against the program."""
    names = ", ".join(name for name, _ in named) or "none found"
    targets = []
    for listener in listeners:
        if not isinstance(listener, StreamListener):
            raise TypeError(f"stream_listeners takes plait.streaming.StreamListener objects, not "
                            f"{type(listener).__name__}")
        field = listener.signature_field_name
        if listener.predict is not None:
            predictor = listener.predict
            name = listener.predict_name or next((n for n, p in named if p is predictor), "")
        elif listener.predict_name is not None:
            found = [p for n, p in named if n == listener.predict_name]
            if not found:
                raise ValueError(f"{listener!r}: the program has no predictor named "
                                 f"{listener.predict_name!r} (its predictors: {names})")
            predictor, name = found[0], listener.predict_name
        else:
            owners = [(n, p) for n, p in named if field in getattr(p, "signature").output_fields]
            if len(owners) != 1:
                which = ("no predictor of the program has" if not owners else
                         f"several predictors ({', '.join(n for n, _ in owners)}) have")
                raise ValueError(f"{listener!r}: {which} an output field {field!r} (predictors: "
                                 f"{names}); pass predict=<the predictor> or predict_name=... to choose")
            name, predictor = owners[0]
        signature = getattr(predictor, "signature", None)
        if signature is None or field not in signature.output_fields:
            outputs = ", ".join(signature.output_fields) if signature is not None else "none: it is not a predictor"
            raise ValueError(f"{listener!r}: {field!r} is not an output field of predictor "
                             f"{name or predictor!r} (its output fields: {outputs})")
        targets.append(_Target(predictor, name, field, bool(listener.allow_reuse)))
    return tuple(targets)
