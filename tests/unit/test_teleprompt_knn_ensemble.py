"""KNNFewShot (demos from the nearest training examples, per call) and Ensemble."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytest.importorskip("numpy", reason="KNNFewShot and the hashing embedder need numpy (plait[embeddings])")

import plait  # noqa: E402
from plait.teleprompt import Ensemble, KNNFewShot  # noqa: E402
from teleprompt_fakes import Rules, demos_text, exact, number_of, rule_lm  # noqa: E402

TOPICS = ["capital city of france", "capital city of spain", "colour of the sky", "colour of grass",
          "speed of light", "speed of sound", "capital city of italy", "colour of snow"]


def topical() -> list[plait.Example]:
    return [plait.Example(question=f"{topic} <{i}>", answer=str(i)).with_inputs("question")
            for i, topic in enumerate(TOPICS)]


class CountingEmbedder:
    """Wraps the hashing embedder and counts the texts it is asked to embed."""

    def __init__(self) -> None:
        self.inner = plait.embedder("hashing")
        self.batches: list[int] = []

    def __call__(self, texts: list[str]) -> Any:
        self.batches.append(len(texts))
        return self.inner(texts)


def test_each_call_bootstraps_from_the_nearest_examples() -> None:
    rules = Rules()
    plait.configure(lm=rule_lm(rules))
    embedder = CountingEmbedder()
    optimizer = KNNFewShot(3, topical(), embedder, metric=exact, max_bootstrapped_demos=3, max_labeled_demos=3)
    program = optimizer.compile(plait.Predict("question -> answer"))
    assert embedder.batches == [len(TOPICS)]   # the trainset is embedded once, at compile time
    rules.requests.clear()
    prediction = program(question="capital city of germany <42>")
    assert prediction.answer == "42"
    assert embedder.batches == [len(TOPICS), 1]
    final = rules.requests[-1]
    assert number_of(final.context.inputs["question"]) == 42
    shown = demos_text(final)
    assert all(f"capital city of {country}" in shown for country in ("france", "spain", "italy"))
    assert "colour" not in shown and "speed" not in shown
    # the three neighbours ran through the teacher first
    assert sorted(number_of(r.context.inputs["question"]) for r in rules.requests[:-1]) == [0, 1, 6]
    other = program(question="colour of the sea <43>")
    assert other.answer == "43" and "colour of" in demos_text(rules.requests[-1])


def test_embedder_by_name_or_dspy_vectorizer_and_compile_time_trainset() -> None:
    plait.configure(lm=rule_lm(Rules()))
    by_name = KNNFewShot(2, embedder="hashing", max_labeled_demos=0).compile(
        plait.Predict("question -> answer"), trainset=topical())
    assert by_name(question="speed of a car <9>").answer == "9"
    vectorizer = KNNFewShot(2, topical(), vectorizer=plait.embedder("hashing")).compile(plait.Predict("question -> answer"))
    assert vectorizer(question="speed of a car <9>").answer == "9"


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"k": 2}, ValueError, "needs an embedder"),
    ({"k": 0, "embedder": "hashing"}, ValueError, "k must be an int >= 1"),
    ({"k": 2, "embedder": 3}, TypeError, "embedder"),
    ({"k": 2, "embedder": "hashing", "max_rounds": 0}, ValueError, "max_rounds"),
])
def test_knn_arguments_are_checked(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        KNNFewShot(trainset=topical(), **kwargs)


def test_knn_needs_a_trainset_somewhere() -> None:
    with pytest.raises(ValueError, match="needs a trainset"):
        KNNFewShot(2, embedder="hashing").compile(plait.Predict("question -> answer"))


def most_common_answer(outputs: list[plait.Prediction]) -> plait.Prediction:
    answer, _ = Counter(output.answer for output in outputs).most_common(1)[0]
    return plait.Prediction(answer=answer)


def member(answer: str, rules_list: list[Rules]) -> plait.Predict:
    rules = Rules(lambda i, request: answer)
    rules_list.append(rules)
    program = plait.Predict("question -> answer")
    program.lm = rule_lm(rules)
    return program


def test_ensemble_runs_every_program_and_reduces() -> None:
    used: list[Rules] = []
    programs = [member("a", used), member("b", used), member("a", used)]
    ensembled = Ensemble(reduce_fn=most_common_answer).compile(programs)
    assert ensembled(question="what is <1>").answer == "a"
    assert [len(rules.requests) for rules in used] == [1, 1, 1]
    raw = Ensemble().compile(programs)(question="what is <1>")
    assert [prediction.answer for prediction in raw] == ["a", "b", "a"]


def test_ensemble_size_samples_and_deterministic_sampling_follows_the_inputs() -> None:
    used: list[Rules] = []
    programs = [member(str(n), used) for n in range(5)]
    ensembled = Ensemble(size=2, deterministic=True).compile(programs)
    first = [p.answer for p in ensembled(question="what is <1>")]
    assert len(first) == 2 and len(set(first)) == 2
    assert [p.answer for p in ensembled(question="what is <1>")] == first
    picks = {tuple(p.answer for p in ensembled(question=f"what is <{i}>")) for i in range(12)}
    assert len(picks) > 1   # other inputs pick other programs
    with pytest.raises(ValueError, match="size=6"):
        Ensemble(size=6).compile(programs)


def test_ensemble_copies_its_programs_and_round_trips(tmp_path: Any) -> None:
    used: list[Rules] = []
    programs = [member("a", used), member("b", used)]
    programs[0].demos = [plait.Example(question="what is <0>", answer="0")]
    ensembled = Ensemble(reduce_fn=most_common_answer).compile(programs)
    ensembled.programs[0].demos = []
    assert len(programs[0].demos) == 1   # the caller's program is untouched
    path = tmp_path / "ensemble.json"
    ensembled.save(path)
    fresh = Ensemble(reduce_fn=most_common_answer).compile([member("a", used), member("b", used)])
    fresh.programs[1].demos = [plait.Example(question="x <1>", answer="1")]
    fresh.load(path)
    assert [p.demos for p in fresh.programs] == [[], []]
    assert fresh(question="what is <2>").answer == ensembled(question="what is <2>").answer == "a"



def test_ensemble_refuses_a_single_program_or_none() -> None:
    with pytest.raises(TypeError, match="list of programs"):
        Ensemble().compile(plait.Predict("question -> answer"))
    with pytest.raises(ValueError, match="no programs"):
        Ensemble().compile([])
    with pytest.raises(TypeError, match="reduce_fn"):
        Ensemble(reduce_fn="majority")  # type: ignore[arg-type]


def test_ensemble_with_plait_majority() -> None:
    majority = pytest.importorskip("plait.predict.aggregation", reason="plait.majority is not written yet").majority
    used: list[Rules] = []
    programs = [member("paris", used), member("rome", used), member("paris", used)]
    assert Ensemble(reduce_fn=majority).compile(programs)(question="what is <1>").answer == "paris"
