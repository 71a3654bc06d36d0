"""HotPotQA multi-hop questions with their distractor paragraphs (300 dev questions bundled).

The bundled pool is 150 bridge and 150 comparison questions from the official dev set, each
with its (up to) 10 distractor-setting paragraphs and the two supporting ones marked. All
bundled paragraphs pooled make a small retrieval corpus (``HotPotQA.corpus()``) with known gold
paragraphs, so retrieval recall can be measured.
Licence: CC BY-SA 4.0 (see data/NOTICE.hotpotqa.md).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from plait.datasets._base import BundledDataset, read_jsonl
from plait.primitives.example import Example

FILE = "hotpotqa_dev.jsonl.gz"


@functools.lru_cache(maxsize=1)
def _paragraph_table() -> tuple[tuple[tuple[str, str], ...], dict[tuple[str, str], str]]:
    """Every distinct (title, text) in first-seen order, and its corpus id ("0", "1", ...)."""
    ids: dict[tuple[str, str], str] = {}
    for record in read_jsonl(FILE):
        for paragraph in record["paragraphs"]:
            key = (paragraph["title"], paragraph["text"])
            if key not in ids:
                ids[key] = str(len(ids))
    return tuple(ids), ids


def _passage(title: str, text: str, ids: dict[tuple[str, str], str]) -> dict[str, str]:
    # "title | text" is the passage form DSPy's Wikipedia abstracts use; title-based metrics
    # split on the first " | ".
    return {"id": ids[(title, text)], "title": title, "text": f"{title} | {text}"}


class HotPotQA(BundledDataset):
    """``HotPotQA(train_seed=1, train_size=None, eval_seed=2023, dev_size=150, test_size=0)``.

    Examples have ``question`` (the input) and ``answer``. ``keep_details``:
    - ``"dev_titles"`` (the default, as in DSPy): dev and test examples also get
      ``gold_titles`` (a set of the two supporting paragraphs' titles);
    - ``True``: every example also gets ``id``, ``type`` ("bridge"/"comparison"),
      ``gold_titles``, ``supporting_paragraphs`` and ``paragraphs`` (corpus-shaped dicts,
      ``{"id", "title", "text"}``, whose ids are those of ``corpus()``);
    - ``False``: question and answer only.
    ``train_size=None`` takes every question the dev and test splits leave.
    """

    name = "HotPotQA"
    split_sources = {"train": "questions", "dev": "questions", "test": "questions"}
    default_input_keys = ("question",)

    def __init__(self, *, train_seed: int = 1, train_size: int | None = None,
                 eval_seed: int = 2023, dev_size: int | None = 150, test_size: int | None = 0,
                 keep_details: bool | Literal["dev_titles"] = "dev_titles",
                 input_keys: tuple[str, ...] | None = None, seed: int | None = None):
        if not (isinstance(keep_details, bool) or keep_details == "dev_titles"):
            raise ValueError(f"HotPotQA: keep_details must be False, 'dev_titles' or True, "
                             f"not {keep_details!r}")
        self.keep_details = keep_details
        super().__init__(train_seed=train_seed, train_size=train_size, eval_seed=eval_seed,
                         dev_size=dev_size, test_size=test_size, input_keys=input_keys, seed=seed)

    def pool_records(self) -> dict[str, Any]:
        return {"questions": read_jsonl(FILE)}

    def make_example(self, record: dict[str, Any], split: str) -> Example:
        example = Example(question=record["question"], answer=record["answer"])
        details = self.keep_details
        if details is False or (details == "dev_titles" and split == "train"):
            return example
        gold = [p for p in record["paragraphs"] if p["supporting"]]
        example["gold_titles"] = {p["title"] for p in gold}
        if details is True:
            _, ids = _paragraph_table()
            example["id"] = record["id"]
            example["type"] = record["type"]
            example["supporting_paragraphs"] = [_passage(p["title"], p["text"], ids) for p in gold]
            example["paragraphs"] = [_passage(p["title"], p["text"], ids)
                                     for p in record["paragraphs"]]
        return example

    @staticmethod
    def corpus() -> list[dict[str, str]]:
        """All bundled paragraphs, deduplicated: ``[{"id", "title", "text": "title | text"}]``.

        The same for every split and seed (index it once); ids are "0", "1", ... in the order
        the paragraphs first appear in the bundled file.
        """
        keys, ids = _paragraph_table()
        return [_passage(title, text, ids) for title, text in keys]
