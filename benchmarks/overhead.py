"""Framework overhead, plait vs DSPy 3.4.1, measured side by side in one run.

    python benchmarks/overhead.py [--dspy-python PATH] [--quick] [--profile] [--output FILE]

Every measurement runs in a fresh interpreter: ``import`` cost through ``python -c``, per-call
costs through ``benchmarks/_worker.py`` (one process per framework, started with that
framework's interpreter, printing JSON). DSPy is never imported into this interpreter.
Without ``--dspy-python`` only plait's column is measured. Prints a markdown table and writes
the raw numbers to ``benchmarks/results/overhead-<timestamp>.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_worker.py"
RESULTS_DIR = HERE / "results"
WORKER_TIMEOUT_S = 900


@dataclass(frozen=True)
class Row:
    key: str
    measure: str
    unit: str
    target: float | None     # DSPy/plait ratio plait must reach (DESIGN.md section 7), None: no target
    show_ratio: bool = True  # False where plait's figure is ~0 and a ratio would be noise


ROWS = (
    Row("import_wall_ms", "`import` wall time (fresh `python -c`)", "ms", 10.0),
    Row("import_net_ms", "`import` wall minus bare `python -c pass`", "ms", None, show_ratio=False),
    Row("import_rss_mib", "peak RSS after `import`", "MiB", None),
    Row("import_modules", "modules in `sys.modules` after `import`", "", None),
    Row("import_net_modules", "modules added by `import` (over bare interpreter)", "", None, show_ratio=False),
    Row("import_predict_ms", "`import` + first `Predict` built (wall)", "ms", None),
    Row("predict", "Predict(\"question -> answer\") per call", "µs", 20.0),
    Row("chain_of_thought", "ChainOfThought(\"question -> answer\") per call", "µs", 20.0),
    Row("predict_16_demos", "Predict with 16 demos per call", "µs", 20.0),
    Row("cache_hit", "cache hit per call (Predict)", "µs", 20.0),
)


@dataclass(frozen=True)
class Counts:
    import_runs: int
    rounds: int               # worker processes per framework, alternating between frameworks
    target_seconds: float
    repeats: int
    warmup: int
    profile_calls: int


FULL = Counts(import_runs=5, rounds=3, target_seconds=0.25, repeats=3, warmup=50, profile_calls=3000)
QUICK = Counts(import_runs=2, rounds=1, target_seconds=0.005, repeats=2, warmup=2, profile_calls=100)


# --- running children -----------------------------------------------------------------------

def child_env(cache_dir: str) -> dict[str, str]:
    """The parent's environment with both frameworks' caches pointed at a throwaway directory."""
    env = dict(os.environ)
    env["PLAIT_CACHE_DIR"] = os.path.join(cache_dir, "plait")
    env["DSPY_CACHEDIR"] = os.path.join(cache_dir, "dspy")
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # a fair import needs compiled bytecode on disk
    return env


def run_child(cmd: list[str], env: dict[str, str], timeout: float = WORKER_TIMEOUT_S) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {proc.returncode}:\n{proc.stderr.strip()[-3000:]}")
    return proc.stdout


_PROBE = ("import resource, sys, json\n"
          "{stmt}\n"
          "print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(sys.modules)]))")


def measure_import(python: str, module: str, runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Wall time of ``python -c "import module"`` (median of ``runs``) plus RSS and module count.

    One untimed run of each statement first, so both frameworks start with their bytecode
    compiled and in the OS file cache; the statements are interleaved so drift hits all alike.
    RSS and module counts come from separate runs of a probe script (its own few stdlib imports
    also show up in the bare-interpreter baseline recorded next to them).
    """
    stmts = {"import": f"import {module}",
             "import_predict": f"import {module}; {module}.Predict('question -> answer')",
             "interpreter": "pass"}
    for stmt in stmts.values():
        run_child([python, "-c", stmt], env)
    walls: dict[str, list[float]] = {name: [] for name in stmts}
    for _ in range(runs):
        for name, stmt in stmts.items():
            start = time.perf_counter()
            run_child([python, "-c", stmt], env)
            walls[name].append((time.perf_counter() - start) * 1e3)
    probes = {name: json.loads(run_child([python, "-c", _PROBE.format(stmt=stmts[name])], env))
              for name in ("import", "interpreter")}
    medians = {name: statistics.median(runs_ms) for name, runs_ms in walls.items()}
    return {
        "import_wall_ms": medians["import"],
        "import_net_ms": medians["import"] - medians["interpreter"],
        "import_net_modules": probes["import"][1] - probes["interpreter"][1],
        "import_predict_ms": medians["import_predict"],
        "interpreter_wall_ms": medians["interpreter"],
        "import_rss_mib": probes["import"][0] / 1024,          # ru_maxrss is KiB on Linux
        "import_modules": probes["import"][1],
        "interpreter_rss_mib": probes["interpreter"][0] / 1024,
        "interpreter_modules": probes["interpreter"][1],
        "runs_ms": walls,
    }


