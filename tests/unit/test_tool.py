"""plait.Tool: schemas read from a function, argument checking and coercion, sync/async calls."""

from __future__ import annotations

import asyncio
import copy
import functools
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from plait.predict.tool import Tool, ToolArgumentError, coerce, error_for_lm


class Inner(BaseModel):
    x: int


class Event(BaseModel):
    name: str
    inner: Inner


def search(query: str, k: int = 3, *, mode: Literal["fast", "exact"] = "fast") -> list[str]:
    """Search the notes.

    Args:
        query: what to look for,
            in plain words.
        k (int): how many results.

    Returns:
        the matching notes
    """
    return [f"{query}:{k}:{mode}"]


def test_name_description_and_argument_schemas_come_from_the_function():
    tool = Tool(search)
    assert tool.name == "search"
    assert tool.desc.startswith("Search the notes.")
    assert tool.args == {
        "query": {"type": "string", "description": "what to look for, in plain words."},
        "k": {"type": "integer", "default": 3, "description": "how many results."},
        "mode": {"enum": ["fast", "exact"], "type": "string", "default": "fast"},
    }
    assert tool.arg_types == {"query": str, "k": int, "mode": Literal["fast", "exact"]}
    assert tool.arg_desc == {"query": "what to look for, in plain words.", "k": "how many results."}
    assert tool.has_kwargs is False


def test_untyped_arguments_have_an_open_schema_like_dspy():
    def add(a, b):
        return a + b

    tool = Tool(add)
    assert tool.args == {"a": {}, "b": {}}
    assert tool(a=1, b=2) == 3


def test_explicit_name_desc_args_win_over_the_function():
    tool = Tool(search, name="find", desc="Find things.", args={"query": {"type": "string"}},
                arg_desc={"query": "words"})
    assert (tool.name, tool.desc, tool.args) == ("find", "Find things.", {"query": {"type": "string"}})
    assert tool.arg_desc == {"query": "words", "k": "how many results."}   # the docstring's for the rest


def test_nested_pydantic_models_are_inlined_without_refs():
    def invite(event: Event) -> str:
        return event.name

    schema = Tool(invite).args["event"]
    assert "$defs" not in str(schema) and "$ref" not in str(schema)
    assert schema["properties"]["inner"]["properties"]["x"] == {"title": "X", "type": "integer"}


def test_to_openai_is_the_function_calling_schema():
    spec = Tool(search).to_openai()
    assert spec["type"] == "function"
    function = spec["function"]
    assert function["name"] == "search" and function["description"].startswith("Search the notes.")
    assert function["parameters"]["type"] == "object"
    assert function["parameters"]["required"] == ["query"]   # k and mode have defaults
    assert set(function["parameters"]["properties"]) == {"query", "k", "mode"}
    assert Tool(search).format_as_litellm_function_call() == spec   # DSPy's name


def test_format_is_one_prompt_line_with_json_arguments():
    text = Tool(search).format()
    assert text.startswith("search, whose description is <desc>Search the notes.")
    assert "\n" not in text
    assert '"query": {"type": "string"' in text


def test_arguments_are_coerced_to_the_declared_types():
    def invite(event: Event, count: int, ratio: float, flag: bool, tags: list[str]) -> tuple:
        return event, count, ratio, flag, tags

    event, count, ratio, flag, tags = Tool(invite)(
        event={"name": "fair", "inner": {"x": "2"}}, count="7", ratio=1, flag="yes", tags='["a", "b"]')
    assert event == Event(name="fair", inner=Inner(x=2))
    assert (count, ratio, flag, tags) == (7, 1.0, True, ["a", "b"])
    assert isinstance(ratio, float)


def test_a_bad_argument_is_named_in_the_error():
    tool = Tool(search)
    with pytest.raises(ToolArgumentError, match=r"argument 'k' of tool 'search' expects int.*'many'"):
        tool(query="x", k="many")
    with pytest.raises(ToolArgumentError, match=r"argument 'mode'.*'slow'"):
        tool(query="x", mode="slow")


