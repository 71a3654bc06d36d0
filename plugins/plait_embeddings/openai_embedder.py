"""An embedder over any OpenAI-compatible ``/v1/embeddings`` endpoint.

Two transports, one behaviour: the ``openai`` SDK when it is installed (or a ``client=`` is
given), else the standard library's ``urllib`` (no dependency beyond numpy). Either way a failed
batch raises one of plait's typed LM errors, and retryable ones (429, 5xx, timeouts, refused
connections) are retried a bounded number of times by plait's retry loop before surfacing.
Messages never contain the API key.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from plait.errors import (LMAuthError, LMBadRequestError, LMConnectionError, LMError, LMRateLimitError,
                          LMServerError, LMTimeoutError)
from plait.lm.retry import call_with_retries
from plait.retrieve.embedder import Embedder

PROVIDER = "openai-embeddings"
OPENAI_URL = "https://api.openai.com/v1"
LOCAL_PLACEHOLDER_KEY = "no-key-needed-for-local-server"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
# Dimensions of OpenAI's own models, so ``dim`` needs no request for them.
KNOWN_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_DETAIL = 300


def is_local(url: str | None) -> bool:
    host = (urlsplit(url).hostname or "") if url else ""
    return host in LOCAL_HOSTS or host.startswith("127.") or host.endswith(".localhost")


class OpenAIEmbedder(Embedder):
    """Texts -> float32 array (n, dim) from ``POST {api_base}/embeddings``, ``batch_size`` texts per request.

    ``dim`` is ``dimensions=`` when given, known for OpenAI's models, and otherwise learnt from
    the first response (asking ``dim`` before any call sends one short probe request).
    """

    name = "openai"

    def __init__(self, model: str = "text-embedding-3-small", *, api_base: str | None = None,
                 base_url: str | None = None, api_key: str | None = None, dimensions: int | None = None,
                 batch_size: int = 128, num_retries: int = 3, timeout: float = 60.0,
                 headers: Mapping[str, str] | None = None, client: Any = None):
        if not isinstance(model, str) or not model:
            raise ValueError(f"model= must name the embedding model, got {model!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= 2048:
            raise ValueError(f"batch_size must be an int from 1 to 2048 (the API's limit), got {batch_size!r}")
        if not isinstance(num_retries, int) or num_retries < 0:
            raise ValueError(f"num_retries must be an int >= 0, got {num_retries!r}")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            raise ValueError(f"dimensions must be a positive int or None, got {dimensions!r}")
        if api_base and base_url and api_base != base_url:
            raise ValueError(f"api_base={api_base!r} and base_url={base_url!r} disagree: pass one of them")
        api_base = (api_base or base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
                    or (None if client is not None else OPENAI_URL))
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None and client is None:
            if not is_local(api_base):
                raise LMAuthError(f"no API key for the embeddings server at {api_base}: pass api_key=... to "
                                  "plait.embedder('openai', ...) or set OPENAI_API_KEY.", provider=PROVIDER)
            api_key = LOCAL_PLACEHOLDER_KEY    # local servers ignore keys
        self.model = model
        self.api_base = (api_base or str(getattr(client, "base_url", ""))).rstrip("/")
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.num_retries = num_retries
        self.timeout = float(timeout)
        self._key = api_key or ""
        self._headers = dict(headers or {})
        self._client = client if client is not None else self._sdk_client()
        # OpenAI's own sizes are trusted only at OpenAI: other servers reuse names for other models.
        self._dim: int | None = dimensions or (KNOWN_DIMS.get(model) if self.api_base == OPENAI_URL else None)

    def _sdk_client(self) -> Any:
        try:
            import openai
        except ImportError:
            return None    # the urllib transport takes over
        return openai.OpenAI(api_key=self._key, base_url=self.api_base, default_headers=self._headers or None,
                             max_retries=0, timeout=self.timeout)   # plait's loop retries

    @property
    def dim(self) -> int:   # type: ignore[override]
        if self._dim is None:
            self.embed(["dimension probe"])
        return self._dim   # type: ignore[return-value]

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        rows: list[list[float]] = []
        source = f"embedder:openai:{self.model}"
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            rows.extend(call_with_retries(self._embed_batch, batch, num_retries=self.num_retries, source=source))
        matrix = np.asarray(rows, dtype=np.float32)
        if self._dim is None:
            self._dim = int(matrix.shape[1])
        elif matrix.shape[1] != self._dim:
            raise LMServerError(f"the embeddings server at {self.api_base} returned {matrix.shape[1]}-dimensional "
                                f"vectors for model {self.model!r}; expected {self._dim}", provider=PROVIDER)
        return matrix

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        if self._client is not None:
            items = self._call_sdk(batch)
        else:
            items = self._call_http(batch)
        return self._ordered(items, len(batch))

    def _ordered(self, items: Any, expected: int) -> list[list[float]]:
        """Vectors in input order (servers may answer out of order: each item carries its index)."""
        try:
            pairs = sorted((int(index), vector) for index, vector in items)
            vectors = [list(map(float, vector)) for _, vector in pairs]
            indices = [index for index, _ in pairs]
        except (TypeError, ValueError) as exc:
            raise LMServerError(f"the embeddings server at {self.api_base} sent a malformed 'data' list: "
                                f"{exc}", provider=PROVIDER) from None
        if indices != list(range(expected)) or len({len(v) for v in vectors}) != 1:
            raise LMServerError(f"the embeddings server at {self.api_base} answered {len(vectors)} vectors "
                                f"(indices {indices[:8]}...) of sizes {sorted({len(v) for v in vectors})} for "
                                f"{expected} inputs; a complete answer has one vector per input", provider=PROVIDER)
        return vectors

    def _body(self, batch: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        return body

    # --- the openai SDK -------------------------------------------------------------------
    def _call_sdk(self, batch: list[str]) -> list[tuple[int, list[float]]]:
        import openai

        try:
            response = self._client.embeddings.create(**self._body(batch))
        except openai.APITimeoutError:
            raise self._timeout() from None
        except openai.APIConnectionError as exc:
            raise self._unreachable(exc.__cause__ or exc) from None
        except openai.APIStatusError as exc:
            headers = exc.response.headers if exc.response is not None else None
            raise self._status_error(exc.status_code, _detail(exc.body) or exc.message,
                                     retry_after_seconds(headers)) from None
        except (ValueError, openai.APIResponseValidationError) as exc:   # a body that is not JSON
            raise LMServerError(f"the embeddings server at {self.api_base} sent a response the openai SDK "
                                f"could not read: {type(exc).__name__}", provider=PROVIDER) from None
        try:
            return [(item.index, item.embedding) for item in response.data]
        except (AttributeError, TypeError):
            raise LMServerError(f"the embeddings server at {self.api_base} sent items without "
                                "'index' and 'embedding'", provider=PROVIDER) from None

    # --- the standard library ---------------------------------------------------------------
    def _call_http(self, batch: list[str]) -> list[tuple[int, list[float]]]:
        request = urllib.request.Request(
            f"{self.api_base}/embeddings", data=json.dumps(self._body(batch)).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}", **self._headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            raise self._status_error(exc.code, _detail(body) or str(exc.reason),
                                     retry_after_seconds(exc.headers)) from None
        except (TimeoutError, socket.timeout):
            raise self._timeout() from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise self._timeout() from None
            raise self._unreachable(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:   # reset or cut mid-response
            raise self._unreachable(exc) from None
        except ValueError:
            raise LMServerError(f"the embeddings server at {self.api_base} sent a response that is not JSON",
                                provider=PROVIDER) from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise LMServerError(f"the embeddings server at {self.api_base} sent no 'data' list "
                                f"(got {_scrub(str(payload)[:MAX_DETAIL], self._key)})", provider=PROVIDER)
        try:
            return [(item["index"], item["embedding"]) for item in data]
        except (KeyError, TypeError):
            raise LMServerError(f"the embeddings server at {self.api_base} sent items without "
                                "'index' and 'embedding'", provider=PROVIDER) from None

    # --- errors ------------------------------------------------------------------------------
    def _timeout(self) -> LMError:
        return LMTimeoutError(f"the embeddings request to {self.api_base} timed out after {self.timeout}s; pass "
                              "a larger timeout=... or a smaller batch_size=...", provider=PROVIDER)

    def _unreachable(self, reason: Any) -> LMError:
        said = _scrub(str(reason) or type(reason).__name__, self._key)
        return LMConnectionError(f"could not connect to the embeddings server at {self.api_base}: {said}. Is it "
                                 "running, and does api_base end in /v1?", provider=PROVIDER)

    def _status_error(self, status: int, detail: str, retry_after: float | None) -> LMError:
        where = f"the embeddings server at {self.api_base}"
        said = f"(HTTP {status}): {_scrub(detail[:MAX_DETAIL], self._key)}"
        if status == 401:
            return LMAuthError(f"{where} rejected the API key {said}. Pass api_key=... or set OPENAI_API_KEY.",
                               status=status, provider=PROVIDER)
        if status == 403:
            return LMAuthError(f"{where} refused access to model {self.model!r} {said}", status=status,
                               provider=PROVIDER)
        if status == 429:
            return LMRateLimitError(f"{where} rate-limited the request {said}", status=status,
                                    retry_after=retry_after, provider=PROVIDER)
        if status == 408:
            return LMTimeoutError(f"{where} timed out the request {said}", status=status,
                                  retry_after=retry_after, provider=PROVIDER)
        if status >= 500:
            return LMServerError(f"{where} failed {said}", status=status, retry_after=retry_after,
                                 provider=PROVIDER)
        if status == 404:
            return LMBadRequestError(f"{where} has no such model or endpoint {said}. Check model={self.model!r} "
                                     "and that api_base ends in /v1.", status=status, provider=PROVIDER)
        return LMBadRequestError(f"{where} rejected the request {said}. Inputs must be non-empty and within "
                                 "the model's token limit.", status=status, provider=PROVIDER)

    def __repr__(self) -> str:
        transport = "sdk" if self._client is not None else "urllib"
        return f"OpenAIEmbedder(model={self.model!r}, api_base={self.api_base!r}, transport={transport!r})"


def _detail(body: Any) -> str:
    """The server's own words from an error body ({"error": {"message": ...}} and variants)."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        found = body.get("message") or body.get("detail") or (inner.get("message") if isinstance(inner, Mapping)
                                                                else inner)
        return str(found or "")
    return str(body or "")


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a ``retry-after-ms`` or numeric ``retry-after`` header; None when absent or a date."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "<redacted>") if secret and len(secret) >= 4 else text
