"""How well Predict and ChainOfThought parse a real 135M model's answers: plait vs DSPy 3.4.1.

    python benchmarks/small_lm_parsing.py [--n 20] [--max-tokens 48] [--rows plait-inprocess,plait-server]
                                          [--dspy-python /tmp/dspy-venv/bin/python] [--quick]
                                          [--model smollm2-135m] [--output FILE] [--label TEXT]

The questions are the first ``--n`` questions of SQuAD v1.1 dev in file order
(``/work/shared/data/squad/dev-v1.1.json``, or ``--data``), each with a short context: the
sentence of its paragraph that holds the first gold answer. Four programs run on each question:

- ``Predict("question -> answer")`` and ``ChainOfThought("question -> answer")`` (closed book);
- ``Predict("context, question -> answer")`` and ``ChainOfThought("context, question -> answer")``.

Rows (each in its own interpreter, one after the other, greedy decoding, no cache):

- ``plait-inprocess``: ``plait.LM("llamacpp/smollm2-135m", n_threads=1)``, plait's default adapter
  for it (the TemplateAdapter: the backend declares ``small_model``);
- ``plait-server``: ``plait.LM("openai/smollm2", api_base=..., small_model=True)`` against
  ``python -m llama_cpp.server`` on the same GGUF (started here, one thread);
- ``dspy-server`` (with ``--dspy-python``): ``dspy.LM("openai/smollm2", api_base=...)`` against
  the same server, DSPy's default adapter (ChatAdapter, falling back to JSONAdapter).

Per row and program: parsed (no parse error), parsed by the first LM call, usable (parsed and
the answer is not empty, not a ``${...}`` template placeholder and not an echo of retry
feedback), EM and "contains" against the gold answers (SQuAD normalisation), mean LM calls per
question, the longest completion in tokens (shows whether max_tokens held), seconds. Prints a markdown
table; raw numbers plus every answer go to ``benchmarks/results/small-lm-parsing-<timestamp>.json``.
Only the standard library is needed here; each worker imports its own framework.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
DEFAULT_DATA = Path("/work/shared/data/squad/dev-v1.1.json")
PROGRAMS = ("predict", "cot", "predict_ctx", "cot_ctx")
PROGRAM_NAMES = {"predict": 'Predict("question -> answer")',
                 "cot": 'ChainOfThought("question -> answer")',
                 "predict_ctx": 'Predict("context, question -> answer")',
                 "cot_ctx": 'ChainOfThought("context, question -> answer")'}
ROWS = ("plait-inprocess", "plait-server", "dspy-server")
SERVED_MODEL = "smollm2"
# What an answer must not be: a placeholder from the format guide, or the retry feedback echoed.
PLACEHOLDER = re.compile(r"^\s*\$\{[^}]*\}+\s*$")
FEEDBACK_ECHO = re.compile(r"missing output field|could not be used|answer again|continue the answer|"
                           r"\[\[ ## \w+ ## \]\]", re.I)


# --- data and metrics (standard library only: the DSPy worker imports this file too) ---------

def load_questions(path: Path, n: int) -> list[dict[str, Any]]:
    """The first ``n`` SQuAD questions in file order, each with the sentence holding its answer."""
    data = json.loads(path.read_text())
    items: list[dict[str, Any]] = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                items.append({"id": qa["id"], "question": qa["question"],
                              "context": answer_sentence(paragraph["context"], qa["answers"][0]["answer_start"]),
                              "answers": [answer["text"] for answer in qa["answers"]]})
                if len(items) == n:
                    return items
    return items


def answer_sentence(context: str, start: int) -> str:
    """The sentence of ``context`` around character ``start`` (split at ". ")."""
    before = context.rfind(". ", 0, start)
    after = context.find(". ", start)
    return context[before + 2 if before >= 0 else 0:len(context) if after < 0 else after + 1].strip()


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def usable(answer: Any) -> bool:
    return (isinstance(answer, str) and bool(answer.strip()) and not PLACEHOLDER.match(answer)
            and not FEEDBACK_ECHO.search(answer))


def score(answer: Any, gold: list[str]) -> tuple[bool, bool]:
    """(exact match, a gold answer contained in the answer), after normalisation."""
    if not isinstance(answer, str) or not answer.strip():
        return False, False
    text = normalize(answer)
    golds = [normalize(g) for g in gold]
    return text in golds, any(g and g in text for g in golds)


# --- the worker: one framework, one LM, every program -----------------------------------------

def build_lm(row: str, base_url: str | None, model: str, max_tokens: int) -> tuple[Any, Any]:
    if row.startswith("dspy"):
        import dspy
        return dspy, dspy.LM(f"openai/{SERVED_MODEL}", api_base=base_url, api_key="sk-local",
                             temperature=0.0, max_tokens=max_tokens, cache=False)
    import plait
    if row == "plait-inprocess":
        return plait, plait.LM(f"llamacpp/{model}", n_threads=1, temperature=0, max_tokens=max_tokens,
                               cache=False)
    return plait, plait.LM(f"openai/{SERVED_MODEL}", api_base=base_url, api_key="sk-local",
                           small_model=True, temperature=0, max_tokens=max_tokens, cache=False)


def make_program(framework: Any, program: str) -> Any:
    signature = "context, question -> answer" if program.endswith("_ctx") else "question -> answer"
    return (framework.ChainOfThought if program.startswith("cot") else framework.Predict)(signature)


def last_outputs(lm: Any, since: int) -> list[Any]:
    """The raw completions of this question's LM calls (for the record and for regression tests)."""
    entries = list(lm.history)[since:]
    return [entry.get("outputs") for entry in entries]


