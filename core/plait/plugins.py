"""The plugin manager: plait's built-ins first, then entry-point plugins one by one.

Nothing is loaded at import time: the first call to :func:`get_plugin_manager` (directly or
through :func:`emit` / :mod:`plait.registry`) builds the single manager. A broken entry-point
plugin is reported with a :class:`PluginLoadWarning` naming it and its distribution, and the
other plugins still load; ``PLAIT_STRICT_PLUGINS=1`` turns that warning into a
:class:`~plait.errors.PluginError`. ``PLAIT_PLUGINS=a,b`` loads only the entry points named
``a`` and ``b`` (built-ins always load).
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from plait import hookspecs
from plait.backends import Event
from plait.errors import PluginError
from plait.hookspecs import hookimpl

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "BUILTIN_PLUGINS", "ENTRY_POINT_GROUP", "EventListenerWarning", "PluginInfo",
    "PluginLoadWarning", "acall_lm", "call_lm", "emit", "generation", "get_plugin_manager", "hookimpl",
    "lm_call_is_builtin", "loaded_plugins", "plugin", "plugin_info", "register", "reset", "unregister",
]

ENTRY_POINT_GROUP = "plait"
OUR_DISTRIBUTION = "plait"

# Registered in this order, before any entry point, so third-party plugins (registered later,
# called earlier by pluggy) can override them. Authoritative: a missing module is an error.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "plait.builtins.adapters",
    "plait.builtins.dummy",
    "plait.builtins.cache",
    "plait.builtins.lm_call",
    "plait.builtins.progress",
    "plait.builtins.retrieval",
    "plait.builtins.teleprompters",
)


class PluginLoadWarning(UserWarning):
    """An entry-point plugin failed to load; plait goes on without it."""


class EventListenerWarning(UserWarning):
    """A ``plait_event`` listener raised; the event was skipped for that listener."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin, as ``plait plugins --hooks`` shows it."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    hooks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Origin:
    distribution: str | None
    version: str | None
    builtin: bool


class _PlaitPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers where each plugin came from and counts changes."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.origins: dict[str, _Origin] = {}
        self.plain_hookexec = self._inner_hookexec   # replaced while hook calls are monitored

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        # Monitoring (and enable_tracing) must see every call: changing it leaves call_lm's
        # fast path, so it counts as a plugin change.
        undo = super().add_hookcall_monitoring(before, after)
        _bump_generation()

        def undo_and_bump() -> None:
            undo()
            _bump_generation()

        return undo_and_bump

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        _bump_generation()
        return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        key = name if name is not None else self.get_name(plugin)
        removed = super().unregister(plugin, name)
        if key is not None:
            self.origins.pop(key, None)
        _bump_generation()
        return removed


_lock = threading.RLock()
_manager: _PlaitPluginManager | None = None
_building = False
_generation = 0
# (generation, listeners); a listener is (plugin name, function, takes the event argument).
# listeners is None when a wrapper implements plait_event: then pluggy calls the whole hook.
_ListenerTuple = tuple[tuple[str, Callable[..., Any], bool], ...]
_listener_cache: tuple[int, _ListenerTuple | None] = (-1, ())


# (generation, the built-in plait_lm_call chain or None): see call_lm.
_lm_call_route: tuple[int, Callable[[Any, Any], Any] | None] = (-1, None)


def _bump_generation() -> None:
    global _generation
    _generation += 1


def generation() -> int:
    """A counter that changes whenever plugins change; caches built from hooks compare it."""
    return _generation


def get_plugin_manager() -> pluggy.PluginManager:
    """The one plugin manager, built on first use (thread-safe)."""
    manager = _manager
    if manager is not None:
        return manager
    return _build_once()


def _build_once() -> _PlaitPluginManager:
    global _manager, _building
    with _lock:
        if _manager is not None:
            return _manager
        if _building:
            raise PluginError(
                "plait's plugins are still loading: a plugin module used plait's plugin system "
                "while it was being imported. Move that call into a hook implementation.")
        _building = True
        try:
            manager = _PlaitPluginManager()
            manager.add_hookspecs(hookspecs)
            for module_name in BUILTIN_PLUGINS:
                _register_builtin(manager, module_name)
            for entry_point in _selected_entry_points():
                _load_entry_point(manager, entry_point)
            _manager = manager
        finally:
            _building = False
        _bump_generation()
        return manager


