"""Example: dict-like record with attribute access and input/label split."""

import copy
import pickle

import pytest

from plait.primitives import Example, Prediction


def test_attribute_and_item_access():
    ex = Example(question="2+2?", answer="4")
    assert ex.question == "2+2?"
    assert ex["answer"] == "4"
    ex.answer = "four"
    ex["extra"] = 1
    assert ex.toDict() == {"question": "2+2?", "answer": "four", "extra": 1}
    del ex.extra
    del ex["answer"]
    assert list(ex) == ["question"]
    assert "question" in ex and "answer" not in ex
    assert len(ex) == 1
    assert ex.get("missing", "default") == "default"


def test_missing_field_errors_name_the_available_fields():
    ex = Example(question="q", answer="a")
    with pytest.raises(AttributeError, match=r"no field 'answr'.*\['answer', 'question'\]"):
        _ = ex.answr
    with pytest.raises(KeyError):
        _ = ex["answr"]
    with pytest.raises(AttributeError):
        del ex.answr


def test_base_can_be_an_example_or_a_dict_and_kwargs_override():
    base = Example(question="q", answer="a").with_inputs("question")
    ex = Example(base, answer="b")
    assert ex.answer == "b" and base.answer == "a"
    assert ex.inputs().toDict() == {"question": "q"}   # input keys carried over
    assert Example({"x": 1}, y=2).toDict() == {"x": 1, "y": 2}
    with pytest.raises(TypeError, match="Example or a dict"):
        Example(["not", "a", "dict"])


def test_with_inputs_inputs_and_labels():
    ex = Example(question="q", context="c", answer="a")
    marked = ex.with_inputs("question", "context")
    assert marked is not ex
    assert marked.inputs().toDict() == {"question": "q", "context": "c"}
    assert marked.labels().toDict() == {"answer": "a"}
    assert isinstance(marked.inputs(), Example)
    assert dict(**marked.inputs()) == {"question": "q", "context": "c"}   # usable as **kwargs
    with pytest.raises(ValueError, match="with_inputs"):
        ex.inputs()                      # the original was not marked
    assert ex.labels().toDict() == ex.toDict()


def test_copy_and_without():
    ex = Example(question="q", answer="a").with_inputs("question")
    changed = ex.copy(answer="b")
    assert changed.answer == "b" and ex.answer == "a"
    assert changed.inputs().toDict() == {"question": "q"}
    smaller = ex.without("answer", "not-there")
    assert smaller.toDict() == {"question": "q"}
    assert ex.toDict() == {"question": "q", "answer": "a"}


def test_equality_and_hash_follow_the_fields():
    a = Example(question="q", answer="a")
    b = Example(question="q", answer="a").with_inputs("question")
    assert a == b
    assert hash(a) == hash(b)
    assert a != Example(question="q", answer="b")
    assert a != {"question": "q", "answer": "a"}
    assert len({a, b}) == 1


def test_repr_shows_fields_and_input_keys():
    assert repr(Example(q=1)) == "Example({'q': 1})"
    assert "input_keys=['q']" in repr(Example(q=1).with_inputs("q"))


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))])
def test_copy_deepcopy_and_pickle_keep_fields_and_inputs(clone):
    ex = Example(question="q", tags=["x"]).with_inputs("question")
    twin = clone(ex)
    assert twin == ex and twin is not ex
    assert twin.inputs().toDict() == {"question": "q"}


def test_deepcopy_of_a_prediction_keeps_it_a_prediction():
    pred = Prediction.from_completions([{"answer": "a"}, {"answer": "b"}])
    twin = copy.deepcopy(pred)
    assert type(twin) is Prediction
    assert twin.answer == "a"
    assert twin.completions.answer == ["a", "b"]
    assert "_completions" not in twin.keys()
