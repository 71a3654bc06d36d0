"""Property tests: signatures and value parsing never fail with anything but their own errors."""

import enum
import keyword
import string
from typing import Any, Literal, Optional, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait.errors import SignatureError
from plait.signatures import RESERVED_NAMES, Signature
from plait.signatures.types import format_value, parse_type, parse_value, type_name

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text biased towards signature syntax so that the parser's deeper paths are reached.
_SYNTAX = st.sampled_from(["->", ",", ":", " ", "[", "]", "|", "'", '"', "str", "int", "list",
                           "dict", "Literal", "Optional", "None", "...", "a", "b", "_", "1", "\\"])
signature_like_text = st.one_of(
    st.text(max_size=60),
    st.lists(_SYNTAX, max_size=25).map("".join),
)

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name) and name not in RESERVED_NAMES)
type_texts = st.recursive(
    st.sampled_from(["str", "int", "float", "bool", "Any", "None"]),
    lambda inner: st.one_of(
        inner.map(lambda t: f"list[{t}]"),
        st.tuples(inner, inner).map(lambda kv: f"dict[{kv[0]}, {kv[1]}]"),
        inner.map(lambda t: f"Optional[{t}]"),
        st.tuples(inner, inner).map(lambda pair: f"{pair[0]} | {pair[1]}"),
        st.lists(st.text(string.ascii_letters + " ,'\"", max_size=5), min_size=1, max_size=3)
        .map(lambda values: "Literal[" + ", ".join(repr(v) for v in values) + "]"),
    ),
    max_leaves=6,
)


@FAST
@given(signature_like_text)
def test_any_text_gives_a_signature_or_a_signature_error(text):
    try:
        sig = Signature(text)
    except SignatureError as exc:
        assert str(exc)  # every error says something
        return
    assert isinstance(sig, Signature)
    assert sig.input_names and sig.output_names


@FAST
@given(signature_like_text)
def test_any_text_gives_a_type_or_a_signature_error(text):
    try:
        parse_type(text)
    except SignatureError:
        pass


@FAST
@given(st.lists(names, min_size=2, max_size=8, unique=True), st.integers(1, 7), st.data())
def test_valid_specs_round_trip_through_their_string(field_names, split, data):
    split = min(split, len(field_names) - 1)
    typed = [f"{name}: {data.draw(type_texts)}" if data.draw(st.booleans()) else name
             for name in field_names]
    text = ", ".join(typed[:split]) + " -> " + ", ".join(typed[split:])
    sig = Signature(text)
    assert sig.input_names == tuple(field_names[:split])
    assert sig.output_names == tuple(field_names[split:])
    again = Signature(sig.signature)
    assert again.input_names == sig.input_names and again.output_names == sig.output_names
    # Types print as text that parses back to the same annotation.
    for field in sig.fields.values():
        assert parse_type(type_name(field.annotation)) == field.annotation
    assert sig.load_state(sig.dump_state()) == sig


@FAST
@given(type_texts)
def test_generated_type_expressions_parse(text):
    annotation = parse_type(text)
    assert parse_type(type_name(annotation)) == annotation


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Each annotation with a check that a parsed value has the right type.
TARGETS = [
    (str, lambda v: isinstance(v, str)),
    (int, _is_int),
    (float, lambda v: isinstance(v, float)),
    (bool, lambda v: isinstance(v, bool)),
    (Literal["yes", "no", 3], lambda v: v in ("yes", "no", 3)),
    (Color, lambda v: isinstance(v, Color)),
    (Optional[int], lambda v: v is None or _is_int(v)),
    (Union[int, str], lambda v: _is_int(v) or isinstance(v, str)),
    (list[str], lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    (list[int], lambda v: isinstance(v, list) and all(_is_int(x) for x in v)),
    (dict[str, float], lambda v: isinstance(v, dict)
     and all(isinstance(k, str) and isinstance(x, float) for k, x in v.items())),
    (tuple[int, ...], lambda v: isinstance(v, tuple) and all(_is_int(x) for x in v)),
    (set[str], lambda v: isinstance(v, set) and all(isinstance(x, str) for x in v)),
]

_VALUE_PIECES = st.sampled_from(["[", "]", "{", "}", ",", ":", '"', "'", "1", "2.5", "-", "e9",
                                 "true", "null", "None", "yes", "red", "a", " ", "\n", "- ",
                                 "```json\n", "```", "$", "1,000", "nan", "inf"])
value_like_text = st.one_of(st.text(max_size=50), st.lists(_VALUE_PIECES, max_size=20).map("".join))


@FAST
@given(value_like_text, st.sampled_from(TARGETS))
def test_any_text_parses_to_the_right_type_or_raises_value_error(text, target):
    annotation, has_right_type = target
    try:
        value = parse_value(text, annotation)
    except ValueError as exc:
        assert str(exc)
        return
    assert has_right_type(value), (text, annotation, value)


@FAST
@given(st.one_of(
    st.tuples(st.integers(), st.just(int)),
    st.tuples(st.floats(allow_nan=False), st.just(float)),
    st.tuples(st.booleans(), st.just(bool)),
    st.tuples(st.lists(st.text(max_size=10)), st.just(list[str])),
    st.tuples(st.lists(st.integers()), st.just(list[int])),
    st.tuples(st.dictionaries(st.text(max_size=5), st.integers(), max_size=4), st.just(dict[str, int])),
    st.tuples(st.sampled_from(list(Color)), st.just(Color)),
    st.tuples(st.one_of(st.none(), st.integers()), st.just(Optional[int])),
))
def test_formatted_values_parse_back(pair):
    value, annotation = pair
    assert parse_value(format_value(value, annotation), annotation) == value
