"""SST-2 binary sentiment (GLUE): 1,000 train sentences and the full 872-sentence dev set bundled.

Sentences are lowercased and tokenised as in GLUE. No licence is stated for SST/GLUE; see
data/NOTICE.sst2.md.
"""

from __future__ import annotations

import functools
from typing import Any

from plait.datasets._base import BundledDataset, read_lines
from plait.primitives.example import Example

TRAIN_FILE, DEV_FILE = "sst2_train.tsv.gz", "sst2_dev.tsv.gz"
LABELS = ("negative", "positive")   # GLUE's 0 and 1


@functools.lru_cache(maxsize=None)
def _rows(name: str) -> tuple[tuple[str, str], ...]:
    rows = []
    for line in read_lines(name)[1:]:   # the first line is the header
        sentence, _, label = line.rpartition("\t")
        rows.append((sentence.strip(), LABELS[int(label)]))
    return tuple(rows)


class SST2(BundledDataset):
    """``SST2(train_seed=1, train_size=None, eval_seed=2023, dev_size=None, test_size=0)``.

    Examples have ``sentence`` (the input) and ``label`` ("positive" or "negative"). Train
    comes from the train pool; dev and test from the GLUE dev set (test is carved out of it
    when ``test_size`` > 0, since GLUE's test labels are not public).
    """

    name = "SST2"
    split_sources = {"train": "train", "dev": "dev", "test": "dev"}
    default_input_keys = ("sentence",)
    labels = LABELS

    def __init__(self, *, train_seed: int = 1, train_size: int | None = None,
                 eval_seed: int = 2023, dev_size: int | None = None, test_size: int | None = 0,
                 input_keys: tuple[str, ...] | None = None, seed: int | None = None):
        super().__init__(train_seed=train_seed, train_size=train_size, eval_seed=eval_seed,
                         dev_size=dev_size, test_size=test_size, input_keys=input_keys, seed=seed)

    def pool_records(self) -> dict[str, Any]:
        return {"train": _rows(TRAIN_FILE), "dev": _rows(DEV_FILE)}

    def make_example(self, record: tuple[str, str], split: str) -> Example:
        sentence, label = record
        return Example(sentence=sentence, label=label)
