"""ReAct end to end on a real local model: SmolLM2-135M-Instruct in process, a calculator tool and
a retriever tool over a few passages.

A 135M model does not reliably pick the right tool, fill in its arguments or get the arithmetic
right, so its answers are NOT asserted: only that the episode runs to completion through the real
adapter, tool and extraction path and returns a Prediction with the output field and a well-formed
trajectory. The JSON adapter is used for that, because llama.cpp constrains its output to the
schema, so every step parses; through the default template adapter the model often writes nothing
parsable, so that test accepts an AdapterParseError (and nothing else). Greedy decoding, short
outputs and one or two steps keep each episode to seconds on one core.
"""

from __future__ import annotations

import ast
import operator
import re

import pytest

import plait
from plait.adapters import JSONAdapter
from plait.errors import AdapterParseError, MissingExtraError
from plait.predict.react import ReAct
from plait.predict.tool import Tool

pytestmark = pytest.mark.integration

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'plait[local]'")
from plait_llamacpp.models import resolve_model_path  # noqa: E402

try:
    resolve_model_path("smollm2-135m")
except MissingExtraError as exc:
    pytest.skip(f"SmolLM2 is not installed ({exc})", allow_module_level=True)

PASSAGES = ["Paris is the capital of France.", "The Eiffel Tower is 330 metres tall.",
            "Mount Everest is 8849 metres high.", "The Seine flows through Paris."]
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
STEP_KEY = re.compile(r"^(thought|tool_name|tool_args|observation)_\d+$")


def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression with + - * / and parentheses, e.g. "330 * 2"."""
    def evaluate(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.left), evaluate(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -evaluate(node.operand)
        raise ValueError(f"not arithmetic: {ast.dump(node)}")
    return evaluate(ast.parse(expression, mode="eval").body)


@pytest.fixture(scope="module")
def smollm() -> plait.LM:
    # repeat_penalty: without it the model loops ("The answer is: The answer is: ...") until
    # max_tokens cuts its JSON short
    return plait.LM("llamacpp/smollm2-135m", temperature=0, max_tokens=96, repeat_penalty=1.3, n_threads=1)


@pytest.fixture(scope="module")
def search() -> Tool:
    retriever = plait.retriever("memory", embedder=plait.embedder("hashing"))
    retriever.add(PASSAGES)

    def search_passages(query: str) -> list[str]:
        """Find passages about a topic."""
        return [passage.text for passage in retriever(query, k=2)]

    return Tool(search_passages)


def check(result: plait.Prediction, max_iters: int) -> None:
    assert isinstance(result, plait.Prediction)
    assert isinstance(result.answer, str)
    assert isinstance(result.trajectory, dict)
    assert all(STEP_KEY.match(key) for key in result.trajectory)
    assert len(result.trajectory) <= 4 * max_iters and len(result.trajectory) % 4 == 0


def test_react_runs_to_completion_on_a_135m_model(smollm: plait.LM, search: Tool) -> None:
    assert calculator("330 * 2") == 660   # the tool itself is right, whatever the model does
    react = ReAct("question -> answer", tools=[calculator, search], max_iters=2)
    with plait.context(lm=smollm, adapter=JSONAdapter()):
        result = react(question="How tall is the Eiffel Tower, doubled?")
    check(result, 2)


async def test_react_async_runs_to_completion_on_a_135m_model(smollm: plait.LM, search: Tool) -> None:
    react = ReAct("question -> answer", tools=[calculator, search], max_iters=1)
    with plait.context(lm=smollm, adapter=JSONAdapter()):
        result = await react.acall(question="What is the capital of France?")
    check(result, 1)


def test_react_through_the_template_adapter_fails_only_by_parsing(smollm: plait.LM, search: Tool) -> None:
    react = ReAct("question -> answer", tools=[calculator, search], max_iters=1)
    with plait.context(lm=smollm):
        try:
            result = react(question="What is the capital of France?")
        except AdapterParseError as error:   # the model wrote no usable answer: allowed, see above
            assert error.adapter == "template"
        else:
            check(result, 1)
