"""SQuAD v1.1 reading comprehension (500 dev questions bundled, each from its own paragraph).

Licence: CC BY-SA 4.0 (see data/NOTICE.squad.md).
"""

from __future__ import annotations

import functools
from typing import Any

from plait.datasets._base import BundledDataset, read_jsonl
from plait.primitives.example import Example

FILE = "squad_dev.jsonl.gz"


@functools.lru_cache(maxsize=1)
def _context_ids() -> dict[str, str]:
    """Each distinct context's corpus id ("0", "1", ...) in bundled order."""
    ids: dict[str, str] = {}
    for record in read_jsonl(FILE):
        ids.setdefault(record["context"], str(len(ids)))
    return ids


def _distinct(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


class SQuAD(BundledDataset):
    """``SQuAD(train_seed=1, train_size=None, eval_seed=2023, dev_size=300, test_size=0)``.

    Examples have ``context`` and ``question`` (the inputs; pass ``input_keys=("question",)``
    to retrieve the context instead), ``answer`` (the first reference), ``answers`` (every
    distinct reference, for EM/F1 against all of them), ``title``, ``id`` and ``context_id``
    (the id of the context in ``corpus()``).
    """

    name = "SQuAD"
    split_sources = {"train": "questions", "dev": "questions", "test": "questions"}
    default_input_keys = ("context", "question")

    def __init__(self, *, train_seed: int = 1, train_size: int | None = None,
                 eval_seed: int = 2023, dev_size: int | None = 300, test_size: int | None = 0,
                 input_keys: tuple[str, ...] | None = None, seed: int | None = None):
        super().__init__(train_seed=train_seed, train_size=train_size, eval_seed=eval_seed,
                         dev_size=dev_size, test_size=test_size, input_keys=input_keys, seed=seed)

    def pool_records(self) -> dict[str, Any]:
        return {"questions": read_jsonl(FILE)}

    def make_example(self, record: dict[str, Any], split: str) -> Example:
        answers = _distinct([answer["text"] for answer in record["answers"]])
        return Example(context=record["context"], question=record["question"],
                       answer=answers[0], answers=answers, title=record["title"],
                       id=record["id"], context_id=_context_ids()[record["context"]])

    @staticmethod
    def corpus() -> list[dict[str, str]]:
        """The bundled contexts, deduplicated: ``[{"id", "title", "text"}]`` (title = article)."""
        titles = {record["context"]: record["title"] for record in read_jsonl(FILE)}
        return [{"id": cid, "title": titles[text], "text": text}
                for text, cid in _context_ids().items()]
