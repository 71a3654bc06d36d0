"""Retrieval quality and speed on HotPotQA: BM25, MiniLM dense, hashing dense, qdrant, chroma.

    python benchmarks/retrieval_quality.py [--data DIR] [--questions N] [--backends a,b] [--output FILE]

Data: ``<data>/hotpotqa/dev_subsampled.jsonl`` (500 dev questions, 10 paragraphs each, 2 of
them supporting). ``--data`` defaults to ``../shared/data`` next to the repository: this is a
benchmark, so it may read the shared data folder that tests and the library never touch.
The paragraphs of all questions, deduplicated, form one corpus ("title: paragraph_text");
each question's supporting paragraphs are its relevant passages.

Reported per backend: recall@5 (share of questions with at least one supporting paragraph in
the top 5, and the mean share of the 2 supporting paragraphs found), nDCG@10 (binary
relevance), agreement of the top-5 ids with the exact in-memory index over the same
embedder, indexing throughput (passages/s) and the median single-query latency. Dense
backends over MiniLM share one cache of vectors computed up front, so their rows time the
index and search and not the model (the model's own speed has its own row). Also: BM25 at
10k passages (lazy vs eager rebuilds, persistence). Prints markdown; raw numbers go to
``benchmarks/results/retrieval-quality-<timestamp>.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import plait
from plait.retrieve import Embedder

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
RESULTS_DIR = HERE / "results"
ADD_BATCH = 1000      # every backend is filled with add() calls of this many passages
WARM_UP = "warm-up query that also builds lazy indexes"
BACKENDS = ("bm25", "minilm-memory", "hashing-memory", "qdrant", "chroma")


def load_hotpot(data_dir: Path, limit: int | None) -> tuple[list[str], list[str], list[str], list[set[str]]]:
    """(corpus ids, corpus texts, questions, supporting-paragraph ids per question)."""
    path = data_dir / "hotpotqa" / "dev_subsampled.jsonl"
    if not path.exists():
        raise SystemExit(f"no HotPotQA file at {path}; pass --data pointing at the shared data folder")
    with open(path, encoding="utf-8") as stream:
        rows = [json.loads(line) for line in stream if line.strip()][:limit]
    ids: dict[tuple[str, str], str] = {}
    questions, gold = [], []
    for row in rows:
        relevant = set()
        for context in row["contexts"]:
            key = (context["title"], context["paragraph_text"])
            pid = ids.setdefault(key, f"p{len(ids):05d}")
            if context["is_supporting"]:
                relevant.add(pid)
        questions.append(row["question_text"])
        gold.append(relevant)
    texts = [f"{title}: {text}" for title, text in ids]
    return list(ids.values()), texts, questions, gold


# --- metrics ---------------------------------------------------------------------------------

def recall_any(found: Sequence[str], relevant: set[str], k: int) -> float:
    return 1.0 if relevant & set(found[:k]) else 0.0


def recall_fraction(found: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant & set(found[:k])) / len(relevant)


def ndcg(found: Sequence[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(rank + 2) for rank, pid in enumerate(found[:k]) if pid in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal


def agreement(ours: list[list[str]], exact: list[list[str]], k: int = 5) -> tuple[float, float]:
    """(mean share of the exact top-k found, share of queries whose top-k sets are identical)."""
    overlaps = [len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ours, exact)]
    same = [set(a[:k]) == set(b[:k]) for a, b in zip(ours, exact)]
    return statistics.fmean(overlaps), statistics.fmean(same)


# --- embedders -------------------------------------------------------------------------------

class CachedEmbedder(Embedder):
    """Serves vectors computed once up front, so dense backends are timed without the model."""

    def __init__(self, base: Any, texts: Sequence[str], matrix: Any):
        self.name = f"cached-{getattr(base, 'name', 'embedder')}"
        self.dim = base.dim
        self._rows = {text: row for text, row in zip(texts, matrix)}
        self._base = base

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        missing = [text for text in texts if text not in self._rows]
        if missing:   # e.g. a warm-up query: embed for real, once
            for text, row in zip(missing, np.asarray(self._base(missing), dtype=np.float32)):
                self._rows[text] = row
        return np.stack([self._rows[text] for text in texts])


def minilm_setup(texts: list[str], questions: list[str], cache: Path | None) -> tuple[Any, dict[str, Any]]:
    """A cached MiniLM embedder over corpus + questions, and the model's own speed on this CPU.

    With ``--vector-cache`` the vectors are read from (or written to) an .npz keyed by a hash of
    the texts, so reruns skip the slow part; the speed figures are always measured afresh on a
    sample of 256 passages and 100 single questions.
    """
    import hashlib

    import numpy as np

    minilm = plait.embedder("sentence-transformers")
    minilm(["warm up"])
    unique = list(dict.fromkeys(texts + questions + [WARM_UP]))
    digest = hashlib.sha256("\x00".join(unique).encode()).hexdigest()
    matrix = None
    if cache is not None and cache.exists():
        stored = np.load(cache)
        if str(stored["digest"]) == digest:
            matrix = stored["vectors"]
    if matrix is None:
        matrix = np.asarray(minilm(unique), dtype=np.float32)
        if cache is not None:
            np.savez(cache, digest=np.array(digest), vectors=matrix)
    sample = texts[:256]
    began = time.perf_counter()
    minilm(sample)
    sample_s = time.perf_counter() - began
    latencies = []
    for question in questions[:100]:
        began = time.perf_counter()
        minilm([question])
        latencies.append(time.perf_counter() - began)
    return CachedEmbedder(minilm, unique, matrix), {
        "passages_per_s": len(sample) / sample_s, "sample": len(sample), "batch_size": minilm.batch_size,
        "query_p50_ms": statistics.median(latencies) * 1000}


# --- one backend -----------------------------------------------------------------------------

def run_backend(make: Callable[[], Any], ids: list[str], texts: list[str], questions: list[str],
                gold: list[set[str]]) -> dict[str, Any]:
    retriever = make()
    started = time.perf_counter()
    for start in range(0, len(texts), ADD_BATCH):
        retriever.add(texts[start:start + ADD_BATCH], ids=ids[start:start + ADD_BATCH])
    retriever(WARM_UP, k=10)
    index_s = time.perf_counter() - started
    rankings, latencies = [], []
    for question in questions:
        began = time.perf_counter()
        passages = retriever(question, k=10)
        latencies.append(time.perf_counter() - began)
        rankings.append([p.id for p in passages])
    if any(len(r) != min(10, len(texts)) for r in rankings):
        raise RuntimeError("a query returned fewer than 10 passages")
    return {"recall5_any": statistics.fmean(recall_any(r, g, 5) for r, g in zip(rankings, gold)),
            "recall5_frac": statistics.fmean(recall_fraction(r, g, 5) for r, g in zip(rankings, gold)),
            "ndcg10": statistics.fmean(ndcg(r, g, 10) for r, g in zip(rankings, gold)),
            "index_s": index_s, "passages_per_s": len(texts) / index_s,
            "query_p50_ms": statistics.median(latencies) * 1000, "rankings": rankings}


def bm25_at_scale(texts: list[str], questions: list[str], size: int = 10_000) -> dict[str, Any]:
    """BM25 on ``size`` passages (paragraphs plus their halves): lazy vs eager rebuilds, persistence."""
    passages = list(texts)
    for text in texts:
        words = text.split()
        passages += [" ".join(words[:len(words) // 2]), " ".join(words[len(words) // 2:])]
    passages = list(dict.fromkeys(passages))[:size]
    ids = [f"s{i:05d}" for i in range(len(passages))]
    out: dict[str, Any] = {"passages": len(passages)}

    def timed(fn: Callable[[], Any]) -> float:
        began = time.perf_counter()
        fn()
        return time.perf_counter() - began

    one = plait.retriever("bm25")
    out["one_add_s"] = timed(lambda: one.add(passages, ids=ids))
    out["first_search_s"] = timed(lambda: one("warm", k=1))
    out["query_p50_ms"] = statistics.median(timed(lambda q=q: one(q, k=10)) for q in questions) * 1000
    out["batch_queries_per_s"] = len(questions) / timed(lambda: one(questions, k=10))
    lazy = plait.retriever("bm25")
    out["lazy_100_adds_s"] = timed(lambda: [lazy.add(passages[i:i + 100], ids=ids[i:i + 100])
                                            for i in range(0, len(passages), 100)])
    out["lazy_first_search_s"] = timed(lambda: lazy("warm", k=1))
    eager = plait.retriever("bm25")

    def add_and_search() -> None:
        for i in range(0, len(passages), 100):
            eager.add(passages[i:i + 100], ids=ids[i:i + 100])
            eager("warm", k=1)
    out["eager_100_adds_s"] = timed(add_and_search)
    with tempfile.TemporaryDirectory() as folder:
        saved = plait.retriever("bm25", path=folder)
        out["persisted_add_s"] = timed(lambda: saved.add(passages, ids=ids))
        out["persisted_build_and_save_s"] = timed(lambda: saved("warm", k=1))
        out["reload_s"] = timed(lambda: plait.retriever("bm25", path=folder))
    raw = _raw_bm25s_p50(passages, questions)
    out["raw_bm25s_query_p50_ms"] = raw
    return out


def _raw_bm25s_p50(passages: list[str], questions: list[str]) -> float:
    """The same query through bm25s directly (tokenise + retrieve top 10), for plait's overhead."""
    import bm25s

    model = bm25s.BM25()
    model.index(bm25s.tokenize(passages, stopwords="en", return_ids=False, show_progress=False), show_progress=False)
    latencies = []
    for question in questions:
        began = time.perf_counter()
        tokens = bm25s.tokenize([question], stopwords="en", return_ids=False, show_progress=False)
        model.retrieve(tokens, k=10, show_progress=False)
        latencies.append(time.perf_counter() - began)
    return statistics.median(latencies) * 1000


