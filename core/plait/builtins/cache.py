"""The LM response cache as a built-in plugin on the ``plait_lm_call`` hook.

A ``firstresult`` implementation cannot see the answers of the ones after it, so the cache is two
plugin objects, and the plugin manager registers each one that :func:`plugins` returns:

- :data:`lookup_plugin` (``tryfirst``): answers from the cache, or returns None so the call goes on.
- :data:`store_plugin` (``wrapper=True``): sees the final response and stores it when it came from
  a backend (``cached`` is False). Exceptions pass through untouched, so failures are never stored.

Both do nothing for a request with ``cache=False`` or while caching is turned off
(:func:`plait.lm.cache.configure_cache` with ``enabled=False``, or ``PLAIT_CACHE=0``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from plait.hookspecs import hookimpl
from plait.lm.cache import get_cache, is_cache_enabled
from plait.lm.types import LMRequest, LMResponse

__all__ = ["CacheLookup", "CacheStore", "lookup", "lookup_plugin", "plugins", "store", "store_plugin"]


def lookup(request: LMRequest) -> LMResponse | None:
    """The cached response for ``request``, or None (also when caching is off for it)."""
    if not request.cache or not is_cache_enabled():
        return None
    return get_cache().get(request.cache_key())


def store(request: LMRequest, response: LMResponse | None) -> None:
    """Cache ``response`` when it is a fresh answer (not itself a cache hit) to a cacheable request."""
    if request.cache and response is not None and not response.cached and is_cache_enabled():
        get_cache().put(request.cache_key(), response)


class CacheLookup:
    """Answers ``plait_lm_call`` from the cache before any backend runs."""

    @hookimpl(tryfirst=True)
    def plait_lm_call(self, lm: Any, request: LMRequest) -> LMResponse | None:
        return lookup(request)


class CacheStore:
    """Wraps ``plait_lm_call`` and stores each fresh, successful response."""

    @hookimpl(wrapper=True)
    def plait_lm_call(self, lm: Any, request: LMRequest) -> Generator[None, LMResponse | None, LMResponse | None]:
        response = yield
        store(request, response)
        return response


lookup_plugin = CacheLookup()
store_plugin = CacheStore()


def plugins() -> list[object]:
    """The plugin objects the plugin manager registers, each on its own."""
    return [lookup_plugin, store_plugin]
