"""plait.Suggest / plait.Assert: outside and inside with_assertions, retries with hints, give-up rules."""

from __future__ import annotations

import pytest

import plait
from plait.assertions import Assert, AssertionFailedError, Suggest, WithAssertions, with_assertions
from plait.errors import PlaitError
from plait.hookspecs import hookimpl
from plait.plugins import plugin
from plait.primitives import Module
from plait.testing import DummyLM


class Events:
    def __init__(self):
        self.seen = []

    @hookimpl
    def plait_event(self, event):
        self.seen.append(event)

    def failures(self):
        return [dict(e.data) for e in self.seen if e.kind == "assertion.failed"]


class ShortAnswer(Module):
    """Answers, with a constraint on the answer's length (Suggest or Assert)."""

    def __init__(self, check=Suggest):
        self.answer = plait.Predict("question -> answer")
        self.check = check

    def forward(self, question):
        pred = self.answer(question=question)
        self.check(len(pred.answer) <= 5, "The answer must be at most 5 characters.")
        return pred


def hinted_lm(good_after_hints=1):
    """Answers long until it has seen the hint in `good_after_hints` calls; records each call's hint."""
    seen = []

    def answer(request):
        hint = request.context.inputs.get("hint_")
        prompt = "\n".join(str(m["content"]) for m in request.messages)
        seen.append((hint, prompt))
        hinted_calls = sum(1 for h, _ in seen if h)
        return {"answer": "Paris" if hint and hinted_calls >= good_after_hints else "The city of Paris"}

    return DummyLM(answer), seen


def test_outside_a_wrapped_module_suggest_reports_and_assert_raises():
    events = Events()
    with plugin(events):
        assert Suggest(True, "fine") is True
        assert Suggest(False, "too long") is False
        with pytest.raises(AssertionFailedError, match="must be positive") as info:
            Assert(0 > 1, "must be positive")
    assert isinstance(info.value, AssertionError) and isinstance(info.value, PlaitError)
    assert info.value.messages == ["must be positive"]
    assert events.failures() == [
        {"constraint": "suggest", "message": "too long", "retrying": False},
        {"constraint": "assert", "message": "must be positive", "retrying": False}]
    assert Assert(1, "ok") is True


def test_a_failed_suggest_retries_with_its_message_in_the_prompt():
    lm, seen = hinted_lm()
    plait.configure(lm=lm)
    pred = with_assertions(ShortAnswer(), max_retries=2)(question="Capital of France?")
    assert pred.answer == "Paris"
    assert [hint for hint, _ in seen] == [None, "The answer must be at most 5 characters."]
    assert "[[ ## hint_ ## ]]" in seen[1][1] and "at most 5 characters" in seen[1][1]


def test_suggest_gives_up_quietly_after_max_retries_keeping_the_last_prediction():
    lm, seen = hinted_lm(good_after_hints=99)
    plait.configure(lm=lm)
    events = Events()
    with plugin(events):
        pred = with_assertions(ShortAnswer(), max_retries=2)(question="q")
    assert pred.answer == "The city of Paris" and len(seen) == 3
    assert [f["retrying"] for f in events.failures()] == [True, True, False]


def test_assert_raises_after_max_retries():
    lm, seen = hinted_lm(good_after_hints=99)
    plait.configure(lm=lm)
    with pytest.raises(AssertionFailedError, match="at most 5 characters") as info:
        with_assertions(ShortAnswer(check=Assert), max_retries=1)(question="q")
    assert info.value.attempts == 2 and len(seen) == 2
    lm, seen = hinted_lm()
    plait.configure(lm=lm)
    assert with_assertions(ShortAnswer(check=Assert), max_retries=1)(question="q").answer == "Paris"
    with pytest.raises(AssertionFailedError):
        with_assertions(ShortAnswer(check=Assert), max_retries=0)(question="q")


