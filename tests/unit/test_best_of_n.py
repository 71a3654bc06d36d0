"""BestOfN: threshold, best fallback, fail_count, per-attempt rollout settings, trace, async."""

from __future__ import annotations

import pytest

import plait
from plait.hookspecs import hookimpl
from plait.plugins import plugin
from plait.predict.best_of_n import BestOfN
from plait.primitives import Module, Prediction
from plait.testing import DummyLM


def length_reward(args, pred):
    return float(len(pred.answer))


class Events:
    def __init__(self):
        self.seen = []

    @hookimpl
    def plait_event(self, event):
        self.seen.append(event)


def test_stops_at_the_first_attempt_reaching_the_threshold():
    lm = DummyLM([{"answer": "a"}, {"answer": "abc"}, {"answer": "abcdef"}])
    best = BestOfN(plait.Predict("question -> answer"), N=3, reward_fn=length_reward, threshold=3)
    with plait.context(lm=lm):
        pred = best(question="q")
    assert pred.answer == "abc"
    assert lm.calls == 2                             # the third attempt never ran


def test_without_a_hit_the_best_attempt_wins_and_all_n_run():
    lm = DummyLM([{"answer": "ab"}, {"answer": "abcd"}, {"answer": "a"}])
    plait.configure(lm=lm)
    pred = BestOfN(plait.Predict("question -> answer"), N=3, reward_fn=length_reward, threshold=10)(question="q")
    assert pred.answer == "abcd" and lm.calls == 3
    lm2 = DummyLM([{"answer": "x"}, {"answer": "xyz"}])
    plait.configure(lm=lm2)
    pred = BestOfN(plait.Predict("question -> answer"), N=2, reward_fn=length_reward, threshold=None)(question="q")
    assert pred.answer == "xyz" and lm2.calls == 2   # threshold None: every attempt runs


def test_each_attempt_samples_at_temperature_one_with_its_own_seed_so_the_cache_cannot_replay():
    lm = DummyLM([{"reasoning": "r", "answer": x} for x in "abc"], cache=True)
    plait.configure(lm=lm)
    program = plait.ChainOfThought("question -> answer", temperature=0.0, seed=40)
    reward = lambda args, pred: 0.0   # noqa: E731 - never reaches the threshold
    best = BestOfN(program, N=3, reward_fn=reward, threshold=1.0)
    best(question="a question only this test asks (best_of_n seeds)")
    params = [entry["params"] for entry in lm.history]
    assert [p["temperature"] for p in params] == [1.0, 1.0, 1.0]
    assert [p["seed"] for p in params] == [40, 41, 42]
    assert lm.calls == 3                              # the cache answered none of them
    assert program.predict.config == {"temperature": 0.0, "seed": 40}   # the module itself is untouched
    best(question="a question only this test asks (best_of_n seeds)")
    assert lm.calls == 3                              # the same attempts again: all from the cache


def test_errors_are_tolerated_until_fail_count_then_raised():
    class Flaky(Module):
        def __init__(self, outcomes):
            self.next_outcome = outcomes.pop   # a bound builtin: attempts' deep copies share the list

        def forward(self, question):
            outcome = self.next_outcome(0)
            if isinstance(outcome, Exception):
                raise outcome
            return Prediction(answer=outcome)

    outcomes = [RuntimeError("first"), "ok"]
    pred = BestOfN(Flaky(outcomes), N=3, reward_fn=length_reward, threshold=1)(question="q")
    assert pred.answer == "ok"

    outcomes = [RuntimeError("one"), RuntimeError("two"), "never"]
    with pytest.raises(RuntimeError, match="two") as info:
        BestOfN(Flaky(outcomes), N=3, reward_fn=length_reward, threshold=1, fail_count=2)(question="q")
    assert any("fail_count=2" in note for note in info.value.__notes__)
    assert outcomes == ["never"]

    outcomes = [RuntimeError("x"), RuntimeError("last")]
    with pytest.raises(RuntimeError, match="last") as info:
        BestOfN(Flaky(outcomes), N=2, reward_fn=length_reward, threshold=1, fail_count=5)(question="q")
    assert any("all 2 attempts failed" in note for note in info.value.__notes__)