def reset() -> None:
    """Forget the plugin manager; the next use rebuilds it (for tests)."""
    global _manager
    with _lock:
        _manager = None
        _bump_generation()


def _register_builtin(manager: _PlaitPluginManager, module_name: str) -> None:
    from plait import __version__

    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(f"plait's built-in plugin {module_name!r} failed to import: "
                          f"{type(exc).__name__}: {exc}") from exc
    # A module with several plugin objects (e.g. a tryfirst one and a wrapper) lists them in
    # a ``plugins()`` function; each is registered on its own, named after the module.
    objects = module.plugins() if callable(getattr(module, "plugins", None)) else [module]
    for plugin_object in objects:
        name = module_name
        if plugin_object is not module:
            label = getattr(plugin_object, "__name__", None) or type(plugin_object).__name__
            name = f"{module_name}.{label}"
        try:
            manager.register(plugin_object, name=name)
            manager.origins[name] = _Origin(OUR_DISTRIBUTION, __version__, builtin=True)
            manager.check_pending()
        except (ValueError, pluggy.PluginValidationError) as exc:
            _discard(manager, plugin_object)
            raise PluginError(f"plait's built-in plugin {name!r} is invalid: {exc}") from exc


def _strict() -> bool:
    return os.environ.get("PLAIT_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


def _allow_list() -> set[str] | None:
    raw = os.environ.get("PLAIT_PLUGINS", "")
    names = {part.strip() for part in raw.split(",") if part.strip()}
    return names or None


def _selected_entry_points() -> list[EntryPoint]:
    import importlib.metadata  # not at import time: it costs more than the rest of this module

    found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    allowed = _allow_list()
    if allowed is not None:
        unknown = sorted(allowed - {entry_point.name for entry_point in found})
        if unknown:
            installed = ", ".join(sorted({ep.name for ep in found})) or "none"
            _report(f"PLAIT_PLUGINS names {', '.join(map(repr, unknown))}, but no installed "
                    f"distribution has such an entry point in group {ENTRY_POINT_GROUP!r} "
                    f"(installed: {installed}). Fix the spelling or install the plugin.", None)
        found = [entry_point for entry_point in found if entry_point.name in allowed]
    return sorted(found, key=lambda entry_point: (entry_point.name, entry_point.value))


def _distribution_of(entry_point: EntryPoint) -> tuple[str | None, str | None]:
    dist = entry_point.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _load_entry_point(manager: _PlaitPluginManager, entry_point: EntryPoint) -> None:
    distribution, version = _distribution_of(entry_point)
    where = (f"plait plugin {entry_point.name!r} (entry point {entry_point.value!r}, "
             f"distribution {distribution or 'unknown'} {version or ''}".rstrip() + ")")
    try:
        plugin_object = entry_point.load()
    except Exception as exc:
        _report(f"{where} failed to import: {type(exc).__name__}: {exc}", exc)
        return
    if manager.is_registered(plugin_object):
        return  # the same object reached twice (e.g. listed by two entry points): harmless
    if manager.get_plugin(entry_point.name) is not None:
        taken_by = manager.origins.get(entry_point.name)
        owner = (taken_by.distribution if taken_by else None) or "a runtime registration"
        _report(f"{where} was not loaded: the name {entry_point.name!r} is already taken by a "
                f"plugin from {owner}. Rename one of the entry points.", None)
        return
    try:
        manager.register(plugin_object, name=entry_point.name)
    except Exception as exc:
        _discard(manager, plugin_object)
        _report(f"{where} is invalid: {type(exc).__name__}: {exc}", exc)
        return
    manager.origins[entry_point.name] = _Origin(distribution, version, builtin=False)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        manager.unregister(name=entry_point.name)
        _report(f"{where} is invalid: {exc}. Check the hook names against plait.hookspecs "
                f"(see `plait plugins --hooks`).", exc)


def _discard(manager: _PlaitPluginManager, plugin_object: Any) -> None:
    """Undo a registration that failed half-way (pluggy keeps the plugin when a hook is bad)."""
    if manager.is_registered(plugin_object):
        manager.unregister(plugin=plugin_object)


def _report(message: str, error: BaseException | None) -> None:
    """Warn about a plugin that did not load, or raise when PLAIT_STRICT_PLUGINS=1."""
    if _strict():
        raise PluginError(message + " (raised because PLAIT_STRICT_PLUGINS=1)") from error
    warnings.warn(message + " plait continues without it; set PLAIT_STRICT_PLUGINS=1 to make "
                  "this an error.", PluginLoadWarning, stacklevel=4)


def register(plugin_object: Any, name: str | None = None) -> str:
    """Register a plugin (module, class or instance with ``@hookimpl`` functions) at runtime.

    Returns the name it was registered under. Raises PluginError when the name is taken, the
    object is already registered, or it implements a hook plait does not have.
    """
    manager = get_plugin_manager()
    if name is not None and manager.get_plugin(name) is not None:
        raise PluginError(f"a plugin named {name!r} is already registered; unregister it first "
                          "or pick another name.")
    try:
        registered = manager.register(plugin_object, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        if not isinstance(exc, ValueError):  # a ValueError means it was registered before
            _discard(manager, plugin_object)
        raise PluginError(f"cannot register plugin {name or plugin_object!r}: {exc}") from exc
    if registered is None:
        raise PluginError(f"plugin {name!r} is blocked and cannot be registered.")
    manager.origins[registered] = _Origin(None, None, builtin=False)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        manager.unregister(name=registered)
        raise PluginError(f"plugin {registered!r} is invalid: {exc}. Check the hook names "
                          "against plait.hookspecs.") from exc
    return registered


def unregister(name_or_plugin: str | Any) -> Any:
    """Remove a plugin by name or by object; returns the plugin object."""
    manager = get_plugin_manager()
    if isinstance(name_or_plugin, str):
        if manager.get_plugin(name_or_plugin) is None:
            known = ", ".join(name for name, _ in manager.list_name_plugin())
            raise PluginError(f"no plugin named {name_or_plugin!r} is registered "
                              f"(registered: {known}).")
        return manager.unregister(name=name_or_plugin)
    if not manager.is_registered(name_or_plugin):
        raise PluginError(f"{name_or_plugin!r} is not a registered plugin.")
    return manager.unregister(plugin=name_or_plugin)


@contextmanager
def plugin(plugin_object: Any, name: str | None = None) -> Iterator[str]:
    """Register ``plugin_object`` for the duration of a ``with`` block (handy in tests)."""
    registered = register(plugin_object, name)
    try:
        yield registered
    finally:
        manager = get_plugin_manager()
        if manager.get_plugin(registered) is plugin_object:
            manager.unregister(name=registered)


def plugin_info(name: str) -> PluginInfo:
    """Where the plugin registered as ``name`` came from, and the hooks it implements."""
    manager = get_plugin_manager()
    plugin_object = manager.get_plugin(name)
    if plugin_object is None:
        raise PluginError(f"no plugin named {name!r} is registered.")
    origin = manager.origins.get(name, _Origin(None, None, builtin=False))
    callers = manager.get_hookcallers(plugin_object) or []
    return PluginInfo(name=name, distribution=origin.distribution, version=origin.version,
                      builtin=origin.builtin, hooks=tuple(sorted(c.name for c in callers)))


def loaded_plugins() -> list[PluginInfo]:
    """Every registered plugin, in registration order (built-ins first)."""
    manager = get_plugin_manager()
    return [plugin_info(name) for name, _ in manager.list_name_plugin()]


def call_lm(lm: Any, request: Any) -> Any:
    """Run the ``plait_lm_call`` hook for ``lm`` and ``request`` (what ``LM.request`` does).

    When plait's own implementations (cache lookup, cache store wrapper, backend call) are the
    only ones and no hook monitoring is on, their chain runs directly, as pluggy would run it
    (:func:`plait.builtins.lm_call.call_builtins`); any other plugin implementing the hook, or
    monitoring, routes every call through pluggy. Decided once per plugin change.
    """
    seen_generation, builtin_chain = _lm_call_route
    if seen_generation != _generation:
        builtin_chain = _route_lm_call()
    if builtin_chain is not None:
        return builtin_chain(lm, request)
    return get_plugin_manager().hook.plait_lm_call(lm=lm, request=request)


def lm_call_is_builtin() -> bool:
    """True while plait's own ``plait_lm_call`` implementations are the only ones and no hook
    monitoring is on: callers may then run the cache and backend steps themselves (the native
    async path, streaming) without skipping anyone's plugin."""
    seen_generation, builtin_chain = _lm_call_route
    if seen_generation != _generation:
        builtin_chain = _route_lm_call()
    return builtin_chain is not None


async def acall_lm(lm: Any, request: Any) -> Any:
    """:func:`call_lm` for async callers (what ``LM.arequest`` does).

    With only plait's own implementations registered and a backend that has ``agenerate``, the
    same three steps run on the event loop: cache lookup, ``await backend.agenerate`` with
    retries (waiting with ``asyncio.sleep``), cache store. Otherwise the hook runs through
    pluggy in a worker thread (contextvars copied), since hook implementations are synchronous.
    """
    agenerate = getattr(lm.backend, "agenerate", None) if lm_call_is_builtin() else None
    if agenerate is None:
        import asyncio   # asyncio only for async callers; importing plugins stays light
        return await asyncio.to_thread(call_lm, lm, request)
    from plait.builtins.cache import lookup, store

    response = lookup(request) if request.cache else None
    if response is not None:
        return response
    if lm.num_retries:
        from plait.lm.retry import acall_with_retries
        response = await acall_with_retries(agenerate, request, num_retries=lm.num_retries, source=lm.model)
    else:
        response = await agenerate(request)
    if request.cache:
        store(request, response)
    return response


def _route_lm_call() -> Callable[[Any, Any], Any] | None:
    global _lm_call_route
    manager = get_plugin_manager()
    current = _generation   # read before the hook implementations: a later change re-routes
    from plait.builtins import cache, lm_call

    builtins = {id(cache.lookup_plugin), id(cache.store_plugin), id(lm_call)}
    impls = manager.hook.plait_lm_call.get_hookimpls()
    plain_hookexec = getattr(manager, "plain_hookexec", None)
    only_builtins = (len(impls) == len(builtins) and {id(impl.plugin) for impl in impls} == builtins
                     and plain_hookexec is not None
                     and plain_hookexec is getattr(manager, "_inner_hookexec", None))
    chain = lm_call.call_builtins if only_builtins else None
    _lm_call_route = (current, chain)
    return chain


def _listeners(manager: pluggy.PluginManager) -> _ListenerTuple | None:
    global _listener_cache
    current = _generation
    cached_generation, cached = _listener_cache
    if cached_generation == current:
        return cached
    impls = manager.hook.plait_event.get_hookimpls()
    listeners: _ListenerTuple | None
    if any(impl.wrapper or impl.hookwrapper for impl in impls):
        listeners = None
    else:  # pluggy calls the last-registered implementation first; keep that order
        listeners = tuple((impl.plugin_name, impl.function, bool(impl.argnames))
                          for impl in reversed(impls))
    _listener_cache = (current, listeners)
    return listeners


def emit(kind: str, source: str = "", **data: Any) -> None:
    """Send an :class:`~plait.backends.Event` to every ``plait_event`` listener.

    A listener that raises is reported with an :class:`EventListenerWarning`; the others still
    run and the caller is never interrupted.
    """
    manager = _manager or get_plugin_manager()
    listeners = _listeners(manager)
    if listeners is not None and not listeners:
        return
    event = Event(kind, source, MappingProxyType(data))
    if listeners is None:
        try:
            manager.hook.plait_event(event=event)
        except Exception as exc:
            _warn_listener("a plait_event wrapper or listener", event, exc)
        return
    for plugin_name, function, takes_event in listeners:
        try:
            if takes_event:
                function(event)
            else:
                function()
        except Exception as exc:
            _warn_listener(f"the plait_event listener of plugin {plugin_name!r}", event, exc)


def _warn_listener(who: str, event: Event, exc: Exception) -> None:
    warnings.warn(f"{who} raised {type(exc).__name__}: {exc} (event {event.kind!r} from "
                  f"{event.source or 'unknown source'!r}); the program goes on. Listeners must "
                  "not raise.", EventListenerWarning, stacklevel=3)
