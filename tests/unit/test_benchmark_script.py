"""Smoke tests for benchmarks/overhead.py: the plait side runs and the report has the right shape.

No timing assertions: the numbers from --quick are noise by design. DSPy is not needed (the
script's DSPy column stays empty without --dspy-python).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "overhead.py"
PER_CALL_ROWS = ("predict", "chain_of_thought", "predict_16_demos", "cache_hit")


def load_overhead() -> ModuleType:
    return load_script(SCRIPT.name, "bench_overhead")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    output = tmp_path_factory.mktemp("bench") / "overhead.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--output", str(output)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert proc.returncode == 0, f"overhead.py --quick failed:\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(output.read_text())


def test_quick_run_writes_every_row_for_plait(quick_report: tuple) -> None:
    _, report = quick_report
    overhead = load_overhead()
    assert [row["key"] for row in report["rows"]] == [row.key for row in overhead.ROWS]
    assert report["quick"] is True and report["dspy"] is None
    assert report["plait"]["errors"] == []
    for row in report["rows"]:
        assert row["dspy"] is None and row["ratio"] is None and row["met"] is None
        if row["key"] != "import_net_ms" and row["key"] != "import_net_modules":   # may be ~0 within noise
            assert isinstance(row["plait"], float) and row["plait"] > 0, row


def test_quick_run_per_call_rows_really_call_the_lm(quick_report: tuple) -> None:
    _, report = quick_report
    calls = report["plait"]["calls"]
    assert set(PER_CALL_ROWS) <= set(calls)
    for key in ("predict", "chain_of_thought", "predict_16_demos"):
        timed = sum(calls[key]["calls_per_repeat"]) * calls[key]["repeats"] // calls[key]["rounds"]
        assert calls[key]["backend_calls"] >= timed   # timed calls plus warm-up, each reached the LM
        assert len(calls[key]["runs_us"]) == calls[key]["repeats"]
    assert calls["cache_hit"]["backend_calls"] == 0   # every timed call was answered by the cache


def test_quick_run_prints_the_markdown_table(quick_report: tuple) -> None:
    proc, _ = quick_report
    lines = proc.stdout.splitlines()
    assert lines[0] == "| measure | DSPy 3.4.1 | plait | ratio (DSPy/plait) | target | met |"
    assert sum(line.startswith("|") for line in lines) == 2 + len(load_overhead().ROWS)   # header, rule, rows


def test_rows_compute_ratio_and_target() -> None:
    overhead = load_overhead()
    dspy = {"import": {"import_wall_ms": 500.0}, "calls": {"predict": {"median_us": 200.0},
                                                            "cache_hit": {"median_us": 200.0}}}
    plait = {"import": {"import_wall_ms": 25.0}, "calls": {"predict": {"median_us": 20.0},
                                                             "cache_hit": {"median_us": 5.0}}}
    rows = {row["key"]: row for row in overhead.build_rows(dspy, plait)}
    assert rows["import_wall_ms"]["ratio"] == pytest.approx(20.0) and rows["import_wall_ms"]["met"] is True
    assert rows["predict"]["ratio"] == pytest.approx(10.0) and rows["predict"]["met"] is False
    assert rows["cache_hit"]["ratio"] == pytest.approx(40.0) and rows["cache_hit"]["met"] is True
    assert rows["chain_of_thought"]["ratio"] is None and rows["chain_of_thought"]["met"] is None
    table = overhead.markdown_table(list(rows.values()), "3.4.1")
    assert "| 10.0x |" in table and "**no**" in table


def test_merge_rounds_takes_the_median_over_every_repeat() -> None:
    overhead = load_overhead()
    def round_(runs: list[float], backend_calls: int) -> dict:
        return {"framework": "plait", "version": "0", "python": "3.11",
                "calls": {"predict": {"runs_us": runs, "calls_per_repeat": 10, "backend_calls": backend_calls}}}
    merged = overhead.merge_rounds([round_([1.0, 9.0], 25), round_([2.0, 3.0], 30)])
    predict = merged["calls"]["predict"]
    assert predict["median_us"] == pytest.approx(2.5) and predict["min_us"] == 1.0 and predict["max_us"] == 9.0
    assert predict["repeats"] == 4 and predict["rounds"] == 2 and predict["backend_calls"] == 55


def test_missing_dspy_python_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dspy-python", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "make bench" in proc.stderr


def test_profile_prints_top_functions_by_own_time() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--profile"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Ordered by: internal time" in proc.stdout and "tottime" in proc.stdout
    assert "predict.py" in proc.stdout   # the profile covers plait's own Predict code
