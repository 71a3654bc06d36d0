"""An exact in-memory dense index (numpy) for small corpora: ``plait.retriever("memory", embedder=...)``."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from plait.retrieve.passage import Passage
from plait.retrieve.retriever import Retriever, check_add_args, matches_filter


class InMemoryRetriever(Retriever):
    """Cosine similarity by exact search over every stored vector.

    Fine up to ~100k passages on a laptop; the score is the cosine similarity in [-1, 1].
    Filters: ``filter={"key": value}`` or ``{"key": [v1, v2]}`` on passage metadata.
    """

    supports_filters = True

    def __init__(self, embedder: Any = None, *, k: int = 3):
        if embedder is None:
            raise ValueError("the memory retriever needs an embedder: plait.retriever('memory', "
                             "embedder=plait.embedder('sentence-transformers')) or embedder=plait.embedder('hashing')")
        if not callable(embedder):
            raise TypeError(f"embedder must be callable (texts -> vectors), got {type(embedder).__name__}")
        self.embedder = embedder
        self.k = k
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._meta: list[dict[str, Any]] = []
        self._position: dict[str, int] = {}
        self._matrix: Any = None   # float32 (n, dim), rows L2-normalised

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        import numpy as np

        texts, ids, metas = check_add_args(texts, ids, metadata)
        if not texts:
            return []
        vectors = _normalise(np.asarray(self.embedder(texts), dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"the embedder returned shape {vectors.shape} for {len(texts)} texts")
        with self._lock:
            if self._matrix is not None and vectors.shape[1] != self._matrix.shape[1]:
                raise ValueError(f"the embedder's dimension changed: index has {self._matrix.shape[1]}, "
                                 f"new vectors have {vectors.shape[1]}")
            new_rows = []
            for text, pid, meta, vector in zip(texts, ids, metas, vectors):
                row = self._position.get(pid)
                if row is None:          # new id: append
                    self._position[pid] = len(self._ids)
                    self._ids.append(pid)
                    self._texts.append(text)
                    self._meta.append(meta)
                    new_rows.append(vector)
                else:                    # existing id: replace in place
                    self._texts[row], self._meta[row] = text, meta
                    self._matrix[row] = vector
            if new_rows:
                block = np.stack(new_rows)
                self._matrix = block if self._matrix is None else np.concatenate([self._matrix, block])
        return ids

    def search(self, queries: list[str], k: int, *, filter: Mapping[str, Any] | None = None) -> list[list[Passage]]:
        import numpy as np

        with self._lock:
            matrix, ids, texts, metas = self._matrix, list(self._ids), list(self._texts), list(self._meta)
        if matrix is None or not len(ids):
            return [[] for _ in queries]
        query_vectors = _normalise(np.asarray(self.embedder(queries), dtype=np.float32))
        scores = query_vectors @ matrix.T
        allowed = None
        if filter:
            allowed = np.array([matches_filter(meta, filter) for meta in metas])
            scores = np.where(allowed, scores, -np.inf)
        results = []
        for row in scores:
            count = min(k, len(ids)) if allowed is None else min(k, int(allowed.sum()))
            if count == 0:
                results.append([])
                continue
            top = np.argpartition(-row, count - 1)[:count]
            top = top[np.argsort(-row[top], kind="stable")]
            results.append([Passage(texts[i], float(row[i]), ids[i], metas[i]) for i in top])
        return results


def _normalise(matrix: Any) -> Any:
    import numpy as np

    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
