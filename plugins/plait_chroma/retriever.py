"""ChromaRetriever: plait's retriever and indexer over one Chroma collection (chromadb >= 0.5).

chromadb is imported when a retriever is built, never when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plait.errors import MissingExtraError
from plait.retrieve.passage import Passage
from plait.retrieve.resilience import call_with_backoff
from plait.retrieve.retriever import Retriever, check_add_args

from plait_chroma.mapping import (ChromaUnavailableError, NativeWhere, chroma_metadata, collection_space,
                                  is_transient, score_base, space_name, to_where)

_INCLUDE = ["documents", "metadatas", "distances"]


class ChromaRetriever(Retriever):
    """Dense retrieval from a Chroma collection, embedding with plait's ``embedder``.

    Where the collection lives (one of): ``path`` (embedded PersistentClient), ``host`` / ``port``
    (+ ``ssl``, ``headers``) for a ``chroma run`` server, or ``client`` (your own chromadb client).

    - The collection is opened (or created) when the retriever is built, with
      ``embedding_function=None``: plait passes vectors to every add and query, so Chroma's
      default model (an ONNX download) is never used.
    - ``distance``: "cosine" (default for new collections), "l2" or "ip"; an existing collection
      keeps its own. ``hnsw``: chroma's HNSW settings for a new collection, e.g.
      ``{"ef_search": 400}`` (recall@10 against exact search on 10k passages: 0.93 with chroma's
      defaults, 0.98 with ef_search=400; see benchmarks/README.md). Scores are similarities:
      ``1 - distance`` for cosine (the cosine similarity) and ip (the dot product), ``-distance``
      for l2 (squared euclidean), so higher is better.
    - ``filter=``: the portable ``{"key": value}`` / ``{"key": [v1, v2]}`` dict (-> ``$eq`` /
      ``$in``, ``$and`` across keys) or a chroma where document (``{"$or": [...]}``,
      ``{"year": {"$gte": 2000}}``); ``retriever(q, where={...})`` passes a where verbatim.
    - Metadata is flat (str, int, float, bool, non-empty lists of those); None values are not
      stored; an empty dict is stored as no metadata.
    - Transient server errors are retried ``num_retries`` times with backoff, then raise
      :class:`ChromaUnavailableError` naming host:port; a query never returns partial results.
      chromadb's HTTP client has no request timeout, so a server that hangs (rather than
      refusing connections) blocks the call.
    """

    supports_filters = True

    def __init__(self, collection: str | None = None, embedder: Any = None, *,
                 path: str | os.PathLike[str] | None = None, host: str | None = None, port: int = 8000,
                 ssl: bool = False, headers: Mapping[str, str] | None = None, client: Any = None,
                 distance: str | None = None, hnsw: Mapping[str, Any] | None = None, k: int = 3,
                 batch_size: int | None = None, num_retries: int = 3, retry_delay: float = 0.5):
        _require_sdk()
        if not isinstance(collection, str) or not collection:
            raise ValueError("the chroma retriever needs collection='<name>' (3-512 characters of [a-zA-Z0-9._-])")
        if embedder is None:
            raise ValueError("the chroma retriever needs an embedder: embedder=plait.embedder('sentence-transformers') "
                             "(or any callable texts -> vectors); chroma's default embedding model is never used")
        if not callable(embedder):
            raise TypeError(f"embedder must be callable (texts -> vectors), got {type(embedder).__name__}")
        given = [name for name, value in (("path", path), ("host", host), ("client", client)) if value is not None]
        if len(given) != 1:
            raise ValueError("give the chroma retriever one of path= (embedded), host=/port= (a chroma server) "
                             f"or client=; got {' and '.join(given) if given else 'none'}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError(f"port must be an int in 1-65535, got {port!r}")
        for name, value, minimum in (("k", k, 1), ("num_retries", num_retries, 0), ("batch_size", batch_size, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        if client is not None and not callable(getattr(client, "get_or_create_collection", None)):
            raise TypeError(f"client= must be a chromadb client (PersistentClient, HttpClient), "
                            f"got {type(client).__name__}")
        self.embedder = embedder
        self.k = k
        self.num_retries = num_retries
        self.retry_delay = retry_delay
        self.target = (f"{host}:{port}" if host is not None else os.fspath(path) if path is not None
                       else "the injected client")
        self._owns_client = client is None
        requested = None if distance is None else space_name(distance)
        if client is None:
            client = self._call("connect", _make_client, path, host, port, ssl, headers)
        self.client = client
        self.collection = collection
        self.chroma_collection = self._open(collection, requested, hnsw)   # chromadb's Collection object
        self.space = collection_space(self.chroma_collection)
        if requested is not None and self.space != requested:
            raise ValueError(f"chroma collection {collection!r} uses distance {self.space!r}, not {requested!r}; "
                             f"drop distance= or use another collection")
        self._score_base = score_base(self.space)      # score = base - distance
        self.batch_size = batch_size

    def _open(self, name: str, space: str | None, hnsw: Mapping[str, Any] | None) -> Any:
        from chromadb.errors import InvalidArgumentError

        self._invalid_argument = InvalidArgumentError     # kept: the query path catches it without an import
        if hnsw is not None and not isinstance(hnsw, Mapping):
            raise TypeError(f"hnsw= must be a dict of chroma HNSW settings (ef_search, ...), got {type(hnsw).__name__}")
        configuration = {"hnsw": {**(hnsw or {}), "space": space or "cosine"}}
        try:
            return self._call("open collection", self.client.get_or_create_collection, name,
                              configuration=configuration, embedding_function=None)
        except InvalidArgumentError as error:
            raise ValueError(f"chroma rejected collection={name!r}: {error}") from error

    # --- indexing ----------------------------------------------------------------------------
    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        """Embed and upsert in batches (chroma's max batch size unless ``batch_size``); returns the ids."""
        texts, ids, metas = check_add_args(texts, ids, metadata)
        metadatas = [chroma_metadata(meta, pid) for meta, pid in zip(metas, ids)]   # all checked before writing
        if self.batch_size is None:
            self.batch_size = int(self._call("batch size", self.client.get_max_batch_size))
        size = self.batch_size
        for start in range(0, len(texts), size):
            stop = start + size
            vectors = self._embed(texts[start:stop])
            self._checked("upsert", f"passages {start}-{min(stop, len(texts)) - 1} of {len(texts)}; the earlier "
                          f"ones were written, add() again to finish: it upserts", self.chroma_collection.upsert,
                          ids=ids[start:stop], embeddings=vectors, documents=texts[start:stop],
                          metadatas=_or_none(metadatas[start:stop]))
        return ids

    # --- search ------------------------------------------------------------------------------
    def __call__(self, query_or_queries: str | Sequence[str], k: int | None = None, *, filter: Any = None,
                 where: Mapping[str, Any] | None = None) -> list[Passage] | list[list[Passage]]:
        return super().__call__(query_or_queries, k, filter=_merge(filter, where))

    async def acall(self, query_or_queries: str | Sequence[str], k: int | None = None, *, filter: Any = None,
                    where: Mapping[str, Any] | None = None) -> list[Passage] | list[list[Passage]]:
        return await super().acall(query_or_queries, k, filter=_merge(filter, where))

    def search(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        where = None if filter is None else to_where(filter)
        vectors = self._embed(queries)
        result = self._checked("query", "", self.chroma_collection.query, query_embeddings=vectors, n_results=k,
                               where=where, include=_INCLUDE)
        ids, documents, metadatas, distances = (result["ids"], result["documents"], result["metadatas"],
                                                result["distances"])
        if len(ids) != len(queries):
            raise RuntimeError(f"Chroma at {self.target} answered {len(ids)} result lists for {len(queries)} queries")
        base = self._score_base
        return [[Passage(text or "", base - distance, pid, meta or {})
                 for pid, text, meta, distance in zip(ids[row], documents[row], metadatas[row], distances[row])]
                for row in range(len(queries))]

    # --- helpers -----------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> Any:
        import numpy as np

        vectors = np.asarray(self.embedder(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"the embedder returned shape {vectors.shape} for {len(texts)} texts; "
                             f"it must return one vector per text")
        return vectors

    def _checked(self, what: str, note: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``_call`` with chroma's dimension error turned into a clear ValueError."""
        try:
            return self._call(f"{what} ({note})" if note else what, fn, **kwargs)
        except self._invalid_argument as error:
            if "dimension" in str(error):
                raise ValueError(f"chroma collection {self.collection!r}: {error}; use the embedder that "
                                 f"built it, or another collection") from error
            raise

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; transient failures retried ``num_retries`` times with backoff."""
        return call_with_backoff(lambda: fn(*args, **kwargs), is_transient=is_transient,
                                 num_retries=self.num_retries, retry_delay=self.retry_delay,
                                 source="chroma", target=self.target, what=what, error_class=ChromaUnavailableError)

    def __len__(self) -> int:
        return int(self._call("count", self.chroma_collection.count))

    def close(self) -> None:
        """Close the client if this retriever made it."""
        if self._owns_client:
            closer = getattr(self.client, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> ChromaRetriever:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ChromadbRM(ChromaRetriever):
    """DSPy's ``ChromadbRM(collection_name, persist_directory, embedding_function=None, k=...)``.

    ``embedding_function`` (a chroma EmbeddingFunction: texts -> vectors) or ``embedder=`` embeds
    texts; one of them is required, so chroma's default model is never downloaded.
    """

    def __init__(self, collection_name: str, persist_directory: str | os.PathLike[str] | None = None,
                 embedding_function: Any = None, k: int = 3, *, embedder: Any = None, client: Any = None,
                 **options: Any):
        if embedder is not None and embedding_function is not None:
            raise ValueError("give ChromadbRM embedder= or embedding_function=, not both")
        super().__init__(collection_name, embedder if embedder is not None else embedding_function,
                         path=persist_directory if client is None else None, client=client, k=k, **options)


def _make_client(path: Any, host: str | None, port: int, ssl: bool, headers: Mapping[str, str] | None) -> Any:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if host is not None:
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=dict(headers or {}), settings=settings)
    return chromadb.PersistentClient(path=os.fspath(path), settings=settings)


def _merge(filter: Any, where: Mapping[str, Any] | None) -> Any:
    if where is None:
        return filter
    if filter is not None:
        raise ValueError("give filter= or where=, not both (a where document can hold both conditions)")
    if not isinstance(where, Mapping):
        raise TypeError(f"where= must be a chroma where dict, got {type(where).__name__}")
    return NativeWhere(where)


def _or_none(metadatas: list[dict[str, Any] | None]) -> list[dict[str, Any] | None] | None:
    # chroma wants None (not a list of Nones) when no passage in the batch has metadata
    return metadatas if any(meta is not None for meta in metadatas) else None


def _require_sdk() -> None:
    """A clear MissingExtraError (with the pip command) when chromadb is not installed."""
    try:
        import chromadb  # noqa: F401
    except ImportError as error:
        raise MissingExtraError(f"the chroma retriever needs chromadb (import failed: {error}); "
                                f"install it with: pip install 'plait[chroma]'") from error
