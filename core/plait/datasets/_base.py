"""What every bundled data set shares: reading its files and carving seeded, disjoint splits.

A data set draws its splits from one or two *pools* of bundled records (HotPotQA and SQuAD have
one pool; GSM8K and SST-2 have the source's train file and its test/dev file). In each pool the
evaluation splits are carved first: the pool is shuffled with ``eval_seed`` and dev then test
take the front. Train is then drawn with ``train_seed`` from what is left. So dev never changes
with ``train_size`` or ``train_seed``, a smaller train is a prefix of a bigger one, and no record
is in two splits.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from plait.primitives.example import Example

SPLITS = ("train", "dev", "test")


@functools.lru_cache(maxsize=None)
def read_lines(name: str) -> tuple[str, ...]:
    """The lines of the bundled gzip file ``data/<name>``, read once per process."""
    # importlib.resources finds the file inside an installed wheel or zip as well as a checkout.
    with (resources.files(__package__) / "data" / name).open("rb") as raw:
        with gzip.open(raw, "rt", encoding="utf-8") as text:
            return tuple(line.rstrip("\n") for line in text if line.strip())


@functools.lru_cache(maxsize=None)
def read_jsonl(name: str) -> tuple[dict[str, Any], ...]:
    """The records of a bundled JSON Lines file. Callers must not change them (they are shared)."""
    return tuple(json.loads(line) for line in read_lines(name))


def _check_size(owner: str, split: str, size: int | None) -> None:
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{owner}: {split}_size must be a whole number >= 0 or None (the rest "
                         f"of its pool), not {size!r}")


def _check_seed(owner: str, name: str, seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{owner}: {name} must be an int, not {type(seed).__name__}")


def carve_splits(owner: str, pools: dict[str, int], sources: dict[str, str],
                 sizes: dict[str, int | None], train_seed: int, eval_seed: int
                 ) -> dict[str, list[tuple[str, int]]]:
    """Pick each split's records as (pool, index) pairs.

    ``pools`` maps a pool name to its record count, ``sources`` each split to its pool, and
    ``sizes`` each split to a count or None ("the rest of the pool", at most one per pool).
    """
    for split in SPLITS:
        _check_size(owner, split, sizes[split])
    _check_seed(owner, "train_seed", train_seed)
    _check_seed(owner, "eval_seed", eval_seed)
    picked: dict[str, list[tuple[str, int]]] = {}
    for pool, available in pools.items():
        members = [split for split in ("dev", "test", "train") if sources[split] == pool]
        open_ended = [split for split in members if sizes[split] is None]
        if len(open_ended) > 1:
            raise ValueError(f"{owner}: {' and '.join(s + '_size' for s in open_ended)} are both "
                             f"None but share the {pool!r} pool of {available} records; give "
                             f"all but one of them a number")
        fixed = {split: sizes[split] for split in members if sizes[split] is not None}
        wanted = sum(fixed.values())
        if wanted > available:
            _raise_too_many(owner, pool, available, members, fixed)
        counts = {split: fixed.get(split, available - wanted) for split in members}
        order = list(range(available))
        random.Random(eval_seed).shuffle(order)
        start = 0
        for split in ("dev", "test"):
            if split in counts:
                picked[split] = [(pool, i) for i in order[start:start + counts[split]]]
                start += counts[split]
        if "train" in counts:
            # Sorted first so the train draw depends on train_seed alone, given what is left.
            rest = sorted(order[start:])
            random.Random(train_seed).shuffle(rest)
            picked["train"] = [(pool, i) for i in rest[:counts["train"]]]
    return picked


def _raise_too_many(owner: str, pool: str, available: int, members: list[str],
                    fixed: dict[str, int]) -> None:
    asked = " + ".join(f"{split}_size={size}" for split, size in fixed.items() if size)
    hints = []
    for split, size in fixed.items():
        if not size:
            continue
        others = sum(fixed.values()) - size
        if others <= available:
            hints.append(f"{split}_size <= {available - others}")
    shared = f" (shared by {', '.join(members)})" if len(members) > 1 else ""
    hint = f"; the maximum with the other sizes unchanged is {' or '.join(hints)}" if hints else ""
    raise ValueError(f"{owner}: {asked} asks for more than the {available} records in the "
                     f"bundled {pool!r} pool{shared}{hint}")


class BundledDataset:
    """Base of the bundled data sets: ``.train``, ``.dev`` and ``.test`` lists of Examples.

    Subclasses set ``name``, ``split_sources`` (split -> pool name) and ``default_input_keys``,
    return their pools' records from ``pool_records()`` and build one Example from a record
    in ``make_example``.
    """

    name = ""
    split_sources: dict[str, str] = {}
    default_input_keys: tuple[str, ...] = ()

    def __init__(self, *, train_seed: int = 1, train_size: int | None = None,
                 eval_seed: int = 2023, dev_size: int | None = None, test_size: int | None = 0,
                 input_keys: Sequence[str] | None = None, seed: int | None = None):
        if seed is not None:   # one knob for both seeds
            train_seed = eval_seed = seed
        if isinstance(input_keys, str):
            raise TypeError(f"{self.name}: input_keys takes a sequence of names, e.g. "
                            f"({input_keys!r},), not a bare string")
        self.train_seed, self.eval_seed = train_seed, eval_seed
        self.input_keys = tuple(self.default_input_keys if input_keys is None else input_keys)
        records = self.pool_records()
        pools = {pool: len(rows) for pool, rows in records.items()}
        sizes = {"train": train_size, "dev": dev_size, "test": test_size}
        picked = carve_splits(self.name, pools, self.split_sources, sizes, train_seed, eval_seed)
        self.train = self._examples("train", picked["train"], records)
        self.dev = self._examples("dev", picked["dev"], records)
        self.test = self._examples("test", picked["test"], records)

    def _examples(self, split: str, chosen: list[tuple[str, int]],
                  records: dict[str, Sequence[Any]]) -> list[Example]:
        build: Callable[[Any, str], Example] = self.make_example
        keys = self.input_keys
        return [build(records[pool][i], split).with_inputs(*keys) for pool, i in chosen]

    # --- for subclasses ------------------------------------------------------------------
    def pool_records(self) -> dict[str, Sequence[Any]]:
        raise NotImplementedError

    def make_example(self, record: Any, split: str) -> Example:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(train={len(self.train)}, dev={len(self.dev)}, "
                f"test={len(self.test)}, train_seed={self.train_seed}, eval_seed={self.eval_seed})")
