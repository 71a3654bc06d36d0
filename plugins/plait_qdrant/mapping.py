"""Translations between plait's retrieval model and Qdrant's: point ids, filters, distances, errors.

Nothing here imports qdrant-client at module import time; callers pass the SDK's ``models``
module where one is needed, so the translations are testable without a server.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from plait.errors import RetrieverUnavailableError

# Our ids are arbitrary strings; Qdrant accepts only unsigned ints and UUIDs. Every id maps to
# the same UUID in every process (uuid5 under a fixed namespace); the original id lives in the payload.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/plait/plait_qdrant/point-id")
ID_FIELD = "plait_id"

# distance name -> (qdrant Distance value, True when lower scores are better)
DISTANCES: dict[str, tuple[str, bool]] = {
    "cosine": ("Cosine", False),
    "dot": ("Dot", False),
    "euclid": ("Euclid", True), "euclidean": ("Euclid", True), "l2": ("Euclid", True),
    "manhattan": ("Manhattan", True), "l1": ("Manhattan", True),
}
_LOWER_IS_BETTER = {"Euclid", "Manhattan"}


class QdrantUnavailableError(RetrieverUnavailableError):
    """The Qdrant server did not answer after bounded retries; nothing partial was returned."""


def point_id(passage_id: str) -> str:
    """The Qdrant point id (a UUID string) for one of our passage ids."""
    return str(uuid.uuid5(ID_NAMESPACE, passage_id))


def distance_value(name: Any) -> str:
    """Normalise a distance given by name ("cosine", "dot", "euclid", "manhattan") or as a qdrant Distance."""
    value = getattr(name, "value", name)       # models.Distance is a str enum
    if isinstance(value, str):
        if value in _LOWER_IS_BETTER or value in ("Cosine", "Dot"):
            return value
        known = DISTANCES.get(value.lower())
        if known is not None:
            return known[0]
    raise ValueError(f"unknown distance {name!r} for qdrant; use one of 'cosine' (default), 'dot', "
                     f"'euclid' or 'manhattan'")


def lower_is_better(distance: str) -> bool:
    """Qdrant scores Euclid/Manhattan as distances (0 is best); plait's scores are higher-is-better."""
    return distance in _LOWER_IS_BETTER


def vectors_config_dim(vectors: Any, vector_name: str | None, collection: str) -> tuple[int, str]:
    """(size, distance) of the vector we use in an existing collection's ``config.params.vectors``.

    Raises ValueError when the collection's vectors are named and ``vector_name`` does not pick
    one, or the other way round.
    """
    if isinstance(vectors, Mapping):
        names = sorted(vectors)
        if vector_name is None:
            raise ValueError(f"qdrant collection {collection!r} has named vectors {names}; pass "
                             f"vector_name= (one of those) to the qdrant retriever")
        if vector_name not in vectors:
            raise ValueError(f"qdrant collection {collection!r} has no vector named {vector_name!r}; "
                             f"its vectors are {names}")
        params = vectors[vector_name]
    else:
        if vector_name is not None:
            raise ValueError(f"qdrant collection {collection!r} has one unnamed vector, not {vector_name!r}; "
                             f"drop vector_name= or use another collection")
        params = vectors
    return int(params.size), distance_value(params.distance)


def to_qdrant_filter(filter: Any, models: Any, metadata_field: str | None) -> Any:
    """The portable filter (``{"key": value}`` / ``{"key": [v1, v2]}``, AND across keys) as a
    ``models.Filter``; a ``models.Filter`` passes through unchanged."""
    if isinstance(filter, models.Filter):
        return filter
    if not isinstance(filter, Mapping):
        raise TypeError(f"qdrant filter must be a dict like {{'topic': 'x'}} or a qdrant_client.models.Filter, "
                        f"got {type(filter).__name__}")
    prefix = f"{metadata_field}." if metadata_field else ""
    conditions = [_condition(prefix + str(key), wanted, models) for key, wanted in filter.items()]
    return models.Filter(must=conditions) if conditions else None


def _condition(key: str, wanted: Any, models: Any) -> Any:
    if isinstance(wanted, (list, tuple, set, frozenset)):
        values = list(wanted)
        if not values:
            raise ValueError(f"filter value for {key!r} is an empty list: nothing can match; drop the key")
        # MatchAny takes all-str or all-int lists; anything else becomes an OR of single matches.
        if all(isinstance(v, str) for v in values) or all(type(v) is int for v in values):
            return models.FieldCondition(key=key, match=models.MatchAny(any=values))
        return models.Filter(should=[_condition(key, v, models) for v in values])
    if wanted is None:        # the portable filter's None means missing or null
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    if isinstance(wanted, (bool, int, str)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=wanted))
    if isinstance(wanted, float):   # MatchValue takes no floats: an exact range does the same
        return models.FieldCondition(key=key, range=models.Range(gte=wanted, lte=wanted))
    raise TypeError(f"filter value for {key!r} must be a str, int, float, bool, None or a list of those, "
                    f"got {type(wanted).__name__}")


def is_transient(error: BaseException) -> bool:
    """Errors a retry may cure: the transport failed, or the server said it is busy/unavailable."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, ResponseHandlingException):
        # Wraps both transport failures and response-parsing errors; only the former are transient.
        source = getattr(error, "source", None)
        return source is not None and _is_transport_error(source)
    if isinstance(error, UnexpectedResponse):
        return error.status_code in (429, 502, 503, 504)
    code = getattr(error, "code", None)
    if type(error).__module__.startswith("grpc") and callable(code):
        return getattr(code(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
    return _is_transport_error(error)


def _is_transport_error(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx ships with qdrant-client
        return False
    return isinstance(error, httpx.TransportError)
