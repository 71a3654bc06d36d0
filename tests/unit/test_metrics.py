"""Answer metrics: normalization, EM, F1 and the DSPy-style metric functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import plait.evaluate
from plait.evaluate import (EM, F1, answer_exact_match, answer_f1, answer_passage_match,
                            normalize_text)
from plait.primitives.example import Example


class Passage:
    def __init__(self, text: str):
        self.text = text


class Pred:
    """A prediction that is a plain object with attributes (not an Example)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


# --- normalize_text --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("The Eiffel Tower", "eiffel tower"),
    ("  an  apple,   a pear; the end!  ", "apple pear end"),
    ("Theatre and anthem", "theatre and anthem"),        # articles only as whole words
    ("U.S.A.", "usa"),
    ("rock-n-roll", "rocknroll"),                         # SQuAD drops hyphens outright
    ("Tab\tand\nnewline", "tab and newline"),
    ("", ""),
    (None, ""),
    (42, "42"),
])
def test_normalize_text_cases(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_text_uses_nfd():
    composed = "Caf\u00e9"            # é as one code point
    decomposed = "Cafe\u0301"         # e + combining acute accent
    assert normalize_text(composed) == normalize_text(decomposed) == "cafe\u0301"


# --- EM and F1 -------------------------------------------------------------------------------

def test_em_ignores_case_articles_and_punctuation():
    assert EM("the Eiffel Tower.", ["Eiffel tower"]) is True
    assert EM("Eiffel", ["Eiffel Tower"]) is False


def test_em_any_of_several_references_and_bare_string():
    assert EM("NYC", ["New York City", "nyc"]) is True
    assert EM("Paris", "paris") is True          # one reference given as a str
    assert EM("Paris", []) is False


def test_f1_partial_overlap_hand_checked():
    # prediction tokens: eiffel tower in paris (4); reference: eiffel tower (2); overlap 2
    # precision 2/4, recall 2/2 -> F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert F1("The Eiffel Tower in Paris", ["Eiffel Tower"]) == pytest.approx(2 / 3)


def test_f1_counts_repeated_tokens_once_per_occurrence():
    # prediction: paris paris paris (3); reference: paris france (2); overlap min(3,1) = 1
    # precision 1/3, recall 1/2 -> F1 = 2 * (1/6) / (5/6) = 0.4
    assert F1("paris paris paris", ["Paris, France"]) == pytest.approx(0.4)


def test_f1_takes_the_best_reference_and_handles_edges():
    assert F1("blue whale", ["whale shark", "the blue whale"]) == 1.0
    assert F1("cat", ["dog"]) == 0.0
    assert F1("", ["the"]) == 1.0     # both normalize to nothing: agreement, as EM says
    assert F1("", ["cat"]) == 0.0
    assert F1("cat", []) == 0.0


@given(st.text())
def test_normalize_text_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once


@given(st.text(), st.lists(st.text(), min_size=1, max_size=3))
def test_f1_is_a_fraction_and_em_implies_full_f1(prediction, answers):
    score = F1(prediction, answers)
    assert 0.0 <= score <= 1.0
    if EM(prediction, answers):
        assert score == 1.0


# --- DSPy-style metric functions -------------------------------------------------------------

def test_answer_exact_match_with_str_and_list_answers():
    example = Example(question="q", answer="The Beatles").with_inputs("question")
    assert answer_exact_match(example, Pred(answer="beatles")) is True
    assert answer_exact_match(example, Pred(answer="the rolling stones")) is False
    several = Example(question="q", answer=["NYC", "New York"]).with_inputs("question")
    assert answer_exact_match(several, Example(answer="new york")) is True


def test_answer_exact_match_frac_uses_f1_threshold():
    example = Example(answer="Eiffel Tower")
    pred = Pred(answer="the Eiffel Tower in Paris")    # F1 = 2/3 (see above)
    assert answer_exact_match(example, pred) is False
    assert answer_exact_match(example, pred, frac=0.6) is True
    assert answer_exact_match(example, pred, frac=0.7) is False


def test_answer_f1_value():
    example = Example(answer=["Eiffel Tower", "tower"])
    assert answer_f1(example, Pred(answer="Eiffel Tower in Paris")) == pytest.approx(2 / 3)
    assert answer_f1(example, {"answer": "tower"}) == 1.0    # dict predictions work too


def test_answer_passage_match_passage_kinds():
    example = Example(answer=["Marie Curie"])
    assert answer_passage_match(example, Pred(context=["x", "Discovered by MARIE CURIE in 1898."]))
    assert answer_passage_match(example, Pred(context=[Passage("marie curie, physicist")]))
    assert answer_passage_match(example, Pred(context=[{"long_text": "It was Marie Curie."}]))
    assert answer_passage_match(example, Pred(context="one string passage: Marie Curie"))
    assert not answer_passage_match(example, Pred(context=["Pierre Curie"]))


def test_answer_passage_match_needs_whole_words():
    example = Example(answer="art")
    assert not answer_passage_match(example, Pred(context=["a party started"]))
    assert answer_passage_match(example, Pred(context=["modern art museum"]))
    empty = Example(answer="the")        # normalizes to nothing: matches no passage
    assert not answer_passage_match(empty, Pred(context=["the end"]))


def test_answer_passage_match_rejects_unreadable_passage():
    with pytest.raises(ValueError, match="passage of type int"):
        answer_passage_match(Example(answer="a"), Pred(context=[3]))


def test_missing_example_answer_names_the_field():
    example = Example(question="q").with_inputs("question")
    with pytest.raises(ValueError, match=r"answer_exact_match needs example\.answer") as info:
        answer_exact_match(example, Pred(answer="x"))
    assert "['question']" in str(info.value)


def test_missing_prediction_field_names_it_and_the_fix():
    example = Example(answer="x")
    with pytest.raises(ValueError, match=r"answer_f1 needs prediction\.answer") as info:
        answer_f1(example, Example(reasoning="r", response="x"))
    assert "['reasoning', 'response']" in str(info.value)
    assert "output field named 'answer'" in str(info.value)
    with pytest.raises(ValueError, match=r"answer_passage_match needs prediction\.context"):
        answer_passage_match(example, Pred(answer="x"))


def test_package_exports_match_dspy_names():
    for name in ("Evaluate", "EvaluationResult", "answer_exact_match", "answer_passage_match",
                 "answer_f1", "EM", "F1", "normalize_text"):
        assert name in plait.evaluate.__all__
        assert getattr(plait.evaluate, name) is not None
