"""Predict and ChainOfThought on the real SmolLM2-135M parse every answer, honestly.

Five fixed questions (each with a one-sentence context), greedy decoding, max_tokens=48, on both
small-model paths: in process (``llamacpp/smollm2-135m``: the TemplateAdapter's text prompt) and
through llama.cpp's OpenAI-compatible server (``openai/...`` with ``small_model=True``: a plain
chat turn, no prefill). Every answer must parse and be usable: not empty, not a copied
``${...}`` placeholder, not an echo of a label or of retry feedback. The 135M model's facts
are not checked, except the one answer that is robustly right at temperature 0.
"""

from __future__ import annotations

import re

import pytest

import plait
from plait.errors import MissingExtraError

pytestmark = pytest.mark.integration

ITEMS = [
    ("What is the capital of France?", "France is a country in Europe. Its capital is Paris."),
    ("What is 3 plus 4?", "Three plus four equals seven."),
    ("What color is the sky?", "On a clear day the sky is blue."),
    ("Name a fruit that is yellow.", "Bananas are yellow when they are ripe."),
    ("Who wrote Romeo and Juliet?", "Romeo and Juliet is a play written by William Shakespeare."),
]
PROGRAMS = {
    "predict": lambda: plait.Predict("question -> answer"),
    "cot": lambda: plait.ChainOfThought("question -> answer"),
    "cot_context": lambda: plait.ChainOfThought("context, question -> answer"),
}
JUNK = re.compile(r"^\s*$|\$\{|missing output field|follow the following format|^\s*(answer|reasoning|question):?\s*$",
                  re.I)


@pytest.fixture(scope="module")
def in_process_lm() -> plait.LM:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'plait[local]'")
    try:
        return plait.LM("llamacpp/smollm2-135m", n_threads=1, temperature=0, max_tokens=48, cache=False)
    except MissingExtraError as exc:
        pytest.skip(f"SmolLM2 is not installed ({exc})")


@pytest.fixture(params=["in_process", "server"])
def small_lm(request: pytest.FixtureRequest) -> plait.LM:
    if request.param == "in_process":
        return request.getfixturevalue("in_process_lm")
    server = request.getfixturevalue("llamacpp_server")
    return plait.LM(f"openai/{server.model}", api_base=server.base_url, api_key="sk-local", small_model=True,
                    temperature=0, max_tokens=48, cache=False)


def usable(value: object) -> bool:
    return isinstance(value, str) and not JUNK.search(value)


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_answer_parses_and_is_usable(small_lm: plait.LM, program: str) -> None:
    module = PROGRAMS[program]()
    with plait.context(lm=small_lm):
        predictions = [module(question=question, **({"context": context} if "context" in program else {}))
                       for question, context in ITEMS]
    answers = [prediction.answer for prediction in predictions]
    assert all(usable(answer) for answer in answers), answers
    if program != "predict":
        reasoning = [prediction.reasoning for prediction in predictions]
        assert all(usable(text) for text in reasoning), reasoning
    else:
        assert "paris" in answers[0].lower(), answers[0]   # the one fact SmolLM2 gets right greedily
