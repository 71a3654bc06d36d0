"""llama.cpp speed on SmolLM2: in process (plait_llamacpp) vs llama-cpp-python's OpenAI server.

    python benchmarks/llamacpp_speed.py [--threads 1,2] [--rounds 3] [--repeats 3] [--quick]
                                        [--no-server] [--model PATH] [--output FILE]

For each thread count it measures, in this process through ``plait.LM("llamacpp/...")``, and
through ``python -m llama_cpp.server`` (started here, one per thread count and round) with the
``openai`` SDK, both with the same GGUF and the same chat template:

- prompt processing tok/s: a ~410-token prompt (unique per call, so the prefix cache cannot
  help), ``max_tokens=1``: prompt_tokens / wall time;
- generation tok/s: a short unique prompt answered with ``max_tokens=1`` and another with
  ``max_tokens=128`` (end-of-turn suppressed with ``logit_bias``, so it generates all 128):
  (completion_tokens - 1) / (difference of the two wall times).

Then, in process only, throughput for 1 vs 4 calling threads with ``pool_size`` 1 and 2.
Every configuration runs once per round, ``--rounds`` rounds interleaved (so other jobs' load
lands on all of them), ``--repeats`` calls each; the tables show medians over all samples.
Prints markdown tables; raw numbers go to ``benchmarks/results/llamacpp-speed-<timestamp>.json``
(or ``--output``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
FILLER = ("The river wound through the valley, past farms and mills, carrying boats loaded with "
          "grain, timber and wool toward the market town by the sea. ")
EOT_SUPPRESSED = {"2": -100.0, "0": -100.0}   # SmolLM2's <|im_end|> and <|endoftext|>

# one call: (messages, max_tokens, logit_bias) -> (prompt_tokens, completion_tokens)
Call = Callable[[list[dict[str, str]], int, dict[str, float] | None], tuple[int, int]]


def long_messages() -> list[dict[str, str]]:
    return [{"role": "system", "content": f"Session {uuid.uuid4().hex}. Read the text."},
            {"role": "user", "content": FILLER * 12 + "\nSummarise the text in one word."}]


def short_messages() -> list[dict[str, str]]:
    return [{"role": "system", "content": f"Session {uuid.uuid4().hex}."},
            {"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def measure(call: Call, repeats: int, gen_tokens: int) -> dict[str, Any]:
    call(short_messages(), 4, None)   # warm-up: first-call allocations
    pp_rates, pp_tokens = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        prompt_tokens, _ = call(long_messages(), 1, None)
        pp_rates.append(prompt_tokens / (time.perf_counter() - started))
        pp_tokens.append(prompt_tokens)
    gen_rates, gen_tokens_seen = [], []
    for _ in range(repeats):
        # The same short prompt shape twice, 1 token then gen_tokens: the difference is generation.
        started = time.perf_counter()
        call(short_messages(), 1, EOT_SUPPRESSED)
        one = time.perf_counter() - started
        started = time.perf_counter()
        _, completion_tokens = call(short_messages(), gen_tokens, EOT_SUPPRESSED)
        many = time.perf_counter() - started
        gen_rates.append((completion_tokens - 1) / (many - one) if many > one else float("nan"))
        gen_tokens_seen.append(completion_tokens)
    return {"prompt_tok_s": statistics.median(pp_rates), "prompt_tok_s_all": pp_rates,
            "prompt_tokens": pp_tokens, "gen_tok_s": statistics.median(gen_rates),
            "gen_tok_s_all": gen_rates, "gen_tokens": gen_tokens_seen}


# --- in process ---------------------------------------------------------------------------

def in_process(model: str, threads: int, repeats: int, gen_tokens: int) -> dict[str, Any]:
    import plait
    lm = plait.LM(f"llamacpp/{model}", n_threads=threads, cache=False, temperature=0)

    def call(messages: list[dict[str, str]], max_tokens: int, bias: dict[str, float] | None) -> tuple[int, int]:
        params: dict[str, Any] = {"max_tokens": max_tokens}
        if bias:
            params["logit_bias"] = {int(k): v for k, v in bias.items()}
        usage = lm.generate(messages=messages, **params).usage
        return usage.prompt_tokens, usage.completion_tokens

    try:
        return measure(call, repeats, gen_tokens)
    finally:
        del lm
        gc.collect()   # free the model before the server starts: idle llama.cpp threads must not compete


def calling_threads(model: str, pool_size: int, callers: int, calls: int) -> dict[str, Any]:
    import plait
    lm = plait.LM(f"llamacpp/{model}", pool_size=pool_size, cache=False, temperature=0, max_tokens=48)
    lm("Hi", max_tokens=4)   # load + warm the first copy
    questions = [f"Write one sentence about the number {i}." for i in range(calls)]
    tokens = [0]
    lock = threading.Lock()
    position = [0]

    def worker() -> None:
        while True:
            with lock:
                if position[0] >= len(questions):
                    return
                question = questions[position[0]]
                position[0] += 1
            usage = lm.generate(messages=[{"role": "user", "content": question}]).usage
            with lock:
                tokens[0] += usage.completion_tokens

    started = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(callers)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    loaded = lm.backend.pool.loaded
    del lm
    gc.collect()
    return {"pool_size": pool_size, "callers": callers, "calls": calls, "seconds": elapsed,
            "completion_tokens": tokens[0], "tok_s": tokens[0] / elapsed, "copies_loaded": loaded}


# --- via the server -----------------------------------------------------------------------

def via_server(path: Path, threads: int, repeats: int, gen_tokens: int) -> dict[str, Any]:
    import openai
    from _llamacpp_server import start_server, stop_server   # benchmarks/, beside this script
    with tempfile.NamedTemporaryFile("w+b", prefix="llamacpp-server-", suffix=".log", delete=False) as log:
        process, base = start_server(path, log, threads=threads)
        try:
            client = openai.OpenAI(base_url=base, api_key="sk-local", max_retries=0, timeout=120)

            def call(messages: list[dict[str, str]], max_tokens: int,
                     bias: dict[str, float] | None) -> tuple[int, int]:
                extra = {"logit_bias": bias} if bias else {}
                response = client.chat.completions.create(model="smollm2", messages=messages, temperature=0,
                                                          max_tokens=max_tokens, **extra)
                return response.usage.prompt_tokens, response.usage.completion_tokens

            return measure(call, repeats, gen_tokens)
        finally:
            stop_server(process)
            os.unlink(log.name)


# --- report -------------------------------------------------------------------------------

IN_PROCESS = "in process (plait_llamacpp)"
SERVER = "llama_cpp.server + openai SDK"


def combine(where: str, threads: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over every sample of every round."""
    prompt = [rate for run in runs for rate in run["prompt_tok_s_all"]]
    gen = [rate for run in runs for rate in run["gen_tok_s_all"]]
    return {"where": where, "threads": threads, "prompt_tok_s": statistics.median(prompt),
            "gen_tok_s": statistics.median(gen), "prompt_tok_s_all": prompt, "gen_tok_s_all": gen,
            "prompt_tokens": [n for run in runs for n in run["prompt_tokens"]],
            "gen_tokens": [n for run in runs for n in run["gen_tokens"]]}

