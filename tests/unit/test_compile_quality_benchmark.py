"""benchmarks/compile_quality.py: its splits, summary and tables, without any model."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compile_quality.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(SCRIPT.name, "bench_compile_quality")


def test_splits_are_the_bundled_sst2_one_train_split_per_seed_and_one_dev_split(bench, tmp_path):
    paths = bench.write_splits(tmp_path, [1, 2], n_train=20, n_dev=50)
    first, second = (json.loads(paths[seed].read_text()) for seed in (1, 2))
    assert len(first["train"]) == 20 and len(first["dev"]) == 50
    assert first["dev"] == second["dev"] and first["train"] != second["train"]
    assert {label for _, label in first["train"] + first["dev"]} == {"positive", "negative"}
    from plait.datasets import SST2
    assert first["train"][0] == [SST2(train_seed=1, train_size=20).train[0].sentence,
                                 SST2(train_seed=1, train_size=20).train[0].label]


def result(zero: float, compiled: float) -> dict:
    def step(accuracy: float) -> dict:
        return {"accuracy": accuracy, "correct": int(accuracy / 2), "n": 50, "parse_failures": 0,
                "lm_calls": 50, "seconds": 1.0}
    return {"predict": {"zero_shot": step(zero), "compiled": step(compiled),
                        "compile": {"demos": 4, "bootstrapped": 4, "lm_calls": 5, "seconds": 1.0}}}


def test_the_summary_counts_seeds_that_raised_kept_or_lowered_accuracy(bench):
    report = {"seeds": {1: {"plait-inprocess": result(80, 84), "dspy-server-litellm": result(80, 76)},
                        2: {"plait-inprocess": result(80, 80), "dspy-server-litellm": {"error": "boom"}},
                        3: {"plait-inprocess": result(70, 78), "dspy-server-litellm": result(60, 70)}}}
    rows = {row["row"]: row for row in bench.summary(report)}
    plait_row, dspy_row = rows["plait-inprocess"], rows["dspy-server-litellm"]
    assert (plait_row["seeds"], plait_row["raised"], plait_row["same"], plait_row["lowered"]) == (3, 2, 1, 0)
    assert plait_row["zero_shot_mean"] == pytest.approx(230 / 3) and plait_row["compiled_mean"] == pytest.approx(242 / 3)
    assert (dspy_row["seeds"], dspy_row["raised"], dspy_row["lowered"]) == (2, 1, 1), "a failed row is not counted"
    text = bench.summary_table(bench.summary(report))
    assert "| plait-inprocess | Predict | 3 | 76.7% | 80.7% | +4.0 | 2 / 1 / 0 |" in text
    per_seed = bench.table(report)
    assert "(failed: 'boom')" in per_seed and "| 3 | plait-inprocess | Predict | 70% (35/50) |" in per_seed
