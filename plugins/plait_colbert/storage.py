"""The colbert-local index on disk, and the packed token matrix searched in memory.

A folder holds ``manifest.json`` (format, encoder name and dim, then one entry per passage: id,
text, metadata, token count) and the token vectors of every passage, stacked in passage order,
in ``tokens-<random>.npy``. Saving writes a new tokens file, then replaces the manifest that
names it (temp file, fsync, rename): a crash leaves either the old index or the new one, never
a mix. Unreferenced tokens files are removed after the manifest is replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.errors import StateError
from plait.primitives.persistence import save_state

FORMAT = "plait.colbert-local"
VERSION = 1
MANIFEST = "manifest.json"
CHUNK_TOKENS = 65536   # passage tokens scored per matrix product: bounds the scratch memory


@dataclass(frozen=True)
class Packed:
    """All passages' token rows in one float32 matrix; ``starts[i]`` is passage i's first row."""

    tokens: Any
    starts: Any
    chunks: list[tuple[int, int]]   # passage ranges [first, last) scored together


def pack(docs: list[Any], dim: int, chunk_tokens: int | None = None) -> Packed:
    import numpy as np

    limit = CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
    empty = np.zeros((1, dim), dtype=np.float32)   # reduceat needs >= 1 row per passage
    rows = [doc if doc.shape[0] else empty for doc in docs]
    counts = np.array([row.shape[0] for row in rows], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    chunks: list[tuple[int, int]] = []
    first, size = 0, 0
    for index, count in enumerate(counts.tolist()):
        if size and size + count > limit:
            chunks.append((first, index))
            first, size = index, 0
        size += count
    chunks.append((first, len(rows)))
    return Packed(np.concatenate(rows), starts, chunks)


def exists(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def save(path: Path, encoder: Any, ids: list[str], texts: list[str], metas: list[dict[str, Any]],
         docs: list[Any]) -> None:
    import numpy as np

    path.mkdir(parents=True, exist_ok=True)
    tokens_name = f"tokens-{os.urandom(8).hex()}.npy"
    matrix = np.concatenate(docs) if docs else np.zeros((0, encoder.dim), dtype=np.float32)
    temp = path / f".{tokens_name}.tmp"
    with open(temp, "wb") as handle:
        np.save(handle, matrix.astype(np.float32, copy=False), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path / tokens_name)
    manifest = {"format": FORMAT, "version": VERSION, "encoder": encoder.name, "dim": int(encoder.dim),
                "tokens_file": tokens_name,
                "passages": [{"id": pid, "text": text, "metadata": meta, "tokens": int(doc.shape[0])}
                             for pid, text, meta, doc in zip(ids, texts, metas, docs)]}
    save_state(path / MANIFEST, manifest)
    for stale in path.glob("tokens-*.npy"):
        if stale.name != tokens_name:
            stale.unlink(missing_ok=True)


def load(path: Path, encoder: Any) -> tuple[list[str], list[str], list[dict[str, Any]], list[Any]]:
    import json

    import numpy as np

    source = path / MANIFEST
    try:
        manifest = json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StateError(f"{source} is not a readable colbert-local manifest ({error}); delete the "
                         f"folder {path} and index the corpus again") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StateError(f"{source} is not a colbert-local index (format {_get(manifest, 'format')!r}, "
                         f"expected {FORMAT!r}); point path= at an empty folder or a colbert-local index")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise StateError(f"{source} has version {manifest.get('version')!r}; this plait reads up to "
                         f"version {VERSION}: upgrade plait or rebuild the index")
    if manifest.get("encoder") != encoder.name or manifest.get("dim") != encoder.dim:
        raise StateError(f"the index at {path} was built with the token encoder {manifest.get('encoder')!r} "
                         f"(dim {manifest.get('dim')}), but this retriever uses {encoder.name!r} (dim "
                         f"{encoder.dim}); queries must be encoded by the same model as the passages: pass "
                         f"the same encoder/model, or rebuild the index in a new folder")
    passages = manifest.get("passages")
    tokens_file = manifest.get("tokens_file")
    if not isinstance(passages, list) or not isinstance(tokens_file, str) or "/" in tokens_file:
        raise StateError(f"{source} is damaged ('passages' or 'tokens_file' missing); rebuild the index")
    try:
        matrix = np.load(path / tokens_file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise StateError(f"cannot read the token vectors of the index at {path} ({error}); rebuild the "
                         f"index") from error
    counts = [entry.get("tokens") if isinstance(entry, dict) else None for entry in passages]
    if (any(not isinstance(count, int) or count < 0 for count in counts) or matrix.ndim != 2
            or matrix.shape[1] != encoder.dim or sum(counts) != matrix.shape[0]):
        raise StateError(f"the index at {path} is inconsistent: the manifest lists {len(passages)} passages "
                         f"but the token file has shape {matrix.shape}; rebuild the index")
    ids, texts, metas, docs = [], [], [], []
    offset = 0
    for entry, count in zip(passages, counts):
        ids.append(str(entry["id"]))
        texts.append(str(entry["text"]))
        metas.append(dict(entry.get("metadata") or {}))
        docs.append(np.ascontiguousarray(matrix[offset:offset + count], dtype=np.float32))
        offset += count
    return ids, texts, metas, docs


def _get(document: Any, key: str) -> Any:
    return document.get(key) if isinstance(document, dict) else None
