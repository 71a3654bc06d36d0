"""QdrantRetriever: plait's retriever and indexer over one Qdrant collection (qdrant-client >= 1.10).

qdrant-client is imported when a retriever is built, never when this module is imported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plait.errors import MissingExtraError
from plait.retrieve.passage import Passage
from plait.retrieve.resilience import call_with_backoff
from plait.retrieve.retriever import Retriever, check_add_args

from plait_qdrant.mapping import (ID_FIELD, QdrantUnavailableError, distance_value, is_transient,
                                  lower_is_better, point_id, to_qdrant_filter, vectors_config_dim)


class QdrantRetriever(Retriever):
    """Dense retrieval from a Qdrant collection, embedding with ``embedder``.

    Where the collection lives (one of; ``location=":memory:"`` when none is given):
    ``location`` (":memory:" or a server URL), ``path`` (embedded engine on disk), ``url`` (+
    ``api_key``, ``prefer_grpc``, ``timeout``) for a server, or ``client`` (a QdrantClient you made).

    - ``collection`` is created on the first ``add`` with the embedder's dimension and
      ``distance`` (cosine by default); an existing one is checked (dimension, named vectors).
    - ``vector_name`` selects a named vector (collections with several vectors per point).
    - ``search_params``: a ``models.SearchParams`` for every query (a server's HNSW ``hnsw_ef``, or
      ``exact=True``); the embedded engine always searches exactly.
    - Payload: ``{text_field: text, "plait_id": id, metadata_field: metadata}``. With
      ``metadata_field=None`` metadata keys sit at the top level of the payload (the layout of
      collections written by other tools; QdrantRM's default).
    - Scores are Qdrant's: cosine similarity, dot product, or minus the distance for
      euclid/manhattan (so higher is always better).
    - ``filter=``: the portable ``{"key": value}`` / ``{"key": [v1, v2]}`` dict, or a native
      ``qdrant_client.models.Filter``.
    - Transient server errors are retried ``num_retries`` times with backoff, then raise
      :class:`QdrantUnavailableError` naming the server; a query never returns partial results.
    """

    supports_filters = True

    def __init__(self, collection: str | None = None, embedder: Any = None, *, location: str | None = None,
                 path: str | os.PathLike[str] | None = None, url: str | None = None, api_key: str | None = None,
                 prefer_grpc: bool = False, timeout: int | None = None, client: Any = None,
                 vector_name: str | None = None, distance: str | None = None, text_field: str = "text",
                 metadata_field: str | None = "metadata", search_params: Any = None, k: int = 3, batch_size: int = 256,
                 num_retries: int = 3, retry_delay: float = 0.5, client_options: Mapping[str, Any] | None = None):
        _require_sdk()
        if not isinstance(collection, str) or not collection:
            raise ValueError("the qdrant retriever needs collection='<name>' (created on first add if missing)")
        if embedder is None:
            raise ValueError("the qdrant retriever needs an embedder: embedder=plait.embedder('sentence-transformers') "
                             "(or any callable texts -> vectors); qdrant stores vectors, plait computes them")
        if not callable(embedder):
            raise TypeError(f"embedder must be callable (texts -> vectors), got {type(embedder).__name__}")
        given = [name for name, value in (("location", location), ("path", path), ("url", url), ("client", client))
                 if value is not None]
        if len(given) > 1:
            raise ValueError(f"give the qdrant retriever one of location=, path=, url= or client=, "
                             f"not {' and '.join(given)}")
        if api_key is not None and url is None and not (isinstance(location, str) and "://" in location):
            raise ValueError("api_key= is for a Qdrant server: give url='https://...' with it")
        _check_int("k", k, 1)
        _check_int("batch_size", batch_size, 1)
        _check_int("num_retries", num_retries, 0)
        if client is not None and not callable(getattr(client, "query_points", None)):
            raise TypeError(f"client= must be a qdrant_client.QdrantClient, got {type(client).__name__}")
        self.collection = collection
        self.embedder = embedder
        self.vector_name = vector_name
        self.requested_distance = None if distance is None else distance_value(distance)
        self.text_field = text_field
        self.metadata_field = metadata_field
        self.search_params = search_params
        self.k = k
        self.batch_size = batch_size
        self.num_retries = num_retries
        self.retry_delay = retry_delay
        self._lock = threading.Lock()
        self._dim: int | None = None         # known once the collection exists and was checked
        self._negate_scores = False
        self._owns_client = client is None
        if client is None:
            client = _make_client(location, path, url, api_key, prefer_grpc, timeout, client_options)
        self.client = client
        self.target = _describe(client, url, path, location)

    # --- indexing ----------------------------------------------------------------------------
    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        """Embed and upsert in batches of ``batch_size``; returns the ids. Re-adding an id replaces it."""
        from qdrant_client import models

        texts, ids, metas = check_add_args(texts, ids, metadata)
        payloads = [self._payload(text, pid, meta) for text, pid, meta in zip(texts, ids, metas)]
        for start in range(0, len(texts), self.batch_size):
            stop = start + self.batch_size
            vectors = self._embed(texts[start:stop])
            self._ensure_collection(vectors.shape[1])
            rows = vectors.tolist()
            batch = models.Batch(ids=[point_id(pid) for pid in ids[start:stop]],
                                 vectors={self.vector_name: rows} if self.vector_name else rows,
                                 payloads=payloads[start:stop])
            self._call(f"upsert (passages {start}-{min(stop, len(texts)) - 1} of {len(texts)}; "
                       f"the earlier ones were written, add() again to finish: it upserts)",
                       self.client.upsert, self.collection, points=batch, wait=True)
        return ids

    def _payload(self, text: str, pid: str, meta: dict[str, Any]) -> dict[str, Any]:
        if self.metadata_field:
            return {self.text_field: text, ID_FIELD: pid, self.metadata_field: meta}
        clash = {self.text_field, ID_FIELD} & meta.keys()
        if clash:
            raise ValueError(f"metadata keys {sorted(clash)} clash with the payload's own fields; rename them "
                             f"or use metadata_field='metadata'")
        return {**meta, self.text_field: text, ID_FIELD: pid}

    # --- search ------------------------------------------------------------------------------
    def search(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        if self._dim is None and not self._ensure_collection(None):
            return [[] for _ in queries]      # nothing indexed yet
        from qdrant_client import models

        query_filter = None if filter is None else to_qdrant_filter(filter, models, self.metadata_field)
        vectors = self._embed(queries)
        if vectors.shape[1] != self._dim:
            raise ValueError(_dim_mismatch(self.collection, self._dim, vectors.shape[1]))
        if len(queries) == 1:
            response = self._call("query", self.client.query_points, self.collection, query=vectors[0].tolist(),
                                  using=self.vector_name, query_filter=query_filter, search_params=self.search_params,
                                  limit=k, with_payload=True)
            return [self._passages(response.points)]
        requests = [models.QueryRequest(query=row, using=self.vector_name, filter=query_filter, limit=k,
                                        params=self.search_params, with_payload=True) for row in vectors.tolist()]
        responses = self._call("batch query", self.client.query_batch_points, self.collection, requests=requests)
        if len(responses) != len(queries):
            raise RuntimeError(f"Qdrant at {self.target} answered {len(responses)} result lists for "
                               f"{len(queries)} queries")
        return [self._passages(response.points) for response in responses]

    def _passages(self, points: Sequence[Any]) -> list[Passage]:
        text_field, metadata_field, negate = self.text_field, self.metadata_field, self._negate_scores
        passages = []
        for point in points:
            payload = point.payload or {}
            meta = payload.get(metadata_field) if metadata_field else None
            if meta is None:    # a flat payload (ours with metadata_field=None, or another tool's)
                meta = {key: value for key, value in payload.items() if key != text_field and key != ID_FIELD}
            score = float(point.score)
            passages.append(Passage(str(payload.get(text_field, "")), -score if negate else score,
                                    str(payload.get(ID_FIELD, point.id)), meta))
        return passages

    # --- collection and calls ------------------------------------------------------------------
    def _ensure_collection(self, dim: int | None) -> bool:
        """Check (or, given ``dim``, create) the collection once; False when it does not exist yet."""
        if self._dim is None:
            with self._lock:
                if self._dim is None:
                    if self._call("collection check", self.client.collection_exists, self.collection):
                        info = self._call("collection info", self.client.get_collection, self.collection)
                        size, distance = vectors_config_dim(info.config.params.vectors, self.vector_name,
                                                            self.collection)
                        if self.requested_distance is not None and distance != self.requested_distance:
                            raise ValueError(f"qdrant collection {self.collection!r} uses distance {distance}, "
                                             f"not {self.requested_distance}; drop distance= or use another collection")
                    elif dim is None:
                        return False
                    else:
                        size, distance = dim, self.requested_distance or "Cosine"
                        self._create(size, distance)
                    self._negate_scores = lower_is_better(distance)
                    self._dim = size
        if dim is not None and dim != self._dim:
            raise ValueError(_dim_mismatch(self.collection, self._dim, dim))
        return True

    def _create(self, size: int, distance: str) -> None:
        from qdrant_client import models

        params = models.VectorParams(size=size, distance=models.Distance(distance))
        self._call("create collection", self.client.create_collection, self.collection,
                   vectors_config={self.vector_name: params} if self.vector_name else params)

    def _embed(self, texts: list[str]) -> Any:
        import numpy as np

        vectors = np.asarray(self.embedder(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"the embedder returned shape {vectors.shape} for {len(texts)} texts; "
                             f"it must return one vector per text")
        return vectors

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; transient failures retried ``num_retries`` times with backoff."""
        return call_with_backoff(lambda: fn(*args, **kwargs), is_transient=is_transient,
                                 num_retries=self.num_retries, retry_delay=self.retry_delay,
                                 source="qdrant", target=self.target, what=what, error_class=QdrantUnavailableError)

    def __len__(self) -> int:
        if self._dim is None and not self._ensure_collection(None):
            return 0
        return int(self._call("count", self.client.count, self.collection, exact=True).count)

    def close(self) -> None:
        """Close the client if this retriever made it (frees a ``path=`` folder for another client)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> QdrantRetriever:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class QdrantRM(QdrantRetriever):
    """DSPy's ``QdrantRM(qdrant_collection_name, qdrant_client, k=3)`` on plait's retriever.

    Unlike DSPy's it needs ``embedder=`` (plait never downloads a model behind your back). Its
    payload defaults follow DSPy's: the text in ``"document"``, metadata at the top level.
    """

    def __init__(self, qdrant_collection_name: str, qdrant_client: Any = None, k: int = 3, *,
                 embedder: Any = None, document_field: str = "document", vector_name: str | None = None,
                 **options: Any):
        super().__init__(qdrant_collection_name, embedder, client=qdrant_client, k=k, text_field=document_field,
                         vector_name=vector_name, metadata_field=options.pop("metadata_field", None), **options)


def _make_client(location: str | None, path: Any, url: str | None, api_key: str | None, prefer_grpc: bool,
                 timeout: int | None, client_options: Mapping[str, Any] | None) -> Any:
    from qdrant_client import QdrantClient

    options = dict(client_options or {})
    if url is not None or (location is not None and location != ":memory:"):
        # No version probe at construction: it is a network call and only warns when it fails.
        options.setdefault("check_compatibility", False)
        return QdrantClient(url=url, location=None if url else location, api_key=api_key, prefer_grpc=prefer_grpc,
                            timeout=timeout, **options)
    if path is not None:
        return QdrantClient(path=os.fspath(path), **options)
    return QdrantClient(location=":memory:", **options)


def _describe(client: Any, url: str | None, path: Any, location: str | None) -> str:
    if url or path or location:
        return str(url or path or location)
    init = getattr(client, "init_options", None)     # QdrantClient keeps its constructor arguments
    if isinstance(init, Mapping):
        for key in ("url", "host", "path", "location"):
            if init.get(key):
                return str(init[key])
    return "the injected client"


def _dim_mismatch(collection: str, have: int | None, got: int) -> str:
    return (f"qdrant collection {collection!r} holds {have}-dimensional vectors but the embedder gives {got}; "
            f"use the embedder that built it, or another collection")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _require_sdk() -> None:
    """A clear MissingExtraError (with the pip command) when qdrant-client is not installed."""
    try:
        import qdrant_client  # noqa: F401
    except ImportError as error:
        raise MissingExtraError(f"the qdrant retriever needs qdrant-client (import failed: {error}); "
                                f"install it with: pip install 'plait[qdrant]'") from error
