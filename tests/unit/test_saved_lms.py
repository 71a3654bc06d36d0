"""program.load gives each predictor back the LM it was saved with (DSPy's behaviour), all or nothing."""

import json

import pytest

import plait
from plait.errors import StateError
from plait.testing import DummyLM


class TwoPredictors(plait.Module):
    def __init__(self) -> None:
        self.first = plait.Predict("question -> answer")
        self.second = plait.Predict("answer -> check")


def saved_program(tmp_path, lm, **settings):
    program = TwoPredictors()
    program.set_lm(lm)
    program.first.demos = [plait.Example(question="q", answer="a")]
    path = tmp_path / "program.json"
    program.save(path)
    return path


def test_a_registry_built_lm_comes_back_with_its_settings(tmp_path):
    path = saved_program(tmp_path, plait.LM("dummy/saved", temperature=0.3, max_tokens=7, cache=False,
                                            num_retries=1))
    fresh = TwoPredictors()
    fresh.load(path)
    lm = fresh.first.lm
    assert isinstance(lm, plait.LM) and lm.model == "dummy/saved"
    assert lm.kwargs == {"temperature": 0.3, "max_tokens": 7} and lm.cache is False and lm.num_retries == 1
    assert fresh.second.lm is lm, "identical saved settings share one LM (one model load)"
    assert fresh.first.demos[0].answer == "a"


def test_the_same_lm_in_use_is_kept_not_rebuilt(tmp_path):
    lm = plait.LM("dummy/kept", answers=["x"], temperature=0.0)
    path = saved_program(tmp_path, lm)
    fresh = TwoPredictors()
    fresh.first.lm = lm
    fresh.load(path)
    assert fresh.first.lm is lm and fresh.second.lm is lm
    other = TwoPredictors()
    with plait.context(lm=lm):
        other.load(path)
    assert other.first.lm is lm, "the configured LM with the saved settings is reused"


@pytest.mark.parametrize("saved_with", ["an injected backend", "no LM"])
def test_the_current_lm_stays_when_the_file_has_none_to_rebuild(tmp_path, saved_with):
    if saved_with == "no LM":
        path = tmp_path / "program.json"
        TwoPredictors().save(path)
    else:
        path = saved_program(tmp_path, DummyLM(["x"]))
        assert json.loads(path.read_text())["parameters"]["first"]["lm"]["injected_backend"] == "DummyBackend"
    fresh = TwoPredictors()
    mine = DummyLM(["mine"])
    fresh.set_lm(mine)
    fresh.load(path)
    assert fresh.first.lm is mine and fresh.second.lm is mine


def test_restore_lm_false_keeps_the_current_lms(tmp_path):
    path = saved_program(tmp_path, plait.LM("dummy/saved"))
    fresh = TwoPredictors()
    fresh.load(path, restore_lm=False)
    assert fresh.first.lm is None and fresh.first.demos
    fresh.load_state(json.loads(path.read_text())["parameters"], restore_lm=False)
    assert fresh.first.lm is None
    fresh.load_state(json.loads(path.read_text())["parameters"])
    assert fresh.first.lm.model == "dummy/saved"


def test_an_lm_that_cannot_be_built_fails_the_load_and_changes_nothing(tmp_path):
    path = saved_program(tmp_path, plait.LM("dummy/saved"))
    document = json.loads(path.read_text())
    document["parameters"]["second"]["lm"]["model"] = "nosuchprovider/model"
    path.write_text(json.dumps(document))
    fresh = TwoPredictors()
    with pytest.raises(StateError, match=r"'second' was saved with LM 'nosuchprovider/model'.*restore_lm=False"):
        fresh.load(path)
    assert fresh.first.demos == [] and fresh.first.lm is None, "nothing changes when a saved LM cannot be built"
    fresh.load(path, restore_lm=False)
    assert fresh.first.demos and fresh.second.lm is None


def test_a_saved_lm_without_a_model_name_is_a_state_error(tmp_path):
    path = saved_program(tmp_path, plait.LM("dummy/saved"))
    document = json.loads(path.read_text())
    del document["parameters"]["first"]["lm"]["model"]
    path.write_text(json.dumps(document))
    with pytest.raises(StateError, match="has no 'model' name"):
        TwoPredictors().load(path)


def test_an_api_lm_comes_back_with_its_endpoint_and_credentials_from_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("openai", reason="the openai extra is not installed: pip install 'plait[openai]'")
    path = saved_program(tmp_path, plait.LM("openai/served", api_key="sk-secret-123",
                                            api_base="http://127.0.0.1:9/v1", temperature=0.0))
    assert "sk-secret-123" not in path.read_text()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    fresh = TwoPredictors()
    fresh.load(path)
    lm = fresh.first.lm
    assert lm.model == "openai/served" and lm.dump_state()["api_base"] == "http://127.0.0.1:9/v1"
    assert lm.backend._client.api_key == "sk-from-env"


def test_predict_load_state_on_its_own_restores_the_lm_as_dspy_does():
    saved = plait.Predict("question -> answer")
    saved.lm = plait.LM("dummy/alone", temperature=0.2)
    saved.demos = [plait.Example(question="q", answer="a")]
    state = saved.dump_state()
    fresh = plait.Predict("question -> answer")
    fresh.load_state(state)
    assert fresh.lm.model == "dummy/alone" and fresh.lm.kwargs == {"temperature": 0.2} and fresh.demos
    broken = {**state, "lm": {**state["lm"], "model": "nosuchprovider/x"}}
    other = plait.Predict("question -> answer")
    with pytest.raises(StateError, match="nosuchprovider/x"):
        other.load_state(broken)
    assert other.demos == [] and other.lm is None, "nothing changes when the LM cannot be built"


def test_a_failed_program_load_keeps_the_lm_objects_it_had(tmp_path):
    path = saved_program(tmp_path, plait.LM("dummy/saved"))
    program = TwoPredictors()
    mine = DummyLM(["mine"])
    program.set_lm(mine)

    def fail(state):
        raise StateError("second cannot load")

    program.second.load_state = fail   # the first predictor loads, the second fails: a rollback
    with pytest.raises(StateError, match="second cannot load"):
        program.load(path)
    assert program.first.lm is mine and program.second.lm is mine and program.first.demos == []
