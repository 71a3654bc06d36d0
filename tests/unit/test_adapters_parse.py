"""Lenient parsing of real-looking LM answers and typed field values, for each adapter."""

from __future__ import annotations

import enum
from typing import Literal, Optional

import pydantic
import pytest

from plait.adapters import ChatAdapter, JSONAdapter, TemplateAdapter
from plait.errors import AdapterParseError
from plait.signatures import InputField, OutputField, Signature

QA = Signature("question -> answer")
COT = Signature("question -> reasoning, answer: int")
CHAT, JSON_, TEMPLATE = ChatAdapter(), JSONAdapter(), TemplateAdapter()


class Person(pydantic.BaseModel):
    name: str
    age: int


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


class Typed(Signature):
    """Extract everything."""

    text: str = InputField()
    count: int = OutputField()
    score: float = OutputField()
    ok: bool = OutputField()
    label: Literal["positive", "negative"] = OutputField()
    tags: list[str] = OutputField()
    stats: dict[str, int] = OutputField()
    person: Person = OutputField()
    maybe: Optional[int] = OutputField()   # noqa: UP045 - the spelling users write
    mood: Mood = OutputField()


TYPED_VALUES = {"count": 3, "score": 0.5, "ok": True, "label": "negative", "tags": ["a", "b c"],
                "stats": {"x": 1}, "person": Person(name="Ada", age=36), "maybe": None, "mood": Mood.SAD}


# --- ChatAdapter --------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]",
    "[[##answer##]]Paris",
    "[[ ## Answer ## ]]\nParis",
    "[[ ##  ANSWER  ## ]] Paris\n[[ ## completed ## ]]",
    "### [[ ## answer ## ]]\nParis\n\n### [[ ## completed ## ]]",
    "**[[ ## answer ## ]]**\nParis",
    "Sure! Here is my answer.\n\n[[ ## answer ## ]]\nParis",
    "**Answer:** Paris",
    "Answer: Paris",
    "## Answer\nParis",
    "Paris",
    "  Paris  \n",
])
def test_chat_lenient_single_field(text):
    assert CHAT.parse(QA, text) == {"answer": "Paris"}


def test_chat_prose_answer_for_single_text_output():
    smol = "The capital of France is Paris. It is known for the Eiffel Tower."
    assert CHAT.parse(QA, smol) == {"answer": smol}


@pytest.mark.parametrize("text", [
    "[[ ## reasoning ## ]]\nTwo plus two is four.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]",
    "[[ ## Reasoning ## ]]Two plus two is four.\n[[ ## Answer ## ]]4",
    "### [[ ## reasoning ## ]]\nTwo plus two is four.\n\n### [[ ## answer ## ]]\n**4**",
    "Reasoning: Two plus two is four.\nAnswer: 4",
    "**Reasoning:** Two plus two is four.\n\n**Answer:** 4.",
    "## Reasoning\nTwo plus two is four.\n\n## Answer\n4",
    "- Reasoning: Two plus two is four.\n- Answer: 4",
    "[[ ## question ## ]]\n2+2?\n\n[[ ## reasoning ## ]]\nTwo plus two is four.\n\n[[ ## answer ## ]]\n4",
])
def test_chat_lenient_two_fields(text):
    assert CHAT.parse(COT, text) == {"reasoning": "Two plus two is four.", "answer": 4}


def test_chat_missing_field_error_keeps_what_parsed():
    text = "[[ ## reasoning ## ]]\nI think it is four."
    with pytest.raises(AdapterParseError, match="missing output field.*answer") as info:
        CHAT.parse(COT, text)
    assert info.value.completion == text and info.value.parsed == {"reasoning": "I think it is four."}
    assert info.value.adapter == "chat" and info.value.signature == COT


def test_chat_invalid_value_names_field_type_and_value():
    with pytest.raises(AdapterParseError) as info:
        CHAT.parse(COT, "[[ ## reasoning ## ]]\nhmm\n\n[[ ## answer ## ]]\nforty-two")
    message = str(info.value)
    assert "`answer`" in message and "int" in message and "'forty-two'" in message
    assert info.value.parsed == {"reasoning": "hmm"}


@pytest.mark.parametrize("text", ["", "   \n", "I cannot help with that."])
def test_chat_nothing_usable_for_two_fields(text):
    with pytest.raises(AdapterParseError, match="missing output field"):
        CHAT.parse(COT, text)


def test_chat_typed_round_trip_and_values():
    completion = CHAT.format_completion(Typed, TYPED_VALUES)
    assert "[[ ## person ## ]]\n{\"name\": \"Ada\", \"age\": 36}" in completion
    assert CHAT.parse(Typed, completion) == TYPED_VALUES


def test_chat_typed_sloppy_values():
    text = ("[[ ## count ## ]]\n**3**\n[[ ## score ## ]]\n0.5\n[[ ## ok ## ]]\nyes\n[[ ## label ## ]]\n"
            "Negative.\n[[ ## tags ## ]]\n- a\n- b c\n[[ ## stats ## ]]\n```json\n{\"x\": 1}\n```\n"
            "[[ ## person ## ]]\n{\"name\": \"Ada\", \"age\": \"36\"}\n[[ ## maybe ## ]]\nNone\n"
            "[[ ## mood ## ]]\nsad\n[[ ## completed ## ]]")
    assert CHAT.parse(Typed, text) == TYPED_VALUES


