"""The config file of ``plait serve retriever CONFIG`` (JSON, or TOML when it ends in .toml).

One object; ``retriever`` names a registered retriever (``plait plugins`` lists them) and every
key that is not one of the server's own below is passed to ``plait.retriever(name, **settings)``::

    retriever = "colbert-local"     # required
    path = "index"                  # a retriever setting: relative paths are relative to this file
    corpus = "passages.jsonl"       # optional: indexed at start when the retriever is empty
    embedder = {name = "hashing", dim = 1024}   # optional: plait.embedder(name, **rest) -> embedder=
    allow_writes = false            # optional: enable POST /add and POST /clear
    max_k = 100                     # optional: the largest k a request may ask for

The corpus is JSON Lines: one ``{"text": ..., "id": ..., "metadata": {...}}`` per line (``id`` and
``metadata`` optional; any other keys join the metadata; a bare JSON string is a text). A persistent
retriever that already holds passages is not re-indexed: delete its folder to rebuild it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_KEYS = frozenset({"retriever", "embedder", "corpus", "allow_writes", "max_k"})
PATH_KEYS = ("path",)           # retriever settings resolved relative to the config file
ADD_BATCH = 512                 # corpus passages per add() call at start


@dataclass(frozen=True)
class RetrieverConfig:
    retriever: str
    settings: dict[str, Any] = field(default_factory=dict)
    embedder: dict[str, Any] | None = None
    corpus: Path | None = None
    allow_writes: bool = False
    max_k: int = 100
    source: str = "config"


def read_config(path: str | Path) -> RetrieverConfig:
    """Read and check a config file; raises ValueError naming the file and the problem."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"retriever config {source} does not exist; write a JSON or TOML file such as "
                                f'{{"retriever": "bm25", "path": "index", "corpus": "passages.jsonl"}}')
    text = source.read_text(encoding="utf-8")
    try:
        if source.suffix.lower() == ".toml":
            import tomllib
            document = tomllib.loads(text)
        else:
            document = json.loads(text)
    except ValueError as error:   # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ValueError(f"{source} is not valid {'TOML' if source.suffix.lower() == '.toml' else 'JSON'}: "
                         f"{error}") from error
    return parse_config(document, source=str(source), base=source.parent)


def parse_config(document: Any, *, source: str = "config", base: Path | None = None) -> RetrieverConfig:
    base = Path.cwd() if base is None else base
    if not isinstance(document, dict):
        raise ValueError(f"{source} must hold one object with a 'retriever' key, got a {type(document).__name__}")
    name = document.get("retriever")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{source} must name a registered retriever: \"retriever\": \"bm25\" (or memory, "
                         f"colbert-local, qdrant, ...; `plait plugins` lists them)")
    settings = {key: value for key, value in document.items() if key not in SERVER_KEYS}
    for key in PATH_KEYS:
        if isinstance(settings.get(key), str) and settings[key] != ":memory:":
            settings[key] = str(base / Path(settings[key]).expanduser())
    corpus = document.get("corpus")
    if corpus is not None and not isinstance(corpus, str):
        raise ValueError(f"{source}: corpus must be the path of a .jsonl file, got {corpus!r}")
    allow_writes = document.get("allow_writes", False)
    if not isinstance(allow_writes, bool):
        raise ValueError(f"{source}: allow_writes must be true or false, got {allow_writes!r}")
    max_k = document.get("max_k", 100)
    if not isinstance(max_k, int) or isinstance(max_k, bool) or max_k < 1:
        raise ValueError(f"{source}: max_k must be a positive integer, got {max_k!r}")
    return RetrieverConfig(name, settings, _embedder_spec(document.get("embedder"), source),
                           None if corpus is None else base / Path(corpus).expanduser(),
                           allow_writes, max_k, source)


def _embedder_spec(value: Any, source: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return dict(value)
    raise ValueError(f"{source}: embedder must be a registered embedder name or an object with a 'name', "
                     f"e.g. {{\"name\": \"sentence-transformers\"}}; got {value!r}")


def build_retriever(config: RetrieverConfig) -> Any:
    """Create the configured retriever and index the corpus into it when it is empty."""
    import plait

    settings = dict(config.settings)
    if config.embedder is not None:
        options = dict(config.embedder)
        settings["embedder"] = plait.embedder(options.pop("name"), **options)
    retriever = plait.retriever(config.retriever, **settings)
    if config.corpus is not None and _size(retriever) in (None, 0):
        texts, ids, metadata = read_corpus(config.corpus)
        for start in range(0, len(texts), ADD_BATCH):
            end = start + ADD_BATCH
            retriever.add(texts[start:end], ids[start:end], metadata[start:end])
    return retriever


def read_corpus(path: str | Path) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Read a JSON Lines corpus; a missing id becomes the text's stable id."""
    from plait.retrieve import text_id

    texts: list[str] = []
    ids: list[str] = []
    metadata: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}:{number} is not valid JSON ({error}); each line must be one "
                                 f'{{"text": ..., "id": ..., "metadata": {{...}}}} object') from error
            if isinstance(record, str):
                record = {"text": record}
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}:{number} has no \"text\" string; each line must be one "
                                 f'{{"text": ..., "id": ..., "metadata": {{...}}}} object')
            meta = record.get("metadata") or {}
            if not isinstance(meta, dict):
                raise ValueError(f"{path}:{number}: metadata must be an object, got {meta!r}")
            extra = {key: value for key, value in record.items() if key not in ("text", "id", "metadata")}
            texts.append(record["text"])
            ids.append(str(record["id"]) if record.get("id") is not None else text_id(record["text"]))
            metadata.append({**extra, **meta})
    return texts, ids, metadata


def _size(retriever: Any) -> int | None:
    try:
        return len(retriever)
    except TypeError:
        return None
