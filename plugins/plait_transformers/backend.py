"""The transformers backend object: plait requests in, ``model.generate`` completions out.

Chat requests are rendered with the model's chat template (the tokenizer's own, ``chat_template=``,
or ChatML when the tokenizer has none), ``prefill`` is appended to the rendered text, and the
text is completed raw; so chat, prefill and ``n`` share one code path. A model loaded with
``model_type="text"`` completes ``prompt=`` requests as they are.
"""

from __future__ import annotations

from typing import Any

from plait.errors import LMBadRequestError, LMContextWindowError
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage, local_text_prompt

from plait_transformers.models import LoadedModel, render_chat

__all__ = ["DEFAULT_PARAMS", "TransformersBackend"]

# Greedy by default (reproducible programs); repeat_penalty 1.1 as the llamacpp backend uses.
DEFAULT_PARAMS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 512, "repeat_penalty": 1.1}
_SUPPORTED = frozenset({"temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k",
                        "seed", "stop", "n", "repeat_penalty", "timeout", "response_format"})
_SMALL_MODEL_PARAMS = 1_000_000_000


class TransformersBackend:
    """``generate(request)`` on a :class:`LoadedModel` (calls on one model run one at a time)."""

    def __init__(self, loaded: LoadedModel, *, model_name: str, model_type: str = "chat",
                 small_model: bool | None = None, chat_template: str | None = None):
        self.loaded = loaded
        self.model_name = model_name
        self.model_type = model_type
        self.chat_template = chat_template or loaded.chat_template
        chat = model_type == "chat"
        if small_model is None:
            small_model = loaded.n_params < _SMALL_MODEL_PARAMS
        # A chat model is driven through its chat template (how BootstrapFinetune trains it), so
        # it does not advertise raw text completion; small-model adapters then use prefill.
        self.capabilities = LMCapabilities(chat=chat, text=not chat, n=True, prefill=chat,
                                           small_model=bool(small_model), streaming=False)
        config = loaded.model.config
        self.context_window = int(getattr(config, "max_position_embeddings", 0) or 0)

    def __repr__(self) -> str:
        return f"TransformersBackend({self.model_name!r}, {self.loaded.source.describe()!r})"

    def generate(self, request: LMRequest) -> LMResponse:
        import torch

        params = _params(request)
        n = params.pop("n")
        stop: list[str] = params.pop("stop")
        seed = params.pop("seed")
        tokenizer = self.loaded.tokenizer
        text, special = self._prompt(request)
        input_ids = tokenizer(text, add_special_tokens=not special, return_tensors="pt")["input_ids"]
        prompt_tokens = int(input_ids.shape[1])
        if self.context_window and prompt_tokens >= self.context_window:
            raise LMContextWindowError(f"the prompt has {prompt_tokens} tokens and {self.model_name!r} "
                                       f"reads at most {self.context_window}: shorten the prompt",
                                       provider="transformers")
        sampling = params["temperature"] > 0
        options: dict[str, Any] = {
            "max_new_tokens": params["max_tokens"], "do_sample": sampling,
            "repetition_penalty": params["repeat_penalty"],
            "num_return_sequences": n if sampling else 1,
            "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "attention_mask": torch.ones_like(input_ids),
        }
        if sampling:
            options.update({key: params[key] for key in ("temperature", "top_p", "top_k") if key in params})
        if stop:
            options.update(stop_strings=stop, tokenizer=tokenizer)
        with self.loaded.lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            generated = self.loaded.model.generate(input_ids, **options)[:, prompt_tokens:]
        texts: list[str] = []
        finish: list[str] = []
        completion_tokens = 0
        for row in generated.tolist():
            used, ended = _until_eos(row, tokenizer.eos_token_id)
            completion_tokens += len(used)
            output = tokenizer.decode(used, skip_special_tokens=True)
            cut = _cut_at_stop(output, stop)
            texts.append(output if cut is None else output[:cut])
            finish.append("stop" if ended or cut is not None else "length")
        if len(texts) < n:   # greedy: the n choices are the same answer
            texts, finish = texts * n, finish * n
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        return LMResponse(texts, usage, request.model, False, finish)

    def _prompt(self, request: LMRequest) -> tuple[str, bool]:
        """(the text to complete, whether it already holds the template's special tokens)."""
        prompt = local_text_prompt(request, self.capabilities, self.model_name, "transformers")
        if prompt is not None:
            return prompt, False
        try:
            text = render_chat(self.loaded.tokenizer, self.chat_template, request.messages or [],
                               add_generation_prompt=True)
        except Exception as exc:   # the template raises on conversations it cannot render
            raise LMBadRequestError(f"the chat template of {self.model_name!r} rejected these "
                                    f"messages: {exc}", provider="transformers") from exc
        return text + (request.prefill or ""), True


def _params(request: LMRequest) -> dict[str, Any]:
    params: dict[str, Any] = {**DEFAULT_PARAMS, "n": 1, "stop": [], "seed": None}
    for key, value in request.params.items():
        if value is None or key == "timeout":   # generation is bounded by max_tokens instead
            continue
        if key not in _SUPPORTED:
            raise LMBadRequestError(f"the transformers backend does not support the parameter "
                                    f"{key!r}; supported: {', '.join(sorted(_SUPPORTED))}",
                                    provider="transformers")
        if key == "response_format":
            if not (isinstance(value, dict) and value.get("type") == "text"):
                raise LMBadRequestError("the transformers backend cannot constrain output to JSON: "
                                        "use the template or chat adapter", provider="transformers")
            continue
        if key == "stop":
            params["stop"] = [value] if isinstance(value, str) else [s for s in value if s]
        else:
            params["max_tokens" if key == "max_completion_tokens" else key] = value
    for key in ("max_tokens", "n"):
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LMBadRequestError(f"{key} must be a positive int, got {value!r}", provider="transformers")
    temperature = params["temperature"]
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise LMBadRequestError(f"temperature must be a number >= 0, got {temperature!r}",
                                provider="transformers")
    seed = params["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise LMBadRequestError(f"seed must be an int, got {seed!r}", provider="transformers")
    return params


def _until_eos(row: list[int], eos: int | list[int] | None) -> tuple[list[int], bool]:
    """The generated tokens before the first end-of-sequence token, and whether one came."""
    ends = set(eos) if isinstance(eos, list) else {eos}
    for index, token in enumerate(row):
        if token in ends:
            return row[:index], True
    return row, False


def _cut_at_stop(text: str, stop: list[str]) -> int | None:
    """Where the first stop sequence begins in ``text`` (the output ends before it)."""
    found = [index for index in (text.find(s) for s in stop) if index >= 0]
    return min(found) if found else None
