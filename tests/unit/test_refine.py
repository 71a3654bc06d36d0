"""Refine: feedback after a miss reaches the next attempt as a ``hint_`` input."""

from __future__ import annotations

import json

import pytest

import plait
from plait.hookspecs import hookimpl
from plait.plugins import plugin
from plait.predict.refine import Refine, advice_by_name, hint_adapter, source_of
from plait.primitives import Module
from plait.testing import DummyLM


def one_word(args, pred):
    """1.0 when the answer is a single word."""
    return 1.0 if len(pred.answer.split()) == 1 else 0.0


class Script:
    """A DummyLM answer function: the feedback step advises, the program answers long until hinted."""

    def __init__(self, advice=None, fail_feedback=False):
        self.advice = advice if advice is not None else {"predict": "Answer with one word."}
        self.fail_feedback = fail_feedback
        self.feedback_inputs = []
        self.program_calls = []   # (inputs, prompt text) per program LM call

    def __call__(self, request):
        inputs = dict(request.context.inputs)
        if "advice" in request.context.signature.output_fields:
            self.feedback_inputs.append(inputs)
            if self.fail_feedback:
                raise RuntimeError("feedback LM is down")
            return {"discussion": "The answer had several words.", "advice": self.advice}
        prompt = "\n".join(str(m["content"]) for m in request.messages)
        self.program_calls.append((inputs, prompt))
        hinted = "one word" in str(inputs.get("hint_", ""))
        return {"reasoning": "Belgium's capital.", "answer": "Brussels" if hinted else "It is Brussels"}


def test_feedback_from_attempt_one_reaches_attempt_twos_prompt():
    script = Script()
    plait.configure(lm=DummyLM(script))
    program = plait.ChainOfThought("question -> answer")
    refine = Refine(program, N=3, reward_fn=one_word, threshold=1.0)
    pred = refine(question="Capital of Belgium?")
    assert pred.answer == "Brussels"
    assert len(script.program_calls) == 2 and len(script.feedback_inputs) == 1
    (first_inputs, first_prompt), (second_inputs, second_prompt) = script.program_calls
    assert "hint_" not in first_inputs and "hint_" not in first_prompt
    assert second_inputs["hint_"] == "Answer with one word."
    assert "[[ ## hint_ ## ]]" in second_prompt and "Answer with one word." in second_prompt
    assert "A hint to the module from an earlier run" in second_prompt
    assert program.predict.adapter is None                       # the module itself is untouched


def test_the_feedback_step_sees_inputs_outputs_trajectory_reward_and_its_code():
    script = Script()
    plait.configure(lm=DummyLM(script))
    Refine(plait.ChainOfThought("question -> answer"), N=2, reward_fn=one_word, threshold=1.0)(question="Capital?")
    seen = script.feedback_inputs[0]
    assert json.loads(seen["program_inputs"]) == {"question": "Capital?"}
    assert json.loads(seen["program_outputs"])["answer"] == "It is Brussels"
    assert json.loads(seen["program_trajectory"]) == [
        {"module_name": "predict", "inputs": {"question": "Capital?"},
         "outputs": {"reasoning": "Belgium's capital.", "answer": "It is Brussels"}}]
    assert "def one_word(args, pred):" in seen["reward_code"]
    assert "class ChainOfThought" in seen["program_code"]
    assert "Module predict" in seen["modules_defn"] and "answer" in seen["modules_defn"]
    assert seen["reward_value"] == 0.0 and seen["target_threshold"] == 1.0
    assert seen["module_names"] == ["predict"]


def test_no_feedback_after_a_hit_or_after_the_last_attempt():
    script = Script(advice={"predict": "Keep going."})   # advice that never helps
    plait.configure(lm=DummyLM(script))
    pred = Refine(plait.ChainOfThought("question -> answer"), N=3, reward_fn=one_word, threshold=1.0)(question="q")
    assert pred.answer == "It is Brussels"                       # the best of three misses
    assert len(script.program_calls) == 3 and len(script.feedback_inputs) == 2
    assert [inputs.get("hint_") for inputs, _ in script.program_calls] == [None, "Keep going.", "Keep going."]

    script = Script()
    plait.configure(lm=DummyLM(script))
    Refine(plait.ChainOfThought("question -> answer"), N=3, reward_fn=lambda a, p: 1.0, threshold=1.0)(question="q")
    assert len(script.program_calls) == 1 and script.feedback_inputs == []


