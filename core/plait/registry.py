"""Name -> backend resolution over the register hooks.

Each kind's table is built once from the plugins' register hooks and cached until plugins
change (see :func:`plait.plugins.generation`). Every hook implementation is called here, one by
one, so each backend is known together with the plugin and distribution that registered it.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from plait import plugins
from plait.backends import (AdapterBackend, EmbedderBackend, LMBackend, RetrieverBackend,
                            TeleprompterBackend)
from plait.errors import MissingExtraError, PluginError, UnknownBackendError

__all__ = [
    "KINDS", "RegisteredBackend", "adapter", "backends", "create", "embedder", "get_backend",
    "is_installed", "resolve_lm", "retriever", "teleprompter",
]

# kind -> (register hook, dataclass its items must be, words for messages)
_KIND_SPECS: dict[str, tuple[str, type, str]] = {
    "lm": ("plait_register_lms", LMBackend, "LM provider"),
    "retriever": ("plait_register_retrievers", RetrieverBackend, "retriever"),
    "embedder": ("plait_register_embedders", EmbedderBackend, "embedder"),
    "teleprompter": ("plait_register_teleprompters", TeleprompterBackend, "teleprompter"),
    "adapter": ("plait_register_adapters", AdapterBackend, "adapter"),
}
KINDS: tuple[str, ...] = tuple(_KIND_SPECS)

Backend = LMBackend | RetrieverBackend | EmbedderBackend | TeleprompterBackend | AdapterBackend


@dataclass(frozen=True, slots=True)
class RegisteredBackend:
    """A backend together with the plugin (and its distribution) that registered it."""

    backend: Backend
    plugin_name: str
    distribution: str | None

    @property
    def name(self) -> str:
        return self.backend.name


# kind -> (plugins.generation() when built, name -> RegisteredBackend)
_cache: dict[str, tuple[int, dict[str, RegisteredBackend]]] = {}


def _spec(kind: str) -> tuple[str, type, str]:
    try:
        return _KIND_SPECS[kind]
    except KeyError:
        raise UnknownBackendError(f"unknown backend kind {kind!r}; the kinds are: "
                                  f"{', '.join(KINDS)}.") from None


def _table(kind: str) -> dict[str, RegisteredBackend]:
    hook_name, _, _ = _spec(kind)
    manager = plugins.get_plugin_manager()
    current = plugins.generation()
    cached = _cache.get(kind)
    if cached is not None and cached[0] == current:
        return cached[1]
    table = _build_table(kind, getattr(manager.hook, hook_name).get_hookimpls())
    _cache[kind] = (current, table)
    return table


def _build_table(kind: str, impls: list[Any]) -> dict[str, RegisteredBackend]:
    hook_name, backend_type, words = _KIND_SPECS[kind]
    table: dict[str, RegisteredBackend] = {}
    for impl in impls:
        owner = _describe_plugin(impl.plugin_name)
        if impl.wrapper or impl.hookwrapper:
            raise PluginError(f"{owner} implements {hook_name} as a wrapper; register hooks must "
                              f"be plain functions returning a list of {backend_type.__name__}.")
        try:
            items = impl.function()
        except Exception as exc:
            raise PluginError(f"{owner} raised {type(exc).__name__} in {hook_name}: {exc}. Fix "
                              "or uninstall the plugin, or leave it out with PLAIT_PLUGINS.",
                              ) from exc
        if items is None:
            continue
        if not isinstance(items, (list, tuple)):
            raise PluginError(f"{owner} returned {type(items).__name__} from {hook_name}; it "
                              f"must return a list of {backend_type.__name__}.")
        for item in items:
            _check_item(kind, item, owner)
            if item.name in table:
                first = table[item.name]
                if first.plugin_name == impl.plugin_name:
                    raise PluginError(f"{owner} registers the {words} {item.name!r} twice.")
                raise PluginError(
                    f"two plugins register the {words} {item.name!r}: "
                    f"{_describe_plugin(first.plugin_name)} and {owner}. Uninstall one, or load "
                    "only one with PLAIT_PLUGINS=<entry point names>.")
            distribution = plugins.plugin_info(impl.plugin_name).distribution
            table[item.name] = RegisteredBackend(item, impl.plugin_name, distribution)
    return table


def _check_item(kind: str, item: Any, owner: str) -> None:
    hook_name, backend_type, _ = _KIND_SPECS[kind]
    if not isinstance(item, backend_type):
        raise PluginError(f"{owner} returned {item!r} from {hook_name}; each item must be a "
                          f"plait.backends.{backend_type.__name__}.")
    if not isinstance(item.name, str) or not item.name or (kind == "lm" and "/" in item.name):
        raise PluginError(f"{owner} registered a {backend_type.__name__} with the invalid name "
                          f"{item.name!r}; names are non-empty strings"
                          + (" without '/'." if kind == "lm" else "."))
    if not callable(item.factory):
        raise PluginError(f"{owner} registered {item.name!r} with a factory that is not "
                          "callable.")


def _describe_plugin(plugin_name: str) -> str:
    info = plugins.plugin_info(plugin_name)
    if info.distribution is None:
        return f"plugin {plugin_name!r}"
    version = f" {info.version}" if info.version else ""
    return f"plugin {plugin_name!r} (distribution {info.distribution}{version})"


def backends(kind: str) -> dict[str, RegisteredBackend]:
    """Every registered backend of ``kind`` ("lm", "retriever", "embedder", "teleprompter",
    "adapter"), by name."""
    return dict(_table(kind))


def get_backend(kind: str, name: str) -> RegisteredBackend:
    """The backend registered as ``name``; UnknownBackendError (with suggestions) otherwise."""
    table = _table(kind)
    found = table.get(name)
    if found is not None:
        return found
    words = _KIND_SPECS[kind][2]
    if not table:
        raise UnknownBackendError(f"no {words} named {name!r}: no {words}s are registered at all. "
                                  "Install a plugin that provides one; `plait plugins` lists "
                                  "what is registered.")
    known = sorted(table)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownBackendError(f"no {words} named {name!r}.{hint} Known {words}s: "
                              f"{', '.join(known)}. Run `plait plugins` to see every backend, "
                              "its plugin and the extra that installs it.")


def create(kind: str, name: str, /, **config: Any) -> Any:
    """Build the backend registered as ``name`` by calling its factory with ``config``.

    A factory that fails to import its dependencies raises MissingExtraError with the pip
    command that installs them (the original ImportError is chained).
    """
    registered = get_backend(kind, name)
    try:
        return registered.backend.factory(**config)
    except MissingExtraError:
        raise
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] == "plait":
            raise  # plait itself is broken or out of date: not a missing extra
        raise MissingExtraError(_missing_message(kind, registered, exc)) from exc


def _missing_message(kind: str, registered: RegisteredBackend, exc: ImportError) -> str:
    backend = registered.backend
    missing = exc.name or str(exc)
    distribution = registered.distribution
    if backend.extra and distribution in (None, plugins.OUR_DISTRIBUTION):
        command = f"pip install 'plait[{backend.extra}]'"
    elif backend.extra:
        command = f"pip install '{distribution}[{backend.extra}]'"
    elif distribution not in (None, plugins.OUR_DISTRIBUTION):
        command = f"pip install --force-reinstall '{distribution}'"
    else:
        top = (exc.name or "").partition(".")[0]
        command = f"pip install {top}" if top else "install the missing module"
    words = _KIND_SPECS[kind][2]
    return (f"the {words} {backend.name!r} (plugin {registered.plugin_name!r}) needs "
            f"{missing!r}, which is not installed: {exc}. Install it with: {command}")


def is_installed(backend: Backend | RegisteredBackend) -> bool:
    """Whether every module in ``backend.requires`` can be found, without importing it.

    Dotted names are checked by their top-level package: finding a submodule would import its
    parent, and importing SDKs is what this check avoids.
    """
    if isinstance(backend, RegisteredBackend):
        backend = backend.backend
    for module_name in backend.requires:
        top = module_name.partition(".")[0]
        if top in sys.modules:
            continue
        try:
            if importlib.util.find_spec(top) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def resolve_lm(model: str) -> tuple[RegisteredBackend, str]:
    """Split ``"provider/model"`` on the first "/" and find the provider's backend."""
    provider, slash, model_name = model.partition("/") if isinstance(model, str) else ("", "", "")
    if not slash or not provider or not model_name:
        providers = ", ".join(sorted(_table("lm"))) or "none registered"
        raise UnknownBackendError(f"LM model {model!r} must be written 'provider/model' (for "
                                  f"example 'openai/gpt-4o-mini'). Providers: {providers}. Run "
                                  "`plait plugins` to see them all.")
    return get_backend("lm", provider), model_name


def retriever(name: str, /, **config: Any) -> Any:
    """Build the retriever registered as ``name``."""
    return create("retriever", name, **config)


def embedder(name: str, /, **config: Any) -> Any:
    """Build the embedder registered as ``name``."""
    return create("embedder", name, **config)


def teleprompter(name: str, /, **config: Any) -> Any:
    """Build the optimizer (teleprompter) registered as ``name``."""
    return create("teleprompter", name, **config)


def adapter(name: str, /, **config: Any) -> Any:
    """Build the adapter registered as ``name``."""
    return create("adapter", name, **config)
