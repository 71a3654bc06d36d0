"""ProgramOfThought with DummyLM and the real sandbox: success, repair, exhaustion, DSPy shapes."""

from __future__ import annotations

import os

import pytest

import plait
from plait.errors import SignatureError
from plait.hookspecs import hookimpl
from plait.plugins import plugin
from plait.predict.program_of_thought import ProgramOfThought, ProgramOfThoughtError, extract_code
from plait.sandbox import Sandbox
from plait.testing import DummyLM

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox relies on POSIX resource limits")


def pot(signature: str = "question -> answer", max_iters: int = 3) -> ProgramOfThought:
    return ProgramOfThought(signature, max_iters=max_iters, sandbox=Sandbox(timeout=2, memory_mb=128))


def user_message(lm: DummyLM, call: int) -> str:
    return lm.history[call]["messages"][-1]["content"]


class Events:
    def __init__(self):
        self.seen = []

    @hookimpl
    def plait_event(self, event):
        self.seen.append(event)


def test_success_on_the_first_try():
    lm = DummyLM([{"reasoning": "multiply", "generated_code": "```python\nresult = 17 * 23\n```"},
                  {"reasoning": "the code printed it", "answer": "391"}])
    prediction = pot()(question="What is 17 * 23?", lm=lm)
    assert prediction.answer == "391" and prediction.reasoning == "the code printed it"
    assert lm.calls == 2
    answer_prompt = user_message(lm, 1)
    assert "result = 17 * 23\nresult" in answer_prompt          # the trailing assignment is exposed
    assert "[[ ## code_output ## ]]\n391" in answer_prompt


def test_an_error_goes_back_to_the_regenerate_step_and_the_repair_is_used():
    lm = DummyLM([{"reasoning": "r", "generated_code": "values = [3, 4]\nsum(values) / 0"},
                  {"reasoning": "fix the division", "generated_code": "values = [3, 4]\nsum(values) / len(values)"},
                  {"reasoning": "r", "answer": "3.5"}])
    events = Events()
    with plugin(events):
        prediction = pot()(question="Mean of 3 and 4?", lm=lm)
    assert prediction.answer == "3.5" and lm.calls == 3
    repair_prompt = user_message(lm, 1)
    assert "[[ ## previous_code ## ]]\nvalues = [3, 4]\nsum(values) / 0" in repair_prompt
    assert "ZeroDivisionError: division by zero" in repair_prompt
    assert "[[ ## code_output ## ]]\n3.5" in user_message(lm, 2)
    failures = [e for e in events.seen if e.kind == "program_of_thought.error"]
    assert [e.data["attempt"] for e in failures] == [1]


def test_max_iters_exhausted_raises_a_clear_error_without_an_answer_step():
    lm = DummyLM([{"reasoning": "r", "generated_code": "1 / 0"},
                  {"reasoning": "r", "generated_code": "undefined_name + 1"}])
    with pytest.raises(ProgramOfThoughtError, match="Max hops reached") as caught:
        pot(max_iters=2)(question="q", lm=lm)
    assert isinstance(caught.value, RuntimeError)                 # DSPy raises a RuntimeError
    assert "NameError" in caught.value.error and caught.value.code == "undefined_name + 1"
    assert "max_iters=2" in str(caught.value)
    assert lm.calls == 2


def test_sandbox_violations_are_errors_the_lm_can_repair():
    lm = DummyLM([{"reasoning": "r", "generated_code": "import os\nos.system('ls /')"},
                  {"reasoning": "r", "generated_code": "print(len('abc'))"},
                  {"reasoning": "r", "answer": "3"}])
    assert pot()(question="q", lm=lm).answer == "3"
    assert "starting processes is not allowed" in user_message(lm, 1)


def test_submit_and_printed_output_reach_the_answer_step():
    lm = DummyLM([{"reasoning": "r", "generated_code": "SUBMIT({'answer': 5})"},
                  {"reasoning": "r", "answer": "5"}])
    pot()(question="q", lm=lm)
    assert '[[ ## code_output ## ]]\n{"answer": 5}' in user_message(lm, 1)
    printed = DummyLM([{"reasoning": "r", "generated_code": "for w in ['a', 'b']:\n    print(w.upper())"},
                       {"reasoning": "r", "answer": "A B"}])
    pot()(question="q", lm=printed)
    assert "[[ ## code_output ## ]]\nA\nB" in user_message(printed, 1)


