"""The Retriever base class: one calling convention for every retriever.

``retriever(query, k=5)`` returns a list of :class:`Passage` sorted best first; a list of
queries gives a list of lists. Calls go through the ``plait_retrieve`` hook (a plugin may
answer, cache or re-rank); plait's own implementation asks ``retriever.search`` last.
``retriever.add(texts, ids=None, metadata=None)`` indexes texts and returns their ids.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from plait.retrieve.passage import Passage


class Retriever:
    """Base class for retrievers. Subclasses implement ``search`` and, to be indexable, ``add``."""

    k: int = 3
    supports_filters: bool = False   # True when search(..., filter=...) is honoured

    def search(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        raise NotImplementedError(f"{type(self).__name__} must implement search(queries, k, filter=None)")

    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} is read-only: it cannot add(texts)")

    def upsert(self, texts: Sequence[str], ids: Sequence[str] | None = None,
               metadata: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
        """Same as ``add``: adding an existing id replaces it."""
        return self.add(texts, ids, metadata)

    def __call__(self, query_or_queries: str | Sequence[str], k: int | None = None, *,
                 filter: Any = None) -> list[Passage] | list[list[Passage]]:
        single = isinstance(query_or_queries, str)
        queries = [query_or_queries] if single else list(query_or_queries)
        results = retrieve(self, queries, self.k if k is None else k, filter=filter)
        return results[0] if single else results

    async def acall(self, query_or_queries: str | Sequence[str], k: int | None = None, *,
                    filter: Any = None) -> list[Passage] | list[list[Passage]]:
        """``__call__`` for async code. A retriever with an async ``asearch(queries, k, *,
        filter=None)`` (same contract as ``search``) is awaited on the event loop while plait's
        own ``plait_retrieve`` implementation is the only one; otherwise the hook runs in a
        worker thread (contextvars are copied)."""
        asearch = getattr(self, "asearch", None)
        if asearch is None or not _retrieve_is_builtin():
            return await asyncio.to_thread(self.__call__, query_or_queries, k, filter=filter)
        single = isinstance(query_or_queries, str)
        queries = [query_or_queries] if single else list(query_or_queries)
        k = self.k if k is None else k
        check_request(self, queries, k, filter)
        if not queries:
            return []
        answer = await (asearch(queries, k, filter=filter) if filter is not None else asearch(queries, k))
        results = best_first(self, queries, k, answer)
        return results[0] if single else results

    def __deepcopy__(self, memo: dict[int, Any]) -> Retriever:
        return self   # an index / client is shared by copies of a program


def retrieve(retriever: Any, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
    """Ask the ``plait_retrieve`` hook; check the answer's shape before handing it out."""
    check_request(retriever, queries, k, filter)
    if not queries:
        return []
    from plait.plugins import get_plugin_manager
    results = get_plugin_manager().hook.plait_retrieve(retriever=retriever, queries=queries, k=k,
                                                       options={"filter": filter} if filter is not None else {})
    return best_first(retriever, queries, k, results)


def check_request(retriever: Any, queries: list[str], k: int, filter: Any) -> None:
    """Raise a clear error for a bad ``k``, a non-string query or an unsupported filter."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    for query in queries:
        if not isinstance(query, str):
            raise TypeError(f"queries must be strings, got {type(query).__name__}: {query!r}")
    if filter is not None and not getattr(retriever, "supports_filters", False):
        raise ValueError(f"{type(retriever).__name__} does not support filters; drop filter= or use a "
                         f"retriever that does (qdrant, chroma, pinecone, marqo, memory)")


def best_first(retriever: Any, queries: list[str], k: int, results: Any) -> list[list[Passage]]:
    """Each query's passages sorted best first and cut to ``k``, after checking that every
    query was answered."""
    if results is None or len(results) != len(queries):
        raise RuntimeError(f"{type(retriever).__name__} answered {0 if results is None else len(results)} "
                           f"result lists for {len(queries)} queries: a retriever must answer every query")
    return [sorted(passages, key=_by_score)[:k] for passages in results]


# (plugins generation, whether plait's own plait_retrieve implementation is the only one)
_retrieve_route: tuple[int, bool] = (-1, False)


def _retrieve_is_builtin() -> bool:
    """True while only plait's built-in ``plait_retrieve`` (which asks the retriever itself) is
    registered and no hook monitoring is on: ``acall`` may then await ``asearch`` directly."""
    global _retrieve_route
    from plait import plugins
    manager = plugins.get_plugin_manager()
    current = plugins.generation()
    seen, builtin = _retrieve_route
    if seen != current:
        from plait.builtins import retrieval
        impls = manager.hook.plait_retrieve.get_hookimpls()
        builtin = ([impl.plugin for impl in impls] == [retrieval]
                   and getattr(manager, "plain_hookexec", None) is getattr(manager, "_inner_hookexec", None))
        _retrieve_route = (current, builtin)
    return builtin


def _by_score(passage: Passage) -> float:
    return -passage.score


def check_add_args(texts: Sequence[str], ids: Sequence[str] | None,
                   metadata: Sequence[Mapping[str, Any]] | None) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Validate ``add`` arguments; default ids are stable (a hash of the text), so re-adding upserts."""
    if isinstance(texts, str):
        raise TypeError("add() takes a list of texts; wrap a single text in a list: add([text])")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"add() takes strings, got {type(text).__name__}: {text!r}")
    if ids is None:
        ids = [text_id(text) for text in texts]
    else:
        ids = [str(i) for i in ids]
        if len(ids) != len(texts):
            raise ValueError(f"add() got {len(texts)} texts but {len(ids)} ids; give one id per text")
    if len(set(ids)) != len(ids):
        raise ValueError("add() got duplicate ids in one call; each id must be unique")
    if metadata is None:
        metas: list[dict[str, Any]] = [{} for _ in texts]
    else:
        metas = [dict(m) if m is not None else {} for m in metadata]
        if len(metas) != len(texts):
            raise ValueError(f"add() got {len(texts)} texts but {len(metas)} metadata entries; give one per text")
    return texts, ids, metas


def text_id(text: str) -> str:
    """A stable id for a text (the same in every process)."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def matches_filter(metadata: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """The portable filter: every key must equal (or, for a list value, be one of) the given value."""
    if not filter:
        return True
    for key, wanted in filter.items():
        value = metadata.get(key)
        options = wanted if isinstance(wanted, (list, tuple, set)) else (wanted,)
        if not any(_same(value, option) for option in options):
            return False
    return True


def _same(value: Any, wanted: Any) -> bool:
    # 1 == True in Python, but not in any vector store's filter: keep bools and numbers apart
    return value == wanted and isinstance(value, bool) == isinstance(wanted, bool)
