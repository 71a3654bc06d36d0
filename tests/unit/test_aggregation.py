"""majority(): voting across completions, normalization, ties, fields and input shapes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import plait
from plait.predict.aggregation import default_normalize, majority
from plait.primitives import Completions, Prediction
from plait.testing import DummyLM


def test_majority_of_a_predictions_completions_uses_the_last_output_field():
    lm = DummyLM([{"reasoning": "r1", "answer": "Paris"}, {"reasoning": "r2", "answer": "Lyon"},
                  {"reasoning": "r3", "answer": "paris."}])
    pred = plait.ChainOfThought("question -> answer", n=3)(question="Capital of France?", lm=lm)
    voted = majority(pred)
    assert isinstance(voted, Prediction)
    assert voted.answer == "Paris" and voted.reasoning == "r1"   # "paris." normalizes to "paris"
    assert voted.completions.signature is pred.completions.signature


def test_ties_go_to_the_value_seen_first():
    rows = [{"answer": "b"}, {"answer": "a"}, {"answer": "a"}, {"answer": "b"}]
    assert majority(rows).answer == "b"
    assert majority(list(reversed(rows))).answer == "b"
    assert majority([{"answer": "x"}, {"answer": "y"}]).answer == "x"


def test_normalization_merges_spellings_and_empty_answers_do_not_vote():
    rows = [{"answer": ""}, {"answer": "  "}, {"answer": "The Eiffel Tower"}, {"answer": "eiffel tower!"},
            {"answer": "Louvre"}]
    assert majority(rows).answer == "The Eiffel Tower"
    assert majority([{"answer": ""}, {"answer": ""}]).answer == ""   # nobody votes: the first wins
    assert default_normalize("  ") is None and default_normalize("The Cat.") == "cat"


def test_without_normalization_raw_values_are_compared():
    rows = [{"answer": "Paris"}, {"answer": "paris"}, {"answer": "paris"}]
    assert majority(rows, normalize=None).answer == "paris"
    assert majority(rows).answer == "Paris"


def test_field_picks_what_is_voted_on_and_the_whole_completion_comes_back():
    rows = [{"answer": "1", "unit": "m"}, {"answer": "2", "unit": "km"}, {"answer": "3", "unit": "km"}]
    voted = majority(rows, field="unit")
    assert voted.toDict() == {"answer": "2", "unit": "km"}
    assert majority(rows).answer == "2"   # no signature: the completions' last key ('unit') votes
    assert majority(rows, field="answer").answer == "1"   # all differ: the first wins
    with pytest.raises(ValueError, match="completion 0 has no such field"):
        majority(rows, field="missing")


def test_accepts_completions_predictions_and_rejects_the_rest():
    completions = Completions([{"answer": "a"}, {"answer": "b"}, {"answer": "b"}])
    assert majority(completions).answer == "b"
    assert majority([Prediction(answer="q"), Prediction(answer="r"), Prediction(answer="r")]).answer == "r"
    assert majority(Prediction(answer="solo")).answer == "solo"
    with pytest.raises(ValueError, match="at least one completion"):
        majority([])
    with pytest.raises(TypeError, match="item 0 is a str"):
        majority(["a", "b"])
    with pytest.raises(TypeError, match="not int"):
        majority(3)


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=12))
def test_the_winner_has_the_highest_count_and_is_the_earliest_such(values):
    voted = majority([{"answer": v} for v in values], normalize=None).answer
    counts = {v: values.count(v) for v in values}
    best = max(counts.values())
    assert counts[voted] == best
    assert voted == next(v for v in values if counts[v] == best)
