"""The built-in ``plait_lm_call``: ask the LM's backend, retrying retryable errors. Runs last."""

from __future__ import annotations

from typing import Any

from plait.builtins import cache
from plait.hookspecs import hookimpl
from plait.lm.retry import call_with_retries
from plait.lm.types import LMRequest, LMResponse


@hookimpl(trylast=True)
def plait_lm_call(lm: Any, request: LMRequest) -> LMResponse:
    if lm.num_retries:
        return call_with_retries(lm.backend.generate, request, num_retries=lm.num_retries, source=lm.model)
    return lm.backend.generate(request)


def call_builtins(lm: Any, request: LMRequest) -> LMResponse | None:
    """Exactly what pluggy does with the ``plait_lm_call`` hook when plait's built-ins are its
    only implementations: the cache-store wrapper around the cache lookup (``tryfirst``), then,
    when the cache has no answer, the backend call (``trylast``). The plugin manager calls this
    directly in that case (:func:`plait.plugins.call_lm`), skipping pluggy's dispatch."""
    if not request.cache:   # both cache steps do nothing for such a request
        return plait_lm_call(lm, request)
    response = cache.lookup(request)
    if response is None:
        response = plait_lm_call(lm, request)
    cache.store(request, response)
    return response
