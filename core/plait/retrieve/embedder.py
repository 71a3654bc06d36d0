"""Embedders: text -> vectors. The base class, and a dependency-light hashing embedder.

An embedder is called with a list of texts and returns a float32 numpy array of shape
(len(texts), dim). Retrievers take one as ``embedder=`` instead of hard-wiring a model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder:
    """Base class: implement ``embed(texts) -> array (n, dim)`` and set ``dim``."""

    dim: int = 0
    name: str = "embedder"

    def embed(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement embed(texts)")

    def __call__(self, texts: str | Sequence[str]) -> Any:
        if isinstance(texts, str):
            return self.embed([texts])[0]
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"embedders take strings, got {type(text).__name__}: {text!r}")
        return self.embed(texts)

    def __deepcopy__(self, memo: dict[int, Any]) -> Embedder:
        return self   # models are shared, never copied


class HashingEmbedder(Embedder):
    """Signed feature hashing of lower-cased words and word bigrams, L2-normalised.

    No model, no download: deterministic across processes (blake2b), useful for tests, tiny
    corpora and as a lexical baseline. Semantic search needs a real model
    (``plait.embedder("sentence-transformers")``).
    """

    name = "hashing"

    def __init__(self, dim: int = 512, *, bigrams: bool = True):
        if not isinstance(dim, int) or dim < 8:
            raise ValueError(f"HashingEmbedder dim must be an int >= 8, got {dim!r}")
        self.dim = dim
        self.bigrams = bigrams

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        if self.bigrams:
            return words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        return words

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                matrix[row, digest % self.dim] += 1.0 if (digest >> 63) & 1 else -1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix
