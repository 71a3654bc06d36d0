"""Prediction and Completions."""

import pytest

from plait.primitives import Completions, Example, Prediction


def test_prediction_is_an_example_with_attribute_access():
    pred = Prediction(answer="Paris", reasoning="capital")
    assert isinstance(pred, Example)
    assert pred.answer == "Paris" and pred["reasoning"] == "capital"
    assert pred.completions is None
    assert pred.get_lm_usage() is None


def test_from_completions_takes_the_first_and_keeps_all():
    signature = object()
    pred = Prediction.from_completions([{"answer": "a", "n": 1}, {"answer": "b", "n": 2}], signature=signature)
    assert pred.toDict() == {"answer": "a", "n": 1}
    comps = pred.completions
    assert isinstance(comps, Completions)
    assert comps.signature is signature
    assert len(comps) == 2
    assert comps.answer == ["a", "b"]
    assert comps["n"] == [1, 2]
    # the prediction's fields are its own: editing them does not rewrite completion 0
    pred.answer = "changed"
    assert comps.answer == ["a", "b"]


def test_from_completions_with_no_completions():
    pred = Prediction.from_completions([])
    assert len(pred) == 0 and len(pred.completions) == 0
    assert list(pred.completions) == []


def test_lm_usage_is_private_not_a_field():
    pred = Prediction(answer="x")
    usage = {"openai/gpt": {"prompt_tokens": 3, "completion_tokens": 1}}
    pred.set_lm_usage(usage)
    assert pred.get_lm_usage() == usage
    assert pred.toDict() == {"answer": "x"}
    assert "_lm_usage" not in pred


def test_repr_shows_fields_and_completion_count():
    assert repr(Prediction(answer="a")) == "Prediction(answer='a')"
    pred = Prediction.from_completions([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    assert repr(pred) == "Prediction(answer='a') (3 completions)"
    assert repr(Prediction.from_completions([{"answer": "a"}])) == "Prediction(answer='a')"


def test_score_numeric_protocol():
    good, bad = Prediction(score=0.75), Prediction(score=0.25)
    assert float(good) == 0.75
    assert good + 1 == 1.75 and 1 + good == 1.75
    assert good + bad == 1.0
    assert sum([good, bad]) == 1.0
    assert good / 3 == 0.25 and 3 / Prediction(score=1.5) == 2.0
    assert good > bad and bad < good and good >= 0.75 and bad <= 0.25
    assert good > 0.5 and not good < 0.5
    assert max([bad, good]) is good
    assert sorted([good, bad]) == [bad, good]


def test_numbers_need_a_score_field():
    with pytest.raises(ValueError, match=r"no 'score' field.*\['answer'\]"):
        float(Prediction(answer="x"))
    with pytest.raises(TypeError):
        _ = Prediction(score=1.0) + "text"
    with pytest.raises(TypeError):
        _ = Prediction(score=1.0) < "text"


def test_completions_indexing_iteration_and_items():
    comps = Completions([{"answer": "a", "why": "1"}, {"answer": "b", "why": "2"}])
    first = comps[0]
    assert isinstance(first, Prediction) and first.toDict() == {"answer": "a", "why": "1"}
    assert comps[-1].answer == "b"
    assert [p.answer for p in comps] == ["a", "b"]
    assert all(isinstance(p, Prediction) for p in comps)
    assert comps.items() == [("answer", ["a", "b"]), ("why", ["1", "2"])]
    assert comps.keys() == ["answer", "why"]
    assert "answer" in comps and "nope" not in comps
    assert "Completions(" in repr(comps) and "['a', 'b']" in repr(comps)


def test_completions_errors_name_the_available_fields():
    comps = Completions([{"answer": "a"}])
    with pytest.raises(AttributeError, match=r"no field 'answr'.*\['answer'\]"):
        _ = comps.answr
    with pytest.raises(KeyError, match="answr"):
        _ = comps["answr"]
    with pytest.raises(IndexError, match="out of range.*1 completions"):
        _ = comps[1]
    with pytest.raises(TypeError, match="int.*str"):
        _ = comps[1.0]


def test_completions_from_a_dict_of_lists():
    comps = Completions({"answer": ["a", "b"], "score": [1, 2]})
    assert len(comps) == 2 and comps[1].toDict() == {"answer": "b", "score": 2}
    with pytest.raises(ValueError, match="one length"):
        Completions({"answer": ["a", "b"], "score": [1]})


def test_completions_reject_bad_rows():
    with pytest.raises(ValueError, match="completion 1 has fields"):
        Completions([{"answer": "a"}, {"other": "b"}])
    with pytest.raises(TypeError, match="completion 0 is a str"):
        Completions(["answer"])
    with pytest.raises(TypeError, match="list of dicts"):
        Completions("answer")


def test_completions_accept_examples_as_rows_and_compare_by_rows():
    comps = Completions([Example(answer="a")])
    assert comps.answer == ["a"]
    assert comps == Completions([{"answer": "a"}])
    assert comps != Completions([{"answer": "b"}])
