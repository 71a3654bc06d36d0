"""A local late-interaction (ColBERT-style) index: ``plait.retriever("colbert-local", path=...)``.

Every passage is stored as its matrix of token vectors; a query's score against a passage is
MaxSim: for each query token, the best dot product with any passage token, summed over the query
tokens. Search is exact (no centroids, no compression): meant for small and medium corpora
(memory: tokens x dim x 4 bytes; MiniLM gives ~1.5 KB per token).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plait.retrieve import Passage, Retriever, check_add_args, matches_filter
from plait_colbert import storage
from plait_colbert.encoder import TokenEncoder, make_encoder

# (stacked token rows, ids, texts, metadata) of every passage, in row order
View = tuple[storage.Packed, tuple[str, ...], tuple[str, ...], tuple[dict[str, Any], ...]]


class LateInteractionIndex(Retriever):
    """Token-level MaxSim over a local encoder's token embeddings, optionally persisted to ``path``.

    ``encoder``: None (MiniLM token embeddings through ``transformers``; ``model=`` another local
    folder, ``max_length=`` / ``query_max_length=`` / ``batch_size=`` its options), ``"hashing"``
    (exact-word matching, no model; ``dim=``) or any :class:`TokenEncoder`. With ``path=`` the
    index is loaded from that folder when it holds one, and saved there atomically after every
    ``add`` / ``clear``; an index is only ever searched with the encoder that built it.
    Filters: ``filter={"key": value}`` or ``{"key": [v1, v2]}`` on passage metadata.
    """

    supports_filters = True

    def __init__(self, path: str | Path | None = None, *, encoder: TokenEncoder | str | None = None,
                 k: int = 3, **encoder_options: Any):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.k = k
        self.path = None if path is None else Path(path).expanduser()
        if self.path is not None and self.path.exists() and not self.path.is_dir():
            raise ValueError(f"path={str(path)!r} is a file; the colbert-local index needs a folder")
        self.encoder = make_encoder(encoder, **encoder_options)
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._meta: list[dict[str, Any]] = []
        self._docs: list[Any] = []            # one float32 (tokens, dim) matrix per passage
        self._position: dict[str, int] = {}
        # what searches read: the stacked token rows with the passages they belong to, rebuilt
        # (once, lazily) after a change, so a search never sees half of an add
        self._view: View | None = None
        if self.path is not None and storage.exists(self.path):
            self._load()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        texts, ids, metas = check_add_args(texts, ids, metadata)
        if not texts:
            return []
        if self.path is not None:
            _check_json_safe(ids, metas, self.path)
        matrices = self._encode(texts, is_query=False)
        with self._lock:   # change copies, save them, then swap: a failed save changes nothing
            new_ids, new_texts, new_meta, new_docs = (list(self._ids), list(self._texts), list(self._meta),
                                                      list(self._docs))
            position = dict(self._position)
            for text, pid, meta, matrix in zip(texts, ids, metas, matrices):
                row = position.get(pid)
                if row is None:          # new id: append
                    position[pid] = len(new_ids)
                    new_ids.append(pid)
                    new_texts.append(text)
                    new_meta.append(meta)
                    new_docs.append(matrix)
                else:                    # existing id: replace in place
                    new_texts[row], new_meta[row], new_docs[row] = text, meta, matrix
            self._commit_locked(new_ids, new_texts, new_meta, new_docs, position)
        return ids

    def clear(self) -> None:
        """Remove every passage (and, with ``path``, save the empty index)."""
        with self._lock:
            self._commit_locked([], [], [], [], {})

    def _commit_locked(self, ids: list[str], texts: list[str], metas: list[dict[str, Any]], docs: list[Any],
                       position: dict[str, int]) -> None:
        if self.path is not None:
            storage.save(self.path, self.encoder, ids, texts, metas, docs)
        self._ids, self._texts, self._meta, self._docs, self._position = ids, texts, metas, docs, position
        self._view = None

    def search(self, queries: list[str], k: int, *, filter: Mapping[str, Any] | None = None) -> list[list[Passage]]:
        import numpy as np

        with self._lock:
            if not self._docs:
                return [[] for _ in queries]
            if self._view is None:
                self._view = (storage.pack(self._docs, self.encoder.dim), tuple(self._ids),
                              tuple(self._texts), tuple(self._meta))
            packed, ids, texts, metas = self._view
        allowed = None
        if filter:
            allowed = np.array([matches_filter(meta, filter) for meta in metas])
            if not allowed.any():
                return [[] for _ in queries]
        results = []
        for query in self._encode(queries, is_query=True):
            scores = maxsim_scores(query, packed)
            if allowed is not None:
                scores = np.where(allowed, scores, -np.inf)
            count = min(k, len(ids) if allowed is None else int(allowed.sum()))
            top = np.argpartition(-scores, count - 1)[:count]
            top = top[np.argsort(-scores[top], kind="stable")]
            results.append([Passage(texts[i], float(scores[i]), ids[i], metas[i]) for i in top])
        return results

    def _encode(self, texts: list[str], *, is_query: bool) -> list[Any]:
        matrices = self.encoder.encode(texts, is_query=is_query)
        if len(matrices) != len(texts):
            raise ValueError(f"the token encoder {self.encoder.name!r} returned {len(matrices)} matrices "
                             f"for {len(texts)} texts")
        for matrix in matrices:
            if matrix.ndim != 2 or matrix.shape[1] != self.encoder.dim:
                raise ValueError(f"the token encoder {self.encoder.name!r} returned shape {matrix.shape}; "
                                 f"expected (tokens, {self.encoder.dim})")
        return matrices

    def _load(self) -> None:
        assert self.path is not None
        ids, texts, metas, docs = storage.load(self.path, self.encoder)
        self._ids, self._texts, self._meta, self._docs = ids, texts, metas, docs
        self._position = {pid: row for row, pid in enumerate(ids)}


def maxsim_scores(query: Any, packed: storage.Packed) -> Any:
    """Sum over query tokens of the best dot product with each passage's tokens -> (passages,)."""
    import numpy as np

    scores = np.zeros(len(packed.starts), dtype=np.float32)
    if query.shape[0] == 0:
        return scores
    for first, last in packed.chunks:     # passage index ranges of at most ~CHUNK_TOKENS tokens
        begin = packed.starts[first]
        end = packed.starts[last] if last < len(packed.starts) else packed.tokens.shape[0]
        similarities = query @ packed.tokens[begin:end].T
        best = np.maximum.reduceat(similarities, packed.starts[first:last] - begin, axis=1)
        scores[first:last] = best.sum(axis=0)
    return scores


def _check_json_safe(ids: list[str], metas: list[dict[str, Any]], path: Path) -> None:
    for pid, meta in zip(ids, metas):
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise TypeError(f"the metadata of id {pid!r} is not JSON-safe ({error}); the index at {path} "
                            f"stores metadata as JSON: use strings, numbers, booleans, None, lists and "
                            f"dicts") from error
