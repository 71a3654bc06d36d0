"""``ColBERTv2(url=...)``: a client for the ColBERTv2 server protocol that DSPy's client speaks.

The protocol: ``GET <url>?query=...&k=...`` (or, with ``post_requests=True``, ``POST <url>`` with
JSON ``{"query": ..., "k": ...}``) answers ``{"topk": [{"text", "pid", "score", ...}, ...]}``.
Each hit becomes a :class:`Passage`: ``id=str(pid)``, ``metadata`` = the hit's other keys (for
a plait server: the passage metadata plus ``rank`` and ``prob``). Any ColBERTv2 server works
(DSPy's hosted ones, colbert-ai's server, ``plait serve retriever``).

plait extension: against ``plait serve retriever`` started with ``allow_writes = true``,
``add(texts, ids, metadata)`` and ``clear()`` post to ``<base>/add`` and ``<base>/clear`` (the
url minus its trailing ``/search``). Other servers are read-only; ``add`` says so.

Connection errors, timeouts, HTTP 429 and 5xx are retried ``retries`` times with exponential
backoff; then :class:`ColBERTv2ConnectionError` names the url. A batch of queries either
answers every query or raises: no partial results.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from plait.errors import PlaitError, RetrieverUnavailableError
from plait.retrieve import Passage, Retriever, check_add_args

_sleep = time.sleep   # patched by tests
HIT_FIELDS = frozenset({"text", "long_text", "pid", "score"})   # not copied into metadata


class ColBERTv2Error(PlaitError, RuntimeError):
    """A ColBERTv2 server rejected a request or answered something that is not the protocol."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class ColBERTv2ConnectionError(ColBERTv2Error, RetrieverUnavailableError):
    """The server could not be reached (or kept failing) after every retry."""


class _TransportFailure(Exception):
    """Internal: the request did not complete (connection refused / reset, timeout)."""


