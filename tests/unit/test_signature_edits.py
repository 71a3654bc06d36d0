"""plait.signatures: edits return new signatures, value semantics, saved state."""

import copy
import json
import pickle

import pytest

from plait.errors import SignatureError
from plait.signatures import Field, InputField, OutputField, Signature


class QA(Signature):
    """Answer briefly."""

    question: str = InputField(desc="a trivia question")
    answer: int = OutputField()


# --- immutability and edits -----------------------------------------------------------------

def test_signatures_are_immutable():
    sig = Signature("a -> b")
    with pytest.raises(AttributeError, match="immutable"):
        sig.instructions = "x"
    with pytest.raises(AttributeError, match="immutable"):
        del sig.fields
    with pytest.raises(TypeError):
        sig.fields["c"] = Field("c", "input")  # read-only mapping


def test_with_instructions_returns_new_signature():
    sig = Signature("a -> b")
    new = sig.with_instructions("Do it.")
    assert new.instructions == "Do it." and new.fields == sig.fields
    assert sig.instructions.startswith("Given the fields")
    assert new != sig
    with pytest.raises(SignatureError, match="takes the new instructions as a string"):
        sig.with_instructions(None)


def test_with_updated_fields():
    sig = Signature("question -> answer")
    new = sig.with_updated_fields("answer", desc="one word", prefix="A:", type_=int)
    assert (new.fields["answer"].desc, new.fields["answer"].prefix) == ("one word", "A:")
    assert new.fields["answer"].annotation is int
    assert sig.fields["answer"] == Field("answer", "output", str, "", "Answer:")
    assert new.with_updated_fields("answer", prefix=None).fields["answer"].prefix == "Answer:"
    assert sig.with_updated_fields("answer", annotation="list[int]").fields["answer"].annotation == list[int]
    with pytest.raises(SignatureError, match="no field 'missing'; the fields are"):
        sig.with_updated_fields("missing", desc="x")
    with pytest.raises(SignatureError, match=r"cannot change \['kind'\]"):
        sig.with_updated_fields("answer", kind="input")
    with pytest.raises(SignatureError, match="not both"):
        sig.with_updated_fields("answer", annotation=int, type_=int)
    with pytest.raises(SignatureError, match="desc= must be a string"):
        sig.with_updated_fields("answer", desc=None)
    with pytest.raises(SignatureError, match="format= must be a callable"):
        sig.with_updated_fields("answer", format="upper")
    formatted = sig.with_updated_fields("question", format=str.upper)
    assert formatted.fields["question"].format is str.upper
    assert formatted == sig  # format is not part of the value


def test_append_prepend_insert_are_relative_to_the_field_kind():
    sig = Signature("a, b -> x, y")
    assert sig.append("c", InputField()).input_names == ("a", "b", "c")
    assert sig.prepend("c", InputField()).input_names == ("c", "a", "b")
    assert sig.append("z", OutputField()).output_names == ("x", "y", "z")
    assert sig.prepend("w", OutputField()).output_names == ("w", "x", "y")
    assert sig.insert(1, "c", InputField()).input_names == ("a", "c", "b")
    assert sig.insert(-1, "z", OutputField()).output_names == ("x", "y", "z")
    assert sig.insert(-2, "z", OutputField()).output_names == ("x", "z", "y")
    typed = sig.append("n", OutputField(desc="count"), type_=int)
    assert typed.fields["n"] == Field("n", "output", int, "count", "N:")
    assert sig.append("n", OutputField(), type_="list[int]").fields["n"].annotation == list[int]
    assert sig.signature == "a, b -> x, y"  # untouched
    with pytest.raises(SignatureError, match="index 5 is out of range for the 2 input fields"):
        sig.insert(5, "c", InputField())
    with pytest.raises(SignatureError, match="takes InputField"):
        sig.append("c", "input")
    with pytest.raises(SignatureError, match="'a' appears twice"):
        sig.append("a", OutputField())
    with pytest.raises(SignatureError, match="reserved"):
        sig.append("demos", InputField())


