"""The on-disk layout of a persisted BM25 index, written so that a crash never leaves it half-done.

A folder holds::

    manifest.json          {"format": "plait-bm25", "version": 1, "generation": N,
                            "segments": ["corpus-000003.jsonl", ...], "index": "index-000004" | null,
                            "params": {...}, "count": n}
    corpus-<gen>.jsonl     one {"id", "text", "metadata"} per line; later segments override ids
    index-<gen>/           bm25s's own files (BM25.save), built from every segment listed

``add`` appends one segment (cost proportional to the batch, not the corpus) and drops the
index; a rebuilt index is saved together with one compacted segment. Every file is written
under a temporary name, fsynced and renamed; the manifest is replaced last (``os.replace`` is
atomic), so a reader sees either the old state or the new one. Files no manifest names are
removed afterwards. One process writes a folder at a time.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.errors import PlaitError

FORMAT = "plait-bm25"
VERSION = 1
MANIFEST = "manifest.json"


class CorruptIndexError(PlaitError, ValueError):
    """A BM25 index folder cannot be read back (names the folder and what is wrong)."""


@dataclass
class Manifest:
    generation: int = 0
    segments: list[str] = field(default_factory=list)
    index: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "generation": self.generation, "segments": self.segments,
                "index": self.index, "params": self.params, "count": self.count}


def corrupt(folder: Path, problem: str) -> CorruptIndexError:
    return CorruptIndexError(f"the BM25 index folder {str(folder)!r} is corrupt or not a plait BM25 index: "
                             f"{problem}. Delete the folder (or pass another path=) and add the texts again.")


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest; None for a folder that does not exist or is empty (a new index)."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise corrupt(folder, "it is a file, not a folder")
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        if any(folder.iterdir()):
            raise corrupt(folder, f"it has files but no {MANIFEST}")
        return None
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise corrupt(folder, f"{MANIFEST} is unreadable ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise corrupt(folder, f"{MANIFEST} is not a {FORMAT} manifest")
    if raw.get("version") != VERSION:
        raise corrupt(folder, f"format version {raw.get('version')!r} is not the supported {VERSION}")
    try:
        manifest = Manifest(int(raw["generation"]), [str(s) for s in raw["segments"]],
                            None if raw["index"] is None else str(raw["index"]), dict(raw["params"]),
                            int(raw["count"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise corrupt(folder, f"{MANIFEST} lacks or garbles {exc}") from None
    for name in [*manifest.segments, *([manifest.index] if manifest.index else [])]:
        if "/" in name or "\\" in name or name.startswith(".") or not (folder / name).exists():
            raise corrupt(folder, f"{MANIFEST} names {name!r}, which is missing")
    return manifest


def read_segments(folder: Path, manifest: Manifest) -> dict[str, tuple[str, dict[str, Any]]]:
    """id -> (text, metadata) over every segment in order.

    A later segment replaces an earlier id's text and metadata in place (its position stays
    that of its first add), as upserts do in memory.
    """
    rows: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in manifest.segments:
        where = name
        try:
            with open(folder / name, encoding="utf-8") as stream:
                for number, line in enumerate(stream, 1):
                    where = f"{name} line {number}"
                    record = json.loads(line)
                    text, meta = record["text"], record["metadata"]
                    if not isinstance(text, str) or not isinstance(meta, dict):
                        raise TypeError("text must be a string and metadata an object")
                    rows[str(record["id"])] = (text, meta)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise corrupt(folder, f"{where} is unreadable ({type(exc).__name__}: {exc})") from None
    if len(rows) != manifest.count:
        raise corrupt(folder, f"the segments hold {len(rows)} passages but {MANIFEST} says {manifest.count}")
    return rows


def write_segment(folder: Path, name: str, records: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
    lines = [json.dumps({"id": pid, "text": text, "metadata": meta}, ensure_ascii=False) + "\n"
             for pid, text, meta in records]
    temporary = folder / f".{name}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.writelines(lines)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, folder / name)


def write_index(folder: Path, name: str, model: Any) -> None:
    """bm25s's files into ``folder/name`` (built in a temporary folder, fsynced, renamed)."""
    temporary = folder / f".{name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    model.save(str(temporary), show_progress=False)
    for path in temporary.iterdir():
        with open(path, "rb") as stream:
            os.fsync(stream.fileno())
    shutil.rmtree(folder / name, ignore_errors=True)
    os.replace(temporary, folder / name)


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically, then delete the files it no longer names."""
    temporary = folder / f".{MANIFEST}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(manifest.to_json(), stream, ensure_ascii=False)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, folder / MANIFEST)
    _fsync_folder(folder)
    keep = {MANIFEST, *manifest.segments, *([manifest.index] if manifest.index else [])}
    for path in folder.iterdir():
        if path.name not in keep and (path.name.startswith(("corpus-", "index-")) or path.name.endswith(".tmp")):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def load_index(folder: Path, manifest: Manifest) -> Any:
    import bm25s

    try:
        model = bm25s.BM25.load(str(folder / manifest.index), load_corpus=False, mmap=False, show_progress=False)
    except Exception as exc:   # bm25s raises whatever numpy/json raise on bad files
        raise corrupt(folder, f"bm25s cannot load {manifest.index} ({type(exc).__name__}: {exc})") from None
    if int(model.scores["num_docs"]) != manifest.count:
        raise corrupt(folder, f"{manifest.index} indexes {model.scores['num_docs']} passages, the corpus "
                              f"has {manifest.count}")
    return model


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return   # some platforms cannot open folders; the rename is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
