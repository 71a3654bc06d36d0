"""Passage: the one thing every retriever returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved text with its score (higher is better), stable id and metadata.

    ``str(passage)`` is its text, so a list of passages can be used wherever DSPy code expects
    a list of strings; adapters render passages in prompts as numbered quotes.
    """

    text: str
    score: float = 0.0
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        return self.text

    @property
    def long_text(self) -> str:
        """DSPy's name for the passage text."""
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": self.score, "id": self.id, "metadata": dict(self.metadata)}
