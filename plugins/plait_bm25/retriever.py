"""BM25 over bm25s: a lexical retriever that runs in-process, optionally persisted to a folder.

bm25s builds a static index (a sparse matrix of precomputed term scores). Adding texts
therefore marks the index stale and the next search rebuilds it once, so many small ``add``
calls cost no more than one big one. Tokens of stored texts are kept, so a rebuild only
re-tokenises what changed.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plait.errors import MissingExtraError
from plait.retrieve.passage import Passage
from plait.retrieve.retriever import Retriever, check_add_args, matches_filter

from plait_bm25 import storage

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


def resolve_stemmer(stemmer: Any) -> tuple[Any, str | None]:
    """(the stemmer bm25s gets, a name to persist or None for an unnamed callable)."""
    if stemmer is None:
        return None, "none"
    if isinstance(stemmer, str):
        try:
            import Stemmer   # PyStemmer
        except ImportError as exc:
            raise MissingExtraError(f"stemmer={stemmer!r} needs PyStemmer: pip install PyStemmer; or pass a "
                                    "callable that maps a list of words to their stems") from exc
        try:
            return Stemmer.Stemmer(stemmer), f"pystemmer:{stemmer}"
        except KeyError:
            raise ValueError(f"PyStemmer has no {stemmer!r} stemmer; choose one of "
                             f"{', '.join(Stemmer.algorithms())}") from None
    if hasattr(stemmer, "stemWords") or callable(stemmer):
        return stemmer, None
    raise TypeError(f"stemmer must be None, a PyStemmer language name, or a callable (list of words -> "
                    f"list of stems), got {type(stemmer).__name__}")


class BM25Retriever(Retriever):
    """``plait.retriever("bm25", path=None, k1=1.5, b=0.75, stopwords="en", stemmer=None)``.

    - ``path``: a folder to persist to (created on first add; loaded when it exists), or None
      for a memory-only index.
    - ``k1``, ``b``, ``method``: BM25 parameters (bm25s's "lucene" variant by default).
    - ``stopwords``: "en" (or another language bm25s knows), a list of words, or None.
    - ``stemmer``: None, a PyStemmer language name ("english"), or a callable on word lists.

    Scores are BM25 scores (>= 0; 0 means no query term matched). Filters use the portable
    form ``{"key": value}`` / ``{"key": [v1, v2]}`` and are applied to the full score vector,
    so a filtered search returns the best ``k`` matching passages, never fewer when enough match.
    """

    supports_filters = True

    def __init__(self, path: str | Path | None = None, *, k1: float = 1.5, b: float = 0.75,
                 stopwords: str | Sequence[str] | None = "en", stemmer: Any = None, method: str = "lucene",
                 k: int = 3):
        import bm25s   # fail here, as a missing extra, rather than at the first search

        if isinstance(k1, bool) or not isinstance(k1, (int, float)) or k1 < 0:
            raise ValueError(f"k1 must be a number >= 0 (typically 1.2-2.0), got {k1!r}")
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b <= 1:
            raise ValueError(f"b must be a number from 0 to 1 (typically 0.75), got {b!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if stopwords is not None and not isinstance(stopwords, str):
            if not isinstance(stopwords, (list, tuple, set, frozenset)):
                raise TypeError(f"stopwords must be a language such as 'en', a list of words, or None; "
                                f"got {type(stopwords).__name__}")
            stopwords = sorted({str(word) for word in stopwords})
        self._stemmer, stemmer_name = resolve_stemmer(stemmer)
        self._stopwords = stopwords
        try:
            bm25s.tokenize(["probe"], stopwords=stopwords, return_ids=False, show_progress=False)
        except ValueError as exc:
            raise ValueError(f"stopwords={stopwords!r} is not usable: {exc}") from None
        self.k = k
        self.params: dict[str, Any] = {"k1": float(k1), "b": float(b), "method": method, "stopwords": stopwords,
                                       "stemmer": stemmer_name}
        self.path = Path(path).expanduser() if path is not None else None
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metas: list[dict[str, Any]] = []
        self._tokens: list[list[str] | None] = []
        self._position: dict[str, int] = {}
        self._dirty = False
        self._snapshot: tuple[Any, tuple[str, ...], tuple[str, ...], tuple[dict[str, Any], ...]] | None = None
        self.builds = 0   # how many times the index was (re)built: observable laziness
        self._manifest = storage.Manifest(params=self._saved_params())
        if self.path is not None:
            self._load()

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        where = f"path={str(self.path)!r}" if self.path else "in memory"
        return f"BM25Retriever({where}, passages={len(self)}, k1={self.params['k1']}, b={self.params['b']})"

    # --- indexing -----------------------------------------------------------------------------
    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        texts, ids, metas = check_add_args(texts, ids, metadata)
        if not texts:
            return []
        if self.path is not None:
            for pid, meta in zip(ids, metas):
                try:
                    json.dumps(meta)
                except (TypeError, ValueError) as exc:
                    raise TypeError(f"metadata of {pid!r} cannot be saved as JSON ({exc}); a persisted BM25 "
                                    "index keeps str, int, float, bool, None, lists and dicts") from None
        tokens = self._tokenize(texts)   # outside the lock: the slow part of an add
        with self._lock:
            if self.path is not None:
                self._append_segment(ids, texts, metas)
            for pid, text, meta, words in zip(ids, texts, metas, tokens):
                row = self._position.get(pid)
                if row is None:
                    self._position[pid] = len(self._ids)
                    self._ids.append(pid)
                    self._texts.append(text)
                    self._metas.append(meta)
                    self._tokens.append(words)
                else:   # upsert in place
                    self._texts[row], self._metas[row], self._tokens[row] = text, meta, words
            self._dirty = True
        return ids

    def save(self) -> None:
        """Build the index now if it is stale and write it (with one compacted corpus file) to ``path``."""
        if self.path is None:
            raise ValueError("this BM25 index has no path=; create it with plait.retriever('bm25', path=FOLDER)")
        with self._lock:
            self._current()
            if self._manifest.index is None and self._ids:
                self._write_index(self._snapshot[0])

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, stopwords=self._stopwords, stemmer=self._stemmer, return_ids=False,
                              show_progress=False)

    def _current(self) -> tuple[Any, tuple[str, ...], tuple[str, ...], tuple[dict[str, Any], ...]] | None:
        """The index and its rows, rebuilt first if texts were added since. Call under the lock."""
        if self._dirty:
            self._rebuild()
        return self._snapshot

    def _rebuild(self) -> None:
        import bm25s

        missing = [row for row, words in enumerate(self._tokens) if words is None]
        if missing:   # rows loaded from disk are tokenised on first rebuild
            for row, words in zip(missing, self._tokenize([self._texts[row] for row in missing])):
                self._tokens[row] = words
        model = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], method=self.params["method"])
        model.index(self._tokens, show_progress=False)
        self.builds += 1
        self._snapshot = (model, tuple(self._ids), tuple(self._texts), tuple(self._metas))
        self._dirty = False
        if self.path is not None:
            try:
                self._write_index(model)
            except OSError as exc:   # the corpus is safe on disk already; only the cached index is lost
                warnings.warn(f"could not save the BM25 index to {self.path}: {exc}; it will be rebuilt "
                              "from the saved corpus next time", RuntimeWarning, stacklevel=4)

    # --- search -------------------------------------------------------------------------------
    def search(self, queries: list[str], k: int, *, filter: Mapping[str, Any] | None = None) -> list[list[Passage]]:
        import numpy as np

        with self._lock:
            snapshot = self._current()
        if snapshot is None or not snapshot[1]:
            return [[] for _ in queries]
        model, ids, texts, metas = snapshot
        allowed = None
        if filter:
            allowed = np.fromiter((matches_filter(meta, filter) for meta in metas), dtype=bool, count=len(metas))
            if not allowed.any():
                return [[] for _ in queries]
        count = min(k, len(ids) if allowed is None else int(allowed.sum()))
        results = []
        for words in self._tokenize(queries):
            token_ids = model.get_tokens_ids(words)
            scores = (model.get_scores_from_ids(token_ids) if token_ids
                      else np.zeros(len(ids), dtype=np.float32))
            if allowed is not None:
                scores = np.where(allowed, scores, -np.inf)
            top = np.argpartition(-scores, count - 1)[:count] if count < len(ids) else np.arange(len(ids))
            top = top[np.argsort(-scores[top], kind="stable")][:count]
            results.append([Passage(texts[i], float(scores[i]), ids[i], metas[i]) for i in top])
        return results

    # --- persistence --------------------------------------------------------------------------
    def _saved_params(self) -> dict[str, Any]:
        return dict(self.params)

    def _load(self) -> None:
        folder = self.path
        manifest = storage.read_manifest(folder)
        if manifest is None:
            return
        rows = storage.read_segments(folder, manifest)
        for position, (pid, (text, meta)) in enumerate(rows.items()):
            self._position[pid] = position
            self._ids.append(pid)
            self._texts.append(text)
            self._metas.append(meta)
            self._tokens.append(None)
        # A saved index is reused only if it was built with these exact settings; an unnamed
        # stemmer cannot be compared, so its index is rebuilt from the corpus.
        reusable = (manifest.index is not None and manifest.params == self._saved_params()
                    and self.params["stemmer"] is not None)
        if reusable:
            model = storage.load_index(folder, manifest)
            self._snapshot = (model, tuple(self._ids), tuple(self._texts), tuple(self._metas))
        else:
            self._dirty = bool(self._ids)
        manifest.params = self._saved_params()
        if not reusable:
            manifest.index = None
        self._manifest = manifest

    def _append_segment(self, ids: list[str], texts: list[str], metas: list[dict[str, Any]]) -> None:
        manifest = self._manifest
        self.path.mkdir(parents=True, exist_ok=True)
        generation = manifest.generation + 1
        name = f"corpus-{generation:06d}.jsonl"
        storage.write_segment(self.path, name, zip(ids, texts, metas))
        new_ids = sum(1 for pid in ids if pid not in self._position)
        updated = storage.Manifest(generation, [*manifest.segments, name], None, self._saved_params(),
                                   manifest.count + new_ids)
        storage.write_manifest(self.path, updated)
        self._manifest = updated

    def _write_index(self, model: Any) -> None:
        """One compacted corpus segment plus bm25s's files for ``model``, then the manifest."""
        self.path.mkdir(parents=True, exist_ok=True)
        generation = self._manifest.generation + 1
        segment, index = f"corpus-{generation:06d}.jsonl", f"index-{generation:06d}"
        storage.write_segment(self.path, segment, zip(self._ids, self._texts, self._metas))
        storage.write_index(self.path, index, model)
        updated = storage.Manifest(generation, [segment], index, self._saved_params(), len(self._ids))
        storage.write_manifest(self.path, updated)
        self._manifest = updated

