"""The LM contract suite, tested fast: it passes for well-behaved DummyLM backends and fails for
backends that break one rule each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

import plait
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage
from plait.testing import DummyBackend, DummyLM
from plait.testing.lm_contract import CountingBackend, LMContract


def tiny_model(request: LMRequest) -> Any:
    """A scripted 'model' that honours max_tokens (4 chars a token), stop and JSON requests."""
    if request.context is not None and request.context.signature is not None:
        return {name: "Paris" for name in request.context.signature.output_fields}   # via the adapter
    text = request.prompt if request.prompt is not None else request.messages[-1]["content"]
    if "JSON" in text:
        answer = '{"ok": true}'
    elif "Count" in text:
        answer = " 4, 5, 6, 7, 8, 9"
    else:
        answer = "Hello there, how are you doing on this fine and sunny day, my friend?"
    for stop in request.params.get("stop") or ():
        answer = answer.split(stop, 1)[0]
    max_tokens = request.params.get("max_tokens")
    return answer[:4 * max_tokens] if max_tokens else answer


class WellBehavedBackend(DummyBackend):
    """DummyBackend with streaming (and, optionally, text-only)."""

    def __init__(self, answers: Any = tiny_model, *, chat: bool = True):
        super().__init__(answers)
        self.capabilities = replace(self.capabilities, streaming=True, chat=chat, text=True)

    def stream(self, request: LMRequest) -> Iterator[str]:
        text = self.generate(request).outputs[0]
        for start in range(0, len(text), 5):
            yield text[start:start + 5]


def make_lm(backend: Any, **kwargs: Any) -> plait.LM:
    return plait.LM("dummy/contract", backend=backend, **kwargs)


class TestDummyLMContract(LMContract):
    @pytest.fixture
    def contract_lm(self) -> plait.LM:
        return DummyLM(tiny_model)


class TestWellBehavedDummyContract(LMContract):
    @pytest.fixture
    def contract_lm(self) -> plait.LM:
        return make_lm(WellBehavedBackend())


class TestTextOnlyDummyContract(LMContract):
    @pytest.fixture
    def contract_lm(self) -> plait.LM:
        return make_lm(WellBehavedBackend(chat=False), model_type="text")


# --- the suite catches broken backends ----------------------------------------------------

class IgnoresStop(WellBehavedBackend):
    def generate(self, request: LMRequest) -> LMResponse:
        return super().generate(replace(request, params={k: v for k, v in request.params.items() if k != "stop"}))


class IgnoresMaxTokens(WellBehavedBackend):
    def generate(self, request: LMRequest) -> LMResponse:
        return super().generate(replace(request, params={**request.params, "max_tokens": None}))


class IgnoresN(WellBehavedBackend):
    def generate(self, request: LMRequest) -> LMResponse:
        response = super().generate(request)
        response.outputs = response.outputs[:1]
        return response


class BadUsage(WellBehavedBackend):
    def generate(self, request: LMRequest) -> LMResponse:
        response = super().generate(request)
        response.usage = Usage(3, 2, 9)
        return response


class NotJSON(WellBehavedBackend):
    def __init__(self) -> None:
        super().__init__(lambda request: "sure, here it is: ok")


class ReturnsNonStr(WellBehavedBackend):
    def generate(self, request: LMRequest) -> LMResponse:
        response = super().generate(request)
        response.outputs = [{"text": text} for text in response.outputs]
        return response


class EmptyStream(WellBehavedBackend):
    def stream(self, request: LMRequest) -> Iterator[str]:
        return iter(())


class NoCapabilities:
    def generate(self, request: LMRequest) -> LMResponse:
        return LMResponse(["hi"], Usage(), request.model)


@pytest.mark.parametrize(("backend", "check"), [
    (IgnoresStop(), "test_stop_sequence_honoured"),
    (IgnoresMaxTokens(), "test_max_tokens_bounds_output"),
    (IgnoresN(), "test_n_gives_n_outputs"),
    (BadUsage(), "test_usage_is_consistent"),
    (NotJSON(), "test_json_object_parses"),
    (ReturnsNonStr(), "test_chat_call_returns_list_of_str"),
    (EmptyStream(), "test_streaming_chunks_join"),
    (NoCapabilities(), "test_capabilities_declared"),
], ids=lambda value: value if isinstance(value, str) else type(value).__name__)
def test_contract_fails_for_a_broken_backend(backend: Any, check: str) -> None:
    with pytest.raises(AssertionError):
        getattr(LMContract(), check)(make_lm(backend))


def test_the_same_checks_pass_for_the_well_behaved_backend() -> None:
    contract = LMContract()
    for check in ("test_stop_sequence_honoured", "test_max_tokens_bounds_output",
                  "test_n_gives_n_outputs", "test_usage_is_consistent", "test_json_object_parses",
                  "test_chat_call_returns_list_of_str", "test_streaming_chunks_join"):
        getattr(contract, check)(make_lm(WellBehavedBackend()))


def test_cache_check_fails_when_the_cache_is_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    import plait.lm.cache as cache_module
    monkeypatch.setattr(cache_module, "is_cache_enabled", lambda: True)

    class NoStore:   # a cache that never remembers anything: the backend is asked twice
        def get(self, key: str) -> None:
            return None

        def put(self, key: str, response: LMResponse) -> None:
            pass

    monkeypatch.setattr("plait.builtins.cache.get_cache", lambda: NoStore())
    with pytest.raises(AssertionError, match="called 2 times"):
        LMContract().test_cache_hit_on_repeat(make_lm(WellBehavedBackend()))


def test_capability_checks_skip_with_the_reason() -> None:
    backend = WellBehavedBackend()
    backend.capabilities = LMCapabilities(chat=True, text=False, n=False, streaming=False)
    lm = make_lm(backend)
    for check, capability in (("test_n_gives_n_outputs", "n"),
                              ("test_text_call_returns_list_of_str", "text"),
                              ("test_streaming_chunks_join", "streaming"),
                              ("test_json_object_parses", "json_object")):
        with pytest.raises(pytest.skip.Exception, match=f"capabilities.{capability}"):
            getattr(LMContract(), check)(lm)


def test_counting_backend_counts_and_delegates() -> None:
    inner = WellBehavedBackend()
    counting = CountingBackend(inner)
    lm = make_lm(counting, cache=False)
    lm("Say hello.")
    lm("Say hello.")
    assert counting.calls == 2
    assert counting.capabilities is inner.capabilities
    request = LMRequest("m", prompt="Say hello.")
    assert list(counting.stream(request)) == list(inner.stream(request))


def test_importing_plait_testing_does_not_import_the_contract() -> None:
    import subprocess
    import sys
    code = ("import sys, plait, plait.testing; "
            "assert 'plait.testing.lm_contract' not in sys.modules; assert 'pytest' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