def speed_table(results: list[dict[str, Any]]) -> str:
    lines = ["| where | n_threads | prompt processing tok/s | generation tok/s |",
             "|---|---|---|---|"]
    for row in results:
        lines.append(f"| {row['where']} | {row['threads']} | {row['prompt_tok_s']:.0f} | {row['gen_tok_s']:.1f} |")
    return "\n".join(lines)


def threads_table(results: list[dict[str, Any]]) -> str:
    lines = ["| pool_size | calling threads | copies loaded | wall s | completion tok/s |",
             "|---|---|---|---|---|"]
    for row in results:
        lines.append(f"| {row['pool_size']} | {row['callers']} | {row['copies_loaded']} | "
                     f"{row['seconds']:.2f} | {row['tok_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a known name or a GGUF path")
    parser.add_argument("--threads", default="1,2", help="comma-separated n_threads values")
    parser.add_argument("--repeats", type=int, default=3, help="calls per measure and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all configurations")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 16 tokens: checks the script runs")
    parser.add_argument("--no-server", action="store_true", help="in process only")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    from plait_llamacpp.models import resolve_model_path
    path = resolve_model_path(args.model)
    repeats, gen_tokens, rounds = (1, 16, 1) if args.quick else (args.repeats, 128, args.rounds)
    thread_counts = [int(value) for value in args.threads.split(",")]
    load_before = os.getloadavg()

    # Rounds interleave every configuration, so load from other jobs lands on all of them.
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    throughput_samples: dict[tuple[int, int], list[dict[str, Any]]] = {}
    calls = 4 if args.quick else 8
    for _ in range(rounds):
        for threads in thread_counts:
            samples.setdefault((IN_PROCESS, threads), []).append(
                in_process(args.model, threads, repeats, gen_tokens))
            if not args.no_server:
                samples.setdefault((SERVER, threads), []).append(
                    via_server(path, threads, repeats, gen_tokens))
        for pool_size, callers in ((1, 1), (1, 4), (2, 4)):
            throughput_samples.setdefault((pool_size, callers), []).append(
                calling_threads(args.model, pool_size, callers, calls))
    speed = [combine(where, threads, runs) for (where, threads), runs in samples.items()]
    throughput = [{**runs[0], "seconds": statistics.median(r["seconds"] for r in runs),
                   "tok_s": statistics.median(r["tok_s"] for r in runs),
                   "tok_s_all": [r["tok_s"] for r in runs]} for runs in throughput_samples.values()]

    print(speed_table(speed))
    print()
    print(threads_table(throughput))
    report = {"model": str(path), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                             "python": platform.python_version(),
                                             "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
              "repeats": repeats, "rounds": rounds, "gen_tokens": gen_tokens, "speed": speed,
              "calling_threads": throughput}
    output = args.output or RESULTS_DIR / f"llamacpp-speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"\nraw numbers: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
