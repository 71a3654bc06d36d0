"""Smoke test of benchmarks/compile_speed.py's plait side (in-process, tiny, no timing asserts).

The numbers themselves come from running the script (see benchmarks/README.md); here we check
that its workloads run, make the LM calls the rule implies and that the report has its shape.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from benchmark_scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compile_speed.py"


def load_bench() -> ModuleType:
    return load_script(SCRIPT.name, "bench_compile_speed")


def test_the_lm_rule_fails_every_fifth_number_below_temperature_one() -> None:
    bench = load_bench()
    assert bench.answer_for(bench.question(7), None) == "14"
    assert bench.answer_for(bench.question(10), 0.0) == "wrong"
    assert bench.answer_for(bench.question(10), 1.0) == "20"


def test_plait_side_runs_and_reports() -> None:
    bench = load_bench()
    result = bench.run_plait(examples=10, latency=0.0, threads=4, repeats=1)
    rows = result["rows"]
    assert set(rows) == {key for key, _, _ in bench.ROWS}
    # every example once, and <0> and <5> a second time at temperature 1.0: all bootstrapped
    assert rows["bootstrap"]["calls"] == [12] and rows["bootstrap"]["demos"] == [10]
    assert rows["random_search"]["calls"][0] >= 9 * 10   # nine candidates scored on ten examples
    table = bench.summarise({"plait": result}, latency=0.001, threads=4)
    assert [row["row"] for row in table] == [key for key, _, _ in bench.ROWS]
    text = bench.markdown(table, 4)
    assert text.count("\n") == len(bench.ROWS) + 1 and "plait / ideal" in text
