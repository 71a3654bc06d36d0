"""BootstrapFewShot with rule-based DummyLMs that fail on purpose: which demos get picked,
thresholds, max_errors, rounds, teachers, budgets, events and determinism across threads."""

from __future__ import annotations

import pytest

import plait
from plait.plugins import plugin
from plait.teleprompt import BootstrapError, BootstrapFewShot, Budget
from teleprompt_fakes import (Recorder, Rules, TwoStep, demo_dicts, demos_text, exact, number_of,
                              numbered, question, rule_lm)


def not_multiple_of_3(i: int, request: object) -> str | None:
    return None if i % 3 == 0 else str(i)


def test_passing_traces_become_demos_in_trainset_order_then_labeled_fill() -> None:
    plait.configure(lm=rule_lm(Rules(not_multiple_of_3)))
    train = numbered(12)
    optimizer = BootstrapFewShot(metric=exact, max_bootstrapped_demos=3, max_labeled_demos=5, num_threads=1)
    program = optimizer.compile(plait.Predict("question -> answer"), trainset=train)
    augmented = [demo for demo in program.demos if demo.get("augmented")]
    labeled = [demo for demo in program.demos if not demo.get("augmented")]
    # 0 fails, 1 and 2 pass, 3 fails, 4 passes: the first three passing examples, in order
    assert [demo.question for demo in augmented] == [question(1), question(2), question(4)]
    assert [demo.answer for demo in augmented] == ["1", "2", "4"]
    assert len(labeled) == 2
    assert not {demo.question for demo in labeled} & {question(1), question(2), question(4)}
    assert program._compiled is True


def test_intermediate_steps_get_demos_without_labels() -> None:
    plait.configure(lm=rule_lm(Rules()))
    program = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
        TwoStep(), trainset=numbered(5))
    demos = demo_dicts(program)
    assert demos["draft"] == [{"question": question(0), "augmented": True, "draft": "d0"},
                              {"question": question(1), "augmented": True, "draft": "d1"}]
    assert [demo["answer"] for demo in demos["final"]] == ["0", "1"]
    assert [demo["draft"] for demo in demos["final"]] == ["d0", "d1"]


def test_metric_threshold_on_numeric_metrics() -> None:
    plait.configure(lm=rule_lm(Rules()))

    def graded(example: plait.Example, prediction: object, trace: object = None) -> float:
        return 1.0 if int(example.answer) % 2 == 0 else 0.5

    strict = BootstrapFewShot(metric=graded, metric_threshold=0.8, max_bootstrapped_demos=3,
                              max_labeled_demos=0).compile(plait.Predict("question -> answer"), trainset=numbered(8))
    assert [demo.answer for demo in strict.demos] == ["0", "2", "4"]
    truthy = BootstrapFewShot(metric=graded, max_bootstrapped_demos=3, max_labeled_demos=0).compile(
        plait.Predict("question -> answer"), trainset=numbered(8))
    assert [demo.answer for demo in truthy.demos] == ["0", "1", "2"]


def test_the_metric_gets_the_trace_and_none_metric_accepts_all() -> None:
    plait.configure(lm=rule_lm(Rules(not_multiple_of_3)))
    seen: list[int] = []

    def two_steps_traced(example: plait.Example, prediction: object, trace: list) -> bool:
        seen.append(len(trace))
        return True

    BootstrapFewShot(metric=two_steps_traced, max_bootstrapped_demos=2, num_threads=1).compile(
        TwoStep(), trainset=numbered(4))
    assert seen == [2, 2]
    program = BootstrapFewShot(max_bootstrapped_demos=2, max_labeled_demos=0).compile(
        plait.Predict("question -> answer"), trainset=numbered(4))
    assert [demo.answer for demo in program.demos] == ["wrong", "1"]   # no metric: every run passes


def test_max_errors_raises_after_too_many_failures() -> None:
    plait.configure(lm=rule_lm(Rules(error=lambda i: i in (1, 3, 5))))
    with pytest.raises(BootstrapError, match="max_errors=2") as caught:
        BootstrapFewShot(metric=exact, max_bootstrapped_demos=10, max_errors=2).compile(
            plait.Predict("question -> answer"), trainset=numbered(8))
    assert isinstance(caught.value.__cause__, plait.LMError)
    tolerant = BootstrapFewShot(metric=exact, max_bootstrapped_demos=4, max_labeled_demos=0, max_errors=3).compile(
        plait.Predict("question -> answer"), trainset=numbered(8))
    assert [demo.answer for demo in tolerant.demos] == ["0", "2", "4", "6"]


