"""The LM layer: request building, hook path, retries, history, usage, cache, copies."""

from __future__ import annotations

import copy

import pytest

import plait
from plait.errors import LMAuthError, LMContextWindowError, LMRateLimitError, LMServerError
from plait.lm import retry as retry_module
from plait.lm.types import LMCapabilities, LMRequest, LMResponse, Usage


class ScriptedBackend:
    """Answers from a script; an Exception in the script is raised instead."""

    capabilities = LMCapabilities(text=True)

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[LMRequest] = []

    def generate(self, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return LMResponse([item] * int(request.params.get("n") or 1), Usage(10, 2, 12, 0.001), request.model)


@pytest.fixture
def no_sleep(monkeypatch):
    delays = []
    monkeypatch.setattr(retry_module.time, "sleep", delays.append)
    return delays


def make_lm(script, **kwargs):
    kwargs.setdefault("cache", False)
    return plait.LM("fake/model", backend=ScriptedBackend(script), **kwargs)


def test_call_returns_texts_and_sends_chat_messages():
    lm = make_lm(["hello"], temperature=0.3)
    assert lm("hi there") == ["hello"]
    request = lm.backend.requests[0]
    assert request.messages == [{"role": "user", "content": "hi there"}]
    assert request.prompt is None
    assert request.params == {"temperature": 0.3}


def test_text_model_type_sends_prompt_and_per_call_params_override():
    lm = make_lm(["x"], model_type="text", temperature=0.0, max_tokens=5)
    lm("complete me", temperature=0.9, n=2)
    request = lm.backend.requests[0]
    assert request.prompt == "complete me" and request.messages is None
    assert request.params == {"temperature": 0.9, "max_tokens": 5, "n": 2}


def test_build_request_requires_exactly_one_of_messages_or_prompt():
    lm = make_lm(["x"])
    with pytest.raises(ValueError, match="exactly one"):
        lm.build_request()
    with pytest.raises(ValueError, match="exactly one"):
        lm.build_request(messages=[], prompt="p")


def test_bad_model_arguments_are_clear():
    with pytest.raises(ValueError, match="provider/model"):
        plait.LM("", backend=ScriptedBackend(["x"]))
    with pytest.raises(ValueError, match="model_type"):
        plait.LM("a/b", model_type="vision", backend=ScriptedBackend(["x"]))


def test_history_records_exact_messages_and_inspect_history_prints_them(capsys):
    lm = make_lm(["the reply"])
    lm(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "question?"}])
    entry = lm.history[-1]
    assert entry["messages"][1]["content"] == "question?"
    assert entry["outputs"] == ["the reply"]
    assert entry["usage"].total_tokens == 12
    text = plait.inspect_history(1)
    printed = capsys.readouterr().out
    assert "be brief" in printed and "question?" in printed and "the reply" in printed
    assert text in printed


def test_retryable_errors_are_retried_with_backoff(no_sleep):
    lm = make_lm([LMServerError("boom", status=503), LMRateLimitError("slow down", retry_after=2.5), "ok"],
                 num_retries=3)
    assert lm("x") == ["ok"]
    assert len(lm.backend.requests) == 3
    assert no_sleep[1] == 2.5                    # Retry-After honoured
    assert 0.25 <= no_sleep[0] <= 0.5            # base 0.5 s with equal jitter


def test_retries_are_bounded_and_fatal_errors_not_retried(no_sleep):
    lm = make_lm([LMServerError("down")], num_retries=2)
    with pytest.raises(LMServerError):
        lm("x")
    assert len(lm.backend.requests) == 3
    for fatal in (LMAuthError("bad key", status=401), LMContextWindowError("too long")):
        lm = make_lm([fatal], num_retries=5)
        with pytest.raises(type(fatal)):
            lm("x")
        assert len(lm.backend.requests) == 1


def test_retry_emits_event(no_sleep):
    from plait.hookspecs import hookimpl
    from plait.plugins import plugin

    seen = []

    class Listener:
        @hookimpl
        def plait_event(self, event):
            seen.append(event)

    with plugin(Listener()):
        make_lm([LMServerError("x"), "ok"], num_retries=1)("q")
    retries = [e for e in seen if e.kind == "lm.retry"]
    assert len(retries) == 1 and retries[0].data["attempt"] == 1 and "LMServerError" in retries[0].data["error"]


def test_track_usage_sums_per_model():
    lm = make_lm(["a"])
    with plait.track_usage() as usage:
        lm("1")
        lm("2")
    assert usage.calls == 2
    assert usage.by_model()["fake/model"]["total_tokens"] == 24
    assert usage.total().cost == pytest.approx(0.002)