def test_missing_and_unknown_arguments_are_named():
    tool = Tool(search)
    with pytest.raises(ToolArgumentError, match="needs argument\\(s\\) query; its arguments are query, k, mode"):
        tool(k=1)
    with pytest.raises(ToolArgumentError, match="has no argument 'limit'"):
        tool(query="x", limit=1)


def test_var_kwargs_accept_extra_arguments():
    def anything(**options: Any) -> dict:
        return options

    tool = Tool(anything)
    assert tool.has_kwargs and tool.args == {}
    assert tool(a=1, b="x") == {"a": 1, "b": "x"}


def test_a_lambda_needs_a_name_and_names_must_be_callable_by_an_api():
    with pytest.raises(ValueError, match="pass Tool\\(func, name="):
        Tool(lambda: 1)
    assert Tool(lambda: 1, name="one")() == 1
    with pytest.raises(ValueError, match="not usable"):
        Tool(search, name="has space")
    with pytest.raises(TypeError, match="wraps a function"):
        Tool("search")  # type: ignore[arg-type]


def test_callable_objects_and_partials():
    class Multiplier:
        """Multiply by a fixed factor."""

        def __init__(self, factor: int):
            self.factor = factor

        def __call__(self, x: int) -> int:
            return x * self.factor

    tool = Tool(Multiplier(3))
    assert (tool.name, tool.desc, tool.args) == ("Multiplier", "Multiply by a fixed factor.", {"x": {"type": "integer"}})
    assert tool(x="4") == 12
    partial = Tool(functools.partial(search, k=1))
    assert partial.name == "search" and partial(query="q") == ["q:1:fast"]


def test_sync_call_runs_an_async_function_to_completion():
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return f"page {url}"

    tool = Tool(fetch)
    assert tool(url="a") == "page a"


async def test_sync_call_of_an_async_tool_inside_a_running_loop_uses_a_worker():
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return f"page {url}"

    assert Tool(fetch)(url="b") == "page b"   # no "event loop is already running" error


async def test_acall_awaits_async_tools_and_runs_sync_tools_in_a_thread():
    import threading

    main = threading.get_ident()

    def where() -> int:
        return threading.get_ident()

    async def fetch(n: int) -> int:
        return n + 1

    assert await Tool(fetch).acall(n="1") == 2
    assert await Tool(where).acall() != main


async def test_many_concurrent_async_tool_calls():
    async def echo(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    tool = Tool(echo)
    assert await asyncio.gather(*(tool.acall(i=i) for i in range(100))) == list(range(100))


def test_error_for_lm_shows_the_tools_frames_not_plaits():
    def broken() -> None:
        raise ValueError("tool blew up")

    try:
        Tool(broken)()
    except ValueError as error:
        text = error_for_lm(error)
    assert text.startswith("\nTraceback (most recent call last):")
    assert text.endswith("ValueError: tool blew up")
    assert "plait/predict/tool.py" not in text and "in broken" in text
    try:
        Tool(search)(k="many")
    except ToolArgumentError as error:
        assert error_for_lm(error).startswith("tool 'search' needs argument")   # no plumbing frames


def test_deepcopy_shares_the_tool():
    tool = Tool(search)
    assert copy.deepcopy(tool) is tool
    assert copy.deepcopy({"t": tool})["t"] is tool


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_coerce_int_round_trips_text_and_numbers(value: int):
    assert coerce(value, int) == value
    assert coerce(str(value), int) == value
    assert coerce(float(value), int) == value


@given(st.booleans())
def test_coerce_never_takes_a_bool_for_a_number(value: bool):
    with pytest.raises(ValueError):
        coerce(value, int)
    with pytest.raises(ValueError):
        coerce(value, float)


def test_coerce_text_arguments_are_lenient_for_numbers_but_not_for_structures():
    assert coerce(42, str) == "42"
    assert coerce(None, str | None) is None
    with pytest.raises(ValueError):
        coerce(["a"], str)
    with pytest.raises(ValueError):
        coerce(1.5, int)
