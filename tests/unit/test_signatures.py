"""plait.signatures: fields, string form, dict form, class form (edits: test_signature_edits)."""

import copy
import pickle
import subprocess
import sys
from typing import Any, Literal, Optional

import pytest

from plait.errors import SignatureError
from plait.signatures import (RESERVED_NAMES, Field, FieldSpec, InputField, OutputField, Signature,
                              ensure_signature, make_signature)
from plait.signatures.fields import default_prefix


# --- fields ---------------------------------------------------------------------------

def test_input_and_output_field_specs_keep_dspy_keywords_and_extras():
    spec = InputField(desc="a question", prefix="Q:", default="x", json_schema_extra={"k": 1})
    assert spec == FieldSpec("input", "a question", "Q:")
    assert dict(spec.extra) == {"default": "x", "json_schema_extra": {"k": 1}}
    assert OutputField().kind == "output"
    assert OutputField().prefix is None


def test_field_spec_rejects_bad_values():
    with pytest.raises(SignatureError, match="desc= must be a string"):
        InputField(desc=3)
    with pytest.raises(SignatureError, match="prefix= must be a string"):
        OutputField(prefix=1)
    with pytest.raises(SignatureError, match="format= must be a callable"):
        InputField(format="upper")


@pytest.mark.parametrize("name, prefix", [
    ("question", "Question:"), ("search_query", "Search Query:"), ("camelCase", "Camel Case:"),
    ("HTMLParser", "HTML Parser:"), ("step2", "Step 2:"), ("x", "X:"),
])
def test_default_prefix_turns_names_into_words(name, prefix):
    assert default_prefix(name) == prefix


def test_field_is_hashable_and_format_is_not_compared():
    one = Field("a", "input", int, "d", "A:", format=str.upper)
    two = Field("a", "input", int, "d", "A:")
    assert one == two and hash(one) == hash(two)
    assert one != Field("a", "output", int, "d", "A:")
    assert Field("a", "input").annotation is str


def test_field_pickles_and_deep_copies_with_extras():
    field = Signature({"q": InputField(default=3), "a": OutputField()}).fields["q"]
    assert pickle.loads(pickle.dumps(field)) == field
    assert dict(copy.deepcopy(field).extra) == {"default": 3}


# --- string form ----------------------------------------------------------------------

def test_string_form_fields_instructions_and_attributes():
    sig = Signature("context, question -> answer")
    assert list(sig.fields) == ["context", "question", "answer"]
    assert list(sig.input_fields) == ["context", "question"]
    assert list(sig.output_fields) == ["answer"]
    assert sig.input_names == ("context", "question") and sig.output_names == ("answer",)
    assert sig.signature == "context, question -> answer"
    assert sig.instructions == "Given the fields `context`, `question`, produce the fields `answer`."
    answer = sig.fields["answer"]
    assert (answer.kind, answer.annotation, answer.desc, answer.prefix) == ("output", str, "", "Answer:")


def test_string_form_with_types_and_instructions():
    sig = Signature("question: str, k: int -> answers: list[str], confidence: float", "Be brief.")
    assert sig.instructions == "Be brief."
    assert [f.annotation for f in sig.fields.values()] == [str, int, list[str], float]
    assert sig.signature == "question, k -> answers, confidence"


def test_string_form_types_with_commas_and_literals():
    sig = Signature("scores: dict[str, int], mode: Literal['a, b', \"c\"] -> out: Optional[int]")
    assert sig.fields["scores"].annotation == dict[str, int]
    assert sig.fields["mode"].annotation == Literal["a, b", "c"]
    assert sig.fields["out"].annotation == Optional[int]


def test_string_form_custom_types():
    class Color:
        pass

    sig = Signature("color: Color -> best: list[Color]", custom_types={"Color": Color})
    assert sig.fields["best"].annotation == list[Color]
    with pytest.raises(SignatureError, match=r"unknown type 'Color'.*custom_types=\{'Color': Color\}"):
        Signature("color: Color -> best")
    with pytest.raises(SignatureError, match="custom_types must be a dict"):
        Signature("a -> b", custom_types=[Color])


def test_string_parse_is_cached_and_instances_are_equal():
    one, two = Signature("a, b -> c"), Signature("a, b -> c")
    assert one == two and hash(one) == hash(two)
    assert one._spec is two._spec  # the parse is done once


