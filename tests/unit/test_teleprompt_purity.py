"""Every optimizer is pure (student, teacher and optimizer unchanged), its compiled program
saves and loads through Module.save/load and answers the same afterwards; an interrupted
compile re-run takes its finished LM calls from the cache; the optimizers are registered."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import pytest

import plait
from plait import plugins, registry
from plait.teleprompt import (BootstrapFewShot, BootstrapFewShotWithRandomSearch, Budget, Ensemble, KNNFewShot,
                              LabeledFewShot)
from teleprompt_fakes import Rules, TwoStep, demo_count, demo_dicts, numbered, rule_lm


def numbered_with_demos(i: int, request: Any) -> str | None:
    # wrong on <3>, <7>, ... without two demos; the answer also says how many demos the prompt
    # had, so a program that lost its demos answers differently
    return None if i % 4 == 3 and demo_count(request) < 2 else f"{i}-{demo_count(request)}"


def prefix_match(example: plait.Example, prediction: Any, trace: Any = None) -> bool:
    return prediction.answer.split("-")[0] == example.answer


def knn() -> KNNFewShot:
    pytest.importorskip("numpy", reason="KNNFewShot needs numpy (plait[embeddings])")
    return KNNFewShot(2, embedder="hashing", metric=prefix_match, max_labeled_demos=2)


OPTIMIZERS: dict[str, Callable[[], Any]] = {
    "labeled": lambda: LabeledFewShot(k=3),
    "bootstrap": lambda: BootstrapFewShot(metric=prefix_match, max_bootstrapped_demos=2, max_labeled_demos=3,
                                          num_threads=4),
    "random-search": lambda: BootstrapFewShotWithRandomSearch(metric=prefix_match, num_candidate_programs=2,
                                                              max_labeled_demos=3, num_threads=4),
    "knn": knn,
}


def teacher_with_demos() -> TwoStep:
    teacher = TwoStep()
    teacher.draft.demos = [plait.Example(question="what is <90>", draft="d90")]
    teacher.final.demos = [plait.Example(question="what is <91>", draft="d91", answer="91")]
    teacher._compiled = True
    return teacher


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compile_mutates_nothing_and_keeps_no_state(name: str) -> None:
    plait.configure(lm=rule_lm(Rules(numbered_with_demos)))
    optimizer = OPTIMIZERS[name]()
    student, teacher = TwoStep(), teacher_with_demos()
    student.final.demos = [plait.Example(question="what is <80>", draft="d80", answer="80")]
    before = (student.dump_state(), teacher.dump_state(), copy.copy(vars(optimizer)))
    kwargs: dict[str, Any] = {"trainset": numbered(8)}
    if name != "labeled":
        kwargs["teacher"] = teacher
    program = optimizer.compile(student, **kwargs)
    assert program is not student
    assert (student.dump_state(), teacher.dump_state(), vars(optimizer)) == before
    assert program._compiled is True


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compiled_programs_save_load_and_answer_the_same(name: str, tmp_path: Any) -> None:
    plait.configure(lm=rule_lm(Rules(numbered_with_demos)))
    optimizer = OPTIMIZERS[name]()
    program = optimizer.compile(TwoStep(), trainset=numbered(8))
    path = tmp_path / f"{name}.json"
    program.save(path)
    if name == "knn":   # the same wrapper around an unloaded student
        fresh = OPTIMIZERS[name]().compile(TwoStep(), trainset=numbered(8))
    else:
        fresh = TwoStep()
    fresh.load(path)
    questions = [f"what is <{i}>" for i in (20, 21, 22, 24)]
    assert [fresh(question=q).answer for q in questions] == [program(question=q).answer for q in questions]
    assert demo_dicts(fresh) == demo_dicts(program)
    if name != "knn":
        assert any(demo_dicts(program).values()), "the compiled program has demos to lose"
        assert TwoStep()(question=questions[0]).answer != program(question=questions[0]).answer


def test_ensemble_is_pure_too() -> None:
    plait.configure(lm=rule_lm(Rules(numbered_with_demos)))
    programs = [TwoStep(), teacher_with_demos()]
    before = [program.dump_state() for program in programs]
    optimizer = Ensemble(reduce_fn=lambda outputs: outputs[-1])
    params = copy.copy(vars(optimizer))
    ensembled = optimizer.compile(programs)
    assert [program.dump_state() for program in programs] == before and vars(optimizer) == params
    assert ensembled(question="what is <5>").answer == programs[1](question="what is <5>").answer


def test_an_interrupted_compile_reruns_from_the_cache() -> None:
    rules = Rules(numbered_with_demos, latency=0.005)
    plait.configure(lm=rule_lm(rules, cache=True))
    train = numbered(12)

    def optimizer(**extra: Any) -> BootstrapFewShot:
        return BootstrapFewShot(metric=prefix_match, max_bootstrapped_demos=20, max_labeled_demos=0, **extra)

    interrupted = optimizer(num_threads=1, budget=Budget(max_calls=5)).compile(plait.Predict("question -> answer"),
                                                                               trainset=train)
    assert len(rules.requests) == 5 and len(interrupted.demos) == 4   # <3> failed
    rules.requests.clear()
    full = optimizer(num_threads=4).compile(plait.Predict("question -> answer"), trainset=train)
    # only the 7 examples the interrupted run never reached went to the backend
    assert sorted(int(r.context.inputs["question"][9:-1]) for r in rules.requests) == list(range(5, 12))
    plait.configure(lm=rule_lm(Rules(numbered_with_demos)))   # no cache: the uninterrupted answer
    assert demo_dicts(full) == demo_dicts(optimizer().compile(plait.Predict("question -> answer"), trainset=train))


MINE = {"labeled-few-shot": LabeledFewShot, "bootstrap-few-shot": BootstrapFewShot,
        "bootstrap-random-search": BootstrapFewShotWithRandomSearch, "knn-few-shot": KNNFewShot,
        "ensemble": Ensemble}
OTHERS = ("copro", "miprov2", "bootstrap-finetune")


@contextlib.contextmanager
def teleprompters_registered() -> Any:
    import plait.builtins.teleprompters as builtin

    if plugins.get_plugin_manager().is_registered(builtin):
        yield
    else:   # until the module is listed in plugins.BUILTIN_PLUGINS
        with plugins.plugin(builtin, "test-builtin-teleprompters"):
            yield


def test_every_optimizer_is_registered_and_built_by_name() -> None:
    with teleprompters_registered():
        table = registry.backends("teleprompter")
        assert set(MINE) | set(OTHERS) <= set(table)
        configs: dict[str, dict[str, Any]] = {
            "bootstrap-random-search": {"metric": prefix_match},
            "knn-few-shot": {"k": 2, "embedder": "hashing"},
        }
        for name, cls in MINE.items():
            built = plait.teleprompter(name, **configs.get(name, {}))
            assert type(built) is cls and built.name == name
        assert all(table[name].backend.summary for name in table if name in MINE or name in OTHERS)
