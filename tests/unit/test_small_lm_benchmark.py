"""benchmarks/small_lm_parsing.py: its data loading, metrics and report, without any model."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "small_lm_parsing.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(SCRIPT.name, "bench_small_lm")


def test_questions_come_in_file_order_with_the_sentence_holding_the_answer(bench, tmp_path):
    context = "Paris is big. The Louvre is in Paris. It opened in 1793."
    data = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "a", "question": "Where is the Louvre?", "answers": [{"text": "Paris", "answer_start": 29}]},
        {"id": "b", "question": "When did it open?", "answers": [{"text": "1793", "answer_start": 51}]},
        {"id": "c", "question": "Is Paris big?", "answers": [{"text": "big", "answer_start": 9}]}]}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    items = bench.load_questions(path, 2)
    assert [item["id"] for item in items] == ["a", "b"]
    assert [item["context"] for item in items] == ["The Louvre is in Paris.", "It opened in 1793."]
    assert bench.load_questions(path, 9)[2]["context"] == "Paris is big."


def test_metrics(bench):
    assert bench.score("The Denver Broncos.", ["Denver Broncos"]) == (True, True)
    assert bench.score("It was the Denver Broncos", ["Denver Broncos"]) == (False, True)
    assert bench.score("", ["x"]) == (False, False) and bench.score(None, ["x"]) == (False, False)
    assert bench.usable("Paris")
    for junk in ("", "  ", "${answer}", "${${reasoning}}", "The answer is missing output field(s) Answer:", None):
        assert not bench.usable(junk), junk


def test_summary_and_table(bench):
    answers = [{"parsed": True, "usable": True, "em": True, "contains": True, "lm_calls": 1, "completion_tokens": [5]},
               {"parsed": True, "usable": False, "em": False, "contains": False, "lm_calls": 2,
                "completion_tokens": [48, 1]},
               {"parsed": False, "parse_error": True, "usable": False, "em": False, "contains": False,
                "lm_calls": 2, "completion_tokens": [48, None]}]
    summary = bench.summarize(answers, 3.0)
    assert summary == {"n": 3, "parsed": 2, "parsed_first_call": 1, "max_completion_tokens": 48, "usable": 1,
                       "em": 1, "contains": 1, "other_errors": 0, "lm_calls_mean": 5 / 3, "seconds": 3.0}
    report = {"rows": {"plait-inprocess": {"predict": {"summary": summary}}, "dspy-server": {"error": "boom"}}}
    lines = bench.table(report).splitlines()
    assert lines[2] == ('| plait-inprocess | Predict("question -> answer") | 2/3 | 1/3 | 1/3 | 1/3 | 1/3 | 1.67 '
                        '| 48 | 3.0 |')
    assert lines[3].startswith("| dspy-server | (failed: boom)")


def test_unknown_programs_and_rows_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--programs", "predict,nope"])
    with pytest.raises(SystemExit):
        bench.main(["--rows", "plait-gpu"])
