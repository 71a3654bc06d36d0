"""Saving and loading program state: versioned JSON, atomic writes, validated loads, no pickle."""

import json
import os
import stat
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from primitives_fakes import Counter, FakePredict, TwoStep, learned, teach

from plait.errors import StateError
from plait.primitives import Module, read_state, save_state
from plait.primitives import persistence


@pytest.fixture
def saved(tmp_path):
    """A taught TwoStep saved to disk: (path, the state it holds)."""
    program = TwoStep()
    teach(program, "saved")
    path = tmp_path / "program.json"
    program.save(path)
    return path, learned(program)


def untouched_program():
    program = TwoStep()
    teach(program, "untouched")
    return program, learned(program)


def rewrite(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


# --- round trip and file shape -------------------------------------------------------------
def test_save_load_round_trip(saved):
    path, state = saved
    fresh = TwoStep()
    fresh.load(path)
    assert learned(fresh) == state
    assert fresh.steps[1][0].demos[0].toDict() == {"question": "saved-q3", "answer": "saved-a3"}


def test_file_is_versioned_json_with_the_documented_envelope(saved):
    path, state = saved
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "plait.program"
    assert document["version"] == 1
    assert document["plait_version"] == __import__("plait").__version__
    assert document["program"] == "TwoStep"
    assert document["parameters"] == state
    assert list(document["parameters"]) == list(state)          # program order
    assert document["metadata"]["python"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")
    assert read_state(path) == document


def test_a_parameter_program_saves_as_self(tmp_path):
    predict = FakePredict()
    predict.instructions = "be brief"
    predict.save(tmp_path / "p.json")
    assert list(read_state(tmp_path / "p.json")["parameters"]) == ["self"]
    other = FakePredict()
    other.load(tmp_path / "p.json")
    assert other.instructions == "be brief"


def test_save_replaces_an_existing_file_and_keeps_its_permissions(saved):
    path, _ = saved
    os.chmod(path, 0o640)
    program = TwoStep()
    teach(program, "second")
    program.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert read_state(path)["parameters"] == learned(program)
    assert [p.name for p in path.parent.iterdir()] == ["program.json"]


def test_unicode_survives(tmp_path):
    program = TwoStep()
    program.first.instructions = "réponds en français — 日本語 ✓"
    program.save(tmp_path / "u.json")
    fresh = TwoStep()
    fresh.load(tmp_path / "u.json")
    assert fresh.first.instructions == "réponds en français — 日本語 ✓"


# --- atomicity -----------------------------------------------------------------------------
def test_a_crash_before_the_rename_leaves_the_old_file_and_no_temp_file(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()

    def crash(source, target):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    program = TwoStep()
    teach(program, "new")
    with pytest.raises(OSError, match="power cut"):
        program.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["program.json"]


def test_the_temp_file_is_flushed_and_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    TwoStep().save(tmp_path / "p.json")
    assert events[:2] == ["fsync", "replace"]


def test_unserializable_state_names_where_and_writes_nothing(tmp_path):
    program = TwoStep()
    program.count.value = object()
    with pytest.raises(StateError, match=r"state\['parameters'\]\['count'\]\['value'\] \(a value of type object\) "
                                         r"is not JSON-safe"):
        program.save(tmp_path / "bad.json")
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_missing_directory_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        TwoStep().save(tmp_path / "nope" / "p.json")


# --- no pickle ---------------------------------------------------------------------------
def test_whole_program_saving_is_refused_with_the_way_to_rebuild(tmp_path):
    with pytest.raises(NotImplementedError, match=r"state only.*pickle.*program.load\(path\)"):
        TwoStep().save(tmp_path / "dir", save_program=True)
    with pytest.raises(StateError, match="never pickle; use a .json path"):
        TwoStep().save(tmp_path / "program.pkl")
    with pytest.raises(NotImplementedError, match="never unpickles"):
        TwoStep().load(tmp_path / "x.json", allow_pickle=True)
    assert list(tmp_path.iterdir()) == []


# --- bad files leave the program untouched -------------------------------------------------
def test_truncated_json_reports_the_position(saved):
    path, _ = saved
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    program, before = untouched_program()
    with pytest.raises(StateError, match=r"not valid JSON \(line \d+, column \d+, character \d+.*truncated"):
        program.load(path)
    assert learned(program) == before


def test_not_utf8_is_reported(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(StateError, match="not UTF-8"):
        read_state(tmp_path / "bin.json")


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format="something.else"), "format is 'something.else', expected 'plait.program'"),
    (lambda d: d.pop("format"), "no 'format' key. It looks like a file saved by DSPy"),
    (lambda d: d.update(version=2), r"newer plait \(file format version 2; this plait reads up to version 1\)"),
    (lambda d: d.update(version="1"), "'version' must be a positive integer"),
    (lambda d: d.update(version=True), "'version' must be a positive integer"),
    (lambda d: d.update(parameters=[]), "'parameters' must be an object.*got a JSON array"),
    (lambda d: d["parameters"].update(first="text"), "state of parameter 'first' must be an object, got a JSON string"),
    (lambda d: d.update(program=3), "'program' must be a string"),
    (lambda d: d.update(metadata=None), "'metadata' must be an object, got a JSON null"),
])
def test_wrong_envelopes_are_refused(saved, change, message):
    path, _ = saved
    rewrite(path, change)
    program, before = untouched_program()
    with pytest.raises(StateError, match=message):
        program.load(path)
    assert learned(program) == before