class ColBERTv2(Retriever):
    """A retriever backed by a ColBERTv2 server. ``ColBERTv2(url)(query, k=3) -> list[Passage]``.

    ``url`` is the search endpoint (for ``plait serve``: ``http://127.0.0.1:8893/search``);
    ``port`` is appended as in DSPy. ``transport``: "auto" (httpx when installed: keep-alive
    connections; else the standard library), "httpx" or "urllib". ``client``: an httpx.Client
    to use (its base settings apply; plait never closes it).
    """

    def __init__(self, url: str = "http://127.0.0.1:8893/search", port: int | str | None = None,
                 post_requests: bool = False, *, k: int = 3, timeout: float = 10.0, retries: int = 2,
                 backoff: float = 0.25, max_k: int = 100, headers: Mapping[str, str] | None = None,
                 client: Any = None, transport: str = "auto"):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL such as 'http://127.0.0.1:8893/search', got {url!r}")
        if port is not None:
            if not str(port).isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"port must be a number from 1 to 65535, got {port!r}")
            url = f"{url}:{port}"
        for name, value in (("k", k), ("max_k", max_k)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if transport not in ("auto", "httpx", "urllib"):
            raise ValueError(f"transport must be 'auto', 'httpx' or 'urllib', got {transport!r}")
        self.url = url
        self.post_requests = bool(post_requests)
        self.k, self.max_k, self.timeout, self.retries, self.backoff = k, max_k, float(timeout), retries, backoff
        self.headers = {"Accept": "application/json", **(headers or {})}
        path = urllib.parse.urlsplit(url).path.rstrip("/")
        self.base_url = url.rstrip("/")[: -len("/search")] if path.endswith("/search") else None
        self._client, self._owns_client = client, False
        if client is None and transport != "urllib":
            try:
                import httpx
            except ImportError:
                if transport == "httpx":
                    raise ImportError("transport='httpx' needs httpx: pip install 'plait[colbert]'") from None
            else:
                self._client, self._owns_client = httpx.Client(timeout=self.timeout), True

    # --- retrieval ------------------------------------------------------------------------
    def search(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        if k > self.max_k:
            raise ValueError(f"k={k} is more than this ColBERTv2 server allows (max_k={self.max_k}); ask "
                             f"for at most {self.max_k} passages")
        return [self._search_one(query, k) for query in queries]

    def __call__(self, query_or_queries: str | Sequence[str], k: int | None = None, *, filter: Any = None,
                 simplify: bool = False) -> Any:
        """As DSPy's: ``simplify=True`` returns the texts only."""
        results = super().__call__(query_or_queries, k, filter=filter)
        if not simplify:
            return results
        if isinstance(query_or_queries, str):
            return [passage.text for passage in results]
        return [[passage.text for passage in passages] for passages in results]

    def _search_one(self, query: str, k: int) -> list[Passage]:
        if self.post_requests:
            answer = self._request("POST", self.url, body={"query": query, "k": k})
        else:
            answer = self._request("GET", self.url, params={"query": query, "k": k})
        topk = answer.get("topk")
        if not isinstance(topk, list):
            raise ColBERTv2Error(f"the ColBERTv2 server at {self.url} answered without a 'topk' list "
                                 f"(keys: {sorted(answer)}); is the url a ColBERTv2 search endpoint?",
                                 url=self.url)
        return [self._passage(hit) for hit in topk[:k]]

    def _passage(self, hit: Any) -> Passage:
        if not isinstance(hit, dict) or not isinstance(hit.get("text", hit.get("long_text")), str):
            raise ColBERTv2Error(f"the ColBERTv2 server at {self.url} sent a hit without a 'text' string: "
                                 f"{str(hit)[:200]}", url=self.url)
        score = hit.get("score", 0.0)
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            raise ColBERTv2Error(f"the ColBERTv2 server at {self.url} sent a non-numeric score {score!r}",
                                 url=self.url)
        pid = hit.get("pid")
        return Passage(hit.get("text", hit.get("long_text")), float(score), None if pid is None else str(pid),
                       {key: value for key, value in hit.items() if key not in HIT_FIELDS})

    # --- plait extension: writes ----------------------------------------------------------
    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        """Index texts on a plait server (``POST <base>/add``); adding an existing id replaces it."""
        texts, ids, metas = check_add_args(texts, ids, metadata)
        if not texts:
            return []
        answer = self._request("POST", self._write_url("add"), body={"texts": texts, "ids": ids, "metadata": metas})
        returned = answer.get("ids")
        if returned != ids:
            raise ColBERTv2Error(f"the server at {self.base_url} answered add() with ids {str(returned)[:200]}, "
                                 f"expected the {len(ids)} ids sent", url=self.url)
        return ids

    def clear(self) -> None:
        """Remove every passage from a plait server's index (``POST <base>/clear``)."""
        self._request("POST", self._write_url("clear"), body={})

    def _write_url(self, action: str) -> str:
        if self.base_url is None:
            raise ColBERTv2Error(f"{action}() is a plait extension served by `plait serve retriever` at "
                                 f"<base>/{action}; the url {self.url} does not end in /search, so this "
                                 f"client treats the server as read-only", url=self.url)
        return f"{self.base_url}/{action}"

    # --- HTTP -----------------------------------------------------------------------------
    def _request(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                 body: dict[str, Any] | None = None) -> dict[str, Any]:
        attempts = self.retries + 1
        problem = ""
        for attempt in range(attempts):
            try:
                status, content = self._send(method, url, params, body)
            except _TransportFailure as failure:
                problem = str(failure)
            else:
                if status < 500 and status != 429:
                    return self._decode(url, status, content)
                problem = f"HTTP {status}: {_message(content)}"
            if attempt + 1 < attempts:
                _sleep(self.backoff * 2 ** attempt)
        raise ColBERTv2ConnectionError(
            f"the ColBERTv2 server at {url} did not answer after {attempts} attempts (last: {problem}); "
            f"check that the server is running (plait serve retriever CONFIG) and the url", url=url)

    def _decode(self, url: str, status: int, content: bytes) -> dict[str, Any]:
        if status >= 400:
            raise ColBERTv2Error(f"the ColBERTv2 server at {url} rejected the request (HTTP {status}): "
                                 f"{_message(content)}", url=url, status=status)
        try:
            answer = json.loads(content)
        except (UnicodeDecodeError, ValueError) as error:
            raise ColBERTv2Error(f"the ColBERTv2 server at {url} did not answer JSON ({error}): "
                                 f"{content[:200]!r}", url=url, status=status) from error
        if not isinstance(answer, dict):
            raise ColBERTv2Error(f"the ColBERTv2 server at {url} answered a JSON {type(answer).__name__}, "
                                 f"not an object", url=url, status=status)
        if answer.get("error"):
            raise ColBERTv2Error(f"the ColBERTv2 server at {url} returned an error: "
                                 f"{answer.get('message', 'no message')}", url=url, status=status)
        return answer

    def _send(self, method: str, url: str, params: dict[str, Any] | None,
              body: dict[str, Any] | None) -> tuple[int, bytes]:
        if self._client is not None:
            return self._send_httpx(method, url, params, body)
        return self._send_urllib(method, url, params, body)

    def _send_httpx(self, method: str, url: str, params: dict[str, Any] | None,
                    body: dict[str, Any] | None) -> tuple[int, bytes]:
        import httpx

        try:
            # no per-request timeout: our own client has one, an injected client keeps its settings
            response = self._client.request(method, url, params=params, json=body, headers=self.headers)
        except httpx.TransportError as error:   # connect/read errors, timeouts, broken connections
            raise _TransportFailure(f"{type(error).__name__}: {error}") from error
        return response.status_code, response.content

    def _send_urllib(self, method: str, url: str, params: dict[str, Any] | None,
                     body: dict[str, Any] | None) -> tuple[int, bytes]:
        import http.client

        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise _TransportFailure(f"{type(error).__name__}: {error}") from error

    def close(self) -> None:
        """Close the connection pool this client opened (an injected ``client`` is left open)."""
        if self._owns_client and self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        return f"ColBERTv2(url={self.url!r}, post_requests={self.post_requests})"


def _message(content: bytes) -> str:
    """The server's own words: ``message`` or ``detail`` of a JSON error body, else the text."""
    try:
        answer = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        return content[:300].decode(errors="replace") or "(empty body)"
    if isinstance(answer, dict):
        for key in ("message", "detail", "error"):
            if isinstance(answer.get(key), str):
                return answer[key]
    return json.dumps(answer)[:300]