@pytest.mark.parametrize("text, message", [
    ("a -> ", "no output fields after '->'"),
    (" -> b", "no input fields before '->'"),
    ("a b -> c", "field name 'a b' contains a space; separate fields with commas ('a, b')"),
    ("a, b", "'->' is missing between the inputs and the outputs"),
    ("a -> b -> c", "it has 2 '->' but needs exactly one"),
    ("a, a -> b", "field 'a' appears twice (two inputs)"),
    ("a -> b, b", "field 'b' appears twice (two outputs)"),
    ("a -> a", "field 'a' appears twice (an input and an output)"),
    ("1a -> b", "'1a' is not a valid Python identifier"),
    ("a-b -> c", "'a-b' is not a valid Python identifier"),
    ("class -> b", "'class' is a Python keyword; rename it (e.g. 'class_')"),
    ("_a -> b", "'_a' starts with '_'"),
    ("keys -> b", "'keys' is reserved"),
    ("question -> instructions", "'instructions' is reserved"),
    ("", "the signature is empty"),
    ("   ", "the signature is empty"),
    ("a, -> b", "a field name is empty; check for a stray or doubled comma"),
    ("a: -> b", "field 'a' has ':' but no type after it"),
    ("a: list[ -> b", "field 'a': invalid type 'list[': it ends too early"),
    ("a: list[int, str] -> b", "list[...] takes 1 type argument, got 2"),
    ("a: Frob -> b", "unknown type 'Frob'"),
    ("a: int(3) -> b", "unexpected character '('"),
])
def test_string_form_errors_say_what_is_wrong(text, message):
    with pytest.raises(SignatureError) as info:
        Signature(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("spec", [None, 3, ["a -> b"], b"a -> b"])
def test_non_string_specs_are_rejected(spec):
    with pytest.raises(SignatureError, match="Signature"):
        Signature(spec)


def test_instructions_must_be_text():
    with pytest.raises(SignatureError, match="instructions must be a string"):
        Signature("a -> b", 5)


def test_reserved_names_cover_example_and_predict_api():
    for name in ("inputs", "labels", "with_inputs", "keys", "values", "items", "get", "copy",
                 "without", "toDict", "completions", "signature", "instructions", "demos",
                 "config", "forward"):
        assert name in RESERVED_NAMES


# --- dict form and builders --------------------------------------------------------------

def test_dict_form_and_make_signature():
    sig = make_signature({"q": (int, InputField(desc="number")), "ctx": InputField(),
                          "a": ("list[str]", OutputField())}, "Do it.")
    assert sig.input_names == ("q", "ctx") and sig.output_names == ("a",)
    assert sig.fields["q"].annotation is int and sig.fields["q"].desc == "number"
    assert sig.fields["a"].annotation == list[str]
    assert make_signature("a -> b") == Signature("a -> b")
    with pytest.raises(SignatureError, match="must be InputField"):
        Signature({"q": str})


def test_ensure_signature_accepts_strings_instances_and_classes():
    class QA(Signature):
        question = InputField()
        answer = OutputField()

    sig = Signature("question -> answer")
    assert ensure_signature("question -> answer") == sig
    assert ensure_signature(sig) is sig
    assert ensure_signature(QA) == sig
    assert ensure_signature(QA, "New.").instructions == "New."
    assert ensure_signature(sig, "New.") == sig.with_instructions("New.")
    for bad in (3, None, Signature, dict):
        with pytest.raises(SignatureError, match="expected a signature"):
            ensure_signature(bad)


# --- class form ---------------------------------------------------------------------------

class QA(Signature):
    """Answer briefly.

        Use one word."""

    question: str = InputField(desc="a trivia question")
    answer: int = OutputField()


class Untyped(Signature):
    context = InputField(prefix="Ctx:")
    question = InputField()
    answer = OutputField()


def test_class_form_attributes_work_on_the_class():
    assert QA.instructions == "Answer briefly.\n\nUse one word."
    assert list(QA.fields) == ["question", "answer"]
    assert list(QA.input_fields) == ["question"] and list(QA.output_fields) == ["answer"]
    assert QA.signature == "question -> answer"
    assert QA.fields["question"].desc == "a trivia question"
    assert QA.fields["answer"].annotation is int
    assert QA.input_names == ("question",)


def test_class_form_removes_field_specs_from_the_class():
    assert "question" not in QA.__dict__
    assert not isinstance(getattr(QA, "question", None), FieldSpec)


def test_class_form_instance_is_equal_to_string_form():
    assert QA() == QA()
    assert QA() == Signature("question -> answer: int", QA.instructions).with_updated_fields(
        "question", desc="a trivia question")
    assert isinstance(QA(), QA)


def test_untyped_class_fields_are_str_and_default_instructions():
    assert [f.annotation for f in Untyped.fields.values()] == [str, str, str]
    assert Untyped.fields["context"].prefix == "Ctx:"
    assert Untyped.instructions == ("Given the fields `context`, `question`, produce the fields "
                                    "`answer`.")


def test_class_methods_work_on_the_class_and_return_instances():
    edited = QA.with_instructions("Think.")
    assert isinstance(edited, Signature) and edited.instructions == "Think."
    assert QA.instructions == "Answer briefly.\n\nUse one word."
    assert QA.append("hint", InputField()).input_names == ("question", "hint")
    assert QA.delete("question").input_names == ()
    assert QA.dump_state()["instructions"] == QA.instructions
    assert QA(instructions="Other.").instructions == "Other."


def test_subclass_inherits_and_extends_fields():
    class WithContext(QA):
        context: list[str] = InputField()
        confidence: float = OutputField()

    assert WithContext.input_names == ("question", "context")
    assert WithContext.output_names == ("answer", "confidence")
    assert WithContext.instructions == QA.instructions  # explicit docstring is inherited
    assert QA.input_names == ("question",)  # the parent is untouched

    class Redeclared(QA):
        """New."""
        question: list[str] = InputField(desc="several")

    assert Redeclared.fields["question"].annotation == list[str]
    assert Redeclared.instructions == "New."
    assert list(Redeclared.fields) == ["question", "answer"]


def test_subclass_of_default_instruction_class_gets_new_default():
    class More(Untyped):
        extra = OutputField()

    assert More.instructions.endswith("produce the fields `answer`, `extra`.")


def test_class_form_supports_many_annotations():
    import enum

    import pydantic

    class Color(enum.Enum):
        RED = "red"

    class Person(pydantic.BaseModel):
        name: str

    class Rich(Signature):
        color: Color = InputField()
        people: list[Person] = InputField()
        anything: Any = InputField()
        mood: Literal["happy", "sad"] = OutputField()
        maybe: Optional[int] = OutputField()
        either: int | str = OutputField()
        table: dict[str, tuple[int, ...]] = OutputField()
        ok: bool = OutputField()

    annotations = {name: f.annotation for name, f in Rich.fields.items()}
    assert annotations["color"] is Color and annotations["people"] == list[Person]
    assert annotations["mood"] == Literal["happy", "sad"] and annotations["maybe"] == Optional[int]


def test_class_form_errors_name_the_field():
    with pytest.raises(SignatureError, match="'question' has a type but is not declared as a field"):
        class NoSpec(Signature):
            question: str
            answer: str = OutputField()
    with pytest.raises(SignatureError, match="Reserved: field name 'items' is reserved"):
        class Reserved(Signature):
            items: str = InputField()
    with pytest.raises(SignatureError, match="appears twice"):
        class Twice(Signature):
            a = InputField()
            b = OutputField()

        Twice.append("a", OutputField())


def test_class_form_ignores_classvars_and_private_annotations():
    from typing import ClassVar

    class WithExtras(Signature):
        limit: ClassVar[int] = 3
        _cache: dict = {}
        q = InputField()
        a = OutputField()

    assert WithExtras.signature == "q -> a" and WithExtras.limit == 3


def test_bare_signature_class_has_no_spec():
    with pytest.raises(SignatureError, match="needs a spec"):
        Signature()
    assert not hasattr(Signature, "fields")
    # The unbound method still works with an explicit instance.
    assert Signature.with_instructions(Signature("a -> b"), "x").instructions == "x"


def test_intermediate_class_without_fields_shares_instructions():
    class Base(Signature):
        """Be careful."""

    class Child(Base):
        q = InputField()
        a = OutputField()

    assert Base.fields == {} and Child.instructions == "Be careful."


# --- imports ----------------------------------------------------------------------------------

def test_importing_signatures_does_not_import_pydantic():
    code = ("import sys, plait.signatures, plait.signatures.types; "
            "s = plait.signatures.Signature('a: list[int] -> b: dict[str, float]'); "
            "plait.signatures.types.parse_value('[1, 2]', list[int]); "
            "assert 'pydantic' not in sys.modules, 'pydantic was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
