"""The core's adapters, registered like any plugin's: ``plait.configure(adapter="json")``."""

from __future__ import annotations

from typing import Any

from plait.backends import AdapterBackend
from plait.hookspecs import hookimpl


def _chat(**config: Any) -> Any:
    from plait.adapters.chat import ChatAdapter
    return ChatAdapter(**config)


def _json(**config: Any) -> Any:
    from plait.adapters.json_adapter import JSONAdapter
    return JSONAdapter(**config)


def _template(**config: Any) -> Any:
    from plait.adapters.template import TemplateAdapter
    return TemplateAdapter(**config)


@hookimpl
def plait_register_adapters() -> list[AdapterBackend]:
    return [
        AdapterBackend(name="chat", factory=_chat,
                       summary="chat messages with [[ ## field ## ]] markers (default for chat models)"),
        AdapterBackend(name="json", factory=_json,
                       summary="one JSON object per answer; uses the backend's JSON mode when it has one"),
        AdapterBackend(name="template", factory=_template,
                       summary="'Label: value' prompts a small or text-completion model continues"),
    ]
