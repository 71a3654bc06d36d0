"""One side of the overhead benchmark: runs in plait's interpreter or in DSPy's, never both.

``benchmarks/overhead.py`` starts this file once per framework, each in a fresh interpreter:

    python benchmarks/_worker.py --framework plait|dspy [--target-seconds S] [--repeats R]
                                 [--warmup W] [--profile N]

and reads one JSON object from stdout. Only the standard library and the framework under test
are imported, so the DSPy venv needs nothing from plait. Both frameworks expose the same
DSPy-style API (Predict, ChainOfThought, Example, configure), so the workloads are literally the
same code; only the zero-latency LM and the cache set-up differ per framework.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

QUESTION = "What is the capital of France?"
ANSWER = "Paris"
REASONING = "France is a country in Europe and its capital city is Paris."
NUM_DEMOS = 16


# --- zero-latency LMs ------------------------------------------------------------------------
# Each returns a constant ChatAdapter completion (set per workload through ``.text``) and does
# no other work, so the time per call is the framework's own overhead.

class PlaitSide:
    """Builds plait LMs backed by a backend object that answers instantly."""

    name = "plait"

    def __init__(self) -> None:
        import plait
        from plait.lm.types import LMCapabilities, LMResponse, Usage

        self.fw = plait

        class ConstBackend:
            capabilities = LMCapabilities()

            def __init__(self) -> None:
                self.text = ""
                self.calls = 0

            def generate(self, request: Any) -> Any:
                self.calls += 1
                n = request.params.get("n") or 1
                return LMResponse([self.text] * n, Usage(10, 5, 15), request.model)

        self.backend_class = ConstBackend

    def version(self) -> str:
        return self.fw.__version__

    def make_lm(self, *, cache: bool) -> Any:
        return self.fw.LM("bench/zero", backend=self.backend_class(), cache=cache)

    def set_text(self, lm: Any, text: str) -> None:
        lm.backend.text = text

    def backend_calls(self, lm: Any) -> int:
        return lm.backend.calls

    def completion(self, signature: Any, outputs: dict[str, str]) -> str:
        return self.fw.ChatAdapter().format_completion(signature, outputs)

    def configure_cache(self, *, enabled: bool, directory: str) -> None:
        self.fw.configure_cache(enabled=enabled, directory=directory)


class DSPySide:
    """Builds DSPy 3.4.1 LMs: the legacy BaseLM.forward interface and the engine one (cacheable)."""

    name = "dspy"

    def __init__(self) -> None:
        import dspy
        from dspy.lm15 import Message, Response, TextPart, Usage

        self.fw = dspy

        class ConstEngine:
            """DSPy 3.4's custom-engine contract: complete(Request) -> lm15 Response."""

            def __init__(self) -> None:
                self.text = ""
                self.calls = 0

            def complete(self, request: Any) -> Any:
                self.calls += 1
                return Response(id=None, model=request.model, message=Message.assistant([TextPart(self.text)]),
                                finish_reason="stop", usage=Usage(input_tokens=10, output_tokens=5, total_tokens=15))

            def stream(self, request: Any) -> Any:
                from dspy.lm15 import response_to_events
                return response_to_events(self.complete(request))

            def close(self) -> None:
                pass

        class ChatMessage:
            __slots__ = ("content",)

            def __init__(self, content: str) -> None:
                self.content = content

        class Choice:
            __slots__ = ("message", "finish_reason", "index")

            def __init__(self, text: str) -> None:
                self.message = ChatMessage(text)
                self.finish_reason = "stop"
                self.index = 0

        class ChatCompletion:
            """What BaseLM._process_completion reads: choices[i].message.content, usage, model."""

            __slots__ = ("choices", "usage", "model")

            def __init__(self, text: str, model: str) -> None:
                self.choices = [Choice(text)]
                self.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                self.model = model

        class ForwardLM(dspy.BaseLM):
            """The legacy (deprecated in 3.4) custom-LM interface: override forward()."""

            def __init__(self) -> None:
                super().__init__("bench/zero", cache=False)
                self.text = ""
                self.calls = 0

            def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
                self.calls += 1
                return ChatCompletion(self.text, self.model)

        self.engine_class = ConstEngine
        self.forward_lm_class = ForwardLM

    def version(self) -> str:
        return self.fw.__version__

    def make_lm(self, *, cache: bool, engine: bool = False) -> Any:
        # Uncached rows use the BaseLM.forward() interface (the faster of DSPy's two custom-LM
        # paths here, so the comparison is conservative); only dspy.LM(engine=...) can cache.
        if cache or engine:
            return self.fw.LM("openai/bench-zero", engine=self.engine_class(), cache=cache)
        return self.forward_lm_class()

    def set_text(self, lm: Any, text: str) -> None:
        target = lm if isinstance(lm, self.forward_lm_class) else lm._engine_spec
        target.text = text

    def backend_calls(self, lm: Any) -> int:
        return (lm if isinstance(lm, self.forward_lm_class) else lm._engine_spec).calls

    def completion(self, signature: Any, outputs: dict[str, str]) -> str:
        return self.fw.ChatAdapter().format_assistant_message_content(signature, outputs)

    def configure_cache(self, *, enabled: bool, directory: str) -> None:
        self.fw.configure_cache(enable_disk_cache=enabled, enable_memory_cache=enabled,
                                disk_cache_dir=directory)


# --- timing ----------------------------------------------------------------------------------

