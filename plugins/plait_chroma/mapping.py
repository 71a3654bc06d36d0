"""Translations between plait's retrieval model and Chroma's: where-filters, metadata, distances, errors.

Nothing here imports chromadb at module import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plait.errors import RetrieverUnavailableError

# distance name -> chroma's hnsw "space"
SPACES = {"cosine": "cosine", "l2": "l2", "euclid": "l2", "euclidean": "l2", "ip": "ip", "dot": "ip"}
_SCALARS = (str, int, float, bool)


class ChromaUnavailableError(RetrieverUnavailableError):
    """The Chroma server did not answer after bounded retries; nothing partial was returned."""


@dataclass(frozen=True, slots=True)
class NativeWhere:
    """A Chroma ``where`` document given as ``retriever(q, where={...})``: passed to Chroma verbatim."""

    where: Mapping[str, Any]


def space_name(distance: str) -> str:
    space = SPACES.get(str(distance).lower()) if isinstance(distance, str) else None
    if space is None:
        raise ValueError(f"unknown distance {distance!r} for chroma; use 'cosine' (default), 'l2' or 'ip'")
    return space


def collection_space(collection: Any) -> str:
    """The hnsw space of an existing collection (chroma's default is l2)."""
    # configuration_json is the raw dict; .configuration parses it and warns about the "legacy"
    # embedding-function entry that embedding_function=None leaves there.
    configuration = getattr(collection, "configuration_json", None)
    if not isinstance(configuration, Mapping):
        configuration = getattr(collection, "configuration", None) or {}
    for index in ("hnsw", "spann"):
        space = (configuration.get(index) or {}).get("space")
        if space:
            return str(getattr(space, "value", space))
    metadata = getattr(collection, "metadata", None) or {}      # collections made by chroma < 1.0
    return str(metadata.get("hnsw:space", "l2"))


def score_base(space: str) -> float:
    """``base`` such that plait's score (higher is better) is ``base - distance``.

    cosine: chroma's distance is 1 - cosine similarity, so the score is the cosine similarity;
    ip: the distance is 1 - dot product, so the score is the dot product; l2: minus the
    squared euclidean distance chroma reports.
    """
    return 0.0 if space == "l2" else 1.0


def to_where(filter: Any) -> dict[str, Any] | None:
    """The portable filter as a chroma ``where``; a native where document passes through.

    Portable: ``{"key": value}`` -> ``{"key": {"$eq": value}}``, ``{"key": [v1, v2]}`` ->
    ``{"key": {"$in": [v1, v2]}}``, several keys -> ``{"$and": [...]}``. A dict with an
    operator key (``"$and"``, ``"$or"``) or an operator value (``{"year": {"$gte": 2000}}``) is
    already chroma's where language and is used as it is.
    """
    if isinstance(filter, NativeWhere):
        return dict(filter.where)
    if not isinstance(filter, Mapping):
        raise TypeError(f"chroma filter must be a dict like {{'topic': 'x'}} (or a chroma where document), "
                        f"got {type(filter).__name__}")
    if any(str(key).startswith("$") or isinstance(value, Mapping) for key, value in filter.items()):
        return dict(filter)
    clauses = [{str(key): _clause(str(key), wanted)} for key, wanted in filter.items()]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _clause(key: str, wanted: Any) -> dict[str, Any]:
    if isinstance(wanted, (list, tuple, set, frozenset)):
        values = list(wanted)
        if not values:
            raise ValueError(f"filter value for {key!r} is an empty list: nothing can match; drop the key")
        for value in values:
            _check_scalar(key, value)
        return {"$in": values}
    _check_scalar(key, wanted)
    return {"$eq": wanted}


def _check_scalar(key: str, value: Any) -> None:
    if value is None:
        raise ValueError(f"chroma cannot filter on None (key {key!r}): it does not store null metadata values")
    if not isinstance(value, _SCALARS):
        raise TypeError(f"filter value for {key!r} must be a str, int, float, bool or a list of those, "
                        f"got {type(value).__name__}")


def chroma_metadata(meta: Mapping[str, Any], passage_id: str) -> dict[str, Any] | None:
    """Metadata as chroma stores it: None instead of an empty dict (some versions reject ``{}``),
    None values dropped (chroma stores none), values checked so a bad one fails before any write."""
    if not meta:
        return None
    clean = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings; passage {passage_id!r} has {key!r}")
        if value is None:
            continue
        if isinstance(value, list):
            if not value or not all(isinstance(v, _SCALARS) for v in value):
                raise TypeError(f"passage {passage_id!r}: metadata {key!r} must be a non-empty list of "
                                f"str/int/float/bool for chroma, got {value!r}")
        elif not isinstance(value, _SCALARS):
            raise TypeError(f"passage {passage_id!r}: chroma stores flat metadata (str, int, float, bool or a "
                            f"list of those); {key!r} holds a {type(value).__name__}: flatten it or json.dumps it")
        clean[key] = value
    return clean or None


def is_transient(error: BaseException) -> bool:
    """Errors a retry may cure: the connection failed or timed out, or the server is rate limiting."""
    import httpx

    if isinstance(error, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    # chromadb raises ValueError("Could not connect to a Chroma server...") from an httpx.ConnectError.
    if isinstance(error, ValueError) and isinstance(error.__context__, httpx.TransportError):
        return True
    from chromadb.errors import RateLimitError
    return isinstance(error, RateLimitError)
