"""OpenAI-compatible LM backend for plait: ``plait.LM("openai/<model>", api_base=..., api_key=...)``.

Works with any server that speaks the OpenAI chat / text completions API (OpenAI, vLLM, TGI,
Ollama's /v1, llama.cpp's server, LM Studio). Install with ``pip install 'plait[openai]'``.

Backend options (everything else given to ``plait.LM`` is a generation parameter):

- ``api_base`` (alias ``base_url``): the server, e.g. "http://127.0.0.1:8000/v1"; defaults to
  ``OPENAI_BASE_URL`` / ``OPENAI_API_BASE``, else OpenAI itself.
- ``api_key``: defaults to ``OPENAI_API_KEY``. Without either, a placeholder key is used only for
  a server on this machine (127.0.0.1 / localhost); anywhere else it is an ``LMAuthError``.
- ``organization``, ``project``, ``headers`` (sent with every request), ``extra_body`` (merged
  into every request body), ``http_client`` / ``async_http_client`` (custom transports).
- ``small_model=True``: declare a small model so adapters pick the template format.
- ``function_calling=True``: declare that the server does native tool calls (``tools=`` /
  ``tool_calls``; llama.cpp's server needs ``--jinja``); on by default for OpenAI's own API.
  Responses carry the calls in ``LMResponse.tool_calls``.

Decisions worth knowing:

- ``n``: servers that return fewer choices than asked (llama.cpp's returns one) get further
  requests for the missing ones, so a response always has ``n`` outputs; usage is summed.
- ``max_tokens`` is sent as ``max_tokens`` (``max_completion_tokens`` only to OpenAI's own chat
  API, which wants it); other servers ignore ``max_completion_tokens`` and run to the context end.
- ``response_format`` json_schema is tried while the server has not rejected it; on the first
  rejection the backend falls back to ``{"type": "json_object"}`` and remembers it
  (``capabilities.json_schema`` becomes False).
- The SDK never retries (``max_retries=0``): plait's retry loop does, honouring Retry-After.

Importing this package does not import ``openai``: the SDK loads when a backend is created.
"""

from __future__ import annotations

from typing import Any

from plait.backends import LMBackend
from plait.plugins import hookimpl

__all__ = ["make_openai_backend", "plait_register_lms"]


def make_openai_backend(model: str, model_type: str = "chat", **options: Any) -> Any:
    """Build the backend for ``plait.LM("openai/<model>", ...)`` (imports the SDK here)."""
    from plait_openai.backend import OpenAIBackend
    return OpenAIBackend(model, model_type=model_type, **options)


@hookimpl
def plait_register_lms() -> list[LMBackend]:
    return [LMBackend("openai", make_openai_backend, extra="openai",
                      summary="any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio)",
                      requires=("openai",))]