def test_max_errors_defaults_to_the_setting() -> None:
    plait.configure(lm=rule_lm(Rules(error=lambda i: True)), max_errors=1)
    with pytest.raises(BootstrapError, match="max_errors=1"):
        BootstrapFewShot(metric=exact).compile(plait.Predict("question -> answer"), trainset=numbered(4))


def test_later_rounds_retry_failures_at_a_fresh_seed() -> None:
    def greedy_fails_on_multiples_of_3(i: int, request: object) -> str | None:
        params = request.params  # type: ignore[attr-defined]
        return str(i) if i % 3 or params.get("temperature") == 1.0 else None

    rules = Rules(greedy_fails_on_multiples_of_3)
    plait.configure(lm=rule_lm(rules))
    one_round = BootstrapFewShot(metric=exact, max_bootstrapped_demos=3, max_labeled_demos=0, max_rounds=1).compile(
        plait.Predict("question -> answer"), trainset=numbered(6))
    assert [demo.answer for demo in one_round.demos] == ["1", "2", "4"]
    rules.requests.clear()
    two_rounds = BootstrapFewShot(metric=exact, max_bootstrapped_demos=3, max_labeled_demos=0, max_rounds=2,
                                  num_threads=1).compile(plait.Predict("question -> answer"), trainset=numbered(6))
    assert [demo.answer for demo in two_rounds.demos] == ["0", "1", "2"]
    retries = [request.params for request in rules.requests if number_of(request.context.inputs["question"]) == 0]
    assert retries[0].get("temperature") != 1.0
    assert retries[1]["temperature"] == 1.0 and retries[1]["seed"] == 1
    assert len(rules.requests) == 4   # 0 twice, then 1 and 2


def test_teacher_settings_and_an_explicit_teacher() -> None:
    weak = Rules(lambda i, request: None)
    strong = Rules()
    plait.configure(lm=rule_lm(weak))
    strong_lm = rule_lm(strong)
    nothing = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
        plait.Predict("question -> answer"), trainset=numbered(4))
    assert nothing.demos == []
    with_teacher_lm = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=0,
                                       teacher_settings={"lm": strong_lm}).compile(
        plait.Predict("question -> answer"), trainset=numbered(4))
    assert [demo.answer for demo in with_teacher_lm.demos] == ["0", "1"]
    teacher = plait.Predict("question -> answer")
    teacher.lm = strong_lm
    teacher._compiled = True   # used as it is: no labelled demos added
    strong.requests.clear()
    taught = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=4).compile(
        plait.Predict("question -> answer"), trainset=numbered(6), teacher=teacher)
    assert [demo.answer for demo in taught.demos if demo.get("augmented")] == ["0", "1"]
    assert all(len(request.messages) == 2 for request in strong.requests)   # zero-shot teacher
    assert taught.lm is None   # the student keeps its own LM setting
    teacher._compiled = False   # now it gets labelled demos, and still answers with its own LM
    strong.requests.clear()
    relabeled = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=3).compile(
        plait.Predict("question -> answer"), trainset=numbered(6), teacher=teacher)
    assert [demo.answer for demo in relabeled.demos if demo.get("augmented")] == ["0", "1"]
    # 3 labelled demos each, less the example itself when it was sampled
    assert len(strong.requests) == 2 and {len(r.messages) for r in strong.requests} <= {6, 8}
    assert any(len(r.messages) == 8 for r in strong.requests)


def test_an_uncompiled_teacher_gets_labeled_demos_but_never_its_own_example() -> None:
    rules = Rules()
    plait.configure(lm=rule_lm(rules))
    BootstrapFewShot(metric=exact, max_bootstrapped_demos=6, max_labeled_demos=16).compile(
        plait.Predict("question -> answer"), trainset=numbered(6))
    assert len(rules.requests) == 6
    for request in rules.requests:
        asked = request.context.inputs["question"]
        shown = demos_text(request)
        assert asked not in shown
        assert shown.count("what is <") == 5   # every other training example


def test_it_stops_once_enough_demos_are_bootstrapped() -> None:
    rules = Rules()
    plait.configure(lm=rule_lm(rules))
    BootstrapFewShot(metric=exact, max_bootstrapped_demos=3, num_threads=1).compile(
        plait.Predict("question -> answer"), trainset=numbered(20))
    assert len(rules.requests) == 3
    rules.requests.clear()
    BootstrapFewShot(metric=exact, max_bootstrapped_demos=3, num_threads=8).compile(
        plait.Predict("question -> answer"), trainset=numbered(20))
    assert len(rules.requests) == 3   # every example passes: threads start only what is needed
    rules.requests.clear()
    labeled_only = BootstrapFewShot(metric=exact, max_bootstrapped_demos=0, max_labeled_demos=4).compile(
        plait.Predict("question -> answer"), trainset=numbered(20))
    assert rules.requests == [] and len(labeled_only.demos) == 4


