"""benchmarks/retrieval_quality.py: its metrics, and a run on a tiny HotPotQA-shaped file.

The real data lives outside the repository (../shared/data); here a three-question file in the
same format checks that the script loads, pools, scores and reports. No timing assertions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "retrieval_quality.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(SCRIPT.name, "bench_retrieval_quality")


def test_metrics(bench):
    relevant = {"a", "b"}
    assert bench.recall_any(["x", "a", "y"], relevant, 5) == 1.0
    assert bench.recall_any(["x", "y", "z", "w", "v", "a"], relevant, 5) == 0.0
    assert bench.recall_fraction(["b", "x", "a"], relevant, 5) == 1.0
    assert bench.recall_fraction(["b", "x"], relevant, 5) == 0.5
    assert bench.ndcg(["a", "b", "x"], relevant, 10) == pytest.approx(1.0)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert bench.ndcg(["x", "a", "y"], relevant, 10) == pytest.approx(expected)
    assert bench.agreement([["a", "b", "c", "d", "e"]], [["a", "b", "c", "d", "f"]]) == (0.8, 0.0)


def _context(index, title, text, supporting):
    return {"id": str(index), "title": title, "paragraph_text": text, "is_supporting": supporting}


QUESTIONS = [
    ("Which river flows through Paris?", [("Paris", "Paris lies on the river Seine.", True),
                                         ("Seine", "The Seine flows to the English Channel.", True),
                                         ("Rome", "Rome lies on the Tiber.", False)]),
    ("Who composed the opera Tosca?", [("Tosca", "Tosca is an opera by Giacomo Puccini.", True),
                                       ("Puccini", "Giacomo Puccini was an Italian composer.", True),
                                       ("Rome", "Rome lies on the Tiber.", False)]),
    ("What is the boiling point of water?", [("Water", "Water boils at 100 degrees Celsius.", True),
                                             ("Boiling", "Boiling point depends on pressure.", True),
                                             ("Ice", "Ice melts at zero degrees.", False)]),
]


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "hotpotqa"
    folder.mkdir()
    with open(folder / "dev_subsampled.jsonl", "w", encoding="utf-8") as stream:
        for number, (question, contexts) in enumerate(QUESTIONS):
            stream.write(json.dumps({"question_id": f"q{number}", "question_text": question, "answers_objects": [],
                                     "contexts": [_context(i, *c) for i, c in enumerate(contexts)]}) + "\n")
    return tmp_path


def test_pools_and_deduplicates_paragraphs(bench, data_dir):
    ids, texts, questions, gold = bench.load_hotpot(data_dir, None)
    assert len(texts) == 8 and len(set(ids)) == 8        # "Rome" appears twice, pooled once
    assert "Paris: Paris lies on the river Seine." in texts
    assert [len(g) for g in gold] == [2, 2, 2] and len(questions) == 3


def test_runs_end_to_end_on_a_tiny_file(bench, data_dir, tmp_path, capsys):
    pytest.importorskip("bm25s", reason="the bm25 extra is not installed")
    output = tmp_path / "report.json"
    assert bench.main(["--data", str(data_dir), "--backends", "bm25,hashing-memory", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert set(report["backends"]) == {"bm25", "hashing-memory"}
    for row in report["backends"].values():
        assert 0 <= row["ndcg10"] <= 1 and row["query_p50_ms"] > 0 and row["passages_per_s"] > 0
    assert report["backends"]["bm25"]["recall5_any"] == 1.0
    assert report["bm25_10k"]["passages"] == 24           # 8 paragraphs plus their halves
    printed = capsys.readouterr().out
    assert "| bm25 |" in printed and "| hashing-memory |" in printed


def test_a_missing_data_file_is_a_clear_exit(bench, tmp_path):
    with pytest.raises(SystemExit, match="no HotPotQA file"):
        bench.main(["--data", str(tmp_path), "--backends", "bm25"])
