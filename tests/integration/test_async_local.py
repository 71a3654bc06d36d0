"""Async and streaming against a real engine: the openai plugin talking to llama.cpp's server
(SmolLM2-135M, temperature 0, small max_tokens).

One demo shows the 135M model the ``[[ ## answer ## ]]`` format; with it the model answers
in that shape, so its answer streams field by field.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("openai", reason="the openai plugin needs the openai SDK: pip install 'plait[openai]'")

import plait
from plait.streaming import StreamListener, StreamResponse, streamify

pytestmark = pytest.mark.integration

DEMO = plait.Example(question="What is the capital of Italy?", answer="The capital of Italy is Rome.")


def make_lm(base_url: str, **kwargs) -> plait.LM:
    settings = {"temperature": 0, "max_tokens": 32, "cache": False, "num_retries": 0, **kwargs}
    return plait.LM("openai/smollm2", api_base=base_url, **settings)


def capital_predictor() -> plait.Predict:
    predict = plait.Predict("question -> answer")
    predict.demos = [DEMO]
    return predict


def test_streamed_predict_answer_matches_the_plain_call(llamacpp_server):
    lm = make_lm(llamacpp_server.base_url)
    predict = capital_predictor()
    with plait.context(lm=lm):
        expected = predict(question="What is the capital of France?")
        items = list(streamify(predict, [StreamListener("answer")], async_streaming=False)(
            question="What is the capital of France?"))
    assert lm.history[-1]["outputs"][0].startswith("[[ ## answer ## ]]"), lm.history[-1]["outputs"]
    chunks = [item for item in items if isinstance(item, StreamResponse)]
    assert items[-1] == expected and expected.answer
    assert "".join(chunk.chunk for chunk in chunks) == expected.answer
    assert len([chunk for chunk in chunks if chunk.chunk]) > 1   # it arrived in pieces
    assert chunks[-1].is_last_chunk and {c.predict_name for c in chunks} == {"self"}


async def test_async_stream_on_the_event_loop(llamacpp_server):
    lm = make_lm(llamacpp_server.base_url)
    predict = capital_predictor()
    with plait.context(lm=lm):
        expected = await predict.acall(question="What is the capital of Spain?")
        items = [item async for item in streamify(predict)(question="What is the capital of Spain?")]
    assert items[-1] == expected
    assert "".join(i.chunk for i in items if isinstance(i, StreamResponse)) == expected.answer
    assert asyncio.get_running_loop() in lm.backend._async_clients   # AsyncOpenAI on this loop
    await lm.backend.aclose()


async def test_twenty_concurrent_acalls(llamacpp_server):
    lm = make_lm(llamacpp_server.base_url, max_tokens=12)
    predict = capital_predictor()
    calls_in_threads = []
    generate = lm.backend.generate

    def sync_generate(request):   # must not be used: the calls are native async
        calls_in_threads.append(threading.current_thread())
        return generate(request)

    lm.backend.generate = sync_generate
    questions = [f"What is {i} plus {i}?" for i in range(20)]
    predictions = await asyncio.gather(*[predict.acall(question=q, lm=lm) for q in questions])
    assert len(predictions) == 20 and all(isinstance(p.answer, str) for p in predictions)
    assert calls_in_threads == [] and len(lm.history) == 20
    assert {entry["messages"][-1]["content"].split("\n")[1] for entry in lm.history} == set(questions)
    await lm.backend.aclose()
