"""MarqoRetriever: plait's retriever contract over the ``marqo`` client (3.x, Marqo 2.x servers).

The client is imported inside methods only, so importing this module stays cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from plait.errors import ConfigurationError, RetrieverUnavailableError
from plait.retrieve.resilience import run_all
from plait.retrieve.passage import Passage
from plait.retrieve.retriever import Retriever, check_add_args

_MAX_LIMIT = 1_000                        # Marqo's default cap on hits per search
_RETRY_STATUSES = (429, 500, 502, 503, 504)
_ESCAPE = set('\\()[]{}:"^~*?!&|+-/')     # characters with a meaning in Marqo's filter DSL
_sleep = time.sleep                       # patchable: tests skip the backoff waits


class MarqoUnavailableError(RetrieverUnavailableError):
    """Marqo did not answer (connection refused, timeout, 5xx) after plait's bounded retries."""


class MarqoRetriever(Retriever):
    """Tensor search over a Marqo index; the passage text lives in the field ``text_field``.

    Without ``embedder=`` Marqo embeds server-side with the index's model; with one, plait
    sends custom vectors (see the ``plait_marqo`` package docstring for every option).
    """

    supports_filters = True

    def __init__(self, index: str | None = None, *, url: str = "http://localhost:8882", client: Any = None,
                 api_key: str | None = None, embedder: Any = None, text_field: str = "text",
                 searchable_attributes: Sequence[str] | None = None, filter_string: str | None = None,
                 create_index: bool = False, model: str | None = None,
                 model_properties: Mapping[str, Any] | None = None, batch_size: int = 64, max_retries: int = 3,
                 max_concurrency: int = 4, timeout: float = 30.0, k: int = 3):
        if not isinstance(index, str) or not index:
            raise ValueError(f"the marqo retriever needs index='<index name>', got {index!r}")
        if embedder is not None and not callable(embedder):
            raise TypeError(f"embedder must be callable (texts -> vectors), got {type(embedder).__name__}")
        if embedder is not None and model is not None:
            raise ValueError("pass embedder= (plait embeds; the index gets model 'no_model') or model= "
                             "(Marqo embeds server-side), not both")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL such as http://localhost:8882, got {url!r}")
        if not isinstance(text_field, str) or not text_field or text_field.startswith("_"):
            raise ValueError(f"text_field must be a non-empty field name not starting with '_', got {text_field!r}")
        if searchable_attributes is not None and (isinstance(searchable_attributes, str)
                                                  or not all(isinstance(a, str) for a in searchable_attributes)):
            raise TypeError(f"searchable_attributes must be a list of field names, got {searchable_attributes!r}")
        if filter_string is not None and not isinstance(filter_string, str):
            raise TypeError(f"filter_string must be a Marqo filter string, got {type(filter_string).__name__}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.index_name, self.url, self.embedder, self.text_field = index, url, embedder, text_field
        self.searchable_attributes = list(searchable_attributes) if searchable_attributes is not None else None
        self.filter_string, self.k, self.batch_size, self.max_retries = filter_string, k, batch_size, max_retries
        self.max_concurrency = max(1, max_concurrency)
        self._client, self._api_key, self._timeout = client, api_key, timeout
        self._create = (create_index, model, dict(model_properties) if model_properties else None)
        self._index: Any = None
        self._lock = threading.Lock()

    # --- the retriever contract ---------------------------------------------------------------
    def search(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        index = self._handle()
        filter_string = self._combined_filter(filter)
        limit = min(k, _MAX_LIMIT)
        if self.embedder is not None:
            requests = [{"context": {"tensor": [{"vector": vector, "weight": 1.0}]}} for vector in self._embed(queries)]
        else:
            requests = [{"q": query} for query in queries]

        def one(request: dict[str, Any]) -> Any:
            return self._call(lambda: index.search(limit=limit, filter_string=filter_string, show_highlights=False,
                                                   searchable_attributes=self.searchable_attributes, **request),
                              "search")

        answers = run_all(one, requests, self.max_concurrency)
        return [[self._passage(hit) for hit in answer["hits"]] for answer in answers]

    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        texts, ids, metas = check_add_args(texts, ids, metadata)
        if not texts:
            return []
        for pid, meta in zip(ids, metas):
            _check_metadata(pid, meta, self.text_field)
        index = self._handle()
        if self.embedder is not None:
            values: list[Any] = [{"content": text, "vector": vector} for text, vector in zip(texts, self._embed(texts))]
            mappings: dict[str, Any] | None = {self.text_field: {"type": "custom_vector"}}
        else:
            values, mappings = list(texts), None
        documents = [{"_id": pid, **meta, self.text_field: value} for pid, meta, value in zip(ids, metas, values)]
        done = 0
        for start in range(0, len(documents), self.batch_size):
            chunk = documents[start:start + self.batch_size]
            try:
                answer = self._call(partial(index.add_documents, chunk, tensor_fields=[self.text_field],
                                            mappings=mappings), "add_documents")
            except MarqoUnavailableError as exc:
                if done:
                    raise MarqoUnavailableError(
                        f"{exc} -- {done} of {len(documents)} documents were added before the failure "
                        f"(ids {ids[0]!r} .. {ids[done - 1]!r}); nothing was rolled back: call add() again with "
                        f"the same ids to finish (adding replaces by _id)") from exc
                raise
            failed = [item for item in answer.get("items", []) if item.get("status", 200) >= 400]
            if answer.get("errors") or failed:
                shown = "; ".join(f"{item.get('_id')!r}: {item.get('error') or item.get('message')}"
                                  for item in failed[:3])
                raise ValueError(f"Marqo at {self.url} rejected {len(failed)} of {len(chunk)} documents in a batch "
                                 f"({done} documents were added before it): {shown}")
            done += len(chunk)
        return ids

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id."""
        index = self._handle()
        self._call(lambda: index.delete_documents(list(ids)), "delete_documents")

    # --- connecting ---------------------------------------------------------------------------
    def _handle(self) -> Any:
        with self._lock:
            if self._index is None:
                self._index = self._connect()
            return self._index

    def _connect(self) -> Any:
        import marqo

        client = self._client
        if client is None:
            client = marqo.Client(url=self.url, api_key=self._api_key)
            self._client = client
        if getattr(client.config, "timeout", None) is None:
            client.config.timeout = self._timeout   # the client's default is to wait forever
        create_index, model, properties = self._create
        if create_index:
            existing = self._call(client.get_indexes, "get_indexes")
            if self.index_name not in {entry["indexName"] for entry in existing["results"]}:
                if self.embedder is not None:
                    dimension = getattr(self.embedder, "dim", 0) or len(self._embed(["dimension probe"])[0])
                    model, properties = "no_model", {"type": "no_model", "dimensions": dimension}
                self._call(lambda: client.create_index(self.index_name, model=model, model_properties=properties),
                           "create_index")
        return self._call(lambda: client.index(self.index_name), "version check")

    # --- helpers --------------------------------------------------------------------------------
    def _call(self, operation: Callable[[], Any], what: str) -> Any:
        from marqo.errors import BackendCommunicationError, BackendTimeoutError, MarqoWebError

        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return operation()
            except (BackendCommunicationError, BackendTimeoutError) as exc:
                last = exc
            except MarqoWebError as exc:
                if exc.status_code not in _RETRY_STATUSES:
                    if exc.code == "index_not_found":
                        raise ConfigurationError(
                            f"Marqo index {self.index_name!r} does not exist at {self.url}: create it, or pass "
                            f"create_index=True") from exc
                    raise ValueError(f"Marqo at {self.url} rejected the {what}: {exc.message}") from exc
                last = exc
            if attempt < self.max_retries:
                _sleep(min(2.0, 0.25 * 2 ** attempt))
        raise MarqoUnavailableError(
            f"Marqo at {self.url} did not answer the {what} after {self.max_retries + 1} attempts: "
            f"{getattr(last, 'message', last)}. Check that the server is running and that url= points at it") from last

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        matrix = np.asarray(self.embedder(texts), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise ValueError(f"the embedder returned shape {matrix.shape} for {len(texts)} texts")
        return matrix.tolist()

    def _combined_filter(self, filter: Any) -> str | None:
        extra = filter if isinstance(filter, str) or filter is None else to_marqo_filter(filter)
        parts = [part for part in (self.filter_string, extra) if part]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else " AND ".join(f"({part})" for part in parts)

    def _passage(self, hit: Mapping[str, Any]) -> Passage:
        metadata = {key: value for key, value in hit.items() if not key.startswith("_") and key != self.text_field}
        return Passage(str(hit.get(self.text_field, "")), float(hit["_score"]), str(hit["_id"]), metadata)


class MarqoRM(MarqoRetriever):
    """DSPy-style alias: ``MarqoRM(marqo_index_name, marqo_client, k=3, page_content="document",
    filter_string=None)``; ``page_content`` is the text field."""

    def __init__(self, marqo_index_name: str, marqo_client: Any, k: int = 3, page_content: str = "document",
                 filter_string: str | None = None, **options: Any):
        super().__init__(marqo_index_name, client=marqo_client, k=k, text_field=page_content,
                         filter_string=filter_string, **options)


def to_marqo_filter(filter: Mapping[str, Any] | None) -> str | None:
    """Translate plait's portable filter to Marqo's filter DSL.

    ``{"topic": "x y"}`` -> ``topic:(x y)``; ``{"n": [1, 2]}`` -> ``(n:1 OR n:2)``; booleans are
    ``true``/``false``; several keys are joined with AND; DSL characters are escaped.
    """
    if not filter:
        return None
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter must be a dict (or a Marqo filter string), got {type(filter).__name__}: {filter!r}")
    clauses = []
    for key, wanted in filter.items():
        if isinstance(wanted, (list, tuple, set, frozenset)):
            if not wanted:
                raise ValueError(f"filter {key!r} lists no values; give at least one")
            terms = [_term(str(key), value) for value in wanted]
            clauses.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
        else:
            clauses.append(_term(str(key), wanted))
    return " AND ".join(clauses)


def _term(key: str, value: Any) -> str:
    field = _escape(key, spaces=True)
    if isinstance(value, bool):
        return f"{field}:{'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{field}:{_escape(repr(value))}"
    if isinstance(value, str):
        return f"{field}:({_escape(value)})"
    raise TypeError(f"filter values must be strings, numbers or booleans, got {type(value).__name__} for {key!r}")


def _escape(text: str, *, spaces: bool = False) -> str:
    """Backslash-escape DSL characters (and whitespace too when ``spaces``: field names, bare values)."""
    return "".join("\\" + char if char in _ESCAPE or (spaces and char.isspace()) else char for char in text)


def _check_metadata(pid: str, metadata: Mapping[str, Any], text_field: str) -> None:
    for key, value in metadata.items():
        if key == text_field or key.startswith("_") or key.startswith("marqo__"):
            raise ValueError(f"metadata key {key!r} of {pid!r} is reserved (the text field, '_'-prefixed and "
                             f"'marqo__' names are Marqo's); rename it")
        ok = (isinstance(value, (str, bool, int, float))
              or (isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)))
        if not ok:
            raise TypeError(f"metadata {key!r} of {pid!r} is {type(value).__name__}: Marqo fields hold strings, "
                            f"numbers, booleans and lists of strings only")
