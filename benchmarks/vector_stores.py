"""Vector stores: indexing throughput, query latency and plugin overhead for qdrant and chroma.

    python benchmarks/vector_stores.py [--n 10000] [--queries 300] [--dim 384] [--quick]
                                       [--backends qdrant-memory,qdrant-path,chroma,chroma-ef400,chroma-server]

Corpus: the first N sentences of the SQuAD dev contexts (../shared/data/squad, short passages of
~25 words; synthetic sentences when the file is absent), SQuAD questions as queries, plait's
hashing embedder. For each backend it measures:

- indexing: ``retriever.add(texts)`` end to end with the hashing embedder; the same with vectors
  precomputed (a lookup embedder), and the raw SDK upsert of those vectors in the same batches;
- query latency, k=10: ``retriever(q, k=10)`` (lookup embedder, so no embedding cost) against the
  bare ``client.query_points(...)`` / ``collection.query(...)`` with the same precomputed vector,
  interleaved call by call (the order alternates). Overhead two ways: inside each plugin call (a
  thin timer around the SDK method it calls: overhead = plugin call - its SDK call), and the
  median difference between a plugin call and the raw call for the same query, back to back;
- agreement: tie-aware top-10 recall against the exact in-memory index.

Prints a markdown table and writes the numbers to ``benchmarks/results/vector-stores-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import plait
from plait.retrieve import Embedder, HashingEmbedder

HERE = Path(__file__).resolve().parent
SQUAD = HERE.parent.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
K = 10


def load_texts(n: int, n_queries: int) -> tuple[list[str], list[str]]:
    if SQUAD.exists():
        data = json.loads(SQUAD.read_text())["data"]
        sentences, questions = [], []
        for article in data:
            for paragraph in article["paragraphs"]:
                sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", paragraph["context"]) if len(s) > 20]
                questions += [qa["question"] for qa in paragraph["qas"]]
        passages = list(dict.fromkeys(sentences))[:n]
        if len(passages) == n:
            return passages, questions[:n_queries]
    draw = np.random.default_rng(0)
    words = [f"w{i}" for i in range(5000)]
    make = lambda count, size: [" ".join(draw.choice(words, size)) for _ in range(count)]  # noqa: E731
    return make(n, 20), make(n_queries, 8)


class LookupEmbedder(Embedder):
    """Precomputed vectors for known texts: the plugin path without any embedding cost."""

    def __init__(self, texts: list[str], vectors: np.ndarray):
        self.dim = vectors.shape[1]
        self.rows = {text: row for row, text in enumerate(texts)}
        self.vectors = vectors

    def embed(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:                       # a view, no copy: the cheapest possible "embedder"
            row = self.rows[texts[0]]
            return self.vectors[row:row + 1]
        return self.vectors[[self.rows[text] for text in texts]]


class TimedMethod:
    """Wraps one SDK method and records the seconds spent inside it (the rest is plugin overhead)."""

    def __init__(self, target: Any, name: str):
        self.target, self.inner, self.last = target, getattr(target, name), 0.0
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        if attr == self.name:
            return self.call
        return getattr(self.target, attr)

    def call(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.last = time.perf_counter() - start


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def query_latency(plugin: Callable[[int], Any], raw: Callable[[int], Any], probe: TimedMethod,
                  n_queries: int) -> dict[str, float]:
    """Interleaved per-call timings (order alternates) in microseconds."""
    for i in range(min(20, n_queries)):    # warm-up
        plugin(i), raw(i)
    plugin_s, raw_s, inside = [], [], []
    for i in range(n_queries):
        if i % 2:
            raw_s.append(timed(lambda: raw(i)))
            plugin_s.append(timed(lambda: plugin(i)))
        else:
            plugin_s.append(timed(lambda: plugin(i)))
            raw_s.append(timed(lambda: raw(i)))
        inside.append(plugin_s[-1] - probe.last)
    raw_median = statistics.median(raw_s)
    overhead = statistics.median(inside)
    paired = statistics.median(p - r for p, r in zip(plugin_s, raw_s))   # the same query, back to back
    return {"raw_us": raw_median * 1e6, "plugin_us": statistics.median(plugin_s) * 1e6,
            "raw_p90_us": np.percentile(raw_s, 90) * 1e6, "plugin_p90_us": np.percentile(plugin_s, 90) * 1e6,
            "overhead_us": overhead * 1e6, "overhead_pct": 100 * overhead / raw_median,
            "paired_diff_us": paired * 1e6, "paired_diff_pct": 100 * paired / raw_median,
            "median_ratio_pct": 100 * (statistics.median(plugin_s) / raw_median - 1)}


def agreement(retriever: Any, exact: Any, queries: list[str]) -> float:
    """Tie-aware recall@K against the exact index: a hit scores at least the exact K-th score."""
    hits = 0
    for want, got in zip(exact(queries, k=K), retriever(queries, k=K)):
        cut = want[-1].score - 1e-4
        hits += sum(1 for p in got if p.score >= cut)
    return hits / (K * len(queries))


def bench_qdrant(mode: str, texts: list[str], ids: list[str], vectors: np.ndarray, queries: list[str],
                 qvectors: np.ndarray, hashing: Embedder, exact: Any, tmp: Path) -> dict[str, Any]:
    from qdrant_client import QdrantClient, models

    from plait_qdrant.mapping import point_id

    place = {"location": ":memory:"} if mode == "memory" else {"path": str(tmp / "qdrant")}
    client = QdrantClient(**place)
    lookup = LookupEmbedder(texts + queries, np.concatenate([vectors, qvectors]))
    batch = 256
    result: dict[str, Any] = {"backend": "qdrant :memory:" if mode == "memory" else "qdrant path= (SQLite)",
                              "n": len(texts)}
    client.create_collection("raw", vectors_config=models.VectorParams(size=vectors.shape[1],
                                                                       distance=models.Distance.COSINE))

    def raw_add() -> None:
        for start in range(0, len(texts), batch):
            stop = start + batch
            client.upsert("raw", points=models.Batch(
                ids=[point_id(i) for i in ids[start:stop]], vectors=vectors[start:stop].tolist(),
                payloads=[{"text": t, "plait_id": i, "metadata": {}}
                          for t, i in zip(texts[start:stop], ids[start:stop])]))
    result["raw_add_s"] = timed(raw_add)
    plugin = plait.retriever("qdrant", collection="plugin", client=client, embedder=lookup, batch_size=batch)
    result["plugin_add_s"] = timed(lambda: plugin.add(texts, ids=ids))
    hashed = plait.retriever("qdrant", collection="hashed", client=client, embedder=hashing, batch_size=batch)
    result["hashing_add_s"] = timed(lambda: hashed.add(texts, ids=ids))
    probe = TimedMethod(client, "query_points")
    plugin.client = probe
    qlists = qvectors.tolist()
    result["query"] = query_latency(lambda i: plugin(queries[i], k=K),
                                    lambda i: client.query_points("raw", query=qlists[i], limit=K, with_payload=True),
                                    probe, len(queries))
    result["recall_vs_exact"] = agreement(plugin, exact, queries[:100])
    client.close()
    return result


def bench_chroma(server: str | None, hnsw: dict[str, Any], texts: list[str], ids: list[str], vectors: np.ndarray,
                 queries: list[str], qvectors: np.ndarray, hashing: Embedder, exact: Any, tmp: Path) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if server:
        host, port = server.rsplit(":", 1)
        client = chromadb.HttpClient(host=host, port=int(port), settings=settings)
    else:
        client = chromadb.PersistentClient(path=str(tmp / "chroma"), settings=settings)
    lookup = LookupEmbedder(texts + queries, np.concatenate([vectors, qvectors]))
    batch = 1000
    label = "chroma server (`chroma run`, HTTP)" if server else "chroma PersistentClient"
    label += "".join(f", {key}={value}" for key, value in hnsw.items())
    result: dict[str, Any] = {"backend": label, "n": len(texts)}
    raw = client.get_or_create_collection("raw", configuration={"hnsw": {**hnsw, "space": "cosine"}},
                                          embedding_function=None)

    def raw_add() -> None:
        for start in range(0, len(texts), batch):
            raw.upsert(ids=ids[start:start + batch], embeddings=vectors[start:start + batch],
                       documents=texts[start:start + batch])
    result["raw_add_s"] = timed(raw_add)
    plugin = plait.retriever("chroma", collection="plugin", client=client, embedder=lookup, batch_size=batch, hnsw=hnsw)
    result["plugin_add_s"] = timed(lambda: plugin.add(texts, ids=ids))
    hashed = plait.retriever("chroma", collection="hashed", client=client, embedder=hashing, batch_size=batch,
                             hnsw=hnsw)
    result["hashing_add_s"] = timed(lambda: hashed.add(texts, ids=ids))
    probe = TimedMethod(plugin.chroma_collection, "query")
    plugin.chroma_collection = probe
    include = ["documents", "metadatas", "distances"]
    result["query"] = query_latency(lambda i: plugin(queries[i], k=K),
                                    lambda i: raw.query(query_embeddings=qvectors[i:i + 1], n_results=K,
                                                        include=include),
                                    probe, len(queries))
    result["recall_vs_exact"] = agreement(plugin, exact, queries[:100])
    return result


def start_chroma_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = str(Path(sys.executable).with_name("chroma")) if Path(sys.executable).with_name("chroma").exists() \
        else shutil.which("chroma") or "chroma"
    process = subprocess.Popen([command, "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("chroma run did not answer its heartbeat within 30 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| backend | N | add, hashing embedder (passages/s) | add, precomputed: plugin / raw SDK (s) | "
             "query k=10: raw SDK / plugin median (µs) | plugin overhead inside each call (µs, % of raw) | "
             "median paired difference (µs, % of raw) | recall@10 vs exact |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        q = r["query"]
        lines.append(f"| {r['backend']} | {r['n']} | {r['n'] / r['hashing_add_s']:,.0f} | "
                     f"{r['plugin_add_s']:.2f} / {r['raw_add_s']:.2f} | {q['raw_us']:,.0f} / {q['plugin_us']:,.0f} | "
                     f"{q['overhead_us']:.0f} ({q['overhead_pct']:.1f}%) | "
                     f"{q['paired_diff_us']:.0f} ({q['paired_diff_pct']:.1f}%) | {r['recall_vs_exact']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--path-n", type=int, default=2_000, help="corpus size for qdrant path= (slow: SQLite)")
    parser.add_argument("--backends", default="qdrant-memory,qdrant-path,chroma,chroma-ef400,chroma-server")
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the script runs")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.path_n = 500, 40, 200
    texts, queries = load_texts(args.n, args.queries)
    ids = [f"s{i}" for i in range(len(texts))]
    hashing = HashingEmbedder(args.dim)
    started = time.perf_counter()
    vectors = hashing(texts)
    embed_s = time.perf_counter() - started
    qvectors = hashing(queries)
    exact = plait.retriever("memory", embedder=LookupEmbedder(texts + queries, np.concatenate([vectors, qvectors])))
    exact.add(texts, ids=ids)
    results = []
    with tempfile.TemporaryDirectory(prefix="plait-vs-") as tmp_dir:
        tmp = Path(tmp_dir)
        for backend in args.backends.split(","):
            print(f"... {backend}", file=sys.stderr, flush=True)
            if backend == "qdrant-memory":
                results.append(bench_qdrant("memory", texts, ids, vectors, queries, qvectors, hashing, exact, tmp))
            elif backend == "qdrant-path":
                n = args.path_n
                small = plait.retriever("memory", embedder=exact.embedder)
                small.add(texts[:n], ids=ids[:n])
                results.append(bench_qdrant("path", texts[:n], ids[:n], vectors[:n], queries, qvectors, hashing,
                                            small, tmp))
            elif backend in ("chroma", "chroma-ef400"):
                hnsw = {"ef_search": 400} if backend == "chroma-ef400" else {}
                results.append(bench_chroma(None, hnsw, texts, ids, vectors, queries, qvectors, hashing, exact,
                                            tmp / backend))
            elif backend == "chroma-server":
                process, address = start_chroma_server(tmp / "chroma-server")
                try:
                    results.append(bench_chroma(address, {}, texts, ids, vectors, queries, qvectors, hashing, exact,
                                                tmp))
                finally:
                    stop(process)
            else:
                parser.error(f"unknown backend {backend!r}")
    report = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": __import__("os").cpu_count(), "load": __import__("os").getloadavg()},
              "n": len(texts), "queries": len(queries), "dim": args.dim,
              "hashing_embed_passages_per_s": len(texts) / embed_s, "results": results}
    print(f"hashing embedder alone: {len(texts) / embed_s:,.0f} passages/s (dim {args.dim})\n")
    print(table(results))
    out = args.output or HERE / "results" / f"vector-stores-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nraw numbers: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