def time_calls(call: Callable[[], Any], *, target_seconds: float, repeats: int, warmup: int) -> dict[str, Any]:
    """Median of ``repeats`` runs of N calls each, N chosen so one run lasts ~``target_seconds``."""
    for _ in range(warmup):
        call()
    start = time.perf_counter()
    probe = 0
    while probe < 5 or time.perf_counter() - start < target_seconds / 10:
        call()
        probe += 1
    per_call = (time.perf_counter() - start) / probe
    n = max(3, int(target_seconds / per_call))
    runs: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            call()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return {"median_us": statistics.median(runs), "min_us": min(runs), "max_us": max(runs),
            "calls_per_repeat": n, "repeats": repeats, "runs_us": runs}


# --- workloads -------------------------------------------------------------------------------

def demos(fw: Any) -> list[Any]:
    return [fw.Example(question=f"What is the capital of country number {i}?", answer=f"City {i}")
            for i in range(NUM_DEMOS)]


def run_workload(side: Any, name: str, module: Any, signature: Any, outputs: dict[str, str], lm: Any,
                 timing: dict[str, Any]) -> dict[str, Any]:
    """Point ``lm`` at a completion valid for ``signature``, check one call parses, then time it."""
    side.set_text(lm, side.completion(signature, outputs))
    side.fw.configure(lm=lm)
    prediction = module(question=QUESTION)
    for field, expected in outputs.items():
        got = getattr(prediction, field)
        if got != expected:
            raise RuntimeError(f"{side.name} {name}: parsed {field}={got!r}, expected {expected!r}")
    before = side.backend_calls(lm)
    result = time_calls(lambda: module(question=QUESTION), **timing)
    result["backend_calls"] = side.backend_calls(lm) - before
    return result


def run_all(side: Any, timing: dict[str, Any], cache_dir: str) -> dict[str, Any]:
    fw = side.fw
    results: dict[str, Any] = {}
    side.configure_cache(enabled=False, directory=os.path.join(cache_dir, "off"))
    answer_only = {"answer": ANSWER}
    with_reasoning = {"reasoning": REASONING, "answer": ANSWER}

    predict = fw.Predict("question -> answer")
    results["predict"] = run_workload(side, "predict", predict, predict.signature, answer_only,
                                      side.make_lm(cache=False), timing)
    cot = fw.ChainOfThought("question -> answer")
    results["chain_of_thought"] = run_workload(side, "chain_of_thought", cot, cot.predict.signature,
                                               with_reasoning, side.make_lm(cache=False), timing)
    with_demos = fw.Predict("question -> answer")
    with_demos.demos = demos(fw)
    results["predict_16_demos"] = run_workload(side, "predict_16_demos", with_demos, with_demos.signature,
                                               answer_only, side.make_lm(cache=False), timing)
    if isinstance(side, DSPySide):
        # For reference: the same Predict through DSPy 3.4's non-deprecated dspy.LM(engine=...) path.
        via_engine = fw.Predict("question -> answer")
        results["predict_engine_lm"] = run_workload(side, "predict_engine_lm", via_engine, via_engine.signature,
                                                    answer_only, side.make_lm(cache=False, engine=True), timing)

    # Cache hits: the first call fills the cache (memory + disk under a temp dir), the rest hit.
    side.configure_cache(enabled=True, directory=os.path.join(cache_dir, "on"))
    cached = fw.Predict("question -> answer")
    cached_lm = side.make_lm(cache=True)
    results["cache_hit"] = run_workload(side, "cache_hit", cached, cached.signature, answer_only, cached_lm, timing)
    if results["cache_hit"]["backend_calls"] != 0:
        raise RuntimeError(f"{side.name} cache_hit: the backend was called "
                           f"{results['cache_hit']['backend_calls']} times while timing cache hits")
    return results


def profile_predict(side: Any, calls: int, top: int) -> str:
    """cProfile the plain Predict loop; the top ``top`` functions by own time, as text."""
    import cProfile
    import io
    import pstats

    side.configure_cache(enabled=False, directory=tempfile.mkdtemp(prefix="plait-bench-profile-"))
    predict = side.fw.Predict("question -> answer")
    lm = side.make_lm(cache=False)
    side.set_text(lm, side.completion(predict.signature, {"answer": ANSWER}))
    side.fw.configure(lm=lm)
    for _ in range(50):
        predict(question=QUESTION)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        predict(question=QUESTION)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("plait", "dspy"), required=True)
    parser.add_argument("--target-seconds", type=float, default=0.25, help="wall time of one timed repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", type=int, default=0, metavar="CALLS",
                        help="instead of timing, cProfile CALLS Predict calls and print the top functions")
    args = parser.parse_args(argv)
    # DSPy 3.4 warns on every call through its deprecated interfaces; keep stderr quiet (the
    # warning machinery itself still runs, as it would for a user).
    warnings.simplefilter("ignore")
    side = PlaitSide() if args.framework == "plait" else DSPySide()
    if args.profile:
        print(profile_predict(side, args.profile, 25))
        return 0
    timing = {"target_seconds": args.target_seconds, "repeats": args.repeats, "warmup": args.warmup}
    with tempfile.TemporaryDirectory(prefix=f"{side.name}-bench-cache-") as cache_dir:
        results = run_all(side, timing, cache_dir)
    json.dump({"framework": side.name, "version": side.version(), "python": sys.version.split()[0],
               "calls": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
