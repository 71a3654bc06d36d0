"""LoRA finetuning of a local causal LM on chat records, on CPU (transformers + peft + torch).

Used by :class:`plait.teleprompt.BootstrapFinetune`; usable alone:
``train_lora(records, "smollm2-135m", "out/")``. A record is ``{"messages": [..., {"role":
"assistant", "content": ...}]}`` (the OpenAI chat finetuning format). Each record is rendered with
the model's chat template exactly as the transformers backend renders a request (the same
:func:`~plait_transformers.models.render_chat`), and the loss covers only the assistant turn.

The result is a folder that ``plait.LM("transformers/<folder>")`` loads: the merged model
(``save="merged"``, float32 safetensors, self-contained) or the LoRA adapter alone
(``save="adapter"``, a few MB, plus ``plait_base.json`` naming the base model to load it on).
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait_transformers.models import (BASE_MANIFEST, load_model, quiet_transformers, render_chat,
                                       resolve_source)

__all__ = ["TrainResult", "encode_record", "train_lora"]

IGNORE = -100   # label value the loss skips (prompt and padding tokens)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Where the finetuned model is, and how training went."""

    model_dir: Path
    steps: int
    losses: tuple[float, ...]   # one per optimizer step
    examples: int               # records used (after dropping any that do not fit max_length)


def train_lora(records: Sequence[dict[str, Any]], base_model: str, output_dir: str | Path, *,
               epochs: int = 3, lr: float = 1e-3, lora_r: int = 8, lora_alpha: int = 16,
               lora_dropout: float = 0.0, target_modules: Sequence[str] | str | None = None,
               max_steps: int | None = None, batch_size: int = 4, seed: int = 0,
               max_length: int = 1024, save: str = "merged", num_threads: int | None = None,
               on_step: Callable[[int, int, float], None] | None = None) -> TrainResult:
    """Finetune ``base_model`` (anything ``plait.LM("transformers/...")`` accepts) with LoRA on
    ``records`` and save it under ``output_dir``. ``on_step(step, total, loss)`` reports progress."""
    import torch
    from peft import LoraConfig, get_peft_model

    if save not in ("merged", "adapter"):
        raise ValueError(f"save must be 'merged' or 'adapter', not {save!r}")
    source = resolve_source(base_model)
    loaded = load_model(source, shared=False)   # LoRA layers go into this copy, not a shared one
    tokenizer, template = loaded.tokenizer, loaded.chat_template
    encoded = [item for item in (encode_record(tokenizer, template, record, max_length) for record in records)
               if item is not None]
    if not encoded:
        raise ValueError(f"no training record fits max_length={max_length} tokens with at least one "
                         "answer token: raise max_length or shorten the prompts")
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    if total < 1:
        raise ValueError(f"nothing to train: epochs={epochs}, max_steps={max_steps}")

    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        torch.manual_seed(seed)   # LoRA's initial weights
        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                            target_modules=_target_modules(target_modules), task_type="CAUSAL_LM")
        with warnings.catch_warnings():   # peft calls a transformers API deprecated in 5.x
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(loaded.model, config)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
        order = random.Random(seed)
        losses: list[float] = []
        while len(losses) < total:
            shuffled = order.sample(encoded, len(encoded))
            for start in range(0, len(shuffled), batch_size):
                if len(losses) >= total:
                    break
                batch = _collate(torch, shuffled[start:start + batch_size], tokenizer.pad_token_id)
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                if on_step is not None:
                    on_step(len(losses), total, losses[-1])
        model.eval()
        model_dir = _save(model, loaded, base_model, Path(output_dir), save, template)
    finally:
        torch.set_num_threads(previous_threads)
    return TrainResult(model_dir, len(losses), tuple(losses), len(encoded))


def encode_record(tokenizer: Any, template: str, record: dict[str, Any], max_length: int
                  ) -> tuple[list[int], list[int]] | None:
    """(input ids, labels) for one chat record: the prompt as the backend renders it (labels
    ignored), then the assistant turn as the template closes it. None when nothing of the answer
    fits ``max_length``."""
    messages = record.get("messages") if isinstance(record, dict) else None
    if not messages or not isinstance(messages, list) or messages[-1].get("role") != "assistant":
        raise ValueError("a training record must be {'messages': [..., {'role': 'assistant', "
                         f"'content': ...}}]}}, got {str(record)[:200]}")
    prompt = render_chat(tokenizer, template, messages[:-1], add_generation_prompt=True)
    full = render_chat(tokenizer, template, messages, add_generation_prompt=False)
    # The template's own closing of the assistant turn (end token included) when it extends the
    # prompt as rendered for generation; otherwise the content plus the end-of-sequence token.
    answer = (full[len(prompt):] if full.startswith(prompt)
              else str(messages[-1].get("content", "")) + (tokenizer.eos_token or ""))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return ids, labels


def _target_modules(target_modules: Sequence[str] | str | None) -> Any:
    if target_modules is None or isinstance(target_modules, str):
        return target_modules   # None: peft's default for the architecture; "all-linear"
    return list(target_modules)


def _collate(torch: Any, items: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    width = max(len(ids) for ids, _ in items)
    input_ids = [ids + [pad_id] * (width - len(ids)) for ids, _ in items]
    labels = [lab + [IGNORE] * (width - len(lab)) for _, lab in items]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in items]
    return {"input_ids": torch.tensor(input_ids), "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask)}


def _save(model: Any, loaded: Any, base_model: str, output_dir: Path, save: str, template: str) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = loaded.tokenizer
    tokenizer.chat_template = template   # the template trained on travels with the model
    if save == "adapter":
        with quiet_transformers(), warnings.catch_warnings():
            # peft looks for the base's config.json to see if the vocabulary changed; LoRA never does
            warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
            model.save_pretrained(str(output_dir))
        tokenizer.save_pretrained(str(output_dir))
        base = str(Path(base_model).expanduser().resolve()) if Path(base_model).expanduser().exists() else base_model
        (output_dir / BASE_MANIFEST).write_text(json.dumps({"model": base}), encoding="utf-8")
        return output_dir
    merged = model.merge_and_unload()
    if getattr(merged.config, "quantization_config", None) is not None:
        # Loaded from a GGUF: the weights are plain float32 now; the saved config must not say
        # "gguf", or loading the folder would look for a GGUF file.
        del merged.config.quantization_config
    with quiet_transformers():
        merged.save_pretrained(str(output_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(output_dir))
    return output_dir
