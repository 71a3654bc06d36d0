"""GSM8K grade-school math (500 train and 300 test problems bundled) and ``gsm8k_metric``.

As in DSPy, train and dev come from the source's train file and test from its test file.
Licence: MIT, (c) 2021 OpenAI (see data/NOTICE.gsm8k.md).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from plait.datasets._base import BundledDataset, read_jsonl
from plait.primitives.example import Example

TRAIN_FILE, TEST_FILE = "gsm8k_train.jsonl.gz", "gsm8k_test.jsonl.gz"

# A number as people write it: optional sign, thousands separators, decimals ("-1,234.5").
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
# GSM8K solutions carry calculator annotations such as "<<16-3-4=9>>"; they are not prose.
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def parse_solution(solution: str) -> tuple[str, str]:
    """Split a GSM8K solution into (reasoning, final answer): "... #### 1,080" -> (..., "1080")."""
    reasoning, marker, final = solution.rpartition("####")
    if not marker:
        raise ValueError(f"a GSM8K solution ends with '#### <number>'; this one has no '####': "
                         f"{solution[-80:]!r}")
    return _CALCULATOR.sub("", reasoning).strip(), final.strip().replace(",", "")


def last_number(text: Any) -> str | None:
    """The last number in ``text`` without separators ("$1,200." -> "1200"), or None."""
    found = _NUMBER.findall("" if text is None else str(text))
    return found[-1].replace(",", "") if found else None


def _as_decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def gsm8k_metric(example: Any, pred: Any, trace: Any = None) -> bool:
    """True when the last number in ``pred.answer`` equals ``example.answer`` numerically.

    "The answer is $18.00." matches a gold "18"; a prediction without a number never matches.
    ``pred`` may be a Prediction or the answer text itself.
    """
    answer = pred.answer if hasattr(pred, "answer") else pred
    gold = _as_decimal(last_number(example.answer))
    predicted = _as_decimal(last_number(answer))
    return gold is not None and predicted is not None and gold == predicted


class GSM8K(BundledDataset):
    """``GSM8K(train_seed=1, train_size=None, eval_seed=2023, dev_size=300, test_size=None)``.

    Examples have ``question`` (the input), ``answer`` (the final number as text, no thousands
    separators: "1080") and ``gold_reasoning`` (the worked solution without its "#### N" line
    and calculator annotations). The defaults give DSPy's split sizes on the bundled subset:
    train 200 and dev 300 from the train pool, test 300 from the test pool.
    """

    name = "GSM8K"
    split_sources = {"train": "train", "dev": "train", "test": "test"}
    default_input_keys = ("question",)

    def __init__(self, *, train_seed: int = 1, train_size: int | None = None,
                 eval_seed: int = 2023, dev_size: int | None = 300, test_size: int | None = None,
                 input_keys: tuple[str, ...] | None = None, seed: int | None = None):
        super().__init__(train_seed=train_seed, train_size=train_size, eval_seed=eval_seed,
                         dev_size=dev_size, test_size=test_size, input_keys=input_keys, seed=seed)

    def pool_records(self) -> dict[str, Any]:
        return {"train": read_jsonl(TRAIN_FILE), "test": read_jsonl(TEST_FILE)}

    def make_example(self, record: dict[str, Any], split: str) -> Example:
        reasoning, answer = parse_solution(record["answer"])
        return Example(question=record["question"], gold_reasoning=reasoning, answer=answer)
