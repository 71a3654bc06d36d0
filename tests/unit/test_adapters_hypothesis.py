"""Property tests: parse never fails with anything but AdapterParseError, and
parse(format_completion(values)) == values."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait.adapters import ChatAdapter, JSONAdapter, TemplateAdapter
from plait.errors import AdapterParseError
from plait.signatures import Signature

ADAPTERS = [ChatAdapter(), JSONAdapter(), TemplateAdapter()]
SIGNATURES = [
    Signature("question -> answer"),
    Signature("question -> reasoning, answer: int"),
    Signature("context, question -> answer: bool, tags: list[str], score: float"),
]
# A line of dashes after the answer's first line (its first line follows "Answer: ").
SEPARATOR_LINE = re.compile(r"\n[ \t]*-{3,}[ \t]*(?:\n|$)")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text an LM might write: markers, labels, JSON bits, markdown, separators and plain words.
PIECES = st.sampled_from(["[[ ## answer ## ]]", "[[##reasoning##]]", "[[ ## completed ## ]]", "Answer:",
                          "Reasoning:", "**Answer:**", "## Answer", "Question:", "---", "{", "}", '"answer": ',
                          "```json", "```", "'", '"', "\n", "\n\n", " ", "42", "true", "[1, 2]", "null"])
LM_TEXT = st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=16).map("".join)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@pytest.mark.parametrize("signature", SIGNATURES, ids=lambda s: s.signature)
@FAST
@given(text=LM_TEXT)
def test_parse_returns_exact_fields_or_raises_adapter_parse_error(adapter, signature, text):
    try:
        values = adapter.parse(signature, text)
    except AdapterParseError as error:
        assert error.completion == text and error.adapter == adapter.name
        assert set(error.parsed) <= set(signature.output_fields)
    else:
        assert list(values) == list(signature.output_fields)


# Plain prose without marker, label, JSON or separator syntax (no "[", "#", ":", "-", "{"),
# single-spaced (TemplateAdapter cuts its last field at a blank line) and already trimmed.
WORD = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N"), exclude_characters="_"),
               min_size=1, max_size=8)
PROSE = st.lists(WORD, min_size=1, max_size=8).flatmap(
    lambda words: st.lists(st.sampled_from([" ", "\n", ", ", ". "]), min_size=len(words) - 1,
                           max_size=len(words) - 1).map(
        lambda seps: "".join(w + s for w, s in zip(words, [*seps, ""]))))
ROUND_TRIP = Signature("question -> reasoning, count: int, ok: bool, tags: list[str], answer")
VALUES = st.fixed_dictionaries({
    "reasoning": PROSE, "count": st.integers(-10**12, 10**12), "ok": st.booleans(),
    "tags": st.lists(PROSE.filter(lambda t: "\n" not in t), max_size=4), "answer": PROSE})


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@FAST
@given(values=VALUES)
def test_round_trip(adapter, values):
    assert adapter.parse(ROUND_TRIP, adapter.format_completion(ROUND_TRIP, values)) == values


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@FAST
@given(text=st.text(min_size=1, max_size=200))
def test_json_round_trip_any_str(adapter, text):
    """JSON keeps any string exactly; the text adapters keep any string without syntax, trimmed."""
    sig = Signature("question -> answer")
    if adapter.name == "json":
        assert adapter.parse(sig, adapter.format_completion(sig, {"answer": text})) == {"answer": text}
    else:
        try:
            parsed = adapter.parse(sig, adapter.format_completion(sig, {"answer": text}))
        except AdapterParseError:
            # Nothing usable: a blank answer; for the template adapter also a blank one before a
            # "---" line (where a new example starts), since an empty answer counts as missing.
            head = SEPARATOR_LINE.split(text, 1)[0] if adapter.name == "template" else text
            assert not head.strip()
        else:
            assert list(parsed) == ["answer"]
