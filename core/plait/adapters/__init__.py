"""Adapters: signature + demos + inputs -> LM request; completion -> typed output fields.

``ChatAdapter`` ("chat", field markers), ``JSONAdapter`` ("json", one JSON object) and
``TemplateAdapter`` ("template", "Label: value" prompts for small / text-completion models).
``resolve_adapter`` picks one for a call.
"""

from __future__ import annotations

from typing import Any

from plait.adapters.base import Adapter, Formatted
from plait.adapters.chat import ChatAdapter
from plait.adapters.json_adapter import JSONAdapter
from plait.adapters.template import TemplateAdapter
from plait.settings import effective

__all__ = ["Adapter", "ChatAdapter", "Formatted", "JSONAdapter", "TemplateAdapter", "resolve_adapter"]

# Defaults are shared instances (their per-signature plans are cached on them), so resolving
# an adapter per call costs a few attribute reads.
_DEFAULT_CHAT = ChatAdapter()
_DEFAULT_TEMPLATE = TemplateAdapter()
_BY_NAME: dict[str, Adapter] = {}
_OWN: dict[str, type[Adapter]] = {"chat": ChatAdapter, "json": JSONAdapter, "template": TemplateAdapter}


def resolve_adapter(adapter: Adapter | str | None = None, lm: Any = None) -> Adapter:
    """The adapter for a call: ``adapter`` (an Adapter or a registered name) > the
    ``adapter`` setting > TemplateAdapter when the LM is a small or text-only model >
    ChatAdapter."""
    if adapter is None:
        adapter = effective().get("adapter")
        if adapter is None:   # the usual case: chosen from the LM's capabilities
            caps = getattr(lm, "capabilities", None) if lm is not None else None
            if caps is not None and (caps.small_model or (caps.text and not caps.chat)):
                return _DEFAULT_TEMPLATE
            return _DEFAULT_CHAT
    if isinstance(adapter, Adapter):
        return adapter
    if isinstance(adapter, str):
        return _named(adapter)
    raise TypeError(f"adapter must be an Adapter instance or a registered adapter name "
                    f"('chat', 'json', 'template', ...), not {type(adapter).__name__}")


def _named(name: str) -> Adapter:
    found = _BY_NAME.get(name)
    if found is not None:
        return found
    try:
        from plait.registry import create
    except ImportError:   # registry unavailable: our own three still resolve
        if name not in _OWN:
            raise
        found = _OWN[name]()
    else:
        found = create("adapter", name)
    if not isinstance(found, Adapter):
        raise TypeError(f"the adapter registered as {name!r} built a {type(found).__name__}, "
                        "which is not a plait.adapters.Adapter")
    _BY_NAME[name] = found
    return found