def test_a_json_array_is_not_a_program_file(tmp_path):
    (tmp_path / "a.json").write_text("[1, 2]")
    with pytest.raises(StateError, match="holds a JSON array, not an object"):
        read_state(tmp_path / "a.json")


def test_missing_parameter_is_named(saved):
    path, _ = saved
    rewrite(path, lambda d: d["parameters"].pop("inner.predict"))
    program, before = untouched_program()
    with pytest.raises(StateError, match=r"parameter 'inner.predict' of this program is missing.*different "
                                         r"program structure \(the file is from 'TwoStep'"):
        program.load(path)
    assert learned(program) == before


def test_extra_parameter_is_named(saved):
    path, _ = saved
    rewrite(path, lambda d: d["parameters"].update({"steps[2]": {"value": 1}}))
    program, before = untouched_program()
    with pytest.raises(StateError, match=r"saved state has a parameter 'steps\[2\]'.*different program structure"):
        program.load(path)
    assert learned(program) == before


def test_a_different_program_structure_is_refused(saved):
    path, _ = saved

    class Smaller(Module):
        def __init__(self):
            self.first = FakePredict("question -> draft")

    program = Smaller()
    with pytest.raises(StateError, match=r"has a parameter 'inner.predict' that this program does not have; .*"
                                         r"\(the file is from 'TwoStep'; this program is '.*Smaller'\)"):
        program.load(path)
    assert program.first.instructions == ""


def test_one_invalid_parameter_state_leaves_every_parameter_untouched(saved):
    path, _ = saved
    rewrite(path, lambda d: d["parameters"]["by_name['nested']['deep']"].update(demos="not a list"))
    program, before = untouched_program()
    with pytest.raises(StateError, match=r"parameter \"by_name\['nested'\]\['deep'\]\": 'demos' must be a list"):
        program.load(path)
    assert learned(program) == before


def test_validate_state_errors_of_other_types_become_state_errors(saved):
    path, _ = saved
    program, before = untouched_program()

    def picky(state):
        raise KeyError("value")

    program.count.validate_state = picky
    with pytest.raises(StateError, match="parameter 'count' rejected its saved state: KeyError"):
        program.load(path)
    assert learned(program) == before


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        TwoStep().load(tmp_path / "absent.json")


# --- the persistence functions on their own -------------------------------------------------
def test_save_state_and_read_state_round_trip(tmp_path):
    document = persistence.make_document("Prog", {"a": {"x": [1, 2.5, None, True, "s"]}}, {"note": "n"})
    save_state(tmp_path / "d.json", document)
    back = read_state(str(tmp_path / "d.json"))
    assert back == document
    assert back["metadata"]["note"] == "n" and "python" in back["metadata"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(states=st.dictionaries(st.text(min_size=1), st.dictionaries(st.text(), json_values), max_size=4))
def test_any_json_safe_state_survives_a_round_trip(tmp_path, states):
    path = tmp_path / "h.json"
    save_state(path, persistence.make_document("P", states))
    assert read_state(path)["parameters"] == states


def test_counter_round_trip_through_a_program(tmp_path):
    program = Module()
    program.count = Counter(41)
    program.save(tmp_path / "c.json")
    fresh = Module()
    fresh.count = Counter()
    fresh.load(tmp_path / "c.json")
    assert fresh.count.value == 41