def test_estimate_is_an_upper_bound() -> None:
    rules = Rules(lambda i, request: None)   # every example fails: every round of every example runs
    plait.configure(lm=rule_lm(rules))
    optimizer = BootstrapFewShot(metric=exact, max_rounds=3)
    estimate = optimizer.estimate_calls(TwoStep(), trainset=numbered(5))
    assert estimate.max_calls == 5 * 2 * 3
    optimizer.compile(TwoStep(), trainset=numbered(5))
    assert len(rules.requests) == estimate.max_calls


def test_budget_stops_at_a_safe_point_and_keeps_what_it_has() -> None:
    rules = Rules(not_multiple_of_3)
    plait.configure(lm=rule_lm(rules))
    recorder = Recorder()
    with plugin(recorder):
        program = BootstrapFewShot(metric=exact, max_bootstrapped_demos=10, max_labeled_demos=0, num_threads=1,
                                   budget=Budget(max_calls=4)).compile(
            plait.Predict("question -> answer"), trainset=numbered(12))
    assert len(rules.requests) == 4
    assert [demo.answer for demo in program.demos] == ["1", "2"]
    (budget,) = recorder.of("compile.budget")
    assert budget.data["sent_calls"] == 4 and "budget is 4" in budget.data["reason"]
    assert recorder.of("compile.end")[0].data["stopped_by_budget"] is True


def test_events_report_the_estimate_progress_and_usage() -> None:
    plait.configure(lm=rule_lm(Rules()))
    recorder = Recorder()
    with plugin(recorder):
        BootstrapFewShot(metric=exact, max_bootstrapped_demos=3, num_threads=1).compile(
            plait.Predict("question -> answer"), trainset=numbered(5))
    kinds = [kind for kind in recorder.kinds() if kind.startswith("compile.") or kind == "progress"]
    assert kinds[0] == "compile.start" and kinds[-1] == "compile.end"
    start, end = recorder.of("compile.start")[0], recorder.of("compile.end")[0]
    assert start.source == "bootstrap-few-shot" and start.data["max_calls"] == 5
    assert end.data["calls"] == 3 and end.data["bootstrapped"] == 3 and end.data["error"] is None
    progress = [event.data["done"] for event in recorder.of("progress")]
    assert progress == [0, 1, 2, 3]


@pytest.mark.parametrize("threads", [1, 8])
def test_same_seed_same_demos_whatever_the_threads(threads: int) -> None:
    def sometimes(i: int, request: object) -> str | None:
        return str(i) if (i * 5) % 7 < 4 else None

    plait.configure(lm=rule_lm(Rules(sometimes, latency=0.002, jitter=True)))
    train = numbered(24)

    def run(num_threads: int, seed: int = 3) -> dict:
        optimizer = BootstrapFewShot(metric=exact, max_bootstrapped_demos=6, max_labeled_demos=9,
                                     num_threads=num_threads, seed=seed)
        return demo_dicts(optimizer.compile(TwoStep(), trainset=train))

    sequential = run(1)
    assert run(threads) == sequential
    assert run(threads) == sequential
    assert run(threads, seed=4) != sequential


def test_mismatched_teacher_and_empty_programs_are_refused() -> None:
    plait.configure(lm=rule_lm(Rules()))
    with pytest.raises(ValueError, match="teacher's predictors"):
        BootstrapFewShot(metric=exact).compile(TwoStep(), trainset=numbered(3),
                                               teacher=plait.Predict("question -> answer"))
    with pytest.raises(ValueError, match="no predictors"):
        BootstrapFewShot(metric=exact).compile(plait.Module(), trainset=numbered(3))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_rounds": 0}, "max_rounds must be an int >= 1"),
    ({"max_bootstrapped_demos": -1}, "max_bootstrapped_demos"),
    ({"num_threads": 0}, "num_threads"),
    ({"metric": "exact"}, "callable"),
    ({"teacher_settings": ["lm"]}, "teacher_settings"),
    ({"teacher_settings": {"trace": []}}, "cannot set 'trace'"),
])
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        BootstrapFewShot(**kwargs)