def test_empty_code_and_code_without_output_are_sent_for_repair():
    lm = DummyLM([{"reasoning": "r", "generated_code": "```python\n```"},
                  {"reasoning": "r", "generated_code": "x = [1, 2]\nx.append(3)"},
                  {"reasoning": "r", "generated_code": "len([1, 2, 3])"},
                  {"reasoning": "r", "answer": "3"}])
    assert pot(max_iters=3)(question="q", lm=lm).answer == "3"
    assert "Empty code" in user_message(lm, 1)
    assert "produced no output" in user_message(lm, 2)


async def test_aforward_runs_the_same_episode():
    lm = DummyLM([{"reasoning": "r", "generated_code": "2 ** 10 +"},
                  {"reasoning": "r", "generated_code": "2 ** 10"},
                  {"reasoning": "r", "answer": "1024"}])
    prediction = await pot().acall(question="q", lm=lm)
    assert prediction.answer == "1024"
    assert "SyntaxError" in user_message(lm, 1)


def test_steps_use_dspy_field_names():
    program = pot("context, question -> answer, confidence: float")
    generate, regenerate, answer = (program.code_generate.predict.signature,
                                    program.code_regenerate.predict.signature,
                                    program.generate_output.predict.signature)
    assert list(generate.input_fields) == ["context", "question"]
    assert list(generate.output_fields) == ["reasoning", "generated_code"]
    assert list(regenerate.input_fields) == ["context", "question", "previous_code", "error"]
    assert list(regenerate.output_fields) == ["reasoning", "generated_code"]
    assert list(answer.input_fields) == ["context", "question", "final_generated_code", "code_output"]
    assert list(answer.output_fields) == ["reasoning", "answer", "confidence"]
    assert "SUBMIT" in generate.instructions and "`answer`, `confidence`" in generate.instructions
    assert [name for name, _ in program.named_predictors()] == [
        "code_generate.predict", "code_regenerate.predict", "generate_output.predict"]


def test_typed_outputs_and_save_load(tmp_path):
    lm = DummyLM([{"reasoning": "r", "generated_code": "6 * 7"}, {"reasoning": "r", "answer": 42}])
    program = pot("question -> answer: int")
    assert program(question="q", lm=lm).answer == 42
    program.code_generate.predict.demos = [plait.Example(question="1+1?", reasoning="add", generated_code="1 + 1")]
    program.save(tmp_path / "pot.json")
    fresh = pot("question -> answer: int")
    fresh.load(tmp_path / "pot.json")
    assert fresh.code_generate.predict.demos[0].generated_code == "1 + 1"


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="max_iters"):
        ProgramOfThought("question -> answer", max_iters=0)
    with pytest.raises(SignatureError, match="error"):
        ProgramOfThought("question, error -> answer")
    with pytest.raises(TypeError, match=r"missing input\(s\) \['question'\]"):
        pot()(lm=DummyLM([]))
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['questoin'\]"):
        pot()(questoin="q", lm=DummyLM([]))


@pytest.mark.parametrize("text, code", [
    ("```python\nx = 1\nx + 1\n```", "x = 1\nx + 1"),
    ("Here you go:\n```py\n    total = 2 + 2\n```\nThat's it.", "total = 2 + 2\ntotal"),
    ("print('no fence')", "print('no fence')"),
    ("```python\nanswer: int = 3\n", "answer: int = 3\nanswer"),        # unclosed fence
    ("a, b = 1, 2", "a, b = 1, 2"),                                   # only single names get exposed
    ("x = = 1", "x = = 1"),                                           # left for the sandbox to report
])
def test_extract_code(text, code):
    assert extract_code(text) == (code, None)


def test_extract_code_reports_empty_code():
    code, error = extract_code("```python\n\n```")
    assert error is not None and "Empty code" in error