def completion_tokens(lm: Any, since: int) -> list[int | None]:
    """Completion tokens of each of this question's LM calls (shows whether max_tokens held)."""
    counts: list[int | None] = []
    for entry in list(lm.history)[since:]:
        usage = entry.get("usage")
        value = usage.get("completion_tokens") if isinstance(usage, dict) else getattr(usage, "completion_tokens", None)
        counts.append(value if isinstance(value, int) else None)
    return counts


def run_worker(row: str, base_url: str | None, model: str, max_tokens: int, data: Path, n: int,
               programs: list[str]) -> dict[str, Any]:
    framework, lm = build_lm(row, base_url, model, max_tokens)
    items = load_questions(data, n)
    results: dict[str, Any] = {}
    for program in programs:
        module = make_program(framework, program)
        answers = []
        started = time.perf_counter()
        with framework.context(lm=lm):
            for item in items:
                inputs = {"question": item["question"]}
                if program.endswith("_ctx"):
                    inputs["context"] = item["context"]
                before = len(lm.history)
                t0 = time.perf_counter()
                record: dict[str, Any] = {"id": item["id"]}
                try:
                    prediction = module(**inputs)
                    reasoning = getattr(prediction, "reasoning", None) if program.startswith("cot") else None
                    record.update(parsed=True, answer=prediction.answer, reasoning=reasoning)
                except Exception as exc:   # a parse error is the measured failure; others are recorded too
                    parse_error = type(exc).__name__ == "AdapterParseError"
                    record.update(parsed=False, answer=None, error=f"{type(exc).__name__}: {exc}"[:500],
                                  parse_error=parse_error)
                record.update(seconds=time.perf_counter() - t0, lm_calls=len(lm.history) - before,
                              outputs=last_outputs(lm, before),
                              completion_tokens=completion_tokens(lm, before))
                record["usable"] = usable(record["answer"])
                record["em"], record["contains"] = score(record["answer"], item["answers"])
                answers.append(record)
        results[program] = {"seconds": time.perf_counter() - started, "answers": answers}
    return results


