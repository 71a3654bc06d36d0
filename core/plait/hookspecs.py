"""The plugin contract: every hook plait calls. Marker and entry-point group: ``"plait"``.

Register hooks return frozen dataclasses (see :mod:`plait.backends`) and must not do I/O,
import SDKs or open clients. Call hooks are ``firstresult``: the first non-None answer wins;
plait's own implementations run last (``trylast``), so a plugin can wrap or replace them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from plait.backends import (AdapterBackend, EmbedderBackend, Event, LMBackend,
                                RetrieverBackend, TeleprompterBackend)
    from plait.lm.types import LMRequest, LMResponse

hookspec = pluggy.HookspecMarker("plait")
hookimpl = pluggy.HookimplMarker("plait")


@hookspec
def plait_register_lms() -> list[LMBackend]:
    """Register LM providers.

    Returns:
        A list of :class:`plait.backends.LMBackend`; ``name`` is the provider part of
        ``plait.LM("provider/model")``. Two plugins registering one name is an error naming both.
    """


@hookspec
def plait_register_retrievers() -> list[RetrieverBackend]:
    """Register retrievers, resolved by ``plait.retriever(name, **config)``.

    Returns:
        A list of :class:`plait.backends.RetrieverBackend`.
    """


@hookspec
def plait_register_embedders() -> list[EmbedderBackend]:
    """Register embedders, resolved by ``plait.embedder(name, **config)``.

    Returns:
        A list of :class:`plait.backends.EmbedderBackend`.
    """


@hookspec
def plait_register_teleprompters() -> list[TeleprompterBackend]:
    """Register optimizers (teleprompters), resolved by ``plait.teleprompter(name, **config)``.

    Returns:
        A list of :class:`plait.backends.TeleprompterBackend`.
    """


@hookspec
def plait_register_adapters() -> list[AdapterBackend]:
    """Register adapters, selectable by name: ``plait.configure(adapter="json")``.

    Returns:
        A list of :class:`plait.backends.AdapterBackend`.
    """


@hookspec(firstresult=True)
def plait_lm_call(lm: Any, request: LMRequest) -> LMResponse | None:
    """Answer one LM request.

    Args:
        lm: the :class:`plait.LM` making the call (its ``backend``, ``model``, settings).
        request: the fully formatted :class:`plait.lm.types.LMRequest`.

    Returns:
        An :class:`plait.lm.types.LMResponse`, or None to let the next implementation answer.
        firstresult: the first non-None response wins. The cache answers first (``tryfirst``);
        the built-in implementation that calls the backend with retries runs last (``trylast``).
        A ``wrapper=True`` implementation sees every call and its response (tracing, metrics).
    """


@hookspec(firstresult=True)
def plait_retrieve(retriever: Any, queries: list[str], k: int, options: dict[str, Any]) -> list[list[Any]] | None:
    """Answer a batch of retrieval queries.

    Args:
        retriever: the retriever being asked.
        queries: the query strings.
        k: passages wanted per query.
        options: search options for ``retriever.search`` (e.g. ``{"filter": {...}}``); empty
            when none were given. An implementation may leave this argument out.

    Returns:
        One list of ``Passage`` per query, sorted by score (best first), or None to let the next
        implementation answer. firstresult: the first non-None answer wins; the built-in
        implementation, which asks the retriever itself, runs last.
    """


@hookspec
def plait_event(event: Event) -> None:
    """Observe progress and telemetry (compile steps, evaluation progress, LM retries).

    Args:
        event: a :class:`plait.backends.Event`.

    Returns:
        Nothing; results are ignored. Listeners must be fast and must not raise: an exception in
        a listener is reported as a warning and never breaks the program that emitted the event.
    """
