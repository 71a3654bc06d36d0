"""The openai SDK's exceptions, translated into plait's typed LM errors.

plait's retry loop decides what to retry from the error's class (and ``retry_after``), so each
SDK failure must land in the right class. Messages name the server and the fix, and never
carry the API key (scrubbed) or the SDK exception (raised ``from None``: it holds the request
with its Authorization header).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import openai
from plait.errors import (LMAuthError, LMBadRequestError, LMConnectionError, LMContextWindowError,
                          LMError, LMRateLimitError, LMServerError, LMTimeoutError)

try:   # the openai SDK moved to httpx2; older releases use httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]

PROVIDER = "openai"
MAX_DETAIL = 500
# Transport failures that can surface raw while a stream is being read.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError,)

_CONTEXT_WORDS = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|exceeds? the (model'?s? )?context"
    r"|prompt is too long|input is too long|n_ctx", re.I)
# llama.cpp's server answers a request body it cannot validate with HTTP 500 (pydantic's words).
_BODY_VALIDATION = re.compile(r"validation error.*'body'", re.I | re.S)
_SCHEMA_WORDS = re.compile(r"json_schema|response_format|schema", re.I)


def error_detail(exc: openai.APIStatusError, secrets: Sequence[str] = ()) -> str:
    """The server's own words for a failed request, shortened and scrubbed of secrets."""
    body = exc.body
    detail: Any = None
    if isinstance(body, Mapping):
        inner = body.get("error")
        detail = body.get("message") or (inner.get("message") if isinstance(inner, Mapping) else inner)
    text = str(detail or exc.message or "no details").strip().rstrip(".")
    return scrub(text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "...", secrets)


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    return text


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (a number or an HTTP date); None if absent."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def is_context_window_error(exc: openai.APIStatusError) -> bool:
    if exc.status_code not in (400, 413, 422):
        return False
    if getattr(exc, "code", None) == "context_length_exceeded":
        return True
    return bool(_CONTEXT_WORDS.search(error_detail(exc)))


def is_schema_rejection(exc: BaseException) -> bool:
    """Whether a failed json_schema request was refused because of its response_format."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422, 500, 501):
        return False
    detail = error_detail(exc)
    return bool(_SCHEMA_WORDS.search(detail)) and not _CONTEXT_WORDS.search(detail)


def to_plait_error(exc: BaseException, *, base_url: str, model: str, timeout: Any = None,
                   secrets: Sequence[str] = ()) -> LMError:
    """The plait LM error for an SDK (or transport) exception."""
    where = f"the OpenAI-compatible server at {base_url}"
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        limit = f" after {timeout}s" if timeout is not None else ""
        return LMTimeoutError(f"the request to {where} for model {model!r} timed out{limit}. "
                              "Pass a larger timeout=..., or check that the server is not stuck.",
                              provider=PROVIDER)
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        cause = exc.__cause__ or exc.__context__ or exc
        reason = scrub(str(cause) or type(cause).__name__, secrets)
        return LMConnectionError(f"could not connect to {where}: {reason}. Is the server running, "
                                 "and is api_base right (it usually ends in /v1)?", provider=PROVIDER)
    if not isinstance(exc, openai.APIStatusError):
        if isinstance(exc, openai.APIResponseValidationError):
            return LMServerError(f"{where} sent a response the openai SDK could not read: "
                                 f"{scrub(str(exc), secrets)}", provider=PROVIDER)
        return LMError(f"the openai SDK failed talking to {where}: {type(exc).__name__}: "
                       f"{scrub(str(exc), secrets)}", provider=PROVIDER)
    status = exc.status_code
    detail = error_detail(exc, secrets)
    retry_after = retry_after_seconds(exc.response.headers if exc.response is not None else None)
    said = f"(HTTP {status}): {detail}"
    if status == 401:
        return LMAuthError(f"{where} rejected the API key {said}. Pass api_key=... or set "
                           "OPENAI_API_KEY.", status=status, provider=PROVIDER)
    if status == 403:
        return LMAuthError(f"{where} refused access to model {model!r} {said}. Check that the API "
                           "key may use this model.", status=status, provider=PROVIDER)
    if status == 429:
        return LMRateLimitError(f"{where} rate-limited the request {said}", status=status,
                                retry_after=retry_after, provider=PROVIDER)
    if status == 408:
        return LMTimeoutError(f"{where} timed out the request {said}", status=status,
                              retry_after=retry_after, provider=PROVIDER)
    if status >= 500:
        if _BODY_VALIDATION.search(detail):
            return LMBadRequestError(f"{where} could not validate the request body {said}. Remove "
                                     "or fix the parameter it names.", status=status, provider=PROVIDER)
        return LMServerError(f"{where} failed {said}", status=status, retry_after=retry_after,
                             provider=PROVIDER)
    if is_context_window_error(exc):
        return LMContextWindowError(f"the prompt does not fit the context window of model "
                                    f"{model!r} at {base_url} {said}. Shorten the inputs, use fewer demos or a smaller "
                                    "max_tokens, or use a model with a longer context.",
                                    status=status, provider=PROVIDER)
    if status == 404:
        return LMBadRequestError(f"{where} has no such model or endpoint {said}. Check the model "
                                 f"name {model!r} and api_base (it usually ends in /v1).",
                                 status=status, provider=PROVIDER)
    if status == 409:
        return LMServerError(f"{where} reported a conflict {said}", status=status,
                             retry_after=retry_after, provider=PROVIDER)
    return LMBadRequestError(f"{where} rejected the request {said}", status=status, provider=PROVIDER)
