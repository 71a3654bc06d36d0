"""The built-in ``plait_lm_call``: ask the LM's backend, retrying retryable errors. Runs last."""

from __future__ import annotations

from typing import Any

from plait.hookspecs import hookimpl
from plait.lm.retry import call_with_retries
from plait.lm.types import LMRequest, LMResponse


@hookimpl(trylast=True)
def plait_lm_call(lm: Any, request: LMRequest) -> LMResponse:
    if lm.num_retries:
        return call_with_retries(lm.backend.generate, request, num_retries=lm.num_retries, source=lm.model)
    return lm.backend.generate(request)
