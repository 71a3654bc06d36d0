"""Async end to end: native LM calls on the event loop, the thread offload when plugins are
registered, cache and retries on the async path, async retrievers, and plait.asyncify."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import plait
from plait import plugins
from plait.async_tools import asyncify
from plait.errors import ConfigurationError, LMAuthError, LMServerError
from plait.hookspecs import hookimpl
from plait.lm import cache as cache_mod
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage
from plait.retrieve.passage import Passage
from plait.retrieve.retriever import Retriever
from plait.testing import DummyLM

QA = "question -> answer"


def answer_for(request: LMRequest) -> dict[str, str]:
    return {"answer": f"A:{request.context.inputs['question']}"}


class AsyncBackend:
    """A natively async backend that records which thread each method ran in."""

    capabilities = LMCapabilities()

    def __init__(self, script: list[Any] | None = None, delay: float = 0.0):
        self.script = list(script or [])
        self.delay = delay
        self.sync_threads: list[threading.Thread] = []
        self.async_threads: list[threading.Thread] = []

    def _next(self, request: LMRequest) -> LMResponse:
        item = self.script.pop(0) if self.script else "[[ ## answer ## ]]\nok"
        if isinstance(item, Exception):
            raise item
        return LMResponse([item], Usage(10, 2, 12), request.model)

    def generate(self, request: LMRequest) -> LMResponse:
        self.sync_threads.append(threading.current_thread())
        return self._next(request)

    async def agenerate(self, request: LMRequest) -> LMResponse:
        self.async_threads.append(threading.current_thread())
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._next(request)


def async_lm(backend: AsyncBackend, **kwargs: Any) -> plait.LM:
    kwargs.setdefault("cache", False)
    return plait.LM("fake/async", backend=backend, **kwargs)


class Wrapper:
    """A plait_lm_call wrapper plugin: any such plugin must see every call."""

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl(wrapper=True)
    def plait_lm_call(self, lm: Any, request: Any) -> Any:
        self.seen += 1
        return (yield)


@pytest.fixture
def memory_cache(monkeypatch):
    monkeypatch.setattr(cache_mod, "_default_cache", cache_mod.ResponseCache(disk=False))
    monkeypatch.setattr(cache_mod, "_enabled", True)


# --- native async LM calls ----------------------------------------------------------------

async def test_hundred_concurrent_predicts_overlap():
    lm = DummyLM(answer_for, latency=0.01)
    predict = plait.Predict(QA)
    await predict.acall(question="warm-up", lm=lm)   # plugin manager and adapter plan built
    start = time.perf_counter()
    predictions = await asyncio.gather(*[predict.acall(question=f"q{i}", lm=lm) for i in range(100)])
    elapsed = time.perf_counter() - start
    assert [p.answer for p in predictions] == [f"A:q{i}" for i in range(100)]
    assert elapsed < 100 * 0.01 / 4, f"100 calls of 10 ms took {elapsed:.3f}s: they did not overlap"


async def test_native_path_stays_on_the_event_loop():
    backend = AsyncBackend(["[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\nok"], delay=0.001)
    loop_thread = threading.current_thread()
    prediction = await plait.ChainOfThought(QA).acall(question="q", lm=async_lm(backend))
    assert prediction.answer == "ok"
    assert backend.async_threads == [loop_thread] and backend.sync_threads == []


async def test_dummy_lm_chain_runs_on_the_loop_thread():
    threads = []

    def answer(request: LMRequest) -> dict[str, str]:
        threads.append(threading.current_thread())
        return {"answer": "x"}

    await plait.Predict(QA).acall(question="q", lm=DummyLM(answer))
    assert threads == [threading.current_thread()]


async def test_a_wrapper_plugin_sends_async_calls_through_pluggy_in_a_thread():
    backend = AsyncBackend()
    wrapper = Wrapper()
    with plugins.plugin(wrapper, name="test-async-wrapper"):
        prediction = await plait.Predict(QA).acall(question="q", lm=async_lm(backend))
    assert prediction.answer == "ok" and wrapper.seen == 1
    assert backend.async_threads == []
    assert len(backend.sync_threads) == 1 and backend.sync_threads[0] is not threading.current_thread()
    await plait.Predict(QA).acall(question="q", lm=async_lm(backend))   # unregistered: native again
    assert backend.async_threads == [threading.current_thread()]


async def test_a_backend_without_agenerate_is_offloaded_to_a_thread():
    class SyncOnly(AsyncBackend):
        agenerate = None   # type: ignore[assignment]

    backend = SyncOnly()
    assert (await plait.Predict(QA).acall(question="q", lm=async_lm(backend))).answer == "ok"
    assert len(backend.sync_threads) == 1 and backend.sync_threads[0] is not threading.current_thread()


async def test_async_calls_record_history_and_usage():
    lm = async_lm(AsyncBackend())
    with plait.track_usage() as usage:
        await plait.Predict(QA).acall(question="q", lm=lm)
    entry = lm.history[-1]
    assert entry["outputs"] == ["[[ ## answer ## ]]\nok"] and entry["cached"] is False
    assert entry["messages"][-1]["role"] == "user"
    assert usage.total().total_tokens == 12 and usage.calls == 1


async def test_cache_hits_on_the_async_path(memory_cache):
    backend = AsyncBackend(["[[ ## answer ## ]]\nfirst", "[[ ## answer ## ]]\nsecond"])
    lm = async_lm(backend, cache=True)
    first = await plait.Predict(QA).acall(question="same", lm=lm)
    second = await plait.Predict(QA).acall(question="same", lm=lm)
    assert first.answer == second.answer == "first"
    assert len(backend.async_threads) == 1
    assert [entry["cached"] for entry in lm.history] == [False, True]
    response = await lm.agenerate(messages=[{"role": "user", "content": "other"}], cache=False)
    assert response.cached is False and len(backend.async_threads) == 2


async def test_the_sync_and_async_paths_share_the_cache(memory_cache):
    backend = AsyncBackend(["[[ ## answer ## ]]\nsync"])
    lm = async_lm(backend, cache=True)
    assert plait.Predict(QA)(question="shared", lm=lm).answer == "sync"
    assert (await plait.Predict(QA).acall(question="shared", lm=lm)).answer == "sync"
    assert backend.async_threads == [] and len(backend.sync_threads) == 1


async def test_retries_on_the_async_path():
    seen = []

    class Events:
        @hookimpl
        def plait_event(self, event: Any) -> None:
            if event.kind == "lm.retry":
                seen.append(dict(event.data))

    backend = AsyncBackend([LMServerError("busy", status=503, retry_after=0.0),
                            LMServerError("busy", status=503, retry_after=0.0), "[[ ## answer ## ]]\nfinally"])
    with plugins.plugin(Events(), name="test-async-events"):
        prediction = await plait.Predict(QA).acall(question="q", lm=async_lm(backend, num_retries=2))
    assert prediction.answer == "finally"
    assert backend.async_threads == [threading.current_thread()] * 3   # retried on the loop
    assert [event["attempt"] for event in seen] == [1, 2] and seen[0]["delay"] == 0.0


async def test_async_retries_stop_at_the_limit_and_skip_fatal_errors():
    backend = AsyncBackend([LMServerError("busy", retry_after=0.0)] * 3)
    with pytest.raises(LMServerError):
        await async_lm(backend, num_retries=1).agenerate(messages=[{"role": "user", "content": "q"}])
    assert len(backend.async_threads) == 2
    fatal = AsyncBackend([LMAuthError("bad key")])
    with pytest.raises(LMAuthError):
        await async_lm(fatal, num_retries=3).agenerate(messages=[{"role": "user", "content": "q"}])
    assert len(fatal.async_threads) == 1


# --- retrievers ---------------------------------------------------------------------------

class AsyncRetriever(Retriever):
    supports_filters = True

    def __init__(self) -> None:
        self.sync_threads: list[threading.Thread] = []
        self.async_calls: list[tuple[threading.Thread, list[str], int, Any]] = []

    def _answer(self, queries: list[str], k: int) -> list[list[Passage]]:
        return [[Passage(f"{query}-{i}", score=float(i)) for i in range(k + 1)] for query in queries]

    def search(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        self.sync_threads.append(threading.current_thread())
        return self._answer(queries, k)

    async def asearch(self, queries: list[str], k: int, *, filter: Any = None) -> list[list[Passage]]:
        self.async_calls.append((threading.current_thread(), queries, k, filter))
        await asyncio.sleep(0)
        return self._answer(queries, k)


async def test_a_retriever_with_asearch_is_awaited_on_the_loop():
    retriever = AsyncRetriever()
    passages = await retriever.acall("q", k=2, filter={"lang": "en"})
    assert [p.text for p in passages] == ["q-2", "q-1"]   # sorted best first, cut to k
    assert retriever.async_calls == [(threading.current_thread(), ["q"], 2, {"lang": "en"})]
    assert retriever.sync_threads == []
    both = await plait.Retrieve(k=1, retriever=retriever).acall(["a", "b"])
    assert [p.text for p in both.passages] == ["a-1"]
    with pytest.raises(ValueError, match="positive int"):
        await retriever.acall("q", k=0)


async def test_a_retrieve_plugin_sends_async_retrieval_through_the_hook_in_a_thread():
    class Reranker:
        @hookimpl(wrapper=True)
        def plait_retrieve(self, retriever: Any, queries: list[str], k: int) -> Any:
            results = yield
            return [list(reversed(passages)) for passages in results]

    retriever = AsyncRetriever()
    with plugins.plugin(Reranker(), name="test-reranker"):
        passages = await retriever.acall("q", k=2)
    assert [p.text for p in passages] == ["q-2", "q-1"]
    assert retriever.async_calls == [] and len(retriever.sync_threads) == 1
    assert retriever.sync_threads[0] is not threading.current_thread()


# --- asyncify -----------------------------------------------------------------------------

class Tracked(plait.Module):
    """Counts how many of its runs overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.most = 0
        self.threads: list[threading.Thread] = []

    async def aforward(self, x: int) -> int:
        self.threads.append(threading.current_thread())
        self.active += 1
        self.most = max(self.most, self.active)
        await asyncio.sleep(0.005)
        self.active -= 1
        return x * 2


