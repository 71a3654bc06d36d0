"""Compile speed: BootstrapFewShot and random search with a 10 ms LM, plait vs DSPy 3.4.1.

    python benchmarks/compile_speed.py [--dspy-python PATH] [--examples 50] [--latency-ms 10]
                                       [--threads 8] [--repeats 5] [--quick] [--output FILE]

Each framework runs in its own fresh interpreter (``--worker plait|dspy`` re-runs this file
there; only the standard library and that framework are imported), on the same work: the same
examples, metric, optimizer settings and a custom LM that sleeps ``latency`` per call and then
answers by a fixed rule. Reported per row: the median wall time, the LM calls made, the ideal
wall time (calls x latency / threads: every thread busy waiting on the LM, no framework time)
and wall / ideal (target <= 1.2; also against the time the sleeps really took), DSPy's
wall / plait's (target >= 3), and the ceiling of that ratio: DSPy's wall / plait's ideal, what a
framework with zero overhead making plait's calls would reach. Writes the raw
numbers to ``benchmarks/results/compile-speed-<timestamp>.json``. Caches are off on both sides,
so every call reaches the sleeping LM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
DEFAULT_DSPY_PYTHON = "/tmp/dspy-venv/bin/python"
NUMBER = re.compile(r"<(\d+)>")

# (row key, what it runs, target of wall / ideal)
ROWS = (
    ("bootstrap", "BootstrapFewShot, every example (max_bootstrapped_demos=N, max_rounds=2)", 1.2),
    ("bootstrap_default", "BootstrapFewShot, DSPy defaults (4 bootstrapped, 16 labeled, 1 round)", None),
    ("random_search", "BootstrapFewShotWithRandomSearch, 6 seeded candidates (+3 baselines), valset = trainset", 1.2),
)


# --- the shared work ---------------------------------------------------------------------------
def answer_for(user_text: str, temperature: Any) -> str:
    """The LM's rule: 2 x the number in the question, except every 5th number is wrong at any
    temperature but 1.0 (so a second bootstrap round, sampled at 1.0, fixes it)."""
    i = int(NUMBER.findall(user_text)[-1])
    if i % 5 == 0 and temperature != 1.0:
        return "wrong"
    return str(2 * i)


def question(i: int) -> str:
    return f"Item <{i}>: what is {i} plus {i}?"


class Counter:
    """Counts the LM calls and the time they really slept (a 10 ms sleep lasts a bit longer)."""

    def __init__(self) -> None:
        self.calls = 0
        self.slept = 0.0
        self.lock = threading.Lock()

    def sleep(self, latency: float) -> None:
        started = time.perf_counter()
        time.sleep(latency)
        slept = time.perf_counter() - started
        with self.lock:
            self.calls += 1
            self.slept += slept


def time_rows(fw: Any, make_lm: Callable[[], tuple[Any, Counter]], optimizers: dict[str, Callable[[], Any]],
              examples: int, repeats: int) -> dict[str, Any]:
    """Compile each optimizer ``repeats`` times (after one untimed warm-up), on a fresh LM each time."""
    trainset = [fw.Example(question=question(i), answer=str(2 * i)).with_inputs("question")
                for i in range(examples)]
    rows: dict[str, Any] = {}
    for key, build in optimizers.items():
        walls, calls, slept, demos = [], [], [], []
        for attempt in range(repeats + 1):
            lm, counter = make_lm()
            fw.configure(lm=lm)
            started = time.perf_counter()
            program = build().compile(fw.Predict("question -> answer"), trainset=trainset)
            wall = time.perf_counter() - started
            if attempt:   # the first run warms imports and caches of both frameworks
                walls.append(wall)
                calls.append(counter.calls)
                slept.append(counter.slept)
                demos.append(len(program.predictors()[0].demos))
        rows[key] = {"wall_s": walls, "median_s": statistics.median(walls), "calls": calls,
                     "lm_slept_s": slept, "demos": demos}
    return rows


def metric(example: Any, prediction: Any, trace: Any = None) -> bool:
    return example.answer == prediction.answer


def optimizer_builders(teleprompt: Any, examples: int, threads: int, plait_side: bool) -> dict[str, Callable[[], Any]]:
    # DSPy's BootstrapFewShot has no num_threads (it runs examples one by one)
    extra = {"num_threads": threads} if plait_side else {}
    return {
        "bootstrap": lambda: teleprompt.BootstrapFewShot(metric=metric, max_bootstrapped_demos=examples,
                                                         max_labeled_demos=16, max_rounds=2, **extra),
        "bootstrap_default": lambda: teleprompt.BootstrapFewShot(metric=metric, **extra),
        "random_search": lambda: teleprompt.BootstrapFewShotWithRandomSearch(
            metric=metric, max_bootstrapped_demos=4, max_labeled_demos=16, num_candidate_programs=6,
            num_threads=threads),
    }


# --- plait -------------------------------------------------------------------------------------
def run_plait(examples: int, latency: float, threads: int, repeats: int) -> dict[str, Any]:
    import plait
    from plait import teleprompt
    from plait.lm.types import LMResponse, Usage

    signature = plait.ensure_signature("question -> answer")
    adapter = plait.ChatAdapter()

    class SleepingBackend:
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        def generate(self, request: Any) -> Any:
            self.counter.sleep(latency)
            answer = answer_for(request.messages[-1]["content"], request.params.get("temperature"))
            return LMResponse([adapter.format_completion(signature, {"answer": answer})], Usage(10, 5, 15),
                              request.model)

    def make_lm() -> tuple[Any, Counter]:
        counter = Counter()
        return plait.LM("bench/sleep", backend=SleepingBackend(counter), cache=False), counter

    builders = optimizer_builders(teleprompt, examples, threads, plait_side=True)
    return {"version": plait.__version__,
            "rows": time_rows(plait, make_lm, builders, examples, repeats)}


# --- DSPy --------------------------------------------------------------------------------------
def run_dspy(examples: int, latency: float, threads: int, repeats: int) -> dict[str, Any]:
    import dspy
    from dspy import teleprompt

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    signature = dspy.ensure_signature("question -> answer")
    adapter = dspy.ChatAdapter()

    class Message:
        def __init__(self, content: str) -> None:
            self.content = content

    class Choice:
        def __init__(self, text: str) -> None:
            self.message = Message(text)
            self.finish_reason = "stop"
            self.index = 0

    class Completion:
        """What BaseLM._process_completion reads: choices[i].message.content, usage, model."""

        def __init__(self, text: str, model: str) -> None:
            self.choices = [Choice(text)]
            self.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            self.model = model

    class SleepingLM(dspy.BaseLM):
        def __init__(self, counter: Counter) -> None:
            super().__init__("bench/sleep", cache=False)
            self.counter = counter

        def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            self.counter.sleep(latency)
            answer = answer_for(messages[-1]["content"], kwargs.get("temperature"))
            return Completion(adapter.format_assistant_message_content(signature, {"answer": answer}), self.model)

        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            # lm.copy() (DSPy's later bootstrap rounds) deep-copies: keep the shared counter
            new = SleepingLM(self.counter)
            new.kwargs = dict(self.kwargs)
            return new

    def make_lm() -> tuple[Any, Counter]:
        counter = Counter()
        return SleepingLM(counter), counter

    builders = optimizer_builders(teleprompt, examples, threads, plait_side=False)
    with contextlib.redirect_stdout(sys.stderr):   # DSPy prints its progress
        rows = time_rows(dspy, make_lm, builders, examples, repeats)
    return {"version": dspy.__version__, "rows": rows}


# --- the driver --------------------------------------------------------------------------------
def run_worker(python: str, framework: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [python, str(Path(__file__).resolve()), "--worker", framework, "--examples", str(args.examples),
               "--latency-ms", str(args.latency_ms), "--threads", str(args.threads), "--repeats", str(args.repeats)]
    env = {**os.environ, "PLAIT_PROGRESS": "0"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env, check=False)
    if proc.returncode != 0:
        return {"error": f"{framework} worker exited {proc.returncode}: {proc.stderr[-3000:]}"}
    return json.loads(proc.stdout)


def summarise(results: dict[str, Any], latency: float, threads: int) -> list[dict[str, Any]]:
    table = []
    for key, what, target in ROWS:
        row: dict[str, Any] = {"row": key, "what": what, "target_vs_ideal": target}
        for side in ("plait", "dspy"):
            data = results.get(side, {}).get("rows", {}).get(key)
            if not data:
                continue
            calls = statistics.median(data["calls"])
            # DSPy bootstraps one example at a time: its ideal has one thread there
            side_threads = 1 if side == "dspy" and key.startswith("bootstrap") else threads
            ideal = calls * latency / side_threads
            # the same, with the time the LM's sleeps really took instead of the nominal latency
            measured = statistics.median(data["lm_slept_s"]) / side_threads
            row[side] = {"median_s": data["median_s"], "calls": calls, "ideal_s": ideal,
                         "vs_ideal": data["median_s"] / ideal if ideal else None,
                         "ideal_measured_s": measured,
                         "vs_ideal_measured": data["median_s"] / measured if measured else None,
                         "demos": data["demos"][0]}
        if "plait" in row and "dspy" in row:
            row["dspy_over_plait"] = row["dspy"]["median_s"] / row["plait"]["median_s"]
            # the most any framework making plait's calls could gain over DSPy: plait at its ideal
            row["dspy_over_plait_ideal"] = row["dspy"]["median_s"] / row["plait"]["ideal_s"]
        table.append(row)
    return table


def markdown(table: list[dict[str, Any]], threads: int) -> str:
    lines = ["| workload | plait wall | plait LM calls | ideal (calls x latency / threads) | plait / ideal "
             "| plait / ideal, measured sleeps | DSPy 3.4.1 wall | DSPy LM calls | DSPy / plait "
             "| ceiling: DSPy / plait's ideal |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        plait_side, dspy_side = row.get("plait"), row.get("dspy")
        cells = [row["what"]]
        if plait_side:
            target = f" (target <= {row['target_vs_ideal']})" if row["target_vs_ideal"] else ""
            cells += [f"{plait_side['median_s'] * 1000:.0f} ms", f"{plait_side['calls']:.0f}",
                      f"{plait_side['ideal_s'] * 1000:.0f} ms", f"{plait_side['vs_ideal']:.2f}x{target}",
                      f"{plait_side['vs_ideal_measured']:.2f}x"]
        else:
            cells += ["-"] * 5
        if dspy_side:
            cells += [f"{dspy_side['median_s'] * 1000:.0f} ms", f"{dspy_side['calls']:.0f}",
                      f"{row['dspy_over_plait']:.1f}x" if "dspy_over_plait" in row else "-",
                      f"{row['dspy_over_plait_ideal']:.1f}x" if "dspy_over_plait_ideal" in row else "-"]
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("plait", "dspy"), help=argparse.SUPPRESS)
    parser.add_argument("--dspy-python", default=None,
                        help=f"DSPy 3.4.1's interpreter (default {DEFAULT_DSPY_PYTHON} when it exists)")
    parser.add_argument("--no-dspy", action="store_true", help="measure plait only")
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 examples, 2 ms, 1 repeat: checks the script works")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.latency_ms, args.repeats = 10, 2.0, 1
    latency = args.latency_ms / 1000
    if args.worker:
        warnings.simplefilter("ignore")   # DSPy 3.4 warns about its deprecated BaseLM.forward
        run = run_plait if args.worker == "plait" else run_dspy
        json.dump(run(args.examples, latency, args.threads, args.repeats), sys.stdout)
        return 0
    dspy_python = args.dspy_python or (DEFAULT_DSPY_PYTHON if Path(DEFAULT_DSPY_PYTHON).exists() else None)
    results: dict[str, Any] = {"plait": run_worker(sys.executable, "plait", args)}
    if dspy_python and not args.no_dspy:
        results["dspy"] = run_worker(dspy_python, "dspy", args)
    table = summarise(results, latency, args.threads)
    print(f"{args.examples} examples, {args.latency_ms:g} ms per LM call, {args.threads} threads, "
          f"median of {args.repeats}; plait {results['plait'].get('version', '?')}, "
          f"DSPy {results.get('dspy', {}).get('version', 'not run')}\n")
    print(markdown(table, args.threads))
    errors = [f"{side}: {data['error']}" for side, data in results.items() if "error" in data]
    for error in errors:
        print(error, file=sys.stderr)
    report = {"settings": vars(args), "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                                                  "cpus": os.cpu_count()},
              "results": results, "table": table}
    output = Path(args.output) if args.output else RESULTS_DIR / f"compile-speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"\nraw numbers: {output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