def test_each_predictor_gets_its_own_advice_and_the_others_na():
    class TwoStep(Module):
        def __init__(self):
            self.draft = plait.Predict("question -> draft")
            self.polish = plait.Predict("draft -> answer")

        def forward(self, question):
            return self.polish(draft=self.draft(question=question).draft)

    hints = []

    def answer(request):
        inputs = request.context.inputs
        fields = request.context.signature.output_fields
        if "advice" in fields:
            return {"discussion": "polish was wordy", "advice": {"polish": "One word only."}}
        hints.append((list(fields)[0], inputs.get("hint_")))
        if "draft" in fields:
            return {"draft": "some draft"}
        return {"answer": "Done" if inputs.get("hint_") == "One word only." else "Not done yet"}

    plait.configure(lm=DummyLM(answer))
    pred = Refine(TwoStep(), N=2, reward_fn=one_word, threshold=1.0)(question="q")
    assert pred.answer == "Done"
    assert hints == [("draft", None), ("answer", None), ("draft", "N/A"), ("answer", "One word only.")]


def test_a_failed_feedback_step_is_reported_and_the_next_attempt_runs_unhinted():
    events = []

    class Listener:
        @hookimpl
        def plait_event(self, event):
            events.append(event)

    script = Script(fail_feedback=True)
    plait.configure(lm=DummyLM(script))
    with plugin(Listener()):
        pred = Refine(plait.ChainOfThought("question -> answer"), N=2, reward_fn=one_word, threshold=1.0)(question="q")
    assert pred.answer == "It is Brussels"
    assert [inputs.get("hint_") for inputs, _ in script.program_calls] == [None, None]
    failed = [e for e in events if e.kind == "refine.feedback_failed"]
    assert len(failed) == 1 and "feedback LM is down" in failed[0].data["error"]
    assert [e.data["attempt"] for e in events if e.kind == "refine.attempt"] == [1, 2]


def test_an_explicit_adapter_is_kept_under_the_hint():
    script = Script()
    plait.configure(lm=DummyLM(script))
    program = plait.ChainOfThought("question -> answer", adapter=plait.JSONAdapter())
    pred = Refine(program, N=2, reward_fn=one_word, threshold=1.0)(question="q")
    assert pred.answer == "Brussels"
    second_prompt = script.program_calls[1][1]
    assert "Answer with one word." in second_prompt
    assert "Reply with one JSON object" in second_prompt        # the JSON adapter formatted it


def test_the_trace_keeps_the_inputs_without_the_hint():
    script = Script()
    plait.configure(lm=DummyLM(script))
    program = plait.ChainOfThought("question -> answer")
    trace = []
    with plait.context(trace=trace):
        Refine(program, N=2, reward_fn=one_word, threshold=1.0)(question="q")
    assert [(step[0], step[1]) for step in trace] == [(program.predict, {"question": "q"})]


async def test_acall_feeds_the_advice_forward_too():
    script = Script()
    plait.configure(lm=DummyLM(script))
    pred = await Refine(plait.ChainOfThought("question -> answer"), N=3, reward_fn=one_word,
                        threshold=1.0).acall(question="q")
    assert pred.answer == "Brussels"
    assert script.program_calls[1][0]["hint_"] == "Answer with one word."


def test_hints_nest_and_advice_is_matched_to_names():
    lm = DummyLM(lambda request: {"answer": request.context.inputs["hint_"]})
    predict = plait.Predict("question -> answer")
    predict.adapter = hint_adapter(hint_adapter(None, "inner"), "outer")
    assert predict(question="q", lm=lm).answer.split("\n") == ["outer", "inner"]
    assert advice_by_name({"generate": "be brief"}, ["predict"]) == {"predict": "be brief"}
    assert advice_by_name({"a": "x", "b": "y"}, ["a", "b"]) == {"a": "x", "b": "y"}
    assert advice_by_name("plain advice", ["predict"]) == {"predict": "plain advice"}
    assert advice_by_name(None, ["a", "b"]) == {}


def test_source_of_falls_back_for_objects_without_source():
    assert "def one_word" in source_of(one_word)
    assert source_of(len).startswith("Return the number of items")   # a builtin: its docstring

    class Scorer:
        def __call__(self, args, pred):
            return 1.0

    assert "class Scorer" in source_of(Scorer())                     # a callable object: its class
    namespace = {}
    exec("def made_at_runtime(args, pred):\n    return 1.0", namespace)   # no file: no source, no doc
    assert source_of(namespace["made_at_runtime"]) == "made_at_runtime"   # its name, not a repr with an address


def test_refine_checks_its_arguments_like_best_of_n():
    with pytest.raises(ValueError, match="int >= 1"):
        Refine(plait.Predict("q -> a"), N=0, reward_fn=one_word, threshold=1.0)