async def test_asyncify_bounds_concurrency_by_the_setting():
    program = Tracked()
    run = asyncify(program)
    with plait.context(async_max_workers=3):
        results = await asyncio.gather(*[run(x=i) for i in range(12)])
    assert results == [i * 2 for i in range(12)]
    assert program.most == 3
    assert set(program.threads) == {threading.current_thread()}   # native: on the loop
    program.most = 0
    results = await asyncio.gather(*[run(x=i) for i in range(12)])   # the default bound, 8
    assert program.most == 8


async def test_asyncify_runs_a_sync_program_in_a_thread_with_the_callers_settings():
    class SyncOnly(plait.Module):
        def forward(self, question: str) -> Any:
            return (threading.current_thread(), plait.settings.get("test_marker"), question)

    with plait.context(test_marker="from the caller"):
        thread, marker, question = await asyncify(SyncOnly())(question="q")
    assert thread is not threading.current_thread()
    assert (marker, question) == ("from the caller", "q")


async def test_asyncify_runs_predict_natively_and_plain_callables():
    lm = DummyLM(answer_for, latency=0.005)
    predict = asyncify(plait.Predict(QA))
    with plait.context(lm=lm):
        predictions = await asyncio.gather(*[predict(question=f"q{i}") for i in range(5)])
    assert [p.answer for p in predictions] == [f"A:q{i}" for i in range(5)]

    async def coroutine(x: int) -> int:
        return x + 1

    assert await asyncify(coroutine)(1) == 2
    assert await asyncify(lambda x: x * 3)(2) == 6


async def test_asyncify_rejects_bad_input():
    with pytest.raises(TypeError, match="asyncify"):
        asyncify(42)   # type: ignore[arg-type]
    with plait.context(async_max_workers=0):
        with pytest.raises(ConfigurationError, match="async_max_workers"):
            await asyncify(lambda: 1)()
