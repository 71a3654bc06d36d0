"""plait.signatures.types: type expressions, LM text -> typed values, values -> text.

This module uses ``from __future__ import annotations`` on purpose: the class-form signatures
below have string annotations that the signature must resolve.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Dict, List, Literal, Optional, Union

import pydantic
import pytest

from plait.errors import SignatureError
from plait.signatures import InputField, OutputField, Signature
from plait.signatures.types import (format_value, is_text, json_schema, parse_type, parse_value,
                                    type_name)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


class Person(pydantic.BaseModel):
    name: str
    age: int = 0


class FutureQA(Signature):
    """Classify people."""

    people: list[Person] = InputField()
    color: Color = InputField()
    hint: Optional[str] = InputField()
    mood: Literal["happy", "sad"] = OutputField()
    scores: dict[str, float] = OutputField()
    either: int | None = OutputField()
    plain = OutputField()


# --- class form under `from __future__ import annotations` -------------------------------

def test_future_annotations_are_resolved():
    annotations = {name: f.annotation for name, f in FutureQA.fields.items()}
    assert annotations == {
        "people": list[Person], "color": Color, "hint": Optional[str],
        "mood": Literal["happy", "sad"], "scores": dict[str, float], "either": Optional[int],
        "plain": str,
    }
    assert FutureQA.instructions == "Classify people."


def test_future_annotations_fall_back_to_the_type_parser_per_field():
    # One unresolvable annotation makes typing.get_type_hints fail for the whole class; the
    # other fields are still resolved through the type-expression parser and module globals.
    def make():
        class Local(enum.Enum):
            A = "a"

        class Broken(Signature):
            color: Color = InputField()
            local: Local = OutputField()

        return Broken

    with pytest.raises(SignatureError) as info:
        make()
    message = str(info.value)
    assert "cannot resolve the type 'Local' of field 'local'" in message
    assert "define or import the types it names at module level" in message


def test_future_annotation_subclass_resolves_parent_and_own_fields():
    class More(FutureQA):
        level: Level = InputField()

    assert More.fields["level"].annotation is Level
    assert More.fields["people"].annotation == list[Person]
    assert More.input_names == ("people", "color", "hint", "level")


# --- parse_type / type_name ---------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("str", str), ("int", int), ("float", float), ("bool", bool), ("bytes", bytes),
    ("list", list), ("dict", dict), ("tuple", tuple), ("set", set),
    ("list[str]", list[str]), ("List[str]", list[str]), ("dict[str, int]", dict[str, int]),
    ("Dict[str, List[int]]", dict[str, list[int]]), ("tuple[int, ...]", tuple[int, ...]),
    ("tuple[int, str]", tuple[int, str]), ("Optional[int]", Optional[int]),
    ("int | None", Optional[int]), ("Union[int, str]", Union[int, str]),
    ("int | str | None", Union[int, str, None]), ("Any", Any), ("typing.Optional[str]", Optional[str]),
    ("Literal['a', \"b\", 3]", Literal["a", "b", 3]), ("Literal[True, None, -1]", Literal[True, None, -1]),
    ("Literal['it\\'s']", Literal["it's"]), (" list[ str ] ", list[str]), ("list[str,]", list[str]),
])
def test_parse_type(text, expected):
    assert parse_type(text) == expected


@pytest.mark.parametrize("annotation, text", [
    (str, "str"), (list[str], "list[str]"), (dict[str, int], "dict[str, int]"),
    (Optional[int], "Optional[int]"), (int | None, "Optional[int]"), (Union[int, str], "Union[int, str]"),
    (Literal["a", "b"], "Literal['a', 'b']"), (Any, "Any"), (tuple[int, ...], "tuple[int, ...]"),
    (Color, "Color"), (list[Person], "list[Person]"), (type(None), "None"),
    (Union[int, str, None], "Union[int, str, None]"),
])
def test_type_name_round_trips(annotation, text):
    assert type_name(annotation) == text
    assert parse_type(text, {"Color": Color, "Person": Person}) == annotation


@pytest.mark.parametrize("text, message", [
    ("", "it is empty"), ("list[", "it ends too early"), ("list[]", "empty brackets"),
    ("dict[str]", "takes 2 type arguments, got 1"), ("Optional", "Optional needs arguments"),
    ("Optional[int, str]", "Optional takes one type"), ("...", "'...' is only allowed"),
    ("list[...]", "'...' is only allowed"), ("Literal[1.5]", "Literal values must be"),
    ("Literal[x]", "Literal values must be"), ("int]", "unexpected ']' after the type"),
    ("str[int]", "str does not take type arguments"), ("int; import os", "unexpected character ';'"),
    ("__import__('os')", "unexpected character '('"), ("list[" * 40 + "int" + "]" * 40, "nests deeper"),
    ("Color", "custom_types={'Color': Color}"),
])
def test_parse_type_errors(text, message):
    with pytest.raises(SignatureError) as info:
        parse_type(text)
    assert message in str(info.value)


def test_type_name_prints_one_spelling_for_typing_generics():
    assert type_name(List[str]) == "list[str]"
    assert type_name(Dict[str, List[int]]) == "dict[str, list[int]]"


def test_parse_type_custom_types_and_is_text():
    assert parse_type("list[Color]", {"Color": Color}) == list[Color]
    assert parse_type("models.Person", {"models.Person": Person}) is Person
    assert is_text(str) and is_text(Any) and not is_text(int) and not is_text(Optional[str])


# --- parse_value --------------------------------------------------------------------------

@pytest.mark.parametrize("text, annotation, expected", [
    ("  hello world \n", str, "hello world"), ("anything", Any, "anything"),
    ("42", int, 42), (" 42.0 ", int, 42), ("3,000", int, 3000), ("$5", int, 5),
    ("The answer is 42.", int, 42), ("-7", int, -7), ("**12**", int, 12), ("1e3", int, 1000),
    ("3.5", float, 3.5), ("about 2.5 km", float, 2.5), ("1,234.5", float, 1234.5), ("7", float, 7.0),
    ("true", bool, True), ("Yes.", bool, True), ("NO", bool, False), ("False!", bool, False),
    ("'Happy'.", Literal["happy", "sad"], "happy"), ("SAD", Literal["happy", "sad"], "sad"),
    ("3", Literal["a", 3], 3), ("Yes.", Literal["Yes.", "No."], "Yes."),
    # a leading option, then an aside a small LM adds (an echoed format hint, a reason)
    ("positive (exactly one of: positive; negative)", Literal["positive", "negative"], "positive"),
    ("Negative. The acting is wooden.", Literal["positive", "negative"], "negative"),
    ("sad\nbecause the ending", Literal["happy", "sad"], "sad"),
    ("very happy (clearly)", Literal["very happy", "very", "sad"], "very happy"),
    ("red", Color, Color.RED), ("GREEN", Color, Color.GREEN), ("Color.RED", Color, Color.RED),
    ("2", Level, Level.HIGH), ("low", Level, Level.LOW),
    ('["a", "b"]', list[str], ["a", "b"]), ("```json\n[1, 2]\n```", list[int], [1, 2]),
    ("- a\n- b\n* c", list[str], ["a", "b", "c"]), ("a, b, c", list[str], ["a", "b", "c"]),
    ("1. first\n2) second", list[str], ["first", "second"]), ("['x', 'y']", list[str], ["x", "y"]),
    ("", list[str], []), ("1, 2", list[int], [1, 2]), ("[1, 2]", list[str], ["1", "2"]),
    ('{"items": ["a"]}', list[str], ["a"]), ("[1, 2]", tuple[int, ...], (1, 2)),
    ('[1, "a"]', tuple[int, str], (1, "a")), ("a, a, b", set[str], {"a", "b"}),
    ('{"a": 1, "b": 2}', dict[str, int], {"a": 1, "b": 2}), ('{"1": "x"}', dict[int, str], {1: "x"}),
    ('Sure: {"k": [1]}', dict, {"k": [1]}), ("{'k': None}", dict[str, Optional[int]], {"k": None}),
    ("None", Optional[int], None), ("null", Optional[int], None), ("", Optional[str], None),
    ("5", Optional[int], 5), ("42", Union[int, str], 42), ("abc", Union[int, str], "abc"),
    ("42", Union[str, int], 42), ('["a"]', Optional[list[str]], ["a"]),
])
def test_parse_value(text, annotation, expected):
    result = parse_value(text, annotation)
    assert result == expected
    assert type(result) is type(expected)


def test_parse_value_pydantic_models():
    assert parse_value('{"name": "Ada", "age": 36}', Person) == Person(name="Ada", age=36)
    assert parse_value('Here:\n```json\n{"name": "Bo"}\n```', Person) == Person(name="Bo")
    assert parse_value('[{"name": "A"}, {"name": "B"}]', list[Person]) == [Person(name="A"),
                                                                          Person(name="B")]
    with pytest.raises(ValueError, match="expected a value of type Person: age: Input should be"):
        parse_value('{"name": "A", "age": "old"}', Person)
    with pytest.raises(ValueError, match="expected a value of type Person as JSON, got 'Ada'"):
        parse_value("Ada", Person)


def test_parse_value_special_floats():
    assert math.isnan(parse_value("nan", float))
    assert parse_value("1e999", float) == math.inf


@pytest.mark.parametrize("text, annotation, message", [
    ("many", int, "expected an integer, got 'many'"),
    ("1 and 2", int, "found 2 numbers; answer with just one"),
    ("42.5", int, "expected an integer, got '42.5'"),
    ("1e999", int, "expected an integer"),
    ("", int, "expected an integer, got ''"),
    ("lots", float, "expected a number, got 'lots'"),
    ("maybe", bool, "expected a boolean (true/false or yes/no), got 'maybe'"),
    ("neutral", Literal["happy", "sad"], "expected one of 'happy', 'sad', got 'neutral'"),
    ("happy or sad", Literal["happy", "sad"], "expected one of 'happy', 'sad', got 'happy or sad'"),
    ("happy, sad", Literal["happy", "sad"], "expected one of"),
    ("happily (mostly)", Literal["happy", "sad"], "expected one of"),
    ("blue", Color, "expected one of 'red', 'green' (Color), got 'blue'"),
    ("[1, 'x']", list[int], "item 1: expected an integer, got 'x'"),
    ('{"a": 1}', list[str], "as a JSON array, got a JSON object"),
    ('[{"a": 1}]', list[list[int]], "item 0: expected a value of type list[int], got"),
    ("[1]", tuple[int, str], "expected 2 items for tuple[int, str], got 1"),
    ("nope", dict[str, int], "expected a value of type dict[str, int] as JSON, got 'nope'"),
    ('{"a": "x"}', dict[str, int], "['a']: expected an integer, got 'x'"),
    ("x", Optional[int], "expected an integer, got 'x' (or None)"),
    ("x", Union[int, float], "expected a value of type Union[int, float], got 'x'"),
    ("[true, 2]", list[bool], "item 1: expected a boolean, got 2"),
    ("[1.5]", list[int], "item 0: expected an integer, got 1.5"),
    ("something", type(None), "expected None (null), got 'something'"),
])
def test_parse_value_errors_say_what_was_expected(text, annotation, message):
    with pytest.raises(ValueError) as info:
        parse_value(text, annotation)
    assert message in str(info.value)


def test_parse_value_takes_text_only():
    with pytest.raises(TypeError, match="takes the LM's text"):
        parse_value(42, int)


def test_parse_value_long_text_is_shortened_in_errors():
    with pytest.raises(ValueError) as info:
        parse_value("word " * 100, int)
    assert len(str(info.value)) < 150


# --- format_value / json_schema -------------------------------------------------------------

@pytest.mark.parametrize("value, annotation, text", [
    ("plain text", str, "plain text"), (42, int, "42"), (2.5, float, "2.5"), (True, bool, "true"),
    (None, Optional[int], "null"), (["a", "é"], list[str], '["a", "é"]'),
    ({"k": [1]}, dict[str, list[int]], '{"k": [1]}'), (Color.RED, Color, "red"), (Level.HIGH, Level, "2"),
    (Person(name="A"), Person, '{"name": "A", "age": 0}'), ((1, 2), tuple[int, ...], "[1, 2]"),
    ([Color.GREEN], list[Color], '["green"]'), ("happy", Literal["happy", "sad"], "happy"),
])
def test_format_value(value, annotation, text):
    assert format_value(value, annotation) == text


@pytest.mark.parametrize("value, annotation", [
    (42, int), (2.5, float), (False, bool), (["a", "b"], list[str]), ({"k": 1}, dict[str, int]),
    (Color.GREEN, Color), (Person(name="A", age=3), Person), (None, Optional[int]),
    ("sad", Literal["happy", "sad"]), ((1, "x"), tuple[int, str]), ([Person(name="Z")], list[Person]),
])
def test_format_then_parse_round_trips(value, annotation):
    assert parse_value(format_value(value, annotation), annotation) == value


def test_json_schema_is_cached_and_safe_to_change():
    schema = json_schema(int)
    assert schema == {"type": "integer"}
    schema["type"] = "changed"
    assert json_schema(int) == {"type": "integer"}
    assert json_schema(list[str]) == {"type": "array", "items": {"type": "string"}}
    person = json_schema(Person)
    assert person["properties"]["name"] == {"title": "Name", "type": "string"}
    assert json_schema(Literal["a", "b"])["enum"] == ["a", "b"]
    assert json_schema(Dict[str, int])["additionalProperties"] == {"type": "integer"}
