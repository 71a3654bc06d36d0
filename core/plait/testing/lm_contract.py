"""The LM contract: what every plait LM backend must do, as a reusable pytest suite.

Use it from a test module of your backend::

    import pytest
    import plait
    from plait.testing.lm_contract import LMContract

    class TestAcmeContract(LMContract):
        @pytest.fixture
        def contract_lm(self):
            return plait.LM("acme/tiny-model")

pytest collects the ``test_*`` methods of your ``Test*`` subclass (``LMContract`` itself is not
collected: its name does not start with "Test"). Checks that need a capability the backend does
not declare (text completion, ``n``, streaming, JSON mode) skip and say so. Every call asks for at
most :attr:`LMContract.max_tokens` tokens, so a small local model runs the suite in seconds.

This module imports pytest; plait never imports it by itself.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from typing import Any

import pytest

from plait.lm.base import LM
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage

__all__ = ["CountingBackend", "LMContract"]


class CountingBackend:
    """Wraps a backend and counts ``generate`` calls (everything else is delegated)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.calls = 0
        self.capabilities = getattr(inner, "capabilities", LMCapabilities())

    def generate(self, request: LMRequest) -> LMResponse:
        self.calls += 1
        return self.inner.generate(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


class LMContract:
    """Contract tests for an LM backend; subclasses provide the ``contract_lm`` fixture."""

    max_tokens = 32          # the most tokens any contract call asks for
    stop_prompt = "Count from 1 to 20, separated by commas: 1, 2, 3,"
    json_prompt = 'Reply with exactly this JSON object and nothing else: {"ok": true}'

    # --- helpers --------------------------------------------------------------------------
    @staticmethod
    def uncached(lm: LM) -> LM:
        """A view of ``lm`` with caching off and its own (empty) history; same backend."""
        return lm.copy(cache=False)

    @staticmethod
    def require(lm: LM, capability: str) -> None:
        if not getattr(lm.capabilities, capability):
            pytest.skip(f"the backend does not declare capabilities.{capability}")

    def _check_outputs(self, outputs: Any, count: int | None = None) -> None:
        assert isinstance(outputs, list), f"expected a list of completions, got {type(outputs).__name__}"
        assert outputs, "the backend returned no completions"
        assert all(isinstance(text, str) for text in outputs), f"completions must be str: {outputs!r}"
        if count is not None:
            assert len(outputs) == count, f"asked for {count} completions, got {len(outputs)}"

    # --- the contract ---------------------------------------------------------------------
    def test_capabilities_declared(self, contract_lm: LM) -> None:
        caps = getattr(contract_lm.backend, "capabilities", None)
        assert isinstance(caps, LMCapabilities), "the backend must have a `capabilities` attribute " \
                                                 "holding a plait.lm.types.LMCapabilities"
        assert caps.chat or caps.text, "a backend must accept chat messages or text prompts"

    def test_chat_call_returns_list_of_str(self, contract_lm: LM) -> None:
        self.require(contract_lm, "chat")
        lm = self.uncached(contract_lm)
        self._check_outputs(lm("Say hello.", max_tokens=self.max_tokens))
        response = lm.generate(messages=[{"role": "system", "content": "You are terse."},
                                         *_user("Name a colour.")], max_tokens=self.max_tokens)
        assert isinstance(response, LMResponse)
        self._check_outputs(response.outputs, 1)

    def test_text_call_returns_list_of_str(self, contract_lm: LM) -> None:
        self.require(contract_lm, "text")
        response = self.uncached(contract_lm).generate(prompt="The capital of France is",
                                                       max_tokens=self.max_tokens)
        self._check_outputs(response.outputs, 1)

    def test_max_tokens_bounds_output(self, contract_lm: LM) -> None:
        lm = self.uncached(contract_lm)
        short = lm.generate(**self._ask(lm, "Write a long story about a dragon."), max_tokens=4)
        self._check_outputs(short.outputs, 1)
        if short.usage.completion_tokens:
            assert short.usage.completion_tokens <= 4, f"max_tokens=4 but {short.usage.completion_tokens} " \
                                                       "completion tokens were reported"
        words = len(short.outputs[0].split())
        assert words <= 12, f"max_tokens=4 but the completion has {words} words: {short.outputs[0]!r}"

    def test_n_gives_n_outputs(self, contract_lm: LM) -> None:
        self.require(contract_lm, "n")
        response = self.uncached(contract_lm).generate(**self._ask(contract_lm, "Name an animal."), n=3,
                                                       temperature=0.8, max_tokens=8)
        self._check_outputs(response.outputs, 3)
        if response.finish_reasons is not None:
            assert len(response.finish_reasons) == 3

    def test_stop_sequence_honoured(self, contract_lm: LM) -> None:
        lm = self.uncached(contract_lm)
        for text in lm.generate(**self._ask(lm, self.stop_prompt), stop=[","], max_tokens=self.max_tokens).outputs:
            assert "," not in text, f"stop=[','] but the completion contains it: {text!r}"

    def test_usage_is_consistent(self, contract_lm: LM) -> None:
        lm = self.uncached(contract_lm)
        usage = lm.generate(**self._ask(lm, "Say hello."), max_tokens=8).usage
        assert isinstance(usage, Usage)
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = getattr(usage, name)
            assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, \
                f"usage.{name} must be a non-negative int, got {value!r}"
        if usage.total_tokens:
            assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
        assert lm.history[-1]["usage"] == usage

    def test_history_entry_recorded(self, contract_lm: LM) -> None:
        lm = self.uncached(contract_lm)
        outputs = lm("Say hello.", max_tokens=8) if lm.capabilities.chat else \
            lm.generate(prompt="Hello", max_tokens=8).outputs
        assert len(lm.history) == 1, "one call must leave exactly one history entry"
        entry = lm.history[-1]
        assert entry["outputs"] == outputs
        assert entry["model"] == contract_lm.model
        assert entry["params"].get("max_tokens") == 8
        assert entry["cached"] is False

    def test_cache_hit_on_repeat(self, contract_lm: LM) -> None:
        from plait.lm.cache import is_cache_enabled
        if not is_cache_enabled():
            pytest.skip("LM caching is turned off in this environment (PLAIT_CACHE=0 or configure_cache)")
        counting = CountingBackend(contract_lm.backend)
        lm = LM(contract_lm.model, model_type=contract_lm.model_type, cache=True, num_retries=0,
                backend=counting, **contract_lm.kwargs)
        ask = self._ask(lm, f"Repeat this id: {uuid.uuid4().hex[:8]}")   # a fresh key: never cached before
        first = lm.generate(**ask, max_tokens=8)
        second = lm.generate(**ask, max_tokens=8)
        assert counting.calls == 1, f"the backend was called {counting.calls} times for a repeated request"
        assert not first.cached and second.cached
        assert second.outputs == first.outputs

    def test_predict_program(self, contract_lm: LM) -> None:
        import plait
        predict = plait.Predict("question -> answer", max_tokens=self.max_tokens)
        with plait.context(lm=self.uncached(contract_lm)):
            prediction = predict(question="What is the capital of France?")
        assert isinstance(prediction, plait.Prediction)
        assert isinstance(prediction.answer, str)

    def test_async_acall(self, contract_lm: LM) -> None:
        lm = self.uncached(contract_lm)
        if lm.capabilities.chat:
            outputs = asyncio.run(lm.acall("Say hello.", max_tokens=8))
        else:
            outputs = asyncio.run(lm.agenerate(prompt="Hello", max_tokens=8)).outputs
        self._check_outputs(outputs, 1)
        assert len(lm.history) == 1

    def test_streaming_chunks_join(self, contract_lm: LM) -> None:
        self.require(contract_lm, "streaming")
        lm = self.uncached(contract_lm)
        chunks = list(lm.stream(**self._ask(lm, "Say hello."), max_tokens=self.max_tokens))
        assert all(isinstance(chunk, str) for chunk in chunks), chunks
        text = "".join(chunks)
        assert text.strip(), "a streamed completion of 'Say hello.' was empty"
        assert lm.history[-1]["outputs"] == [text]

    def test_json_object_parses(self, contract_lm: LM) -> None:
        self.require(contract_lm, "json_object")
        lm = self.uncached(contract_lm)
        outputs = lm.generate(**self._ask(lm, self.json_prompt), response_format={"type": "json_object"},
                              temperature=0, max_tokens=self.max_tokens).outputs
        self._check_outputs(outputs, 1)
        try:
            value = json.loads(outputs[0])
        except ValueError as exc:
            raise AssertionError(f"response_format json_object gave text that is not JSON: "
                                 f"{outputs[0]!r} ({exc})") from None
        assert isinstance(value, dict), f"expected a JSON object, got {value!r}"

    def test_deepcopy_shares_lm(self, contract_lm: LM) -> None:
        import plait
        assert copy.deepcopy(contract_lm) is contract_lm
        predict = plait.Predict("question -> answer")
        predict.lm = contract_lm
        assert predict.deepcopy().lm is contract_lm

    # --- request shapes -------------------------------------------------------------------
    @staticmethod
    def _ask(lm: LM, text: str) -> dict[str, Any]:
        """Keyword arguments for ``lm.generate`` asking ``text`` in the form the backend takes."""
        return {"messages": _user(text)} if lm.capabilities.chat else {"prompt": text}
