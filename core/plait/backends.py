"""What plugins register: frozen dataclasses holding factories (data, not side effects).

A register hook returns a list of these. Nothing here imports an SDK or opens a connection:
the factory does that when a user asks for the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class _Backend:
    name: str
    factory: Callable[..., Any]
    extra: str | None = None          # the pip extra that installs its dependencies: plait[<extra>]
    summary: str = ""
    requires: tuple[str, ...] = ()    # importable module names the factory needs (installed check)


@dataclass(frozen=True, slots=True)
class LMBackend(_Backend):
    """An LM provider. ``name`` is the provider in ``plait.LM("<name>/<model>")``.

    ``factory(model: str, **kwargs)`` returns an object with ``generate(request) -> LMResponse``
    (and optionally ``agenerate``, ``stream``) plus a ``capabilities`` attribute.
    """


@dataclass(frozen=True, slots=True)
class RetrieverBackend(_Backend):
    """A retriever: ``factory(**config)`` returns a Retriever."""


@dataclass(frozen=True, slots=True)
class EmbedderBackend(_Backend):
    """An embedder: ``factory(**config)`` returns an Embedder."""


@dataclass(frozen=True, slots=True)
class TeleprompterBackend(_Backend):
    """An optimizer: ``factory(**config)`` returns a Teleprompter."""


@dataclass(frozen=True, slots=True)
class AdapterBackend(_Backend):
    """An adapter: ``factory(**config)`` returns an Adapter."""


@dataclass(frozen=True, slots=True)
class Event:
    """A progress or telemetry event sent through the ``plait_event`` hook.

    ``kind`` is dotted ("evaluate.progress", "lm.retry", "compile.start"), ``source`` names the
    emitter, ``data`` carries the details (read-only mapping).
    """

    kind: str
    source: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
