"""DSPy-style LM constructors that map onto ``plait.LM("openai/<model>", ...)``.

``OpenAI(model="gpt-4o-mini")``, ``HFClientVLLM(model=..., url=..., port=...)`` and
``OllamaLocal(model=...)`` are the names older DSPy programs use; each returns a plain
:class:`plait.LM` on the ``openai`` provider (install ``plait[openai]``). Nothing here imports
the openai SDK: the provider's factory does when the LM is built.

vLLM and Ollama servers do not check API keys, so those aliases send a placeholder key unless
given one; they never forward ``OPENAI_API_KEY`` (an OpenAI key) to another server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from plait.lm.base import LM

__all__ = ["HFClientVLLM", "OllamaLocal", "OpenAI"]

VLLM_PLACEHOLDER_KEY = "EMPTY"       # what vLLM's own docs use
OLLAMA_PLACEHOLDER_KEY = "ollama"    # what Ollama's OpenAI-compatibility docs use


def _openai_model(model: str) -> str:
    if not isinstance(model, str) or not model.strip():
        raise ValueError("pass the served model's name as model='...', e.g. model='gpt-4o-mini'")
    return model if model.startswith("openai/") else f"openai/{model}"


def _v1(base: str) -> str:
    """``base`` with a trailing "/v1" (added unless it is already there)."""
    base = base.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def OpenAI(model: str, api_key: str | None = None, api_base: str | None = None,
           model_type: str = "chat", **kwargs: Any) -> LM:
    """An OpenAI (or OpenAI-compatible) model: ``plait.LM("openai/<model>", ...)``."""
    return LM(_openai_model(model), api_key=api_key, api_base=api_base, model_type=model_type, **kwargs)


def HFClientVLLM(model: str, url: str = "http://localhost", port: int | str | None = None,
                 **kwargs: Any) -> LM:
    """A model served by vLLM's OpenAI-compatible server at ``url`` (and ``port``)."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"HFClientVLLM takes one server URL as url='http://host', not {url!r}; "
                         "for several servers, build one LM per server")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if port is not None:
        if parts.port is not None and str(parts.port) != str(port):
            raise ValueError(f"url={url!r} already names port {parts.port}, but port={port!r} was "
                             "also given: pass the port once")
        host = parts.netloc if parts.port is None else parts.netloc.rsplit(":", 1)[0]
        url = urlunsplit(parts._replace(netloc=f"{host}:{port}"))
    kwargs.setdefault("api_key", VLLM_PLACEHOLDER_KEY)
    return LM(_openai_model(model), api_base=_v1(url), **kwargs)


def OllamaLocal(model: str, base_url: str = "http://localhost:11434", **kwargs: Any) -> LM:
    """A model served by a local Ollama, through its OpenAI-compatible ``/v1`` API."""
    kwargs.setdefault("api_key", OLLAMA_PLACEHOLDER_KEY)
    return LM(_openai_model(model), api_base=_v1(base_url), **kwargs)
