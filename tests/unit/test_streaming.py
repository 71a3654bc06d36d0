"""plait.streamify: the incremental marker parser, chunk order, listeners, final Prediction
equality with a non-streamed call, the sync and async variants, and the fallbacks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

import plait
from plait.adapters import ChatAdapter, JSONAdapter
from plait.adapters._parsing import marker_sections
from plait.lm import cache as cache_mod
from plait.lm.types import LMCapabilities, LMRequest
from plait.primitives.prediction import Prediction
from plait.streaming import StreamListener, StreamResponse, streamify
from plait.testing import DummyLM

COT = plait.Signature("question -> reasoning, answer")


def pieces_of(text: str, cuts: list[int], signature: Any = COT) -> list[tuple[str, str, bool]]:
    parser = ChatAdapter().stream_parser(signature)
    bounds = [0, *sorted(set(cuts)), len(text)]
    pieces = []
    for start, end in zip(bounds, bounds[1:]):
        pieces += parser.feed(text[start:end])
    return pieces + parser.finish()


def joined(pieces: list[tuple[str, str, bool]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for field, text, _ in pieces:
        fields[field] = fields.get(field, "") + text
    return fields


def chunks_by_field(items: list[Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in items:
        if isinstance(item, StreamResponse):
            fields[item.signature_field_name] = fields.get(item.signature_field_name, "") + item.chunk
    return fields


def answer_cot(request: LMRequest) -> dict[str, str]:
    question = request.context.inputs["question"]
    return {"reasoning": f"Thinking about {question} step by step.", "answer": f"It is {question}!"}


class CoT(plait.Module):
    def __init__(self) -> None:
        super().__init__()
        self.think = plait.ChainOfThought("question -> answer")

    def forward(self, question: str) -> Prediction:
        return self.think(question=question)


# --- the incremental marker parser ----------------------------------------------------------

COMPLETION = "[[ ## reasoning ## ]]\nLet me think [about] it.\n\n[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


@pytest.mark.parametrize("cuts", [
    [], [1], [2, 5, 9, 14],                        # inside the first marker
    [COMPLETION.index("[[ ## answer") + 1],         # "[" | "[ ## answer"
    [COMPLETION.index("## answer") + 5],            # "[[ ## ans" | "wer ## ]]"
    [COMPLETION.index("answer ## ]]") + 10],        # "... ]" | "]"
    [COMPLETION.index("[[ ## completed") + 3],
    list(range(len(COMPLETION))),                  # one character at a time
])
def test_markers_split_across_chunks(cuts):
    pieces = pieces_of(COMPLETION, cuts)
    assert joined(pieces) == {"reasoning": "Let me think [about] it.", "answer": "Paris"}
    assert [(field, last) for field, _, last in pieces if last] == [("reasoning", True), ("answer", True)]
    assert all("[[" not in text and "##" not in text for _, text, _ in pieces)
    order = [field for field, _, _ in pieces]
    assert order == sorted(order, key=["reasoning", "answer"].index)   # reasoning first, then answer


def test_text_arrives_before_the_answer_ends():
    parser = ChatAdapter().stream_parser(COT)
    assert parser.feed("[[ ## reasoning ## ]]\nFirst ") == [("reasoning", "First", False)]
    assert parser.feed("step") == [("reasoning", " step", False)]   # the held space comes back
    assert parser.feed(" [[ ## ans") == []                         # a marker may be starting
    assert parser.feed("wer ## ]]\nP") == [("reasoning", "", True), ("answer", "P", False)]
    assert parser.finish() == [("answer", "", True)]


def test_markdown_around_markers_and_unknown_markers():
    text = ("Sure!\n**[[ ## Reasoning ## ]]**\nbecause\n[[ ## question ## ]]\necho\n"
            "### [[ ## answer ## ]]\n42 [[ ## answer ## ]] again")
    for cuts in ([], list(range(len(text))), [7, 8, 9, 10, 30, 31, 60]):
        assert joined(pieces_of(text, cuts)) == {"reasoning": "because", "answer": "42"}


def test_json_and_other_adapters_have_no_stream_parser():
    assert JSONAdapter().stream_parser(COT) is None
    assert plait.TemplateAdapter().stream_parser(COT) is None


# Values made of marker look-alikes and the characters markers are built from.
_FRAGMENTS = st.sampled_from(["[[ ## answer ## ]]", "[[ ## completed ## ]]", "[[ x ]]", "[[ ## Answer ##]]**:",
                              "[[", "]]", "[", "]", "**", "#", "`", ">", "_", ":", " ", "\t", "\n", "ab"])
_TEXT = st.one_of(st.text(alphabet="ab []#*_:\n", max_size=25), st.lists(_FRAGMENTS, max_size=10).map("".join))


@hsettings(max_examples=150, deadline=None)
@given(reasoning=_TEXT, answer=_TEXT, noise=_TEXT, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_streamed_sections_always_match_the_lenient_parser(reasoning, answer, noise, cuts):
    text = f"{noise}[[ ## reasoning ## ]]\n{reasoning}\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
    keys = ChatAdapter().plan(COT).output_keys
    expected = {field: value.strip() for field, value in marker_sections(text, keys).items()}
    pieces = pieces_of(text, [cut for cut in cuts if cut < len(text)])
    assert joined(pieces) == expected
    assert sorted(field for field, _, last in pieces if last) == sorted(expected)


# --- streamify with DummyLM ---------------------------------------------------------------

async def test_async_stream_yields_chunks_in_order_then_the_same_prediction():
    lm = DummyLM(answer_cot, stream_chunk_size=3)
    program = CoT()
    with plait.context(lm=lm):
        expected = program(question="Paris")
        items = [item async for item in streamify(program)(question="Paris")]
    chunks, final = items[:-1], items[-1]
    assert final == expected and isinstance(final, Prediction)
    assert all(isinstance(item, StreamResponse) for item in chunks) and len(chunks) > 6
    assert chunks_by_field(chunks) == {"reasoning": expected.reasoning, "answer": expected.answer}
    fields = [chunk.signature_field_name for chunk in chunks]
    assert fields == sorted(fields, key=["reasoning", "answer"].index)
    assert {chunk.predict_name for chunk in chunks} == {"think.predict"}
    assert [c.signature_field_name for c in chunks if c.is_last_chunk] == ["reasoning", "answer"]
    assert lm.history[-1]["outputs"][0].startswith("[[ ## reasoning ## ]]")   # recorded as usual


def test_sync_stream_matches_the_non_streamed_call():
    lm = DummyLM(answer_cot)
    program = CoT()
    with plait.context(lm=lm):
        expected = program(question="Rome")
        items = list(streamify(program, async_streaming=False)(question="Rome"))
    assert items[-1] == expected
    assert chunks_by_field(items[:-1]) == {"reasoning": expected.reasoning, "answer": expected.answer}


def test_listeners_select_fields_and_name_predictors():
    class TwoSteps(plait.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = plait.Predict("question -> draft")
            self.polish = plait.Predict("draft -> answer")

        def forward(self, question: str) -> Prediction:
            return self.polish(draft=self.draft(question=question).draft)

    lm = DummyLM([{"draft": "a rough draft"}, {"answer": "a polished answer"}])
    stream = streamify(TwoSteps(), [StreamListener(signature_field_name="answer")], async_streaming=False)
    with plait.context(lm=lm):
        items = list(stream(question="q"))
    chunks = [item for item in items if isinstance(item, StreamResponse)]
    assert {(c.predict_name, c.signature_field_name) for c in chunks} == {("polish", "answer")}
    assert "".join(c.chunk for c in chunks) == "a polished answer"
    assert items[-1].answer == "a polished answer"


def test_listener_reuse():
    class Twice(plait.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = plait.Predict("question -> answer")

        def forward(self, question: str) -> Prediction:
            self.step(question=question)
            return self.step(question=question + "?")

    def run(listener: StreamListener) -> list[str]:
        lm = DummyLM([{"answer": "one"}, {"answer": "two"}])
        with plait.context(lm=lm):
            items = list(streamify(Twice(), [listener], async_streaming=False)(question="q"))
        return ["".join(c.chunk for c in items if isinstance(c, StreamResponse))]

    assert run(StreamListener("answer")) == ["one"]
    assert run(StreamListener("answer", allow_reuse=True)) == ["onetwo"]


def test_listeners_that_match_nothing_or_several_predictors_are_errors():
    class Pair(plait.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = plait.Predict("question -> answer")
            self.b = plait.Predict("question -> answer")

    with pytest.raises(ValueError, match="no predictor .* 'summary'"):
        streamify(plait.Predict("question -> answer"), [StreamListener("summary")])
    with pytest.raises(ValueError, match="several predictors \\(a, b\\)"):
        streamify(Pair(), [StreamListener("answer")])
    with pytest.raises(ValueError, match="no predictor named 'c'"):
        streamify(Pair(), [StreamListener("answer", predict_name="c")])
    with pytest.raises(ValueError, match="not an output field"):
        streamify(Pair(), [StreamListener("question", predict_name="a")])
    program = Pair()
    assert streamify(program, [StreamListener("answer", predict=program.b)]) is not None
    with pytest.raises(ValueError, match="signature_field_name"):
        StreamListener("")


def test_final_prediction_can_be_left_out_unless_nothing_streamed():
    lm = DummyLM(lambda request: {"answer": "Paris"})
    predict = plait.Predict("question -> answer")
    with plait.context(lm=lm):
        items = list(streamify(predict, [StreamListener("answer")], include_final_prediction=False,
                               async_streaming=False)(question="q"))
        assert items and all(isinstance(item, StreamResponse) for item in items)
        assert items[0].predict_name == "self"
        # JSON answers cannot be streamed: with nothing streamed the result still comes
        json_predict = plait.Predict("question -> answer", adapter=JSONAdapter())
        items = list(streamify(json_predict, include_final_prediction=False, async_streaming=False)(question="q"))
    assert items == [Prediction(answer="Paris")]


def test_calls_that_cannot_stream_send_whole_fields(monkeypatch):
    monkeypatch.setattr(cache_mod, "_default_cache", cache_mod.ResponseCache(disk=False))
    monkeypatch.setattr(cache_mod, "_enabled", True)
    lm = DummyLM(answer_cot, cache=True)
    program = CoT()
    with plait.context(lm=lm):
        first = list(streamify(program, async_streaming=False)(question="x"))
        calls = lm.calls
        cached = list(streamify(program, async_streaming=False)(question="x"))   # a cache hit
    assert lm.calls == calls and lm.history[-1]["cached"] is True
    assert cached[-1] == first[-1]
    whole = [(c.signature_field_name, c.chunk, c.is_last_chunk) for c in cached[:-1]]
    assert whole == [("reasoning", first[-1].reasoning, True), ("answer", first[-1].answer, True)]

    class NoStreaming(DummyLM):
        @property
        def capabilities(self) -> LMCapabilities:
            return LMCapabilities(chat=True, streaming=False)

    with plait.context(lm=NoStreaming([{"answer": "Oslo"}])):
        items = list(streamify(plait.Predict("question -> answer"), async_streaming=False)(question="q"))
    assert [(c.chunk, c.is_last_chunk) for c in items[:-1]] == [("Oslo", True)]


async def test_async_stream_uses_astream_on_the_loop_and_runs_sync_programs_in_threads():
    threads = []

    def answer(request: LMRequest) -> dict[str, str]:
        threads.append(threading.current_thread())
        return {"answer": "Lima"}

    lm = DummyLM(answer)
    with plait.context(lm=lm):
        items = [item async for item in streamify(plait.Predict("question -> answer"))(question="q")]
        assert threads == [threading.current_thread()] and items[-1].answer == "Lima"

        class SyncProgram(plait.Module):
            def __init__(self) -> None:
                super().__init__()
                self.step = plait.Predict("question -> answer")

            def forward(self, question: str) -> Prediction:
                return self.step(question=question)

        items = [item async for item in streamify(SyncProgram())(question="q")]
    assert threads[1] is not threading.current_thread()
    assert chunks_by_field(items) == {"answer": "Lima"} and items[-1].answer == "Lima"


async def test_concurrent_async_streams_stay_apart():
    lm = DummyLM(lambda request: {"answer": f"answer to {request.context.inputs['question']}"},
                 stream_chunk_size=2)
    stream = streamify(plait.Predict("question -> answer"))

    async def collect(question: str) -> tuple[str, Any]:
        items = [item async for item in stream(question=question)]
        return chunks_by_field(items)["answer"], items[-1].answer

    with plait.context(lm=lm):
        results = await asyncio.gather(*[collect(f"q{i}") for i in range(10)])
    assert results == [(f"answer to q{i}", f"answer to q{i}") for i in range(10)]


async def test_errors_in_the_program_reach_the_consumer():
    class Broken(plait.Module):
        async def aforward(self, question: str) -> Any:
            raise RuntimeError("the program broke")

        def forward(self, question: str) -> Any:
            raise RuntimeError("the program broke")

    with pytest.raises(RuntimeError, match="the program broke"):
        [item async for item in streamify(Broken())(question="q")]
    with pytest.raises(RuntimeError, match="the program broke"):
        list(streamify(Broken(), async_streaming=False)(question="q"))
    with pytest.raises(TypeError, match="streamify"):
        streamify("not a program")   # type: ignore[arg-type]


def test_a_consumer_that_stops_reading_ends_the_program():
    finished = threading.Event()
    calls = []

    class TwoCalls(plait.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = plait.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            try:
                calls.append(self.step(question=question))
                time.sleep(0.05)   # the consumer has stopped reading by now
                calls.append(self.step(question=question))
            finally:
                finished.set()

    lm = DummyLM(lambda request: {"answer": "a long answer in many small chunks"}, stream_chunk_size=1)
    with plait.context(lm=lm):
        for item in streamify(TwoCalls(), async_streaming=False)(question="q"):
            assert isinstance(item, StreamResponse)
            break
    assert finished.wait(5)
    assert len(calls) <= 1   # the second call never ran


def test_sync_variant_runs_async_only_programs_and_dspy_option_names():
    lm = DummyLM(lambda request: {"answer": "Bern"})
    predict = plait.Predict("question -> answer")

    async def program(question: str) -> Prediction:
        return await predict.acall(question=question)

    stream = streamify(program, [StreamListener("answer", predict=predict)], async_streaming=False,
                       include_final_prediction_in_output_stream=False)
    with plait.context(lm=lm):
        items = list(stream(question="q"))
        forced = list(streamify(predict, is_async_program=True, async_streaming=False)(question="q"))
    assert "".join(item.chunk for item in items) == "Bern"
    assert all(isinstance(item, StreamResponse) for item in items)
    assert forced[-1] == Prediction(answer="Bern")
    with pytest.raises(TypeError, match="no native async path"):
        streamify(lambda question: None, is_async_program=True)


async def test_async_stream_with_a_sync_only_streaming_backend_uses_a_thread():
    threads = []

    def answer(request: LMRequest) -> dict[str, str]:
        threads.append(threading.current_thread())
        return {"answer": "Quito, the capital"}

    lm = DummyLM(answer)
    lm.backend.astream = None   # only the sync stream: it runs in a worker thread
    with plait.context(lm=lm):
        items = [item async for item in streamify(plait.Predict("question -> answer"))(question="q")]
    assert len(threads) == 1 and threads[0] is not threading.current_thread()
    assert chunks_by_field(items) == {"answer": "Quito, the capital"} and len(items) > 3


async def test_closing_the_async_stream_cancels_the_program():
    lm = DummyLM(lambda request: {"answer": "a long answer " * 10}, stream_chunk_size=1)
    with plait.context(lm=lm):
        stream = streamify(plait.Predict("question -> answer"))(question="q")
        first = await stream.__anext__()
        await stream.aclose()
    await asyncio.sleep(0.01)
    assert isinstance(first, StreamResponse) and first.chunk == "a"
    assert lm.calls == 1 and len(lm.history) == 0   # the call was cancelled before it finished