# --- driver ----------------------------------------------------------------------------------

def makers(wanted: Sequence[str], texts: list[str], questions: list[str], folder: str,
           report: dict[str, Any], cache: Path | None) -> dict[str, tuple[str, Callable[[], Any]]]:
    """backend -> (embedder label, factory of an empty retriever)."""
    found: dict[str, tuple[str, Callable[[], Any]]] = {}
    if "bm25" in wanted:
        found["bm25"] = ("-", lambda: plait.retriever("bm25"))
    if "hashing-memory" in wanted:
        found["hashing-memory"] = ("hashing 1024", lambda: plait.retriever(
            "memory", embedder=plait.embedder("hashing", dim=1024)))
    dense = [name for name in ("minilm-memory", "qdrant", "chroma") if name in wanted]
    if dense:
        try:
            cached, report["minilm"] = minilm_setup(texts, questions, cache)
        except Exception as exc:   # report and go on with the other backends
            report["skipped"].update({name: f"MiniLM unavailable: {type(exc).__name__}: {exc}" for name in dense})
            return found
        label = "MiniLM-L6 (cached)"
        found["minilm-memory"] = (label, lambda: plait.retriever("memory", embedder=cached))
        found["qdrant"] = (label, lambda: plait.retriever("qdrant", location=":memory:", collection="hotpot",
                                                          embedder=cached))
        found["chroma"] = (label, lambda: plait.retriever("chroma", path=tempfile.mkdtemp(dir=folder),
                                                          collection="hotpot", embedder=cached))
    return {name: found[name] for name in wanted if name in found}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| backend | embedder | recall@5 (>=1 gold) | recall@5 (gold found) | nDCG@10 | top-5 agreement "
             "with exact (overlap / identical) | index passages/s | query p50 ms |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for name, row in report["backends"].items():
        agree = row.get("agreement")
        agree_text = (f"{agree[0]:.4f} / {agree[1]:.3f}" if agree
                      else "reference (exact)" if name == "minilm-memory" else "-")
        lines.append(f"| {name} | {row['embedder']} | {row['recall5_any']:.3f} | {row['recall5_frac']:.3f} | "
                     f"{row['ndcg10']:.3f} | {agree_text} | {row['passages_per_s']:,.0f} | "
                     f"{row['query_p50_ms']:.2f} |")
    for name, reason in report["skipped"].items():
        lines.append(f"| {name} | skipped: {reason} | | | | | | |")
    if "minilm" in report:
        m = report["minilm"]
        lines.append(f"\nMiniLM-L6 encoding on this CPU: {m['passages_per_s']:,.1f} passages/s ({m['sample']} passages, "
                     f"batch {m['batch_size']}), "
                     f"{m['query_p50_ms']:.1f} ms p50 for one query.")
    if "bm25_10k" in report:
        s = report["bm25_10k"]
        lines.append(
            f"\nBM25 at {s['passages']:,} passages: one add {s['one_add_s']:.2f} s + first search (build) "
            f"{s['first_search_s']:.2f} s; 100 adds of 100 then one search: {s['lazy_100_adds_s']:.2f} s + "
            f"{s['lazy_first_search_s']:.2f} s (lazy) vs {s['eager_100_adds_s']:.1f} s rebuilding after every add; "
            f"query p50 {s['query_p50_ms']:.2f} ms (raw bm25s {s['raw_bm25s_query_p50_ms']:.2f} ms), "
            f"{s['batch_queries_per_s']:,.0f} queries/s batched; persisted: add {s['persisted_add_s']:.2f} s, "
            f"build + save {s['persisted_build_and_save_s']:.2f} s, reload {s['reload_s']:.2f} s.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (default %(default)s)")
    parser.add_argument("--questions", type=int, default=None, help="use only the first N questions")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, from " + ", ".join(BACKENDS))
    parser.add_argument("--no-scale", action="store_true", help="skip the BM25 10k-passage measurements")
    parser.add_argument("--vector-cache", type=Path, default=None,
                        help="an .npz to keep MiniLM vectors in between runs (encoding is the slow part)")
    parser.add_argument("--blas-threads", default="1", help="OpenBLAS threads (read before numpy loads; default 1)")
    parser.add_argument("--output", type=Path, default=None, help="where the JSON goes")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(wanted) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ids, texts, questions, gold = load_hotpot(args.data, args.questions)
    report: dict[str, Any] = {"data": str(args.data), "questions": len(questions), "passages": len(texts),
                              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                          "load_before": os.getloadavg(),
                                          "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")},
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "backends": {}, "skipped": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name, (embedder, make) in makers(wanted, texts, questions, folder, report, args.vector_cache).items():
            try:
                row = run_backend(make, ids, texts, questions, gold)
            except Exception as exc:   # a backend that is not ready is reported, not fatal
                report["skipped"][name] = f"{type(exc).__name__}: {str(exc)[:160]}"
                continue
            row["embedder"] = embedder
            report["backends"][name] = row
    exact = report["backends"].get("minilm-memory")
    for name in ("qdrant", "chroma"):
        if exact and name in report["backends"]:
            report["backends"][name]["agreement"] = agreement(report["backends"][name]["rankings"], exact["rankings"])
    if "bm25" in wanted and not args.no_scale:
        report["bm25_10k"] = bm25_at_scale(texts, questions)
    print(f"HotPotQA dev_subsampled: {len(questions)} questions, {len(texts):,} passages\n")
    print(markdown(report))
    for row in report["backends"].values():
        row.pop("rankings")
    output = args.output or RESULTS_DIR / f"retrieval-quality-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    report["machine"]["load_after"] = os.getloadavg()
    output.write_text(json.dumps(report, indent=2))
    print(f"\nraw numbers: {output}")
    return 0


if __name__ == "__main__":
    # One BLAS thread: a single query is a small matrix-vector product, and on a shared 2-core
    # machine a second OpenBLAS thread waiting for a core turned 0.1 ms into 8-16 ms. Set before
    # numpy loads (nothing imported above loads it); --blas-threads overrides.
    if "--blas-threads" in sys.argv:
        os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
