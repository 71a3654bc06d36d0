"""The openai plugin against a real OpenAI-compatible server: llama-cpp-python serving SmolLM2.

Everything runs at temperature 0 with small max_tokens (SmolLM2-135M answers in ~1 s). The
fault proxy (see conftest.py) counts requests and injects 503s and stalls.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

pytest.importorskip("openai", reason="the openai plugin needs the openai SDK: pip install 'plait[openai]'")

import plait
from plait.adapters import ChatAdapter, TemplateAdapter, resolve_adapter
from plait.errors import LMConnectionError, LMTimeoutError

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"


def make_lm(base_url: str, **kwargs) -> plait.LM:
    settings = {"temperature": 0, "max_tokens": 32, "cache": False, "num_retries": 0, **kwargs}
    return plait.LM("openai/smollm2", api_base=base_url, **settings)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_completion_with_usage_and_history(llamacpp_server):
    lm = make_lm(llamacpp_server.base_url)
    response = lm.generate(messages=user(QUESTION))
    assert len(response.outputs) == 1 and response.outputs[0].strip()
    assert response.finish_reasons[0] in ("stop", "length")
    usage = response.usage
    assert usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= 32
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    entry = lm.history[-1]
    assert entry["outputs"] == response.outputs and entry["usage"].total_tokens == usage.total_tokens
    assert entry["messages"] == user(QUESTION) and entry["cached"] is False


def test_text_completion(fault_proxy):
    lm = make_lm(fault_proxy.base_url, model_type="text", max_tokens=12)
    outputs = lm("1, 2, 3, 4,")
    assert fault_proxy.paths == ["/v1/completions"]
    assert outputs[0].strip().startswith("5")


def test_stop_sequences_are_honoured(llamacpp_server):
    text = make_lm(llamacpp_server.base_url, model_type="text", max_tokens=24)
    free = text.generate(prompt="1, 2, 3, 4,").outputs[0]
    stopped = text.generate(prompt="1, 2, 3, 4,", stop=[" 7"])
    assert " 7" in free and " 7" not in stopped.outputs[0]
    assert free.startswith(stopped.outputs[0]) and stopped.finish_reasons == ["stop"]
    chat = make_lm(llamacpp_server.base_url, max_tokens=48)
    listing = user("List the numbers from one to ten, one per line.")
    assert "\n" in chat(messages=listing)[0]
    assert "\n" not in chat(messages=listing, stop=["\n"])[0]


def test_n_is_filled_by_further_requests(fault_proxy):
    # llama.cpp's server returns one choice whatever n asks, so the backend asks again.
    lm = make_lm(fault_proxy.base_url, max_tokens=8, temperature=0.9, seed=1)
    response = lm.generate(messages=user("Name a colour."), n=3)
    assert len(response.outputs) == 3 and all(output.strip() for output in response.outputs)
    assert fault_proxy.paths == ["/v1/chat/completions"] * 3
    assert response.usage.completion_tokens >= 3


def test_json_object_and_json_schema_fallback(fault_proxy):
    lm = make_lm(fault_proxy.base_url, max_tokens=48)
    prompt = user('Reply with a JSON object with the key "answer" giving the capital of France.')
    response = lm.generate(messages=prompt, response_format={"type": "json_object"})
    assert response.finish_reasons == ["stop"] and isinstance(json.loads(response.outputs[0]), dict)
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}}
    assert lm.capabilities.json_schema is True
    again = lm.generate(messages=prompt, response_format=schema)
    assert again.outputs[0].lstrip().startswith("{")
    assert lm.capabilities.json_schema is False        # the server said no: remembered
    assert fault_proxy.count == 3                      # json_object, refused json_schema, json_object


def test_predict_end_to_end_through_the_chat_adapter(llamacpp_server):
    lm = make_lm(llamacpp_server.base_url, max_tokens=48)
    assert isinstance(resolve_adapter(None, lm), ChatAdapter)
    prediction = plait.Predict("question -> answer")(question=QUESTION, lm=lm)
    assert isinstance(prediction.answer, str) and prediction.answer.strip()
    assert lm.history and lm.history[-1]["usage"].completion_tokens > 0


def test_chain_of_thought_end_to_end_on_a_small_model(llamacpp_server):
    # SmolLM2 needs room for its reasoning before the adapter asks for the missing answer.
    lm = make_lm(llamacpp_server.base_url, max_tokens=64, small_model=True)
    assert isinstance(resolve_adapter(None, lm), TemplateAdapter)
    with plait.context(lm=lm):
        prediction = plait.ChainOfThought("question -> answer")(question=QUESTION)
    assert prediction.reasoning.strip() and prediction.answer.strip()
    assert "Reasoning:" in lm.history[0]["messages"][-1]["content"]   # the template format was sent
    assert all(entry["usage"].total_tokens > 0 for entry in lm.history)


def test_repeat_call_is_a_cache_hit_without_a_server_request(fault_proxy):
    lm = make_lm(fault_proxy.base_url, cache=True, max_tokens=8)
    prompt = f"Say the word 'tea'. ({uuid.uuid4().hex})"   # fresh: never cached before
    first = lm(prompt)
    assert lm(prompt) == first
    assert fault_proxy.count == 1
    assert [entry["cached"] for entry in lm.history] == [False, True]


def test_injected_503s_are_retried_honouring_retry_after(fault_proxy):
    fault_proxy.fail_next(2, status=503, retry_after=0.2)
    lm = make_lm(fault_proxy.base_url, num_retries=3, max_tokens=8)
    started = time.monotonic()
    assert lm(QUESTION)[0].strip()
    assert fault_proxy.count == 3
    assert 0.4 <= time.monotonic() - started < 10        # slept Retry-After twice


def test_a_stalled_socket_times_out(fault_proxy):
    fault_proxy.stall()
    lm = make_lm(fault_proxy.base_url, num_retries=1, timeout=1)
    started = time.monotonic()
    with pytest.raises(LMTimeoutError, match="timed out after 1s"):
        lm(QUESTION)
    elapsed = time.monotonic() - started
    assert fault_proxy.count == 2 and 2 <= elapsed < 6


def test_connection_refused_is_a_clear_error_after_bounded_retries(closed_port):
    base_url = f"http://127.0.0.1:{closed_port}/v1"
    lm = make_lm(base_url, num_retries=2)
    started = time.monotonic()
    with pytest.raises(LMConnectionError) as caught:
        lm(QUESTION)
    assert time.monotonic() - started < 6
    message = str(caught.value)
    assert base_url in message and "refused" in message.lower() and "Is the server running" in message


def test_streaming_yields_several_chunks(llamacpp_server):
    lm = make_lm(llamacpp_server.base_url, max_tokens=16)
    chunks = list(lm.stream(messages=user("Count from one to five.")))
    assert len(chunks) > 3 and "".join(chunks).strip()
    assert lm.history[-1]["outputs"] == ["".join(chunks)]
    text = make_lm(llamacpp_server.base_url, model_type="text", max_tokens=8)
    assert "".join(text.stream(prompt="1, 2, 3, 4,")).strip().startswith("5")


def test_async_calls(llamacpp_server):
    lm = make_lm(llamacpp_server.base_url, max_tokens=8)

    async def both() -> list:
        direct = [lm.backend.agenerate(lm.build_request(messages=user(f"Say {word}."))) for word in ("yes", "no")]
        results = [*await asyncio.gather(*direct), await lm.acall(QUESTION)]
        await lm.backend.aclose()   # this loop's connections, before asyncio.run closes it
        return results

    first, second, via_lm = asyncio.run(both())
    assert first.outputs[0].strip() and second.outputs[0].strip() and via_lm[0].strip()
    assert first.usage.completion_tokens > 0