def run_worker(python: str, framework: str, counts: Counts, env: dict[str, str],
               profile: bool = False) -> str:
    cmd = [python, str(WORKER), "--framework", framework, "--target-seconds", str(counts.target_seconds),
           "--repeats", str(counts.repeats), "--warmup", str(counts.warmup)]
    if profile:
        cmd += ["--profile", str(counts.profile_calls)]
    return run_child(cmd, env)


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One framework's worker outputs (one per round) as one result: medians over all repeats."""
    merged: dict[str, Any] = {key: rounds[0][key] for key in ("framework", "version", "python")}
    merged["calls"] = {}
    for key in rounds[0]["calls"]:
        parts = [round_["calls"][key] for round_ in rounds]
        runs = [run for part in parts for run in part["runs_us"]]
        merged["calls"][key] = {
            "median_us": statistics.median(runs), "min_us": min(runs), "max_us": max(runs),
            "repeats": len(runs), "runs_us": runs, "rounds": len(parts),
            "calls_per_repeat": [part["calls_per_repeat"] for part in parts],
            "backend_calls": sum(part["backend_calls"] for part in parts),
        }
    return merged


def measure_all(pythons: dict[str, str], counts: Counts, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every number for every framework; failures are recorded under ``errors``, never raised.

    Per-call workers run in rounds that alternate between the frameworks, so load from other
    jobs on a shared machine lands on both columns rather than on whichever ran second.
    """
    expected = (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError)
    sides: dict[str, dict[str, Any]] = {}
    for framework, python in pythons.items():
        side = sides[framework] = {"python": python, "import": {}, "calls": {}, "errors": []}
        try:
            side["import"] = measure_import(python, framework, counts.import_runs, env)
        except expected as error:
            side["errors"].append(f"import measurement: {error}")
    rounds: dict[str, list[dict[str, Any]]] = {framework: [] for framework in pythons}
    for _ in range(counts.rounds):
        for framework, python in pythons.items():
            if any(error.startswith("per-call") for error in sides[framework]["errors"]):
                continue   # a broken side fails the same way every round
            try:
                rounds[framework].append(json.loads(run_worker(python, framework, counts, env)))
            except expected as error:
                sides[framework]["errors"].append(f"per-call worker: {error}")
    for framework, outputs in rounds.items():
        if outputs:
            sides[framework].update(merge_rounds(outputs))
    return sides


# --- reporting ------------------------------------------------------------------------------

def value_of(side: dict[str, Any] | None, key: str) -> float | None:
    if side is None:
        return None
    if key in side["import"]:
        return float(side["import"][key])
    call = side["calls"].get(key)
    return float(call["median_us"]) if call else None


def build_rows(dspy: dict[str, Any] | None, plait: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for row in ROWS:
        theirs, ours = value_of(dspy, row.key), value_of(plait, row.key)
        # A net figure can be ~0 or even negative within noise: no ratio for those.
        measured = row.show_ratio and theirs is not None and ours is not None and ours > 0
        ratio = theirs / ours if measured else None
        rows.append({"key": row.key, "measure": row.measure, "unit": row.unit, "dspy": theirs, "plait": ours,
                     "ratio": ratio, "target_ratio": row.target,
                     "met": None if ratio is None or row.target is None else ratio >= row.target})
    return rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "":
        return f"{value:.0f}"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def markdown_table(rows: list[dict[str, Any]], dspy_version: str) -> str:
    lines = [f"| measure | DSPy {dspy_version} | plait | ratio (DSPy/plait) | target | met |",
             "|---|---:|---:|---:|---|---|"]
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.1f}x"
        target = "-" if row["target_ratio"] is None else f">= {row['target_ratio']:.0f}x (plait <= 1/{row['target_ratio']:.0f})"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(f"| {row['measure']} | {fmt(row['dspy'], row['unit'])} | {fmt(row['plait'], row['unit'])} "
                     f"| {ratio} | {target} | {met} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


# --- entry point ----------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="plait vs DSPy framework overhead, side by side.")
    parser.add_argument("--dspy-python", metavar="PATH",
                        help="a Python interpreter with dspy==3.4.1 installed (e.g. .venv-dspy/bin/python); "
                             "without it only plait is measured")
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the script works, numbers are noise")
    parser.add_argument("--profile", action="store_true",
                        help="only cProfile plait's Predict loop and print the top 25 functions by own time")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="where to write the JSON (default benchmarks/results/overhead-<timestamp>.json)")
    args = parser.parse_args(argv)
    if args.dspy_python and not Path(args.dspy_python).exists():
        parser.error(f"--dspy-python {args.dspy_python}: no such file; run `make bench` to create .venv-dspy, "
                     "or pass the python of a venv with `pip install dspy==3.4.1`")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as scratch:
        env = child_env(scratch)
        if args.profile:
            print(run_worker(sys.executable, "plait", counts, env, profile=True).rstrip())
            return 0
        pythons = {"dspy": args.dspy_python} if args.dspy_python else {}
        sides = measure_all({**pythons, "plait": sys.executable}, counts, env)
    dspy, plait = sides.get("dspy"), sides["plait"]

    rows = build_rows(dspy, plait)
    dspy_version = (dspy or {}).get("version", "3.4.1")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {"benchmark": "overhead", "timestamp": stamp, "quick": args.quick, "machine": machine(),
              "counts": counts.__dict__, "rows": rows, "dspy": dspy, "plait": plait}
    output = args.output or RESULTS_DIR / f"overhead-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")

    print(markdown_table(rows, dspy_version))
    print(f"\n{'QUICK run: tiny counts, numbers are noise. ' if args.quick else ''}"
          f"Medians; per-call rows are microseconds per call. JSON: {output}")
    failed = [(name, error) for name, side in (("dspy", dspy), ("plait", plait)) if side for error in side["errors"]]
    for name, error in failed:
        print(f"\n{name} side, {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
