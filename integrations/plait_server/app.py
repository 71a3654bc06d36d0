"""The HTTP app: ``create_app(retriever=..., program=...)`` -> a FastAPI application.

Endpoints (those of a part not served are left out):

- ``GET /search?query=...&k=...`` and ``POST /search`` ``{"query", "k"}``: the ColBERTv2 protocol, so
  DSPy's ``dspy.ColBERTv2`` and ``plait.ColBERTv2`` can query any plait retriever. Answers
  ``{"query", "topk": [{"text", "long_text", "pid", "rank", "score", "prob", <metadata keys>}]}``
  (``prob``: softmax of the returned scores; metadata keys named like a hit field are left out
  here, ``/retrieve`` carries metadata whole).
- ``POST /retrieve`` ``{"queries": [...], "k": 3, "filter": {...}}`` -> ``{"results": [[passage]]}``
  with passages as ``{"text", "score", "id", "metadata"}``.
- ``POST /add`` ``{"texts", "ids", "metadata"}`` -> ``{"ids"}`` and ``POST /clear``: plait extensions,
  refused (403) unless the app was made with ``allow_writes=True``.
- ``POST /predict`` ``{"inputs": {...}}`` -> ``{"prediction": {...}}`` when a program is served.
- ``GET /health``; the OpenAPI schema at ``/openapi.json`` and docs at ``/docs``.

Errors answer ``{"error": true, "message": "...", "detail": ...}``: 422 for a malformed request, 400
when the retriever or program rejects the input, 403 for writes on a read-only server, 500 else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

HIT_FIELDS = ("text", "long_text", "pid", "rank", "score", "prob")


class SearchRequest(BaseModel):
    query: str
    k: int = Field(10, description="number of passages, 1..max_k (default max_k 100)")


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="allow")   # passage metadata rides along as extra keys
    text: str
    long_text: str
    pid: str | None
    rank: int
    score: float
    prob: float


class SearchResponse(BaseModel):
    query: str
    topk: list[SearchHit]


class PassageOut(BaseModel):
    text: str
    score: float
    id: str | None
    metadata: dict[str, Any]


class RetrieveRequest(BaseModel):
    queries: list[str]
    k: int = Field(3, description="passages per query, 1..max_k")
    filter: dict[str, Any] | None = Field(None, description='{"key": value} or {"key": [v1, v2]}')


class RetrieveResponse(BaseModel):
    results: list[list[PassageOut]]


class AddRequest(BaseModel):
    texts: list[str]
    ids: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None


class AddResponse(BaseModel):
    ids: list[str]


class PredictRequest(BaseModel):
    inputs: dict[str, Any]


class PredictResponse(BaseModel):
    prediction: dict[str, Any]


def create_app(retriever: Any = None, program: Any = None, *, allow_writes: bool = False,
               max_k: int = 100, title: str = "plait server") -> FastAPI:
    """Serve a retriever (``/search``, ``/retrieve``, ``/add``, ``/clear``) and/or a program (``/predict``)."""
    if retriever is None and program is None:
        raise ValueError("create_app needs a retriever, a program or both: create_app(retriever=...) or "
                         "create_app(program=...)")
    if retriever is not None and not callable(getattr(retriever, "search", None)):
        raise TypeError(f"retriever must be a plait Retriever (with search()), got {type(retriever).__name__}")
    if program is not None and not callable(program):
        raise TypeError(f"program must be callable (a plait Module), got {type(program).__name__}")
    if not isinstance(max_k, int) or isinstance(max_k, bool) or max_k < 1:
        raise ValueError(f"max_k must be a positive int, got {max_k!r}")

    app = FastAPI(title=title, description="plait retrieval and program server (ColBERTv2 protocol at /search)")
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)   # ours, 404s and 405s

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok",
                "retriever": None if retriever is None else type(retriever).__name__,
                "passages": _size(retriever), "writes": bool(allow_writes and retriever is not None),
                "program": None if program is None else type(program).__name__}

    if retriever is not None:
        _add_retriever_routes(app, retriever, allow_writes, max_k)
    if program is not None:
        _add_program_routes(app, program)
    return app


def _add_retriever_routes(app: FastAPI, retriever: Any, allow_writes: bool, max_k: int) -> None:
    def check_k(k: int) -> None:
        if not 1 <= k <= max_k:
            raise HTTPException(422, f"k must be between 1 and {max_k}, got {k}")

    def search(query: str, k: int) -> dict[str, Any]:
        check_k(k)
        passages = _guarded(lambda: retriever([query], k=k)[0])
        return {"query": query, "topk": _hits(passages)}

    @app.get("/search", response_model=SearchResponse, summary="ColBERTv2 protocol search (GET)")
    def search_get(query: str = Query(..., description="the query text"),
                   k: int = Query(10, description=f"number of passages, 1..{max_k}")) -> dict[str, Any]:
        return search(query, k)

    @app.post("/search", response_model=SearchResponse, summary="ColBERTv2 protocol search (POST)")
    def search_post(request: SearchRequest) -> dict[str, Any]:
        return search(request.query, request.k)

    @app.post("/retrieve", response_model=RetrieveResponse, summary="plait retrieval: many queries, filters")
    def retrieve(request: RetrieveRequest) -> dict[str, Any]:
        check_k(request.k)
        results = _guarded(lambda: retriever(request.queries, k=request.k, filter=request.filter))
        return {"results": [[passage.to_dict() for passage in passages] for passages in results]}

    def check_writes(action: str) -> None:
        if not allow_writes:
            raise HTTPException(403, f"this server is read-only, so {action} is refused; start it with "
                                     f"allow_writes = true in the retriever config")

    @app.post("/add", response_model=AddResponse, summary="plait extension: index passages")
    def add(request: AddRequest) -> dict[str, Any]:
        check_writes("/add")
        return {"ids": _guarded(lambda: retriever.add(request.texts, request.ids, request.metadata))}

    @app.post("/clear", summary="plait extension: remove every passage")
    def clear() -> dict[str, Any]:
        check_writes("/clear")
        if not callable(getattr(retriever, "clear", None)):
            raise HTTPException(501, f"{type(retriever).__name__} cannot clear(); restart the server "
                                     f"with a fresh index instead")
        _guarded(retriever.clear)
        return {"cleared": True}


def _add_program_routes(app: FastAPI, program: Any) -> None:
    @app.post("/predict", response_model=PredictResponse, summary="run the served program")
    def predict(request: PredictRequest) -> dict[str, Any]:
        prediction = _guarded(lambda: program(**request.inputs))
        fields = prediction.items() if callable(getattr(prediction, "items", None)) else [("output", prediction)]
        return {"prediction": {str(name): _jsonable(value) for name, value in fields}}


def _guarded(call: Callable[[], Any]) -> Any:
    """Run a retriever / program call; its own complaints about the input become HTTP 400."""
    try:
        return call()
    except HTTPException:
        raise
    except (ValueError, TypeError, NotImplementedError) as error:
        raise HTTPException(501 if isinstance(error, NotImplementedError) else 400,
                            f"{type(error).__name__}: {error}") from error
    except Exception as error:   # report, do not crash the server; the log has the traceback
        raise HTTPException(500, f"{type(error).__name__}: {error}") from error


def _hits(passages: list[Any]) -> list[dict[str, Any]]:
    scores = [passage.score for passage in passages]
    top = max(scores, default=0.0)
    weights = [math.exp(score - top) if math.isfinite(score) else 0.0 for score in scores]
    total = sum(weights) or 1.0
    hits = []
    for rank, (passage, weight) in enumerate(zip(passages, weights), start=1):
        hit = {key: _jsonable(value) for key, value in passage.metadata.items() if key not in HIT_FIELDS}
        hit.update(text=passage.text, long_text=passage.text, pid=passage.id, rank=rank,
                   score=passage.score, prob=weight / total)
        hits.append(hit)
    return hits


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if callable(getattr(value, "to_dict", None)):      # Passage
        return _jsonable(value.to_dict())
    if callable(getattr(value, "model_dump", None)):   # pydantic outputs of typed signatures
        return value.model_dump(mode="json")
    if hasattr(value, "tolist"):                        # numpy scalars and arrays
        return _jsonable(value.tolist())
    return str(value)


def _size(retriever: Any) -> int | None:
    try:
        return len(retriever)
    except TypeError:
        return None


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = ["{}: {}".format(".".join(str(part) for part in item.get("loc", ())), item.get("msg", ""))
                for item in error.errors()]
    return JSONResponse(status_code=422, content={"error": True, "message": "; ".join(problems),
                                                  "detail": _jsonable(list(error.errors()))})


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return JSONResponse(status_code=error.status_code,
                        content={"error": True, "message": str(error.detail), "detail": error.detail})