def test_chat_optional_and_literal_errors():
    with pytest.raises(AdapterParseError, match="`label`"):
        CHAT.parse(Signature("t -> label: Literal['a', 'b']"), "[[ ## label ## ]]\nc")
    assert CHAT.parse(Signature("t -> n: Optional[int]"), "[[ ## n ## ]]\n7") == {"n": 7}


def test_chat_custom_prefix_is_a_label():
    sig = Signature("question -> answer").with_updated_fields("answer", prefix="Final Answer:")
    assert CHAT.parse(sig, "Final Answer: Rome") == {"answer": "Rome"}


# --- JSONAdapter --------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{"reasoning": "Two plus two is four.", "answer": 4}',
    '```json\n{"reasoning": "Two plus two is four.", "answer": 4}\n```',
    'Here is the JSON you asked for:\n{"Reasoning": "Two plus two is four.", "ANSWER": "4"}\nHope it helps!',
    "{'reasoning': 'Two plus two is four.', 'answer': 4}",
    '{"reasoning": "Two plus two is four.", "answer": 4,}',
    '{"reasoning": "Two plus two is four.", "answer": 4, "confidence": "high"}',
    "[[ ## reasoning ## ]]\nTwo plus two is four.\n\n[[ ## answer ## ]]\n4",
])
def test_json_lenient(text):
    assert JSON_.parse(COT, text) == {"reasoning": "Two plus two is four.", "answer": 4}


def test_json_keys_with_spaces_and_braces_in_strings():
    sig = Signature("question -> final_answer, note")
    text = 'Sure: {"Final Answer": "use {x} here", "note": "a \\"quoted\\" }"}'
    assert JSON_.parse(sig, text) == {"final_answer": "use {x} here", "note": 'a "quoted" }'}


def test_json_non_str_values_for_str_fields():
    sig = Signature("q -> a, b, c, d")
    assert JSON_.parse(sig, '{"a": 42, "b": ["x", 1], "c": true, "d": {"k": null}}') == {
        "a": "42", "b": '["x", 1]', "c": "True", "d": '{"k": null}'}


def test_json_typed_round_trip():
    assert JSON_.parse(Typed, JSON_.format_completion(Typed, TYPED_VALUES)) == TYPED_VALUES


def test_json_single_output_accepts_one_renamed_key_and_prose():
    assert JSON_.parse(QA, '{"result": "Paris"}') == {"answer": "Paris"}
    assert JSON_.parse(QA, "Paris") == {"answer": "Paris"}


def test_json_errors():
    with pytest.raises(AdapterParseError, match="missing the key.*answer") as info:
        JSON_.parse(COT, '{"reasoning": "r"}')
    assert info.value.parsed == {"reasoning": "r"}
    with pytest.raises(AdapterParseError, match="`answer` expects int"):
        JSON_.parse(COT, '{"reasoning": "r", "answer": "lots"}')
    with pytest.raises(AdapterParseError, match="none of the keys"):
        JSON_.parse(COT, '{"foo": 1, "bar": 2}')
    with pytest.raises(AdapterParseError):
        JSON_.parse(COT, "I don't know.")


# --- TemplateAdapter ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    " Paris",
    " Paris\n\nQuestion: What is the capital of Italy?\nAnswer: Rome",
    " Paris\n---\nQuestion: next",
    "Answer: Paris",
    "**Answer:**Paris",
    "answer:Paris\n\nI hope this helps! Let me know if you have more questions.",
    "Question: What is the capital of France?\nAnswer: Paris",
    "Let me think.\nAnswer: Paris\nQuestion: What about Spain?\nAnswer: Madrid",
])
def test_template_lenient_single_field(text):
    assert TEMPLATE.parse(QA, text) == {"answer": "Paris"}


@pytest.mark.parametrize("text", [
    " Two plus two is four.\nAnswer: 4",
    "Reasoning: Two plus two is four.\nAnswer: 4\n\nQuestion: What is 3+3?\nReasoning: six",
    "Two plus two is four. Answer: 4",
    "**Reasoning:** Two plus two is four.\n**Answer:** 4",
    "Two plus two is four.\nAnswer: The answer is 4.\n---\nQuestion: 5+5?",
])
def test_template_lenient_two_fields(text):
    assert TEMPLATE.parse(COT, text) == {"reasoning": "Two plus two is four.", "answer": 4}


def test_template_missing_trailing_field_reports_partial():
    with pytest.raises(AdapterParseError, match="missing output field.*answer") as info:
        TEMPLATE.parse(COT, " Two plus two is four.\n\nQuestion: What is 3+3?")
    assert info.value.parsed == {"reasoning": "Two plus two is four."}


def test_template_typed_round_trip():
    assert TEMPLATE.parse(Typed, TEMPLATE.format_completion(Typed, TYPED_VALUES)) == TYPED_VALUES