def test_cache_serves_repeat_requests_and_ignores_credentials(tmp_path, monkeypatch):
    from plait.lm import cache as cache_module
    cache_module.configure_cache(directory=tmp_path)
    backend = ScriptedBackend(["first"])
    lm = plait.LM("fake/model", backend=backend, cache=True)
    with plait.track_usage() as usage:
        assert lm("same") == ["first"]
        again = lm.generate(messages=[{"role": "user", "content": "same"}])
    assert again.cached is True and again.outputs == ["first"]
    assert len(backend.requests) == 1
    assert usage.cached_calls == 1 and usage.by_model()["fake/model"]["total_tokens"] == 12
    lm("same", api_key="another-secret")       # credentials are not part of the key
    assert len(backend.requests) == 1
    lm("same", temperature=0.5)                 # settings are
    assert len(backend.requests) == 2


def test_cache_false_skips_cache_entirely(tmp_path):
    from plait.lm import cache as cache_module
    cache_module.configure_cache(directory=tmp_path)
    backend = ScriptedBackend(["x"])
    lm = plait.LM("fake/model", backend=backend, cache=False)
    lm("q"); lm("q")
    assert len(backend.requests) == 2
    assert cache_module.get_cache().stats()["memory_hits"] == 0


def test_copy_shares_backend_and_changes_generation_settings():
    lm = make_lm(["x"], temperature=0.0)
    hot = lm.copy(temperature=1.0)
    assert hot.backend is lm.backend and hot.kwargs["temperature"] == 1.0 and lm.kwargs["temperature"] == 0.0
    assert hot.history is not lm.history
    with pytest.raises(ValueError, match="new plait.LM"):
        lm.copy(api_base="http://x")


def test_dump_state_never_contains_credentials():
    lm = plait.LM("fake/model", backend=ScriptedBackend(["x"]), temperature=0.2, api_key="sk-secret",
                  api_base="http://127.0.0.1:1")
    state = lm.dump_state()
    assert state["model"] == "fake/model" and state["temperature"] == 0.2
    assert state["api_base"] == "http://127.0.0.1:1"
    assert "sk-secret" not in repr(state)


def test_deepcopy_shares_the_lm():
    lm = make_lm(["x"])
    assert copy.deepcopy({"lm": lm})["lm"] is lm


def test_registry_resolves_dummy_provider():
    lm = plait.LM("dummy/anything", answers=["scripted"])
    assert lm("q") == ["scripted"]


def test_unknown_provider_lists_known_ones():
    with pytest.raises(plait.UnknownBackendError, match="dummy"):
        plait.LM("nosuchprovider/model")


async def test_async_call():
    lm = make_lm(["async answer"])
    assert await lm.acall("q") == ["async answer"]


def test_stream_yields_chunks_and_records_history():
    class Streaming(ScriptedBackend):
        capabilities = LMCapabilities(streaming=True)

        def stream(self, request):
            self.requests.append(request)
            yield from ["Par", "is"]

    lm = plait.LM("fake/model", backend=Streaming(["unused"]), cache=False)
    assert list(lm.stream(messages=[{"role": "user", "content": "q"}])) == ["Par", "is"]
    assert lm.history[-1]["outputs"] == ["Paris"]
    with pytest.raises(NotImplementedError, match="cannot stream"):
        list(make_lm(["x"]).stream(prompt="q"))


def test_local_text_prompt_returns_the_prompt_or_none_and_names_the_fix():
    from plait.errors import LMBadRequestError
    from plait.lm.types import local_text_prompt

    chat = LMCapabilities(chat=True, text=True)
    text_only = LMCapabilities(chat=False, text=True)
    prompt = LMRequest("local/m", None, "Q: 1+1\nA:", {}, None, False, None)
    messages = LMRequest("local/m", [{"role": "user", "content": "hi"}], None, {}, None, False, None)
    assert local_text_prompt(prompt, text_only, "m", "local") == "Q: 1+1\nA:"
    assert local_text_prompt(messages, chat, "m", "local") is None
    with pytest.raises(LMBadRequestError, match="prefill goes with messages") as raised:
        local_text_prompt(LMRequest("local/m", None, "Q:", {}, "A:", False, None), chat, "m", "local")
    assert raised.value.provider == "local"
    with pytest.raises(LMBadRequestError, match="'m' was loaded with model_type='text'"):
        local_text_prompt(messages, text_only, "m", "local")
