"""LabeledFewShot: k sampled training examples per predictor, seeded, no LM calls."""

from __future__ import annotations

import pytest

import plait
from plait.teleprompt import LabeledFewShot
from teleprompt_fakes import Rules, TwoStep, demo_dicts, numbered, rule_lm


def test_each_predictor_gets_k_sampled_demos_deterministically() -> None:
    train = numbered(30)
    first = LabeledFewShot(k=5).compile(TwoStep(), trainset=train)
    again = LabeledFewShot(k=5).compile(TwoStep(), trainset=train)
    other_seed = LabeledFewShot(k=5, seed=7).compile(TwoStep(), trainset=train)
    demos = demo_dicts(first)
    assert [len(d) for d in demos.values()] == [5, 5]
    assert demos == demo_dicts(again)
    assert demos != demo_dicts(other_seed)
    assert demos["draft"] != demos["final"]   # one generator for both: different samples
    allowed = [dict(example) for example in train]
    assert all(demo in allowed for demo in demos["draft"] + demos["final"])
    assert first._compiled is True


def test_sample_false_takes_the_first_k_and_k_above_size_takes_all() -> None:
    train = numbered(6)
    program = LabeledFewShot(k=3, sample=False).compile(plait.Predict("question -> answer"), trainset=train)
    assert [demo.answer for demo in program.demos] == ["0", "1", "2"]
    per_call = LabeledFewShot(k=3).compile(plait.Predict("question -> answer"), trainset=train, sample=False)
    assert [demo.answer for demo in per_call.demos] == ["0", "1", "2"]
    everything = LabeledFewShot(k=50).compile(plait.Predict("question -> answer"), trainset=train)
    assert sorted(int(demo.answer) for demo in everything.demos) == list(range(6))


def test_demos_are_copies_and_the_student_is_untouched() -> None:
    train = numbered(4)
    student = plait.Predict("question -> answer")
    student.demos = [plait.Example(question="old", answer="old")]
    before = student.dump_state()
    program = LabeledFewShot(k=2).compile(student, trainset=train)
    program.demos[0].answer = "edited"
    assert all(example.answer != "edited" for example in train)
    assert student.dump_state() == before
    assert program is not student


def test_no_lm_calls_and_estimate_is_zero() -> None:
    rules = Rules()
    plait.configure(lm=rule_lm(rules))
    LabeledFewShot(k=3).compile(plait.Predict("question -> answer"), trainset=numbered(5))
    assert rules.requests == []
    assert LabeledFewShot().estimate_calls(plait.Predict("q -> a"), trainset=numbered(5)).max_calls == 0


@pytest.mark.parametrize(("trainset", "error"), [
    (None, ValueError), ([], ValueError), ([{"question": "x"}], TypeError),
    ([plait.Example(question="x", answer="y")], ValueError),
])
def test_bad_trainsets_get_clear_errors(trainset: object, error: type) -> None:
    with pytest.raises(error, match="trainset"):
        LabeledFewShot(k=2).compile(plait.Predict("question -> answer"), trainset=trainset)  # type: ignore[arg-type]


def test_bad_k_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be an int >= 0"):
        LabeledFewShot(k=-1)
