"""The llama.cpp backend object: plait requests in, llama-cpp-python completions out.

Chat requests are rendered with the model's own chat template (the GGUF's
``tokenizer.chat_template``, or ``chat_template=``), ``prefill`` is appended to the rendered
prompt, and the text is completed raw; so chat, prefill, text completion, ``n`` and streaming are
all one code path (``Llama.create_completion``). A GGUF without a template falls back to
llama-cpp-python's own chat handler for plain chat (no prefill then).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from plait.errors import LMBadRequestError, LMContextWindowError
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage, local_text_prompt

from plait_llamacpp.loader import ModelFacts, ModelPool, json_grammar

__all__ = ["DEFAULT_MAX_TOKENS", "DEFAULT_PARAMS", "LlamaCppBackend"]

DEFAULT_MAX_TOKENS = 512
# Greedy by default (reproducible programs); repeat_penalty 1.1 as llama.cpp's server and chat
# handler use, since small models loop without it.
DEFAULT_PARAMS: dict[str, Any] = {"temperature": 0.0, "max_tokens": DEFAULT_MAX_TOKENS, "repeat_penalty": 1.1}
# Request parameters handed to Llama.create_completion under the same name.
_PASSTHROUGH = frozenset({"temperature", "max_tokens", "top_p", "top_k", "min_p", "typical_p",
                          "seed", "presence_penalty", "frequency_penalty", "repeat_penalty",
                          "tfs_z", "mirostat_mode", "mirostat_tau", "mirostat_eta", "logit_bias"})
_IGNORED = frozenset({"timeout"})   # in-process generation is bounded by max_tokens instead
_SMALL_MODEL_PARAMS = 1_000_000_000


class LlamaCppBackend:
    """``generate(request)`` / ``stream(request)`` over a pool of loaded ``llama_cpp.Llama`` models."""

    def __init__(self, pool: ModelPool, facts: ModelFacts, *, model_name: str,
                 model_type: str = "chat", small_model: bool | None = None,
                 render_chat: Callable[[list[dict[str, Any]]], str] | None = None):
        self.pool = pool
        self.facts = facts
        self.model_name = model_name
        self.model_type = model_type
        self.render_chat = render_chat
        chat = model_type == "chat"
        if small_model is None:
            small_model = 0 < facts.n_params < _SMALL_MODEL_PARAMS
        self.capabilities = LMCapabilities(chat=chat, text=True, n=True, json_object=True,
                                           json_schema=True, prefill=chat and render_chat is not None,
                                           small_model=bool(small_model), streaming=True, tools=False)
        self._template_stop = [facts.eos_text] if facts.eos_text else []

    def __repr__(self) -> str:
        return (f"LlamaCppBackend({self.model_name!r}, n_ctx={self.facts.n_ctx}, "
                f"pool_size={self.pool.size})")

    # --- the backend protocol -------------------------------------------------------------
    def generate(self, request: LMRequest) -> LMResponse:
        params = self._params(request)
        n = _choice_count(request.params.get("n"))
        seeds = _seeds(params.pop("seed", None), n)
        prompt, use_handler = self._prompt(request)
        texts: list[str] = []
        finish: list[str] = []
        prompt_tokens = completion_tokens = 0
        with self.pool.borrow() as llama:
            for seed in seeds:
                result = self._complete(llama, prompt, use_handler, request, {**params, "seed": seed})
                choice = result["choices"][0]
                texts.append((choice["message"]["content"] or "") if use_handler else choice["text"])
                finish.append(choice.get("finish_reason") or "stop")
                usage = result.get("usage") or {}
                prompt_tokens = int(usage.get("prompt_tokens") or 0)   # the same prompt each time
                completion_tokens += int(usage.get("completion_tokens") or 0)
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        return LMResponse(texts, usage, request.model, False, finish)

    def stream(self, request: LMRequest) -> Iterator[str]:
        """Text chunks as the model produces them (one choice; the model is held until done)."""
        if _choice_count(request.params.get("n")) != 1:
            raise LMBadRequestError("streaming returns one choice: call without n (or n=1)",
                                    provider="llamacpp")
        params = self._params(request)
        params["seed"] = _seeds(params.pop("seed", None), 1)[0]
        prompt, use_handler = self._prompt(request)
        with self.pool.borrow() as llama:
            for chunk in self._complete(llama, prompt, use_handler, request, params, stream=True):
                choice = chunk["choices"][0]
                text = (choice.get("delta") or {}).get("content") if use_handler else choice.get("text")
                if text:
                    yield text

    # --- helpers --------------------------------------------------------------------------
    def _params(self, request: LMRequest) -> dict[str, Any]:
        params = dict(DEFAULT_PARAMS)
        stop: list[str] = []
        for key, value in request.params.items():
            if value is None or key in _IGNORED or key == "n":
                continue
            if key in _PASSTHROUGH:
                params[key] = value
            elif key == "max_completion_tokens":
                params["max_tokens"] = value
            elif key == "stop":
                stop = [value] if isinstance(value, str) else list(value)
            elif key == "response_format":
                grammar = _grammar_for(value)
                if grammar is not None:
                    params["grammar"] = grammar
            else:
                raise LMBadRequestError(
                    f"the llamacpp backend does not support the parameter {key!r}; supported: "
                    f"{', '.join(sorted(_PASSTHROUGH | {'n', 'stop', 'response_format', 'max_completion_tokens'}))}",
                    provider="llamacpp")
        max_tokens = params["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise LMBadRequestError(f"max_tokens must be a positive int, got {max_tokens!r}",
                                    provider="llamacpp")
        params["stop"] = stop
        return params

    def _prompt(self, request: LMRequest) -> tuple[Any, bool]:
        """(what to complete, whether llama-cpp-python's chat handler must do it)."""
        prompt = local_text_prompt(request, self.capabilities, self.model_name, "llamacpp")
        if prompt is not None:
            return prompt, False
        messages = request.messages or []
        if self.render_chat is None:
            if request.prefill:
                raise LMBadRequestError(f"{self.model_name!r} has no chat template in its GGUF, so it "
                                        "cannot continue a prefill; pass chat_template='<jinja>' "
                                        "when building the LM", provider="llamacpp")
            return messages, True
        try:
            text = self.render_chat(messages)
        except Exception as exc:   # the template raises on conversations it cannot render
            raise LMBadRequestError(f"the chat template of {self.model_name!r} rejected these "
                                    f"messages: {exc}", provider="llamacpp") from exc
        return text + (request.prefill or ""), False

    def _complete(self, llama: Any, prompt: Any, use_handler: bool, request: LMRequest,
                  params: dict[str, Any], *, stream: bool = False) -> Any:
        try:
            if use_handler:
                return llama.create_chat_completion(prompt, stream=stream, **params)
            if isinstance(prompt, str) and request.messages is not None:
                # A rendered template: its special tokens are real tokens, and it brings its own BOS.
                tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
                self._check_fits(len(tokens))
                params = {**params, "stop": params["stop"] + self._template_stop}
                return llama.create_completion(tokens, stream=stream, **params)
            return llama.create_completion(prompt, stream=stream, **params)
        except ValueError as exc:
            if "context window" in str(exc):
                raise LMContextWindowError(f"the prompt does not fit {self.model_name!r}'s context "
                                           f"window: {exc}. Shorten the prompt or build the LM with "
                                           "a larger n_ctx=", provider="llamacpp") from exc
            raise

    def _check_fits(self, prompt_tokens: int) -> None:
        if prompt_tokens >= self.facts.n_ctx:
            raise LMContextWindowError(
                f"the prompt has {prompt_tokens} tokens and {self.model_name!r} was loaded with "
                f"n_ctx={self.facts.n_ctx}: shorten the prompt or build the LM with a larger n_ctx=",
                provider="llamacpp")


def _choice_count(n: Any) -> int:
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise LMBadRequestError(f"n must be a positive int, got {n!r}", provider="llamacpp")
    return n


def _seeds(seed: Any, n: int) -> list[int]:
    """One seed per choice, so sampled choices differ; a given seed makes them reproducible."""
    if seed is None:
        return [random.randrange(2 ** 31) for _ in range(n)]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise LMBadRequestError(f"seed must be an int, got {seed!r}", provider="llamacpp")
    return [seed + i for i in range(n)]


def _grammar_for(response_format: Any) -> Any:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return json_grammar()
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json_grammar(json.dumps(schema, sort_keys=True)) if schema else json_grammar()
    raise LMBadRequestError(f"response_format must be {{'type': 'text' | 'json_object' | "
                            f"'json_schema', ...}}, got {response_format!r}", provider="llamacpp")
