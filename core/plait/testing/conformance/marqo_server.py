"""A STAND-IN for a Marqo 2.x server, used only because no Marqo engine can run here.

Marqo ships only as a Docker image (Marqo plus an embedded Vespa), so plait's contract run
drives the REAL ``marqo`` client (3.x) against this stdlib server. It implements exactly the
REST subset that client calls for unstructured indexes, with the shapes the client reads:

- ``GET /`` (the client's one-off version check; answers ``version``), ``GET /indexes``,
  ``POST /indexes/{name}`` (create; unstructured only), ``DELETE /indexes/{name}``,
  ``GET /indexes/{name}/stats`` and ``/settings``;
- ``POST /indexes/{name}/documents`` (add-or-replace by ``_id``; ``tensorFields`` required,
  ``mappings`` of type ``custom_vector`` with ``{"content", "vector"}`` values; per-document
  errors reported in ``items`` with ``errors: true``, as Marqo does),
  ``GET /indexes/{name}/documents/{id}``, ``POST /indexes/{name}/documents/delete-batch``;
- ``POST /indexes/{name}/search`` with ``searchMethod`` TENSOR: ``q`` (text or weighted dict),
  ``context.tensor`` vectors (with a dict ``q`` or no ``q``), ``searchableAttributes``,
  ``limit`` (<= 1000), ``offset``, ``attributesToRetrieve``, ``showHighlights`` and ``filter``
  in Marqo's filter DSL subset: ``field:value``, ``field:(value with spaces)``, numeric
  ``field:[a TO b]``, backslash escapes, ``AND``, ``OR``, ``NOT`` and parentheses. Hits carry
  ``_id``, ``_score``, ``_highlights`` and the stored fields.

Deliberate differences from real Marqo, each a reason to run tests/docker where Docker exists:
the index's model is recorded, NEVER loaded: text is embedded by plait's HashingEmbedder
(``stand_in_dim`` dimensions) as a stand-in, so scores do not resemble e5's; ``no_model``
indexes take only custom vectors, as in Marqo. Text is not chunked (one vector per field).
``_score`` is the exact cosine similarity (Marqo reports its own Vespa relevance, monotone in
similarity but not equal to it). Not implemented (answered with an error naming the gap):
structured indexes, LEXICAL and HYBRID search, images/audio/video, multimodal combinations,
score modifiers, boosts, facets, sorting, re-rankers, update_documents, bulk search, recommend,
embed, and the filter DSL's wildcards; string filters match the whole value exactly.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from plait.testing.conformance._filter_dsl import parse_filter
from plait.testing.conformance._http import ConformanceServer, cosine, is_number, norm

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]{0,127}$")
_MAX_LIMIT = 1000
_SEARCH_KEYS = {"q", "searchableAttributes", "searchMethod", "limit", "offset", "efSearch", "approximate",
                "approximateThreshold", "showHighlights", "reRanker", "filter", "attributesToRetrieve",
                "boost", "image_download_headers", "mediaDownloadHeaders", "context", "scoreModifiers",
                "modelAuth", "textQueryPrefix", "hybridParameters", "rerankDepth", "facets", "trackTotalHits",
                "language", "sortBy", "relevanceCutoff", "interpolationMethod", "collapseFields"}
_NOT_IMPLEMENTED = ("reRanker", "boost", "scoreModifiers", "hybridParameters", "facets", "sortBy",
                    "relevanceCutoff", "collapseFields")


class MarqoConformanceServer(ConformanceServer):
    """Serve the Marqo REST subset above on 127.0.0.1 (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, version: str = "2.23.1",
                 stand_in_dim: int = 1024):
        super().__init__(host, port)
        self.version = version
        self.stand_in_dim = stand_in_dim
        self.indexes: dict[str, dict[str, Any]] = {}
        self._embedder: Any = None

    def error_payload(self, status: int, message: str, code: str = "invalid_argument") -> Any:
        return {"message": message, "code": code, "type": "invalid_request", "link": ""}

    # --- routing ------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                 headers: Mapping[str, str]) -> tuple[int, Any]:
        parts = [part for part in path.split("/") if part]
        if not parts and method == "GET":
            return 200, {"message": "Welcome to Marqo", "version": self.version}
        with self._lock:
            if parts == ["indexes"] and method == "GET":
                return 200, {"results": [{"indexName": name} for name in self.indexes]}
            if len(parts) >= 2 and parts[0] == "indexes":
                name, rest = parts[1], parts[2:]
                if not rest and method == "POST":
                    return self._create(name, body or {})
                index = self.indexes.get(name)
                if index is None:
                    return 404, self.error_payload(404, f"Index {name} does not exist", "index_not_found")
                return self._index_route(method, name, index, rest, body)
        return 404, self.error_payload(404, f"not implemented by the conformance server: {method} {path}",
                                       "not_found")

    def _index_route(self, method: str, name: str, index: dict[str, Any], rest: list[str],
                     body: Any) -> tuple[int, Any]:
        if not rest and method == "DELETE":
            del self.indexes[name]
            return 200, {"acknowledged": True}
        if rest == ["stats"] and method == "GET":
            docs = index["documents"]
            return 200, {"numberOfDocuments": len(docs),
                         "numberOfVectors": sum(len(doc["vectors"]) for doc in docs.values())}
        if rest == ["settings"] and method == "GET":
            return 200, index["settings"]
        if rest == ["documents"] and method == "POST":
            return self._add(index, body or {})
        if rest == ["documents", "delete-batch"] and method == "POST":
            ids = body if isinstance(body, list) else []
            items = []
            for doc_id in ids:
                existed = index["documents"].pop(doc_id, None) is not None
                items.append({"_id": doc_id, "status": 200 if existed else 404,
                              "result": "deleted" if existed else "not_found"})
            return 200, {"index_name": name, "status": "succeeded", "type": "documentDeletion", "items": items,
                         "details": {"receivedDocumentIds": len(ids),
                                     "deletedDocuments": sum(item["status"] == 200 for item in items)}}
        if len(rest) == 2 and rest[0] == "documents" and method == "GET":
            doc = index["documents"].get(rest[1])
            if doc is None:
                return 404, self.error_payload(404, f"Document does not exist with _id {rest[1]}",
                                               "document_not_found")
            return 200, {"_id": rest[1], **doc["fields"]}
        if rest == ["search"] and method == "POST":
            return self._search(index, body or {})
        return 404, self.error_payload(404, f"not implemented by the conformance server: {method} "
                                            f"/indexes/{name}/{'/'.join(rest)}", "not_found")

    # --- indexes ------------------------------------------------------------------------------
    def _create(self, name: str, settings: dict[str, Any]) -> tuple[int, Any]:
        if not _NAME.match(name):
            return 400, self.error_payload(400, f"{name!r} is not a valid index name", "invalid_index_name")
        if name in self.indexes:
            return 409, self.error_payload(409, f"Index {name} already exists", "index_already_exists")
        if settings.get("type", "unstructured") != "unstructured":
            return 400, self.error_payload(400, "the conformance server implements unstructured indexes only")
        model = settings.get("model") or "hf/e5-base-v2"
        properties = settings.get("modelProperties") or {}
        if model == "no_model" or properties.get("type") == "no_model":
            dimension = properties.get("dimensions")
            if not isinstance(dimension, int) or dimension < 1:
                return 400, self.error_payload(400, "no_model indexes need modelProperties "
                                                    "{'type': 'no_model', 'dimensions': N}")
            embeds_text = False
        else:
            dimension, embeds_text = self.stand_in_dim, True
        stored = {"type": "unstructured", "model": model, "modelProperties": properties,
                  "normalizeEmbeddings": settings.get("normalizeEmbeddings", True),
                  "filterStringMaxLength": settings.get("filterStringMaxLength", 50)}
        self.indexes[name] = {"settings": stored, "dimension": dimension, "embeds_text": embeds_text,
                              "documents": {}}
        return 200, {"acknowledged": True, "index": name}

    # --- documents ------------------------------------------------------------------------------
    def _add(self, index: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        started = time.perf_counter()
        documents, tensor_fields = body.get("documents"), body.get("tensorFields")
        if not isinstance(documents, list) or not documents:
            return 400, self.error_payload(400, "documents must be a non-empty list")
        if not isinstance(tensor_fields, list):
            return 400, self.error_payload(400, "tensor_fields must be explicitly provided for unstructured indexes")
        mappings = body.get("mappings") or {}
        items = []
        for doc in documents:
            doc_id = doc.get("_id") if isinstance(doc, dict) else None
            doc_id = doc_id if doc_id is not None else str(uuid.uuid4())
            try:
                fields, vectors = self._document(index, doc, tensor_fields, mappings)
            except ValueError as exc:
                items.append({"_id": doc_id, "error": str(exc), "message": str(exc), "status": 400,
                              "code": "invalid_argument"})
                continue
            index["documents"][doc_id] = {"fields": fields, "vectors": vectors}
            items.append({"_id": doc_id, "result": "created", "status": 201})
        errors = any(item["status"] >= 400 for item in items)
        return 200, {"errors": errors, "processingTimeMs": (time.perf_counter() - started) * 1000,
                     "index_name": body.get("index_name", ""), "items": items}

    def _document(self, index: dict[str, Any], doc: Any, tensor_fields: list[str],
                  mappings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[float]]]:
        if not isinstance(doc, dict):
            raise ValueError("each document must be an object")
        if "_id" in doc and (not isinstance(doc["_id"], str) or not doc["_id"]):
            raise ValueError(f"_id must be a non-empty string, got {doc['_id']!r}")
        fields: dict[str, Any] = {}
        vectors: dict[str, list[float]] = {}
        texts: dict[str, str] = {}
        for key, value in doc.items():
            if key == "_id":
                continue
            if key.startswith("_") or key.startswith("marqo__"):
                raise ValueError(f"field name {key!r} is reserved")
            kind = (mappings.get(key) or {}).get("type")
            if kind == "custom_vector":
                vector = value.get("vector") if isinstance(value, dict) else None
                content = value.get("content", "") if isinstance(value, dict) else None
                if (not isinstance(vector, list) or len(vector) != index["dimension"]
                        or not all(is_number(x) for x in vector) or not isinstance(content, str)
                        or set(value) - {"vector", "content"}):
                    raise ValueError(f"custom_vector field {key!r} needs {{'content': str, 'vector': "
                                     f"[{index['dimension']} numbers]}}")
                fields[key] = content
                if key in tensor_fields:
                    vectors[key] = self._normalised(index, [float(x) for x in vector])
            elif kind is not None:
                raise ValueError(f"mapping type {kind!r} is not implemented by the conformance server")
            elif isinstance(value, (str, bool)) or is_number(value) or (
                    isinstance(value, list) and all(isinstance(item, str) for item in value)):
                fields[key] = value
                if key in tensor_fields:
                    if not isinstance(value, str):
                        raise ValueError(f"tensor field {key!r} must hold text here, got {type(value).__name__}")
                    texts[key] = value
            else:
                raise ValueError(f"field {key!r} has an unsupported value type {type(value).__name__}")
        if texts:
            if not index["embeds_text"]:
                raise ValueError("this index has no model (no_model): text fields cannot be vectorised; "
                                 "send custom_vector fields")
            embedded = self._embed(list(texts.values()))
            for key, vector in zip(texts, embedded):
                vectors[key] = self._normalised(index, vector)
        return fields, vectors

    # --- search -----------------------------------------------------------------------------------
    def _search(self, index: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        started = time.perf_counter()
        unknown = set(body) - _SEARCH_KEYS
        if unknown:
            return 400, self.error_payload(400, f"extra fields not permitted: {sorted(unknown)}")
        unsupported = [key for key in _NOT_IMPLEMENTED if body.get(key) is not None]
        method = str(body.get("searchMethod", "TENSOR")).upper()
        if unsupported or method != "TENSOR":
            return 400, self.error_payload(400, f"not implemented by the conformance server: "
                                                f"{unsupported or 'searchMethod ' + method}")
        limit, offset = body.get("limit", 10), body.get("offset", 0)
        if not isinstance(limit, int) or not 1 <= limit <= _MAX_LIMIT or not isinstance(offset, int) or offset < 0:
            return 400, self.error_payload(400, f"limit must be 1..{_MAX_LIMIT} and offset >= 0")
        try:
            query_vector = self._query_vector(index, body.get("q"), body.get("context"))
            predicate = parse_filter(body["filter"]) if body.get("filter") else None
        except ValueError as exc:
            return 400, self.error_payload(400, str(exc))
        searchable = body.get("searchableAttributes")
        retrieve = body.get("attributesToRetrieve")
        hits = []
        for doc_id, doc in index["documents"].items():
            if predicate is not None and not predicate({"_id": doc_id, **doc["fields"]}):
                continue
            scored = [(cosine(query_vector, vector), field) for field, vector in doc["vectors"].items()
                      if searchable is None or field in searchable]
            if not scored:
                continue
            score, field = max(scored)
            shown = {key: value for key, value in doc["fields"].items() if retrieve is None or key in retrieve}
            hit = {"_id": doc_id, **shown, "_score": score}
            if body.get("showHighlights", True):
                hit["_highlights"] = [{field: doc["fields"].get(field, "")}]
            hits.append(hit)
        hits.sort(key=lambda hit: (-hit["_score"], hit["_id"]))
        return 200, {"hits": hits[offset:offset + limit], "query": body.get("q"), "limit": limit, "offset": offset,
                     "processingTimeMs": (time.perf_counter() - started) * 1000}

    def _query_vector(self, index: dict[str, Any], q: Any, context: Any) -> list[float]:
        tensors = (context or {}).get("tensor") if isinstance(context, dict) else None
        if context is not None and (not isinstance(tensors, list) or set(context) != {"tensor"}):
            raise ValueError("context must be {'tensor': [{'vector': [...], 'weight': w}, ...]}")
        if isinstance(q, str) and tensors is not None:
            raise ValueError("This is not supported as the context only works when the query is a dictionary.")
        weighted: list[tuple[float, list[float]]] = []
        texts = {q: 1.0} if isinstance(q, str) else dict(q or {})
        if texts:
            if not index["embeds_text"]:
                raise ValueError("this index has no model (no_model): a text query cannot be vectorised; "
                                 "search with context vectors")
            weighted += [(float(weight), vector) for weight, vector in zip(texts.values(), self._embed(list(texts)))]
        for item in tensors or []:
            vector = item.get("vector") if isinstance(item, dict) else None
            if not isinstance(vector, list) or len(vector) != index["dimension"]:
                raise ValueError("The dimension of the vectors returned by the model or given by the context "
                                 "vectors does not match the expected dimension")
            weighted.append((float(item.get("weight", 1.0)), [float(x) for x in vector]))
        if not weighted:
            raise ValueError("tensor search needs a query q or context vectors")
        return [sum(weight * vector[i] for weight, vector in weighted) for i in range(index["dimension"])]

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if self._embedder is None:
            from plait.retrieve.embedder import HashingEmbedder
            self._embedder = HashingEmbedder(dim=self.stand_in_dim)
        return [row.tolist() for row in self._embedder.embed(texts)]

    @staticmethod
    def _normalised(index: dict[str, Any], vector: list[float]) -> list[float]:
        if not index["settings"]["normalizeEmbeddings"]:
            return vector
        length = norm(vector)
        return [x / length for x in vector] if length else vector
