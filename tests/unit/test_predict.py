"""Predict and ChainOfThought end to end through the real adapters with DummyLM."""

from __future__ import annotations

import pytest

import plait
from plait.errors import ConfigurationError
from plait.testing import DummyLM


def test_predict_returns_prediction_with_output_field():
    plait.configure(lm=DummyLM([{"answer": "Paris"}]))
    pred = plait.Predict("question -> answer")(question="What is the capital of France?")
    assert pred.answer == "Paris"
    assert isinstance(pred, plait.Prediction)


def test_chain_of_thought_adds_reasoning_before_outputs():
    lm = DummyLM([{"reasoning": "France's capital is Paris.", "answer": "Paris"}])
    cot = plait.ChainOfThought("question -> answer")
    assert list(cot.predict.signature.output_fields) == ["reasoning", "answer"]
    pred = cot(question="Capital of France?", lm=lm)
    assert pred.reasoning == "France's capital is Paris." and pred.answer == "Paris"


def test_typed_output_is_parsed():
    plait.configure(lm=DummyLM([{"count": 3, "ok": True}]))
    pred = plait.Predict("text -> count: int, ok: bool")(text="a b c")
    assert pred.count == 3 and pred.ok is True


def test_n_completions_are_all_available():
    lm = DummyLM([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    pred = plait.Predict("question -> answer", n=3)(question="q", lm=lm)
    assert pred.answer == "a"
    assert pred.completions.answer == ["a", "b", "c"]
    assert lm.history[-1]["params"]["temperature"] == 0.7   # n>1 with no temperature samples


def test_per_call_config_and_lm_override():
    default_lm = DummyLM([{"answer": "default"}])
    other_lm = DummyLM([{"answer": "other"}])
    plait.configure(lm=default_lm)
    predict = plait.Predict("question -> answer", temperature=0.1)
    pred = predict(question="q", lm=other_lm, config={"max_tokens": 7})
    assert pred.answer == "other"
    assert other_lm.history[-1]["params"] == {"temperature": 0.1, "max_tokens": 7}
    assert default_lm.calls == 0


def test_demos_are_sent_to_the_lm():
    lm = DummyLM([{"answer": "Rome"}])
    predict = plait.Predict("question -> answer")
    predict.demos = [plait.Example(question="Capital of Germany?", answer="Berlin")]
    predict(question="Capital of Italy?", lm=lm)
    sent = "\n".join(str(m["content"]) for m in lm.history[-1]["messages"])
    assert "Capital of Germany?" in sent and "Berlin" in sent and "Capital of Italy?" in sent


def test_missing_lm_says_how_to_configure():
    with pytest.raises(ConfigurationError, match=r"plait\.configure\(lm="):
        plait.Predict("question -> answer")(question="q")


def test_positional_arguments_are_rejected_with_the_field_names():
    with pytest.raises(TypeError, match="question="):
        plait.Predict("question -> answer")("q")


def test_trace_records_each_step():
    lm = DummyLM([{"answer": "x"}])
    trace: list = []
    predict = plait.Predict("question -> answer")
    with plait.context(lm=lm, trace=trace):
        pred = predict(question="q")
    assert trace == [(predict, {"question": "q"}, pred)]


def test_adapter_chosen_per_module_globally_and_for_small_models():
    json_lm = DummyLM([{"answer": "j"}])
    plait.Predict("question -> answer", adapter=plait.JSONAdapter())(question="q", lm=json_lm)
    assert '"answer"' in json_lm.history[-1]["outputs"][0]

    plait.configure(adapter="json")
    global_lm = DummyLM([{"answer": "g"}])
    assert plait.Predict("question -> answer")(question="q", lm=global_lm).answer == "g"
    assert '"answer"' in global_lm.history[-1]["outputs"][0]
    plait.configure(adapter=None)

    small = DummyLM([{"answer": "s"}], small_model=True)
    assert plait.Predict("question -> answer")(question="q", lm=small).answer == "s"
    entry = small.history[-1]
    sent = entry["prompt"] or "\n".join(str(m["content"]) for m in entry["messages"])
    assert "[[ ##" not in sent and "Answer:" in sent     # the template adapter, not field markers


def test_save_and_load_round_trip(tmp_path):
    program = plait.ChainOfThought("question -> answer")
    program.predict.demos = [plait.Example(question="q1", reasoning="r1", answer="a1")]
    program.predict.signature = program.predict.signature.with_instructions("Answer tersely.")
    path = tmp_path / "program.json"
    program.save(path)
    fresh = plait.ChainOfThought("question -> answer")
    fresh.load(path)
    assert fresh.predict.signature.instructions == "Answer tersely."
    assert [d.toDict() for d in fresh.predict.demos] == [{"question": "q1", "reasoning": "r1", "answer": "a1"}]


def test_load_into_a_different_signature_names_the_mismatch(tmp_path):
    path = tmp_path / "p.json"
    plait.Predict("question -> answer").save(path)
    other = plait.Predict("context, question -> answer")
    with pytest.raises(plait.StateError, match="context|field"):
        other.load(path)
    assert other.signature == plait.Signature("context, question -> answer")


async def test_async_predict():
    lm = DummyLM([{"answer": "async"}])
    pred = await plait.Predict("question -> answer").acall(question="q", lm=lm)
    assert pred.answer == "async"


def test_usage_is_attached_to_top_level_prediction_when_tracking():
    class TwoSteps(plait.Module):
        def __init__(self):
            super().__init__()
            self.first = plait.Predict("question -> answer")
            self.second = plait.Predict("answer -> summary")

        def forward(self, question):
            answer = self.first(question=question).answer
            return self.second(answer=answer)

    lm = DummyLM([{"answer": "a"}, {"summary": "s"}])
    plait.configure(lm=lm, track_usage=True)
    pred = TwoSteps()(question="q")
    usage = pred.get_lm_usage()
    assert set(usage) == {"dummy/dummy"}
    total_from_history = sum(entry["usage"].total_tokens for entry in lm.history)
    assert usage["dummy/dummy"]["total_tokens"] == total_from_history > 0
    plait.configure(lm=DummyLM([{"answer": "a"}, {"summary": "s"}]), track_usage=False)
    assert TwoSteps()(question="q").get_lm_usage() is None