def summarize(answers: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    count = len(answers) or 1
    tokens = [t for a in answers for t in a.get("completion_tokens") or () if t is not None]
    return {"n": len(answers), "parsed": sum(a["parsed"] for a in answers),
            "parsed_first_call": sum(a["parsed"] and a["lm_calls"] == 1 for a in answers),
            "max_completion_tokens": max(tokens, default=None),
            "usable": sum(a["usable"] for a in answers), "em": sum(a["em"] for a in answers),
            "contains": sum(a["contains"] for a in answers),
            "other_errors": sum(not a["parsed"] and not a.get("parse_error") for a in answers),
            "lm_calls_mean": sum(a["lm_calls"] for a in answers) / count, "seconds": seconds}


# --- the server and the driver -------------------------------------------------------------

def run_row(python: str, row: str, base_url: str | None, args: argparse.Namespace,
            programs: list[str]) -> dict[str, Any]:
    command = [python, str(Path(__file__).resolve()), "--worker", row, "--model", args.model,
               "--max-tokens", str(args.max_tokens), "--data", str(args.data), "--n", str(args.n),
               "--programs", ",".join(programs)]
    if base_url:
        command += ["--base-url", base_url]
    from _workers import run_json_worker   # benchmarks/, beside this script
    return run_json_worker(command, {**os.environ, "OMP_NUM_THREADS": "1"})


def table(report: dict[str, Any]) -> str:
    lines = ["| row | program | parsed | parsed by 1st call | usable answer | EM | contains gold | "
             "LM calls / q | max completion tokens | seconds |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row, result in report["rows"].items():
        if "error" in result:
            lines.append(f"| {row} | (failed: {result['error'][:80]}) | | | | | | | | |")
            continue
        for program, data in result.items():
            s = data["summary"]
            n = s["n"]
            lines.append(f"| {row} | {PROGRAM_NAMES[program]} | {s['parsed']}/{n} | {s['parsed_first_call']}/{n} | "
                         f"{s['usable']}/{n} | {s['em']}/{n} | {s['contains']}/{n} | {s['lm_calls_mean']:.2f} | "
                         f"{s['max_completion_tokens']} | {s['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="questions (the first N of SQuAD dev)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rows", default="plait-inprocess,plait-server",
                        help=f"comma-separated, from {', '.join(ROWS[:2])} (dspy-server comes with --dspy-python)")
    parser.add_argument("--programs", default=",".join(PROGRAMS), help=f"comma-separated, from {', '.join(PROGRAMS)}")
    parser.add_argument("--dspy-python", default=None, help="an interpreter with dspy installed: adds dspy-server")
    parser.add_argument("--model", default="smollm2-135m", help="a known plait_llamacpp name or a GGUF path")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="2 questions: checks the script runs")
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. the commit)")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 2
    programs = [p for p in args.programs.split(",") if p]
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown:
        parser.error(f"unknown program(s) {', '.join(unknown)}; choose from {', '.join(PROGRAMS)}")
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.base_url, args.model, args.max_tokens, args.data,
                                    args.n, programs)))
        return 0

    rows = [r for r in args.rows.split(",") if r] + (["dspy-server"] if args.dspy_python else [])
    bad = sorted(set(rows) - set(ROWS))
    if bad:
        parser.error(f"unknown row(s) {', '.join(bad)}; choose from {', '.join(ROWS)}")
    from plait_llamacpp.models import resolve_model_path
    gguf = resolve_model_path(args.model)
    report: dict[str, Any] = {"label": args.label, "model": str(gguf), "n": args.n, "max_tokens": args.max_tokens,
                              "data": str(args.data), "rows": {},
                              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "python": platform.python_version(), "loadavg_before": os.getloadavg()}}
    process = None
    log = tempfile.NamedTemporaryFile("w+b", prefix="small-lm-server-", suffix=".log", delete=False)
    try:
        base_url = None
        if any(row.endswith("server") for row in rows):
            from _llamacpp_server import start_server   # benchmarks/, beside this script
            process, base_url = start_server(gguf, log, alias=SERVED_MODEL)
        for row in rows:
            python = args.dspy_python if row.startswith("dspy") else sys.executable
            result = run_row(python, row, base_url if row.endswith("server") else None, args, programs)
            if "error" not in result:
                for data in result.values():
                    data["summary"] = summarize(data["answers"], data["seconds"])
            report["rows"][row] = result
    finally:
        if process is not None:
            from _llamacpp_server import stop_server
            stop_server(process)
        log.close()
        os.unlink(log.name)
    report["machine"]["loadavg_after"] = os.getloadavg()
    print(table(report))
    output = args.output or RESULTS_DIR / f"small-lm-parsing-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"\nraw numbers and answers: {output}", file=sys.stderr)
    return 1 if any("error" in result for result in report["rows"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