def test_append_accepts_an_existing_field_under_a_new_name():
    sig = Signature("a: int -> b")
    new = sig.append("c", sig.fields["a"])
    assert new.fields["c"].annotation is int and new.fields["c"].kind == "input"


def test_delete():
    sig = Signature("a, b -> c")
    assert sig.delete("a").signature == "b -> c"
    assert sig.signature == "a, b -> c"
    with pytest.raises(SignatureError, match="delete\\(\\): no field 'z'"):
        sig.delete("z")


def test_default_instructions_follow_edits_but_explicit_ones_stay():
    sig = Signature("a -> b")
    assert sig.append("c", OutputField()).instructions == "Given the fields `a`, produce the fields `b`, `c`."
    explicit = Signature("a -> b", "Keep me.")
    assert explicit.append("c", OutputField()).instructions == "Keep me."


# --- value semantics ------------------------------------------------------------------------

def test_equality_covers_instructions_and_field_details():
    base = Signature("a -> b")
    assert base == Signature("a: str -> b: str")
    assert base != Signature("a -> b: int")
    assert base != Signature("b -> a")
    assert base != base.with_updated_fields("a", desc="x")
    assert base != base.with_updated_fields("a", prefix="X:")
    assert base != base.with_instructions("other")
    assert base.equals(Signature("a -> b")) and not base.equals("a -> b")
    assert base != "a -> b"
    assert len({base, Signature("a -> b"), Signature("a -> c")}) == 2


def test_copy_deepcopy_and_pickle_keep_the_value():
    sig = Signature("a: list[int] -> b", "Inst.")
    assert copy.copy(sig) is sig and copy.deepcopy(sig) is sig
    assert pickle.loads(pickle.dumps(sig)) == sig
    restored = pickle.loads(pickle.dumps(QA()))
    assert restored == QA() and type(restored) is QA


def test_repr_is_readable():
    sig = Signature("question: str, k: int -> answer: list[str]", "Be brief.")
    assert repr(sig) == ("Signature(question: str, k: int -> answer: list[str]\n"
                         "  instructions='Be brief.')")
    assert repr(QA()).startswith("QA(question: str -> answer: int")


# --- state --------------------------------------------------------------------------------------

def test_dump_state_is_json_safe():
    sig = Signature("q: Optional[int] -> a: Literal['x', 'y']", "Inst.")
    state = sig.dump_state()
    assert json.loads(json.dumps(state)) == state
    assert state == {"instructions": "Inst.", "fields": [
        {"name": "q", "kind": "input", "type": "Optional[int]", "desc": "", "prefix": "Q:"},
        {"name": "a", "kind": "output", "type": "Literal['x', 'y']", "desc": "", "prefix": "A:"}]}


def test_load_state_round_trips_through_json():
    original = QA.with_instructions("Optimized.").with_updated_fields("answer", desc="d", prefix="P:")
    state = json.loads(json.dumps(original.dump_state()))
    loaded = QA.load_state(state)
    assert loaded == original
    assert loaded.fields["answer"].annotation is int  # types stay those of the program
    assert QA() != loaded  # QA itself unchanged


def test_load_state_keeps_default_instructions_following_fields():
    sig = Signature("a -> b")
    loaded = sig.load_state(json.loads(json.dumps(sig.dump_state())))
    assert loaded == sig
    assert loaded.append("c", InputField()).instructions.startswith("Given the fields `a`, `c`")


def test_load_state_mismatch_names_the_first_difference():
    state = Signature("a -> b").dump_state()
    with pytest.raises(SignatureError, match=r"saved field 1 is 'b' \(output\) but this signature "
                                             r"has 'c' \(output\)"):
        Signature("a -> c").load_state(state)
    with pytest.raises(SignatureError, match="has 2 fields but this signature has 3"):
        Signature("a -> b, c").load_state(state)
    with pytest.raises(SignatureError, match="takes the dict dump_state"):
        Signature("a -> b").load_state(["a"])
    with pytest.raises(SignatureError, match="instructions must be a string"):
        Signature("a -> b").load_state({**state, "instructions": 3})
