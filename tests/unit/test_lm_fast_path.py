"""The LM call's fast paths behave exactly like the general ones.

- ``plait.plugins.call_lm`` runs plait's own ``plait_lm_call`` chain directly while the built-ins
  are its only implementations; any other plugin (wrapper, firstresult implementation) or hook
  monitoring routes calls through pluggy again, even when registered after calls were made.
- ``LMRequest.cache_key`` memoizes plain requests; the key is always the full computation's.
- history timestamps are computed once per second, with the same text as ``time.strftime``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plait
from plait import plugins
from plait.builtins import lm_call
from plait.errors import LMAuthError, LMServerError
from plait.hookspecs import hookimpl
from plait.lm import history
from plait.lm import retry as retry_module
from plait.lm import types as lm_types
from plait.lm.cache import configure_cache
from plait.lm.types import SECRET_PARAMS, LMCapabilities, LMRequest, LMResponse, Usage


class ScriptedBackend:
    """Answers from a script; an Exception in the script is raised instead."""

    capabilities = LMCapabilities()

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[LMRequest] = []

    def generate(self, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return LMResponse([item], Usage(3, 1, 4), request.model)


class PassThrough:
    """A third-party wrapper: records each call and the response it saw."""

    def __init__(self):
        self.seen: list[tuple[str, list[str] | None]] = []

    @hookimpl(wrapper=True)
    def plait_lm_call(self, lm, request):
        response = yield
        self.seen.append((lm.model, None if response is None else list(response.outputs)))
        return response


class Answerer:
    """A third-party firstresult implementation that answers every call itself."""

    @hookimpl
    def plait_lm_call(self, lm, request):
        return LMResponse(["from the plugin"], Usage(), request.model)


@pytest.fixture(autouse=True)
def builtins_only(monkeypatch, tmp_path):
    """The real built-ins, no installed entry-point plugins, a private cache, no sleeping."""
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [])
    monkeypatch.setattr(retry_module.time, "sleep", lambda seconds: None)
    for variable in ("PLAIT_PLUGINS", "PLAIT_STRICT_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    configure_cache(directory=tmp_path / "cache")
    plugins.reset()
    yield
    plugins.reset()


def make_lm(script, **kwargs):
    kwargs.setdefault("cache", False)
    return plait.LM("fake/model", backend=ScriptedBackend(script), **kwargs)


def route() -> object:
    return plugins._lm_call_route[1]


# --- routing ------------------------------------------------------------------------------

def test_builtins_alone_take_the_direct_chain():
    assert make_lm(["hi"])("q") == ["hi"]
    assert route() is lm_call.call_builtins


def test_a_wrapper_registered_after_calls_sees_every_later_call():
    lm = make_lm(["a"])
    lm("before")
    assert route() is lm_call.call_builtins
    wrapper = PassThrough()
    with plugins.plugin(wrapper, name="third-party-wrapper"):
        lm("one")
        plait.Predict("question -> answer")(question="q", lm=plait.testing.DummyLM([{"answer": "x"}]))
        assert route() is None
    assert wrapper.seen == [("fake/model", ["a"]), ("dummy/dummy", ["[[ ## answer ## ]]\nx\n\n[[ ## completed ## ]]"])]
    lm("after")
    assert len(wrapper.seen) == 2 and route() is lm_call.call_builtins


def test_a_firstresult_implementation_registered_later_answers():
    lm = make_lm(["from the backend"])
    assert lm("q") == ["from the backend"]
    with plugins.plugin(Answerer(), name="answerer"):
        assert lm("q") == ["from the plugin"]
        assert lm.history[-1]["outputs"] == ["from the plugin"]
    assert len(lm.backend.requests) == 1
    assert lm("q") == ["from the backend"]


def test_hook_monitoring_sees_calls_until_undone():
    lm = make_lm(["a"])
    lm("q")
    seen = []
    undo = plugins.get_plugin_manager().add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append(name), lambda outcome, name, impls, kwargs: None)
    lm("q")
    undo()
    lm("q")
    assert seen == ["plait_lm_call"]
    assert route() is lm_call.call_builtins


def test_no_implementation_at_all_is_still_a_clear_error(monkeypatch):
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ("plait.builtins.progress",))
    plugins.reset()
    with pytest.raises(plait.errors.PluginError, match="no plugin answered plait_lm_call"):
        make_lm(["a"])("q")


# --- the direct chain behaves like pluggy's ------------------------------------------------

def run_scenarios() -> dict[str, object]:
    """Cache hits, retries, failures and cache=False, observed from outside."""
    seen: dict[str, object] = {}
    cached_lm = make_lm(["fresh"], cache=True)
    first = cached_lm.generate(messages=[{"role": "user", "content": "same"}], temperature=0.0)
    second = cached_lm.generate(messages=[{"role": "user", "content": "same"}], temperature=0.0)
    second.outputs.append("mutated by the caller")
    third = cached_lm.generate(messages=[{"role": "user", "content": "same"}], temperature=0.0)
    seen["cache"] = (first.outputs, first.cached, second.cached, third.outputs, third.cached,
                     len(cached_lm.backend.requests), [e["cached"] for e in cached_lm.history])
    uncached = make_lm(["x"], cache=True)
    for _ in range(2):
        uncached.generate(prompt="p", cache=False)
    seen["cache=False"] = len(uncached.backend.requests)
    retried = make_lm([LMServerError("down", status=503), "ok"], num_retries=2, cache=True)
    seen["retry"] = (retried("r"), len(retried.backend.requests), retried("r"), len(retried.backend.requests))
    failing = make_lm([LMAuthError("bad key", status=401), "late"], num_retries=3, cache=True)
    with pytest.raises(LMAuthError):   # not retryable, and a failure is never cached
        failing("f")
    seen["failure"] = (len(failing.backend.requests), failing("f"), len(failing.backend.requests))
    exhausted = make_lm([LMServerError("down")], num_retries=1)
    with pytest.raises(LMServerError):
        exhausted("e")
    seen["exhausted"] = len(exhausted.backend.requests)
    return seen


def test_the_direct_chain_does_what_pluggy_does(tmp_path):
    direct = run_scenarios()
    assert route() is lm_call.call_builtins
    assert direct["cache"] == (["fresh"], False, True, ["fresh"], True, 1, [False, True, True])
    assert direct["cache=False"] == 2
    assert direct["retry"] == (["ok"], 2, ["ok"], 2)
    assert direct["failure"] == (1, ["late"], 2)
    assert direct["exhausted"] == 2
    configure_cache(directory=tmp_path / "second-cache")   # the same requests must miss again
    with plugins.plugin(PassThrough(), name="forces-pluggy"):
        through_pluggy = run_scenarios()
        assert route() is None
    assert through_pluggy == direct


# --- cache keys -----------------------------------------------------------------------------

def full_key(request: LMRequest) -> str:
    params = {k: v for k, v in request.params.items() if k not in SECRET_PARAMS}
    payload = json.dumps([request.model, request.messages, request.prompt, params, request.prefill],
                         sort_keys=True, separators=(",", ":"), default=repr, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


TEXT = st.text(max_size=20)
PARAM_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                        st.sampled_from([0.0, -0.0, 1.0, 1, True]), TEXT, st.lists(TEXT, max_size=3),
                        st.dictionaries(TEXT, st.integers(), max_size=2))
MESSAGE = st.one_of(st.fixed_dictionaries({"role": st.sampled_from(["system", "user"]), "content": TEXT}),
                    st.dictionaries(st.sampled_from(["role", "content", "name"]),
                                    st.one_of(TEXT, st.integers(), st.lists(TEXT, max_size=2)), max_size=3))
PARAMS = st.dictionaries(st.sampled_from(["temperature", "n", "stop", "seed", "api_key", "response_format"]),
                         PARAM_VALUE, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.one_of(st.none(), st.lists(MESSAGE, max_size=3)), prompt=st.one_of(st.none(), TEXT),
       params=PARAMS, prefill=st.one_of(st.none(), TEXT))
def test_cache_key_is_always_the_full_computation(messages, prompt, params, prefill):
    def request() -> LMRequest:
        return LMRequest("m/x", messages, prompt, dict(params), prefill)

    expected = full_key(request())
    assert request().cache_key() == expected
    assert request().cache_key() == expected   # the second time through the memo


def test_memo_keeps_values_apart_that_json_writes_differently():
    variants = [1, 1.0, True, "1", 0.0, -0.0, 0, False, None, ["a"], "a"]
    keys = []
    for _ in range(2):   # the second round is answered by the memo
        for value in variants:
            request = LMRequest("m/x", [{"role": "user", "content": "q"}], params={"temperature": value})
            assert request.cache_key() == full_key(request)
            keys.append(request.cache_key())
    assert len(set(keys)) == len(variants)


def test_memo_stays_bounded(monkeypatch):
    monkeypatch.setattr(lm_types, "_KEY_MEMO", {})
    monkeypatch.setattr(lm_types, "_KEY_MEMO_ENTRIES", 5)
    monkeypatch.setattr(lm_types, "_KEY_MEMO_CHARS", 100)
    for index in range(12):
        LMRequest("m/x", prompt=f"prompt {index}").cache_key()
        assert len(lm_types._KEY_MEMO) <= 5
    big = LMRequest("m/x", prompt="x" * 500)
    assert big.cache_key() == full_key(big)
    assert all(key[1] != "x" * 500 for key in lm_types._KEY_MEMO)   # too big to remember


# --- history timestamps ---------------------------------------------------------------------

def test_history_timestamp_is_strftimes_text():
    lm = make_lm(["a"])
    before = time.strftime("%Y-%m-%dT%H:%M:%S")
    lm("q")
    after = time.strftime("%Y-%m-%dT%H:%M:%S")
    stamp = lm.history[-1]["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", stamp) and before <= stamp <= after
    assert set(lm.history[-1]) == {"model", "messages", "prompt", "prefill", "outputs", "params", "usage",
                                   "cost", "cached", "timestamp"}


def test_local_timestamp_follows_the_clock(monkeypatch):
    for now in (1_000_000_000.25, 1_000_000_000.75, 1_000_000_001.0, 1_700_000_000.5, 999_999_999.9):
        monkeypatch.setattr(history.time, "time", lambda now=now: now)
        assert history.local_timestamp() == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
