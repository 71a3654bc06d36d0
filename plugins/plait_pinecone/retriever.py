"""PineconeRetriever: plait's retriever contract over the ``pinecone`` SDK (10.x).

The SDK is imported inside methods only, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from plait.errors import ConfigurationError, RetrieverUnavailableError
from plait.retrieve.resilience import run_all
from plait.retrieve.passage import Passage
from plait.retrieve.retriever import Retriever, check_add_args

_METRICS = ("cosine", "dotproduct", "euclidean")
_MAX_TOP_K = 10_000          # Pinecone's limit per query
_MAX_BATCH = 1_000           # Pinecone's limit per upsert request
_LOCAL_KEY = "pclocal"       # Pinecone Local ignores keys, but the SDK insists on one
_CREATE_TIMEOUT_S = 300      # how long create_index waits for a new index to become ready


class PineconeUnavailableError(RetrieverUnavailableError):
    """Pinecone did not answer (connection refused, timeout, 5xx) after the SDK's bounded retries."""


class PineconeRetriever(Retriever):
    """Dense retrieval from a Pinecone index; the text is stored in metadata under ``text_field``.

    See the package docstring (``plait_pinecone``) for every option.
    """

    supports_filters = True

    def __init__(self, index: str | None = None, *, embedder: Any = None, api_key: str | None = None,
                 host: str | None = None, index_host: str | None = None, namespace: str = "",
                 text_field: str = "text", create_index: bool = False, dimension: int | None = None,
                 metric: str = "cosine", cloud: str = "aws", region: str = "us-east-1",
                 native_filter: Mapping[str, Any] | None = None, client: Any = None, batch_size: int = 100,
                 max_concurrency: int = 4, timeout: float = 30.0, k: int = 3):
        if index is None and index_host is None and not _is_index_handle(client):
            raise ValueError("the pinecone retriever needs index='<index name>' or index_host='<index URL>'")
        if index is not None and (not isinstance(index, str) or not index):
            raise ValueError(f"index must be a non-empty index name, got {index!r}")
        if embedder is None:
            raise ValueError("the pinecone retriever needs an embedder (Pinecone stores vectors only): "
                             "embedder=plait.embedder('sentence-transformers') or plait.embedder('hashing')")
        if not callable(embedder):
            raise TypeError(f"embedder must be callable (texts -> vectors), got {type(embedder).__name__}")
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a string, got {type(namespace).__name__}")
        if not isinstance(text_field, str) or not text_field:
            raise ValueError(f"text_field must be a non-empty string, got {text_field!r}")
        if not isinstance(batch_size, int) or not 1 <= batch_size <= _MAX_BATCH:
            raise ValueError(f"batch_size must be an int in 1..{_MAX_BATCH} (Pinecone's limit), got {batch_size!r}")
        if dimension is not None and (not isinstance(dimension, int) or dimension < 1):
            raise ValueError(f"dimension must be a positive int, got {dimension!r}")
        if native_filter is not None and not isinstance(native_filter, Mapping):
            raise TypeError(f"native_filter must be a Pinecone filter dict, got {type(native_filter).__name__}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.index_name, self.embedder, self.namespace, self.text_field = index, embedder, namespace, text_field
        self.k, self.metric, self.batch_size, self.max_concurrency = k, metric, batch_size, max(1, max_concurrency)
        self.native_filter = dict(native_filter) if native_filter else None
        self._host = host or os.environ.get("PINECONE_CONTROLLER_HOST") or None
        self._index_host = index_host
        self._create = (create_index, dimension, cloud, region)
        self._client, self._timeout = client, timeout
        self._api_key = api_key or os.environ.get("PINECONE_API_KEY") or ""
        if not self._api_key and client is None:
            if not _is_local(index_host or self._host or ""):
                raise ConfigurationError("no Pinecone API key: pass api_key= or set PINECONE_API_KEY "
                                         "(only a server on this machine may go without one)")
            self._api_key = _LOCAL_KEY
        self._index: Any = client if _is_index_handle(client) else None
        self._lock = threading.Lock()

    # --- the retriever contract ---------------------------------------------------------------
    def search(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        index = self._handle()
        vectors = self._embed(queries)
        query_filter = self._combined_filter(filter)
        top_k = min(k, _MAX_TOP_K)

        def one(vector: list[float]) -> Any:
            return self._call(lambda: index.query(vector=vector, top_k=top_k, namespace=self.namespace,
                                                  filter=query_filter, include_metadata=True), "query")

        responses = run_all(one, vectors, self.max_concurrency)
        return [[self._passage(match) for match in response.matches] for response in responses]

    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        texts, ids, metas = check_add_args(texts, ids, metadata)
        if not texts:
            return []
        for pid, meta in zip(ids, metas):
            _check_metadata(pid, meta, self.text_field)
        index = self._handle()
        vectors = self._embed(texts)
        records = [{"id": pid, "values": vector, "metadata": {**meta, self.text_field: text}}
                   for pid, vector, meta, text in zip(ids, vectors, metas, texts)]
        done = 0
        for start in range(0, len(records), self.batch_size):
            chunk = records[start:start + self.batch_size]
            try:
                self._call(partial(index.upsert, vectors=chunk, namespace=self.namespace), "upsert")
            except PineconeUnavailableError as exc:
                if done:
                    raise PineconeUnavailableError(
                        f"{exc} -- {done} of {len(records)} vectors were upserted before the failure "
                        f"(ids {ids[0]!r} .. {ids[done - 1]!r}); nothing was rolled back: call add() again "
                        f"with the same ids to finish (upserts are idempotent)") from exc
                raise
            done += len(chunk)
        return ids

    def delete(self, ids: Sequence[str]) -> None:
        """Delete vectors by id from this retriever's namespace."""
        index = self._handle()
        self._call(lambda: index.delete(ids=list(ids), namespace=self.namespace), "delete")

    def close(self) -> None:
        """Close the SDK's HTTP connections (the retriever reconnects on next use)."""
        with self._lock:
            index, self._index = self._index, None
        if index is not None and index is not self._client and hasattr(index, "close"):
            index.close()

    # --- connecting ---------------------------------------------------------------------------
    def _handle(self) -> Any:
        with self._lock:
            if self._index is None:
                self._index = self._connect()
            return self._index

    def _connect(self) -> Any:
        import pinecone

        if self._index_host is not None:
            host = _with_scheme(self._index_host, "http://" if _is_local(self._index_host) else "https://")
            if self._client is not None:
                return self._client.Index(host=host)
            return pinecone.Index(host=host, api_key=self._api_key, timeout=self._timeout)
        control = self._client
        if control is None:
            control = pinecone.Pinecone(api_key=self._api_key, host=self._host, timeout=self._timeout)
            self._client = control
        description = self._describe_or_create(control)
        field = _dense_field(description)
        if field is not None:
            self.metric = str(field.metric).lower()
            wanted = getattr(self.embedder, "dim", 0) or self._create[1]
            if wanted and wanted != field.dimension:
                raise ConfigurationError(
                    f"Pinecone index {self.index_name!r} has dimension {field.dimension} but the embedder makes "
                    f"{wanted}-dimensional vectors: use a matching embedder or index")
        control_host = str(getattr(getattr(control, "config", None), "host", "") or "")
        self._index_host = _index_url(description.host, control_host)
        return control.Index(host=self._index_host)

    def _describe_or_create(self, control: Any) -> Any:
        from pinecone.errors.exceptions import ConflictError, NotFoundError, ResponseParsingError

        where = self._host or "the Pinecone API"
        try:
            try:
                return self._call(lambda: control.indexes.describe(self.index_name), "describe_index")
            except NotFoundError:
                create_index, dimension, cloud, region = self._create
                if not create_index:
                    raise ConfigurationError(
                        f"Pinecone index {self.index_name!r} does not exist at {where}: create it, or pass "
                        f"create_index=True (with dimension= unless the embedder has .dim)") from None
                dimension = dimension or getattr(self.embedder, "dim", 0) or len(self._embed(["dimension probe"])[0])
                try:
                    return self._call(lambda: control.indexes.create(
                        name=self.index_name, dimension=dimension, metric=self.metric, timeout=_CREATE_TIMEOUT_S,
                        deployment={"deployment_type": "managed", "cloud": cloud, "region": region}), "create_index")
                except ConflictError:   # created concurrently by someone else: use theirs
                    return self._call(lambda: control.indexes.describe(self.index_name), "describe_index")
        except ResponseParsingError as exc:
            raise ConfigurationError(
                f"the control plane at {where} answered in a shape this pinecone SDK cannot read ({exc}); "
                f"Pinecone Local speaks API 2025-01 while SDK 10 speaks 2026-07: pass index_host= (the index's "
                f"own URL, e.g. http://localhost:5081) to skip the control plane") from exc

    # --- helpers --------------------------------------------------------------------------------
    def _call(self, operation: Callable[[], Any], what: str) -> Any:
        from pinecone.errors.exceptions import (ApiError, ForbiddenError, NotFoundError, PineconeConnectionError,
                                                PineconeTimeoutError, ServiceError, UnauthorizedError)

        where = self._index_host or self._host or "the Pinecone API"
        try:
            return operation()
        except (PineconeConnectionError, PineconeTimeoutError, ServiceError) as exc:
            raise PineconeUnavailableError(
                f"Pinecone at {where} did not answer the {what} after the SDK's retries (3, with backoff): {exc}. "
                f"Check that the server is running and that host= / index_host= point at it") from exc
        except (UnauthorizedError, ForbiddenError) as exc:
            raise ConfigurationError(f"Pinecone at {where} refused the {what}: {exc}. Pass a valid api_key= "
                                     f"or set PINECONE_API_KEY") from exc
        except NotFoundError:
            raise
        except ApiError as exc:
            raise ValueError(f"Pinecone at {where} rejected the {what}: {exc}") from exc

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        matrix = np.asarray(self.embedder(texts), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise ValueError(f"the embedder returned shape {matrix.shape} for {len(texts)} texts")
        return matrix.tolist()

    def _combined_filter(self, filter: Any) -> dict[str, Any] | None:
        parts = [part for part in (self.native_filter, to_pinecone_filter(filter)) if part]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}

    def _passage(self, match: Any) -> Passage:
        metadata = dict(match.metadata or {})
        text = metadata.pop(self.text_field, "")
        score = float(match.score)
        return Passage(str(text), -score if self.metric == "euclidean" else score, match.id, metadata)


class PineconeRM(PineconeRetriever):
    """DSPy-style alias: ``PineconeRM(pinecone_index_name, k=3, embedder=..., api_key=..., host=...)``."""

    def __init__(self, pinecone_index_name: str, k: int = 3, *, embedder: Any = None, api_key: str | None = None,
                 host: str | None = None, **options: Any):
        super().__init__(pinecone_index_name, embedder=embedder, api_key=api_key, host=host, k=k, **options)


def to_pinecone_filter(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Translate plait's portable filter to Pinecone's; a native Pinecone filter passes through.

    ``{"a": 1}`` -> ``{"a": {"$eq": 1}}``; ``{"a": [1, 2]}`` -> ``{"a": {"$in": [1, 2]}}``; several
    keys are ANDed. A filter with a ``$`` key or an operator-dict value is already native.
    """
    if not filter:
        return None
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter must be a dict, got {type(filter).__name__}: {filter!r}")
    if any(str(key).startswith("$") or isinstance(value, Mapping) for key, value in filter.items()):
        return dict(filter)
    clauses = []
    for key, wanted in filter.items():
        if isinstance(wanted, (list, tuple, set, frozenset)):
            clauses.append({key: {"$in": list(wanted)}})
        else:
            clauses.append({key: {"$eq": wanted}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _check_metadata(pid: str, metadata: Mapping[str, Any], text_field: str) -> None:
    if text_field in metadata:
        raise ValueError(f"metadata of {pid!r} uses the key {text_field!r}, which holds the passage text; "
                         f"rename the key or pass text_field= to store the text elsewhere")
    for key, value in metadata.items():
        ok = (isinstance(value, (str, bool, int, float))
              or (isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)))
        if not ok:
            raise TypeError(f"metadata {key!r} of {pid!r} is {type(value).__name__}: Pinecone stores strings, "
                            f"numbers, booleans and lists of strings only (None and nested dicts are not allowed)")


def _dense_field(description: Any) -> Any:
    fields = getattr(getattr(description, "schema", None), "fields", None) or {}
    dense = [field for field in fields.values() if hasattr(field, "dimension") and hasattr(field, "metric")]
    return dense[0] if len(dense) == 1 else None


def _with_scheme(host: str, scheme: str) -> str:
    return host if host.startswith(("http://", "https://")) else scheme + host


def _index_url(host: str, control_host: str) -> str:
    """Pinecone Local answers index hosts like "localhost:5081", which the SDK turns into https://...;
    behind a plain-http control plane on this machine, a local index host is plain http too."""
    bare = host.split("://", 1)[-1]
    if control_host.startswith("http://") and _is_local(control_host) and _is_local(bare):
        return "http://" + bare
    return _with_scheme(host, "https://")


def _is_local(url: str) -> bool:
    hostname = urlsplit(url if "://" in url else "http://" + url).hostname or ""
    return hostname in ("127.0.0.1", "localhost", "::1") or hostname.endswith(".localhost")


def _is_index_handle(client: Any) -> bool:
    return client is not None and hasattr(client, "query") and hasattr(client, "upsert")