def test_a_failing_reward_counts_as_a_failed_attempt_and_a_bad_reward_type_is_an_error():
    lm = DummyLM([{"answer": "a"}, {"answer": "b"}])
    plait.configure(lm=lm)
    calls = []

    def flaky_reward(args, pred):
        calls.append(pred.answer)
        if pred.answer == "a":
            raise ValueError("reward broke")
        return True

    pred = BestOfN(plait.Predict("question -> answer"), N=2, reward_fn=flaky_reward, threshold=1)(question="q")
    assert pred.answer == "b" and calls == ["a", "b"]
    plait.configure(lm=DummyLM([{"answer": "a"}]))
    with pytest.raises(TypeError, match="reward_fn returned str"):
        BestOfN(plait.Predict("question -> answer"), N=1, reward_fn=lambda a, p: "high", threshold=1)(question="q")


def test_rewards_may_be_predictions_with_a_score_and_get_the_inputs():
    plait.configure(lm=DummyLM([{"answer": "no"}, {"answer": "yes"}]))
    seen = []

    def judged(args, pred):
        seen.append(dict(args))
        return Prediction(score=1.0 if pred.answer == "yes" else 0.2)

    pred = BestOfN(plait.Predict("question -> answer"), N=3, reward_fn=judged, threshold=0.9)(question="q?")
    assert pred.answer == "yes" and seen == [{"question": "q?"}, {"question": "q?"}]


def test_the_best_attempts_trace_reaches_the_caller_under_the_original_predictor():
    plait.configure(lm=DummyLM([{"reasoning": "r", "answer": "short"}, {"reasoning": "r", "answer": "longer"}]))
    program = plait.ChainOfThought("question -> answer")
    best = BestOfN(program, N=2, reward_fn=length_reward, threshold=None)
    trace = []
    with plait.context(trace=trace):
        pred = best(question="q")
    assert pred.answer == "longer"
    assert len(trace) == 1                              # only the chosen attempt
    predictor, inputs, output = trace[0]
    assert predictor is program.predict and inputs == {"question": "q"} and output.answer == "longer"


def test_parameters_are_the_wrapped_modules_and_a_judge_module_stays_hidden():
    class Judge(Module):
        def __init__(self):
            self.grade = plait.Predict("answer -> score: float")

        def __call__(self, args, pred):
            return 1.0

    best = BestOfN(plait.ChainOfThought("question -> answer"), N=2, reward_fn=Judge(), threshold=1)
    assert [name for name, _ in best.named_predictors()] == ["module.predict"]
    plait.configure(lm=DummyLM([{"reasoning": "r", "answer": "a"}]))
    assert best(question="q").answer == "a"


def test_events_report_each_attempt():
    plait.configure(lm=DummyLM([{"answer": "a"}, {"answer": "abc"}]))
    events = Events()
    with plugin(events):
        BestOfN(plait.Predict("question -> answer"), N=2, reward_fn=length_reward, threshold=3)(question="q")
    attempts = [dict(e.data) for e in events.seen if e.kind == "best_of_n.attempt"]
    assert attempts == [{"of": 2, "attempt": 1, "reward": 1.0}, {"of": 2, "attempt": 2, "reward": 3.0}]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"module": "not a module"}, TypeError, "takes a plait Module"),
    ({"N": 0}, ValueError, "int >= 1"),
    ({"reward_fn": 3}, TypeError, "must be callable"),
    ({"threshold": "high"}, TypeError, "threshold must be a number"),
    ({"fail_count": 0}, ValueError, "pass None for N"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    arguments = {"module": plait.Predict("q -> a"), "N": 2, "reward_fn": length_reward, "threshold": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        BestOfN(**arguments)


async def test_acall_runs_the_same_loop_and_awaits_async_rewards():
    plait.configure(lm=DummyLM([{"answer": "a"}, {"answer": "abc"}, {"answer": "zzzzzz"}]))

    async def reward(args, pred):
        return len(pred.answer)

    pred = await BestOfN(plait.Predict("question -> answer"), N=3, reward_fn=reward, threshold=3).acall(question="q")
    assert pred.answer == "abc"