def test_the_hint_goes_to_the_predictor_that_ran_last_or_to_the_target():
    class TwoStep(Module):
        def __init__(self, target=None):
            self.query = plait.Predict("question -> query")
            self.answer = plait.Predict("query -> answer")
            self.target = target

        def forward(self, question):
            query = self.query(question=question).query
            Suggest(len(query) < 10, "Keep the query short.",
                    target_module=getattr(self, self.target) if self.target else None)
            return self.answer(query=query)

    hints = []

    def answer(request):
        inputs = request.context.inputs
        hints.append((list(request.context.signature.output_fields)[0], inputs.get("hint_")))
        if "query" in request.context.signature.output_fields:
            return {"query": "short" if inputs.get("hint_") else "a very long query"}
        return {"answer": "done"}

    plait.configure(lm=DummyLM(answer))
    assert with_assertions(TwoStep())(question="q").answer == "done"
    assert hints == [("query", None), ("query", "Keep the query short."), ("answer", None)]

    hints.clear()
    assert with_assertions(TwoStep(target="answer"), max_retries=1)(question="q").answer == "done"
    assert hints == [("query", None), ("query", None), ("answer", "Keep the query short.")]


def test_a_module_that_swallows_the_failure_is_still_retried():
    class Swallows(Module):
        def __init__(self):
            self.answer = plait.Predict("question -> answer")

        def forward(self, question):
            pred = self.answer(question=question)
            try:
                Suggest(len(pred.answer) <= 5, "Be short.")
            except Exception:   # user code that catches everything
                pass
            return pred

    lm, seen = hinted_lm()
    plait.configure(lm=lm)
    assert with_assertions(Swallows())(question="q").answer == "Paris"
    assert [hint for hint, _ in seen] == [None, "Be short."]


def test_messages_accumulate_across_retries():
    class TwoRules(Module):
        def __init__(self):
            self.answer = plait.Predict("question -> answer")

        def forward(self, question):
            pred = self.answer(question=question)
            Suggest(pred.answer.islower(), "Use lowercase.")
            Suggest(len(pred.answer) <= 5, "At most 5 characters.")
            return pred

    replies = iter(["LONG ANSWER", "long answer", "short"])
    seen = []

    def answer(request):
        seen.append(request.context.inputs.get("hint_"))
        return {"answer": next(replies)}

    plait.configure(lm=DummyLM(answer))
    assert with_assertions(TwoRules(), max_retries=2)(question="q").answer == "short"
    assert seen == [None, "Use lowercase.", "Use lowercase.\nAt most 5 characters."]


def test_a_final_assert_caught_by_the_module_still_fails():
    class CatchesAll(Module):
        def __init__(self):
            self.answer = plait.Predict("question -> answer")

        def forward(self, question):
            pred = self.answer(question=question)
            try:
                Assert(False, "never true")
            except Exception:
                pass
            return pred

    plait.configure(lm=DummyLM(lambda request: {"answer": "x"}))
    with pytest.raises(AssertionFailedError, match="never true"):
        with_assertions(CatchesAll(), max_retries=1)(question="q")


def test_the_wrapper_has_the_modules_parameters_under_the_same_names(tmp_path):
    program = ShortAnswer()
    wrapped = with_assertions(program)
    assert isinstance(wrapped, WithAssertions)
    assert wrapped.named_parameters() == program.named_parameters()
    program.answer.demos = [plait.Example(question="q", answer="a")]
    wrapped.save(tmp_path / "p.json")
    fresh = ShortAnswer()
    fresh.load(tmp_path / "p.json")
    assert fresh.answer.demos[0].answer == "a"


def test_trace_records_the_accepted_attempt_under_the_original_predictor():
    lm, _ = hinted_lm()
    plait.configure(lm=lm)
    program = ShortAnswer()
    trace = []
    with plait.context(trace=trace):
        with_assertions(program)(question="q")
    assert len(trace) == 1 and trace[0][0] is program.answer and trace[0][2].answer == "Paris"


async def test_acall_retries_the_same_way():
    lm, seen = hinted_lm()
    plait.configure(lm=lm)
    pred = await with_assertions(ShortAnswer()).acall(question="q")
    assert pred.answer == "Paris" and len(seen) == 2


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="takes a plait Module"):
        with_assertions(lambda question: question)
    with pytest.raises(ValueError, match="int >= 0"):
        with_assertions(ShortAnswer(), max_retries=-1)
