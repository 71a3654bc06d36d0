"""The openai plugin: request mapping, n fill-up, json_schema fallback, streaming, async, listing.

HTTP goes through an httpx MockTransport under the real openai SDK (see openai_fakes.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from openai_fakes import (FakeServer, chat_body, chat_chunk, fail, make_lm, ok, sse, text_body)

import plait
from plait.errors import LMBadRequestError, LMServerError
from plait.lm.types import LMCapabilities


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


# --- request mapping ---------------------------------------------------------------------------

def test_chat_request_maps_every_parameter_and_response_fields():
    server = FakeServer(ok(chat_body("Paris", usage=(11, 2))))
    lm = make_lm(server, temperature=0.2, max_tokens=16)
    response = lm.generate(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
                           stop=["\n\n"], seed=7, top_p=0.9, top_k=3,
                           response_format={"type": "json_object"})
    body = server.bodies[0]
    assert server.paths == ["/v1/chat/completions"]
    assert body["model"] == "test-model"
    assert body["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    assert (body["temperature"], body["max_tokens"], body["stop"], body["seed"], body["top_p"]) == \
        (0.2, 16, ["\n\n"], 7, 0.9)
    assert body["top_k"] == 3                      # not an SDK argument: sent through extra_body
    assert body["response_format"] == {"type": "json_object"}
    assert "max_completion_tokens" not in body and "n" not in body
    assert response.outputs == ["Paris"]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (11, 2, 13)
    assert response.finish_reasons == ["stop"]
    assert response.model == "served-model"


def test_max_completion_tokens_becomes_max_tokens_for_other_servers():
    server = FakeServer(ok(chat_body("x")))
    make_lm(server, max_completion_tokens=9)("hi")
    assert server.bodies[0]["max_tokens"] == 9 and "max_completion_tokens" not in server.bodies[0]


def test_openai_itself_gets_max_completion_tokens_for_chat_and_max_tokens_for_text():
    chat, text = FakeServer(ok(chat_body("x"))), FakeServer(ok(text_body("y")))
    make_lm(chat, api_base=None, max_tokens=5)("hi")
    make_lm(text, api_base=None, model_type="text", max_tokens=5)("hi")
    assert chat.requests[0].url.host == "api.openai.com"
    assert chat.bodies[0]["max_completion_tokens"] == 5 and "max_tokens" not in chat.bodies[0]
    assert text.bodies[0]["max_tokens"] == 5


def test_text_completion_sends_prompt_plus_prefill_and_reads_text():
    server = FakeServer(ok(text_body(" 4, 5", finish="length")))
    lm = make_lm(server, model_type="text", max_tokens=4)
    response = lm.generate(prompt="1, 2,", prefill=" 3,", stop=[" 6"])
    assert server.paths == ["/v1/completions"]
    assert server.bodies[0]["prompt"] == "1, 2, 3," and server.bodies[0]["stop"] == [" 6"]
    assert response.outputs == [" 4, 5"] and response.finish_reasons == ["length"]
    assert lm("1, 2,") == [" 4, 5"]                  # DSPy-style call on a text model: prompt=


def test_chat_model_rejects_prefill_and_text_model_rejects_messages():
    server = FakeServer(ok(chat_body("x")))
    with pytest.raises(LMBadRequestError, match="prefill"):
        make_lm(server).generate(messages=[{"role": "user", "content": "q"}], prefill="Answer:")
    with pytest.raises(LMBadRequestError, match="model_type='chat'"):
        make_lm(server, model_type="text").generate(messages=[{"role": "user", "content": "q"}])
    assert server.requests == []


def test_per_call_timeout_reaches_the_transport():
    server = FakeServer(ok(chat_body("x")))
    make_lm(server)("hi", timeout=1.5)
    assert server.requests[0].extensions["timeout"]["read"] == 1.5
    assert "timeout" not in server.bodies[0]


def test_per_call_credentials_are_refused():
    with pytest.raises(ValueError, match="api_key"):
        make_lm(FakeServer(ok(chat_body("x"))))("hi", api_key="sk-other")


def test_backend_options_are_checked():
    with pytest.raises(ValueError, match="does not take max_retries.*num_retries"):
        plait.LM("openai/m", api_base="http://localhost:1/v1", max_retries=2)
    with pytest.raises(ValueError, match="disagree"):
        plait.LM("openai/m", api_base="http://localhost:1/v1", base_url="http://localhost:2/v1")
    lm = plait.LM("openai/m", base_url="http://localhost:1/v1")
    assert lm.backend.api_base == "http://localhost:1/v1"


def test_capabilities_follow_model_type_and_small_model():
    server = FakeServer(ok(chat_body("x")))
    assert make_lm(server).capabilities == LMCapabilities(
        chat=True, text=False, n=True, json_object=True, json_schema=True, prefill=False,
        small_model=False, streaming=True, tools=False)
    text = make_lm(server, model_type="text", small_model=True).capabilities
    assert (text.chat, text.text, text.small_model) == (False, True, True)
    assert (text.json_object, text.json_schema) == (False, False)   # no JSON mode on /completions


def test_headers_and_extra_body_options_reach_every_request():
    server = FakeServer(ok(chat_body("x")))
    lm = make_lm(server, headers={"X-Team": "blue"}, extra_body={"repeat_penalty": 1.1})
    lm("hi", extra_body={"min_tokens": 2}, top_k=4)
    lm("again")
    assert all(request.headers["x-team"] == "blue" for request in server.requests)
    assert {k: server.bodies[0][k] for k in ("repeat_penalty", "min_tokens", "top_k")} == \
        {"repeat_penalty": 1.1, "min_tokens": 2, "top_k": 4}
    assert server.bodies[1]["repeat_penalty"] == 1.1 and "top_k" not in server.bodies[1]


# --- n -----------------------------------------------------------------------------------------

def test_n_is_filled_with_further_requests_when_the_server_returns_fewer_choices():
    server = FakeServer(ok(chat_body("a", usage=(10, 1))), ok(chat_body("b", usage=(10, 2))),
                        ok(chat_body("c", usage=(10, 3))))
    response = make_lm(server).generate(messages=[{"role": "user", "content": "q"}], n=3, seed=5)
    assert response.outputs == ["a", "b", "c"]
    assert [body["n"] for body in server.bodies] == [3, 2, 1]
    assert [body["seed"] for body in server.bodies] == [5, 6, 7]   # each fill-up samples anew
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (30, 6)
    assert response.finish_reasons == ["stop"] * 3


def test_n_is_one_request_when_the_server_honours_it_and_extra_choices_are_cut():
    server = FakeServer(ok(chat_body("a", "b", "c")))
    assert make_lm(server).generate(messages=[{"role": "user", "content": "q"}], n=2).outputs == ["a", "b"]
    assert len(server.requests) == 1


def test_a_response_without_choices_is_a_server_error():
    server = FakeServer(ok({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}))
    with pytest.raises(LMServerError, match="no choices"):
        make_lm(server)("hi")


# --- json_schema fallback ----------------------------------------------------------------------

SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
LLAMACPP_REJECTION = ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
                      "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}")


def test_json_schema_rejection_falls_back_to_json_object_and_is_remembered():
    server = FakeServer(fail(500, LLAMACPP_REJECTION), ok(chat_body('{"a": 1}')))
    lm = make_lm(server)
    assert lm.generate(messages=[{"role": "user", "content": "q"}], response_format=SCHEMA).outputs == ['{"a": 1}']
    assert [body["response_format"]["type"] for body in server.bodies] == ["json_schema", "json_object"]
    assert lm.capabilities.json_schema is False and lm.capabilities.json_object is True
    lm.generate(messages=[{"role": "user", "content": "again"}], response_format=SCHEMA)
    assert server.bodies[2]["response_format"] == {"type": "json_object"} and len(server.requests) == 3


def test_an_unrelated_failure_of_a_json_schema_request_is_not_a_fallback():
    server = FakeServer(fail(500, "out of memory"))
    lm = make_lm(server)
    with pytest.raises(LMServerError, match="out of memory"):
        lm.generate(messages=[{"role": "user", "content": "q"}], response_format=SCHEMA)
    assert len(server.requests) == 1 and lm.capabilities.json_schema is True


def test_json_adapter_asks_for_json_schema_first_then_json_object():
    server = FakeServer(fail(400, "response_format json_schema is not supported"),
                        ok(chat_body('{"answer": "Paris"}')))
    lm = make_lm(server)
    prediction = plait.Predict("question -> answer")(question="Capital of France?", lm=lm,
                                                    adapter=plait.JSONAdapter())
    assert prediction.answer == "Paris"
    assert [body["response_format"]["type"] for body in server.bodies] == ["json_schema", "json_object"]


# --- streaming and async -----------------------------------------------------------------------

def test_stream_yields_text_deltas():
    server = FakeServer(sse([chat_chunk(None), chat_chunk("Hel"), chat_chunk("lo"), chat_chunk(None, "stop")]))
    lm = make_lm(server)
    assert list(lm.stream(messages=[{"role": "user", "content": "q"}], max_tokens=5)) == ["Hel", "lo"]
    assert server.bodies[0]["stream"] is True and server.bodies[0]["max_tokens"] == 5
    assert lm.history[-1]["outputs"] == ["Hello"]


def test_text_stream_and_stream_errors():
    chunks = [{"id": "x", "object": "text_completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]}
              for piece in (" 4", ",", " 5")]
    assert list(make_lm(FakeServer(sse(chunks)), model_type="text").stream(prompt="1, 2, 3,")) == [" 4", ",", " 5"]
    with pytest.raises(LMServerError, match="HTTP 503"):
        list(make_lm(FakeServer(fail(503))).stream(messages=[{"role": "user", "content": "q"}]))
    with pytest.raises(LMBadRequestError, match="one completion"):
        list(make_lm(FakeServer(ok(chat_body("x")))).stream(messages=[{"role": "user", "content": "q"}], n=2))


def test_agenerate_fills_n_and_maps_errors():
    server = FakeServer(ok(chat_body("a")), ok(chat_body("b")))
    lm = make_lm(server)
    response = asyncio.run(lm.backend.agenerate(lm.build_request(messages=[{"role": "user", "content": "q"}], n=2)))
    assert response.outputs == ["a", "b"] and response.usage.total_tokens == 16
    failing = make_lm(FakeServer(fail(429, "slow down", {"retry-after": "2"})))
    with pytest.raises(plait.errors.LMRateLimitError) as caught:
        asyncio.run(failing.backend.agenerate(failing.build_request(messages=[{"role": "user", "content": "q"}])))
    assert caught.value.retry_after == 2.0


def test_async_stream_and_lm_acall():
    server = FakeServer(sse([chat_chunk("a"), chat_chunk("b")]))
    lm = make_lm(server)

    async def collect() -> list[str]:
        return [piece async for piece in lm.backend.astream(lm.build_request(messages=[{"role": "user", "content": "q"}]))]

    assert asyncio.run(collect()) == ["a", "b"]
    assert asyncio.run(make_lm(FakeServer(ok(chat_body("hi")))).acall("q")) == ["hi"]


def test_one_async_client_per_event_loop():
    server = FakeServer(ok(chat_body("x")))
    lm = make_lm(server)
    request = lm.build_request(messages=[{"role": "user", "content": "q"}])
    for _ in range(2):   # a second asyncio.run must not reuse a pool bound to a closed loop
        assert asyncio.run(lm.backend.agenerate(request)).outputs == ["x"]

    async def use_then_close() -> int:
        await lm.backend.agenerate(request)
        held = len(lm.backend._async_clients)
        await lm.backend.aclose()
        return held - len(lm.backend._async_clients)

    assert asyncio.run(use_then_close()) == 1


# --- the plugin as a plugin --------------------------------------------------------------------

def test_plait_plugins_lists_openai_without_importing_the_sdk():
    script = ("import json, sys, io, contextlib\n"
              "import plait, plait_openai\n"
              "from plait.cli import main\n"
              "out = io.StringIO()\n"
              "with contextlib.redirect_stdout(out):\n"
              "    main(['plugins', '--json'])\n"
              "row = [r for r in json.loads(out.getvalue()) if r['kind'] == 'lm' and r['name'] == 'openai'][0]\n"
              "print(json.dumps([row['extra'], row['installed'], row['plugin'], 'openai' in sys.modules]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["openai", True, "openai", False]


def test_chat_adapter_end_to_end_records_history_and_usage():
    server = FakeServer(ok(chat_body("[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]", usage=(40, 8))))
    lm = make_lm(server, cache=True)
    predict = plait.Predict("question -> answer")
    assert predict(question="Capital of France? (fake server)", lm=lm).answer == "Paris"
    assert predict(question="Capital of France? (fake server)", lm=lm).answer == "Paris"
    assert len(server.requests) == 1                      # the repeat came from the cache
    assert [entry["cached"] for entry in lm.history] == [False, True]
    assert lm.history[0]["usage"].total_tokens == 48
