"""A STAND-IN for the Pinecone service, used only because no Pinecone engine can run here.

Pinecone is a SaaS and Pinecone Local is Docker-only, so plait's contract run drives the REAL
``pinecone`` SDK (10.x, API version 2026-07) against this stdlib server. It implements exactly
the REST subset that SDK calls for dense vector indexes, with request and response shapes
checked against the SDK's own msgspec models (the SDK decodes every answer strictly):

- control plane: ``GET/POST /indexes``, ``GET/DELETE /indexes/{name}`` (an index created with
  a single ``dense_vector`` field, i.e. ``dimension``/``metric``; always ``ready`` at once);
- data plane, under each index's host ``http://127.0.0.1:PORT/index/{name}``:
  ``POST /vectors/upsert`` (<= 1000 vectors, metadata of strings, numbers, booleans and lists of
  strings, <= 40 KB each; integers come back as floats, as from Pinecone), ``POST /query``
  (``topK``, ``vector`` or ``id``, ``namespace``, ``filter``, ``includeMetadata``,
  ``includeValues``), ``GET /vectors/fetch``, ``POST /vectors/delete`` (ids, ``deleteAll``,
  filter), ``POST /describe_index_stats``;
- scores computed exactly: cosine similarity, dot product, or squared euclidean distance
  (ascending, as Pinecone ranks it); metadata filters ``$eq $ne $gt $gte $lt $lte $in $nin
  $exists $and $or`` plus the ``{"key": value}`` shorthand;
- the ``Api-Key`` header is required (checked against ``api_key=`` when one is given).

Not implemented (answered with an error naming the gap): sparse and hybrid vectors, schema or
document indexes, integrated embedding and the records API, ``configure``, collections,
backups, imports, namespaces management, ``list``/``update``, gRPC, and approximate search
(search here is exact). Real Pinecone gives each index its own hostname; here every index
lives under a path on one port (the SDK joins request paths onto a host with a path).
``scheme_less_hosts=True`` returns hosts without ``http://``, as Pinecone Local does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from plait.testing.conformance._http import ConformanceServer, cosine, dot, is_number

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?$")
_METRICS = ("cosine", "dotproduct", "euclidean")
_MAX_UPSERT = 1000
_MAX_TOP_K = 10_000
_MAX_METADATA_BYTES = 40_960
_DEFAULT_DEPLOYMENT = {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}


class PineconeConformanceServer(ConformanceServer):
    """Serve the Pinecone REST subset above on 127.0.0.1 (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None,
                 scheme_less_hosts: bool = False):
        super().__init__(host, port)
        self.api_key = api_key
        self.scheme_less_hosts = scheme_less_hosts
        self.indexes: dict[str, dict[str, Any]] = {}   # name -> {"model": {...}, "namespaces": {...}}

    def error_payload(self, status: int, message: str) -> Any:
        codes = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 409: "ALREADY_EXISTS", 500: "INTERNAL"}
        return {"error": {"code": codes.get(status, "UNKNOWN"), "message": message}, "status": status}

    def index_host(self, name: str) -> str:
        host = f"{self.url}/index/{name}"
        return host.removeprefix("http://") if self.scheme_less_hosts else host

    # --- routing ------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                 headers: Mapping[str, str]) -> tuple[int, Any]:
        key = headers.get("Api-Key")
        if not key or (self.api_key is not None and key != self.api_key):
            return 401, self.error_payload(401, "Invalid API Key")
        parts = [part for part in path.split("/") if part]
        with self._lock:
            if parts[:1] == ["indexes"]:
                return self._control(method, parts[1:], body)
            if parts[:1] == ["index"] and len(parts) >= 3:
                index = self.indexes.get(parts[1])
                if index is None:
                    return 404, self.error_payload(404, f"index {parts[1]!r} does not exist")
                return self._data(method, "/" + "/".join(parts[2:]), index, query, body or {})
        return 404, self.error_payload(404, f"not implemented by the conformance server: {method} {path}")

    def _control(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if not rest and method == "GET":
            return 200, {"indexes": [index["model"] for index in self.indexes.values()]}
        if not rest and method == "POST":
            return self._create(body or {})
        if len(rest) == 1 and method in ("GET", "DELETE"):
            index = self.indexes.get(rest[0])
            if index is None:
                return 404, self.error_payload(404, f"Resource {rest[0]} not found")
            if method == "GET":
                return 200, index["model"]
            if index["model"]["deletion_protection"] == "enabled":
                return 403, self.error_payload(403, f"deletion protection is enabled for index {rest[0]!r}")
            del self.indexes[rest[0]]
            return 202, None
        route = "/".join(["indexes", *rest])
        return 404, self.error_payload(404, f"not implemented by the conformance server: {method} /{route}")

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            return 400, self.error_payload(400, f"name must be 1-45 lowercase letters, digits or hyphens, got {name!r}")
        if name in self.indexes:
            return 409, self.error_payload(409, f"Resource {name} already exists")
        fields = (body.get("schema") or {}).get("fields") or {}
        if "dimension" in body:   # the 2025-01 shape, accepted too
            fields = {"_values": {"type": "dense_vector", "dimension": body["dimension"],
                                  "metric": body.get("metric", "cosine")}}
        dense = fields.get("_values")
        if set(fields) != {"_values"} or not isinstance(dense, dict) or dense.get("type") != "dense_vector":
            return 400, self.error_payload(400, "the conformance server implements dense vector indexes only "
                                                "(one dense_vector field, as created with dimension= and metric=)")
        dimension, metric = dense.get("dimension"), str(dense.get("metric", "cosine")).lower()
        if not isinstance(dimension, int) or not 1 <= dimension <= 20_000 or metric not in _METRICS:
            return 400, self.error_payload(400, f"dimension must be 1..20000 and metric one of {_METRICS}, "
                                                f"got {dimension!r}, {metric!r}")
        model = {"name": name, "host": self.index_host(name), "status": {"ready": True, "state": "Ready"},
                 "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}},
                 "deployment": body.get("deployment") or dict(_DEFAULT_DEPLOYMENT),
                 "deletion_protection": body.get("deletion_protection") or "disabled", "tags": body.get("tags")}
        self.indexes[name] = {"model": model, "dimension": dimension, "metric": metric, "namespaces": {}}
        return 201, model

    # --- data plane -----------------------------------------------------------------------------
    def _data(self, method: str, route: str, index: dict[str, Any], query: dict[str, list[str]],
              body: dict[str, Any]) -> tuple[int, Any]:
        if method == "POST" and route == "/vectors/upsert":
            return self._upsert(index, body)
        if method == "POST" and route == "/query":
            return self._query(index, body)
        if method == "POST" and route == "/describe_index_stats":
            if body.get("filter"):
                return 400, self.error_payload(400, "describe_index_stats does not accept a filter")
            return 200, self._stats(index)
        if method == "GET" and route == "/vectors/fetch":
            namespace = (query.get("namespace") or [""])[0]
            stored = index["namespaces"].get(namespace, {})
            found = {vid: _record(vid, stored[vid], values=True, metadata=True)
                     for vid in query.get("ids", []) if vid in stored}
            return 200, {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}
        if method == "POST" and route == "/vectors/delete":
            return self._delete(index, body)
        return 404, self.error_payload(404, f"not implemented by the conformance server: {method} {route}")

    def _upsert(self, index: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not 1 <= len(vectors) <= _MAX_UPSERT:
            return 400, self.error_payload(400, f"vectors must be a list of 1..{_MAX_UPSERT} records")
        checked = []
        for record in vectors:
            problem = _check_record(record, index["dimension"])
            if problem:
                return 400, self.error_payload(400, problem)
            metadata = {key: float(value) if is_number(value) else value
                        for key, value in (record.get("metadata") or {}).items()}
            checked.append((record["id"], [float(x) for x in record["values"]], metadata))
        namespace = index["namespaces"].setdefault(body.get("namespace") or "", {})
        for vid, values, metadata in checked:
            namespace[vid] = {"values": values, "metadata": metadata}
        return 200, {"upsertedCount": len(checked)}

    def _query(self, index: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        top_k, namespace_name = body.get("topK"), body.get("namespace") or ""
        if not isinstance(top_k, int) or not 1 <= top_k <= _MAX_TOP_K:
            return 400, self.error_payload(400, f"topK must be an integer in 1..{_MAX_TOP_K}, got {top_k!r}")
        if body.get("sparseVector") is not None:
            return 400, self.error_payload(400, "sparse and hybrid queries are not implemented here")
        stored = index["namespaces"].get(namespace_name, {})
        vector = body.get("vector")
        if vector is None and body.get("id") is not None:
            vector = (stored.get(body["id"]) or {}).get("values")
            if vector is None:
                return 200, {"matches": [], "namespace": namespace_name, "usage": {"readUnits": 1}}
        if not isinstance(vector, list) or len(vector) != index["dimension"]:
            size = len(vector) if isinstance(vector, list) else vector
            return 400, self.error_payload(400, f"Vector dimension {size!r} does not match the dimension of the "
                                                f"index {index['dimension']}")
        wanted = body.get("filter")
        try:
            candidates = [(vid, record) for vid, record in stored.items()
                          if wanted is None or matches(record["metadata"], wanted)]
        except ValueError as exc:
            return 400, self.error_payload(400, f"bad filter: {exc}")
        metric = index["metric"]
        scored = [(_score(metric, vector, record["values"]), vid, record) for vid, record in candidates]
        scored.sort(key=lambda item: (item[0], item[1]), reverse=metric != "euclidean")
        matches_out = [dict(_record(vid, record, values=bool(body.get("includeValues")),
                                    metadata=bool(body.get("includeMetadata"))), score=score)
                       for score, vid, record in scored[:top_k]]
        return 200, {"matches": matches_out, "namespace": namespace_name, "usage": {"readUnits": 1}}

    def _delete(self, index: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        stored = index["namespaces"].get(body.get("namespace") or "", {})
        if body.get("deleteAll"):
            stored.clear()
        elif body.get("ids") is not None:
            for vid in body["ids"]:
                stored.pop(vid, None)
        elif body.get("filter"):
            try:
                doomed = [vid for vid, record in stored.items() if matches(record["metadata"], body["filter"])]
            except ValueError as exc:
                return 400, self.error_payload(400, f"bad filter: {exc}")
            for vid in doomed:
                del stored[vid]
        else:
            return 400, self.error_payload(400, "delete needs ids, deleteAll or a filter")
        return 200, {}

    def _stats(self, index: dict[str, Any]) -> dict[str, Any]:
        namespaces = {name or "__default__": {"vectorCount": len(records)}
                      for name, records in index["namespaces"].items() if records}
        total = sum(summary["vectorCount"] for summary in namespaces.values())
        return {"namespaces": namespaces, "dimension": index["dimension"], "indexFullness": 0.0,
                "totalVectorCount": total, "metric": index["metric"], "vectorType": "dense"}


def _check_record(record: Any, dimension: int) -> str:
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
        return f"each vector needs a non-empty string id, got {record!r:.80}"
    if record.get("sparseValues") is not None:
        return "sparse values are not implemented by the conformance server"
    values = record.get("values")
    if not isinstance(values, list) or len(values) != dimension or not all(is_number(x) for x in values):
        return (f"Vector dimension {len(values) if isinstance(values, list) else values!r} does not match "
                f"the dimension of the index {dimension} (id {record['id']!r})")
    metadata = record.get("metadata")
    if metadata is None:
        return ""
    if not isinstance(metadata, dict):
        return f"metadata must be an object (id {record['id']!r})"
    for key, value in metadata.items():
        ok = isinstance(value, (str, bool)) or is_number(value) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value))
        if not ok:
            return (f"Metadata value must be a string, number, boolean or list of strings, got {value!r:.60} "
                    f"for key {key!r} (id {record['id']!r})")
    if len(json.dumps(metadata).encode()) > _MAX_METADATA_BYTES:
        return f"Metadata size exceeds the limit of {_MAX_METADATA_BYTES} bytes per vector (id {record['id']!r})"
    return ""


def _record(vid: str, record: dict[str, Any], *, values: bool, metadata: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": vid, "values": list(record["values"]) if values else []}
    if metadata and record["metadata"]:
        out["metadata"] = dict(record["metadata"])
    return out


def _score(metric: str, query: list[float], stored: list[float]) -> float:
    if metric == "cosine":
        return cosine(query, stored)
    if metric == "dotproduct":
        return dot(query, stored)
    return sum((a - b) ** 2 for a, b in zip(query, stored))   # squared euclidean distance


# --- metadata filters ------------------------------------------------------------------------

def matches(metadata: Mapping[str, Any], condition: Any) -> bool:
    """Evaluate a Pinecone metadata filter. A list-valued field matches when any element does;
    a missing field fails every operator except ``$ne``, ``$nin`` and ``$exists: false``."""
    if not isinstance(condition, dict):
        raise ValueError(f"a filter must be an object, got {condition!r}")
    for key, clause in condition.items():
        if key == "$and":
            if not all(matches(metadata, part) for part in _clauses(key, clause)):
                return False
        elif key == "$or":
            if not any(matches(metadata, part) for part in _clauses(key, clause)):
                return False
        elif key.startswith("$"):
            raise ValueError(f"unknown top-level operator {key!r}")
        elif isinstance(clause, dict):
            if not all(_field_matches(metadata, key, op, operand) for op, operand in clause.items()):
                return False
        elif not _field_matches(metadata, key, "$eq", clause):
            return False
    return True


def _clauses(op: str, clause: Any) -> list[Any]:
    if not isinstance(clause, list) or not clause:
        raise ValueError(f"{op} takes a non-empty list of conditions")
    return clause


def _field_matches(metadata: Mapping[str, Any], key: str, op: str, operand: Any) -> bool:
    present = key in metadata
    value = metadata.get(key)
    if op == "$exists":
        return present == bool(operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise ValueError(f"{op} takes a list, got {operand!r}")
        hit = present and any(_equal(item, wanted) for item in _items(value) for wanted in operand)
        return hit if op == "$in" else not hit
    if op in ("$eq", "$ne"):
        hit = present and any(_equal(item, operand) for item in _items(value))
        return hit if op == "$eq" else not hit
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not is_number(operand):
            raise ValueError(f"{op} takes a number, got {operand!r}")
        if not present or not is_number(value):
            return False
        return {"$gt": value > operand, "$gte": value >= operand,
                "$lt": value < operand, "$lte": value <= operand}[op]
    raise ValueError(f"unknown operator {op!r}")


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _equal(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    return stored == wanted
