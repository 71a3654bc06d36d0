"""BootstrapFewShotWithRandomSearch: candidates, scoring on a valset, ties, early stop, budgets.

The teacher LM (teacher_settings) always answers right, so every bootstrap keeps its first
examples; the student LM answers right only with exactly ``wanted`` demos in its prompt, which
makes the candidates' scores differ in a way the tests can predict.
"""

from __future__ import annotations

import pytest

import plait
from plait.plugins import plugin
from plait.teleprompt import BootstrapFewShotWithRandomSearch, Budget
from teleprompt_fakes import Recorder, Rules, demo_count, exact, numbered, rule_lm


def student_needing(wanted: int) -> Rules:
    return Rules(lambda i, request: str(i) if demo_count(request) == wanted else None)


def search(**kwargs: object) -> BootstrapFewShotWithRandomSearch:
    settings = {"metric": exact, "max_bootstrapped_demos": 4, "max_labeled_demos": 0,
                "teacher_settings": {"lm": rule_lm(Rules())}}
    settings.update(kwargs)
    return BootstrapFewShotWithRandomSearch(**settings)  # type: ignore[arg-type]


def test_candidates_are_scored_in_order_and_the_first_best_wins() -> None:
    plait.configure(lm=rule_lm(student_needing(2)))
    program = search(num_candidate_programs=6).compile(
        plait.Predict("question -> answer"), trainset=numbered(8), valset=numbered(5, start=100))
    scores = program.candidate_programs
    assert sorted(seed for _, seed in scores) == [-3, -2, -1, 0, 1, 2, 3, 4, 5]
    assert [score for score, _ in scores] == sorted((score for score, _ in scores), reverse=True)
    winners = [seed for score, seed in scores if score == 100.0]
    assert winners, "some seeded candidate bootstraps exactly 2 demos"
    assert scores[0] == (100.0, min(winners))   # ties keep the earliest candidate
    assert {seed: score for score, seed in scores}[-3] == 0.0   # zero-shot has no demos
    assert len(program.demos) == 2 and all(demo.get("augmented") for demo in program.demos)
    assert program._compiled is True


@pytest.mark.parametrize("threads", [1, 4])
def test_unshuffled_bootstrap_can_win_and_stop_at_score_stops_early(threads: int) -> None:
    student = student_needing(4)
    plait.configure(lm=rule_lm(student))
    valset = numbered(5, start=100)
    program = search(num_candidate_programs=10, stop_at_score=100.0, num_threads=threads).compile(
        plait.Predict("question -> answer"), trainset=numbered(8), valset=valset)
    assert program.candidate_programs == [(100.0, -1), (0.0, -3), (0.0, -2)]
    assert [demo.answer for demo in program.demos] == ["0", "1", "2", "3"]
    assert all(request.context.inputs["question"] in {e.question for e in valset} for request in student.requests)
    if threads == 1:   # three candidates scored on the valset, nothing else
        assert len(student.requests) == 3 * len(valset)
    else:   # with threads the next candidate starts early; at most its scoring is wasted
        assert 3 * len(valset) <= len(student.requests) <= 4 * len(valset)


def test_valset_defaults_to_the_trainset() -> None:
    student = student_needing(0)
    plait.configure(lm=rule_lm(student))
    program = search(num_candidate_programs=0).compile(plait.Predict("question -> answer"), trainset=numbered(4))
    assert program.candidate_programs[0] == (100.0, -3)
    assert {request.context.inputs["question"] for request in student.requests} == {
        example.question for example in numbered(4)}


def test_labeled_only_candidate_uses_max_labeled_demos() -> None:
    plait.configure(lm=rule_lm(student_needing(3)))
    program = search(num_candidate_programs=0, max_labeled_demos=3, max_bootstrapped_demos=0).compile(
        plait.Predict("question -> answer"), trainset=numbered(6), valset=numbered(2, start=50))
    assert program.candidate_programs[0] == (100.0, -2)   # the unshuffled one ties it later
    assert len(program.demos) == 3


def test_budget_returns_the_best_scored_so_far() -> None:
    student = student_needing(0)
    plait.configure(lm=rule_lm(student))
    recorder = Recorder()
    with plugin(recorder):
        program = search(num_candidate_programs=8, num_threads=1, budget=Budget(max_calls=6)).compile(
            plait.Predict("question -> answer"), trainset=numbered(6), valset=numbered(3, start=40))
    # zero-shot (3 calls) and labeled-only (3 more) are scored; the budget stops the bootstrap
    assert program.candidate_programs == [(100.0, -3), (100.0, -2)]
    assert len(recorder.of("compile.budget")) == 1
    end = recorder.of("compile.end")[0].data
    assert end["stopped_by_budget"] is True and end["best_seed"] == -3


def test_a_budget_spent_before_any_score_returns_the_zero_shot_program() -> None:
    plait.configure(lm=rule_lm(student_needing(0)))
    program = search(num_candidate_programs=2, budget=Budget(max_calls=0)).compile(
        plait.Predict("question -> answer"), trainset=numbered(4))
    assert program.candidate_programs == [] and program.demos == []


def test_estimate_bounds_the_calls() -> None:
    student = student_needing(9)   # nothing ever scores: every candidate runs in full
    teacher_rules = Rules(lambda i, request: None)   # nothing ever bootstraps: every example runs
    plait.configure(lm=rule_lm(student))
    optimizer = search(num_candidate_programs=2, teacher_settings={"lm": rule_lm(teacher_rules)})
    train, valset = numbered(5), numbered(3, start=9)
    estimate = optimizer.estimate_calls(plait.Predict("question -> answer"), trainset=train, valset=valset)
    assert estimate.max_calls == 5 * 3 + 3 * 5
    optimizer.compile(plait.Predict("question -> answer"), trainset=train, valset=valset)
    assert len(student.requests) + len(teacher_rules.requests) == estimate.max_calls


def test_deterministic_across_threads_and_runs() -> None:
    plait.configure(lm=rule_lm(Rules(lambda i, request: str(i) if demo_count(request) in (1, 3) or i % 2
                                     else None, latency=0.001, jitter=True)))
    train, valset = numbered(10), numbered(6, start=20)

    def run(threads: int) -> tuple:
        program = search(num_candidate_programs=4, num_threads=threads).compile(
            plait.Predict("question -> answer"), trainset=train, valset=valset)
        return program.candidate_programs, [dict(demo) for demo in program.demos]

    assert run(1) == run(8) == run(8)


def test_results_live_on_the_program_not_the_optimizer() -> None:
    plait.configure(lm=rule_lm(student_needing(0)))
    optimizer = search(num_candidate_programs=1)
    before = dict(vars(optimizer))
    program = optimizer.compile(plait.Predict("question -> answer"), trainset=numbered(3))
    assert vars(optimizer) == before
    assert not hasattr(optimizer, "candidate_programs") and program.candidate_programs


def test_a_metric_is_required() -> None:
    with pytest.raises(TypeError, match="metric"):
        BootstrapFewShotWithRandomSearch(metric=None)  # type: ignore[arg-type]
