"""ReAct with native function calling, against the openai plugin behind a fake HTTP server."""

from __future__ import annotations

import json
from typing import Any

import pytest

import plait
from plait.lm.types import LMResponse
from plait.predict.react import ReAct

from openai_fakes import FakeServer, chat_body, make_lm, ok  # noqa: E402  (skips without the SDK)


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def called(name: str, arguments: str, content: str | None = None, call_id: str = "call_abc") -> dict[str, Any]:
    body = chat_body("")
    choice = body["choices"][0]
    choice["message"] = {"role": "assistant", "content": content,
                         "tool_calls": [{"id": call_id, "type": "function",
                                         "function": {"name": name, "arguments": arguments}}]}
    choice["finish_reason"] = "tool_calls"
    return body


EXTRACTION = "[[ ## reasoning ## ]]\nAdded.\n\n[[ ## c ## ]]\n3\n\n[[ ## completed ## ]]"


def script() -> FakeServer:
    return FakeServer(ok(called("add", '{"a": 1, "b": "2"}', "I should add.")),
                      ok(called("finish", "{}", "Done.")), ok(chat_body(EXTRACTION)))


def check_episode(server: FakeServer, outputs: plait.Prediction) -> None:
    assert outputs.c == 3 and outputs.reasoning == "Added."
    assert outputs.trajectory == {
        "thought_0": "I should add.", "tool_name_0": "add", "tool_args_0": {"a": 1, "b": "2"},
        "observation_0": 3,
        "thought_1": "Done.", "tool_name_1": "finish", "tool_args_1": {}, "observation_1": "Completed.",
    }
    first, second, extraction = server.bodies
    assert [tool["function"]["name"] for tool in first["tools"]] == ["add", "finish"]
    assert first["tools"][0]["function"]["parameters"]["properties"] == {"a": {"type": "integer"},
                                                                         "b": {"type": "integer"}}
    assert first["tool_choice"] == "auto" and first["temperature"] == 0
    # the second step replays the first as an assistant tool call and the tool's result
    assistant, result = second["messages"][-2:]
    assert assistant["role"] == "assistant" and assistant["content"] == "I should add."
    assert assistant["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": "2"}'}
    assert result == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "3"}
    # the extraction is an ordinary text step with the trajectory
    assert "tools" not in extraction
    assert "[[ ## observation_0 ## ]]\n3" in extraction["messages"][-1]["content"]


def test_native_steps_send_tool_schemas_and_read_tool_calls():
    server = script()
    lm = make_lm(server, function_calling=True, temperature=0)
    assert lm.capabilities.tools
    react = ReAct("a, b -> c: int", tools=[add], use_native_tools="auto")
    with plait.context(lm=lm):
        outputs = react(a=1, b=2)
    check_episode(server, outputs)


async def test_native_steps_async():
    server = script()
    lm = make_lm(server, function_calling=True, temperature=0)
    react = ReAct("a, b -> c: int", tools=[add], use_native_tools=True)
    with plait.context(lm=lm):
        outputs = await react.acall(a=1, b=2)
    check_episode(server, outputs)


def test_a_plain_text_answer_finishes_and_bad_json_arguments_are_an_observation():
    server = FakeServer(ok(called("add", '{"a": 1,', None)), ok(chat_body("I am done.")),
                        ok(chat_body(EXTRACTION)))
    lm = make_lm(server, function_calling=True)
    with plait.context(lm=lm):
        outputs = ReAct("a, b -> c: int", tools=[add], use_native_tools=True)(a=1, b=2)
    traj = outputs.trajectory
    assert traj["thought_0"] == "" and traj["tool_args_0"] == '{"a": 1,'
    assert traj["observation_0"].startswith("Execution error in add: the arguments must be a JSON object")
    assert (traj["thought_1"], traj["tool_name_1"], traj["observation_1"]) == ("I am done.", "finish", "Completed.")
    # a step that failed still replays as a call with empty arguments
    assert json.loads(server.bodies[1]["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {}


def test_native_steps_are_traced_as_the_text_predictor():
    server = script()
    lm = make_lm(server, function_calling=True)
    react = ReAct("a, b -> c: int", tools=[add], use_native_tools=True)
    trace: list[Any] = []
    with plait.context(lm=lm, trace=trace):
        react(a=1, b=2)
    steps = [(inputs, pred) for predictor, inputs, pred in trace if predictor is react.react]
    assert [pred.next_tool_name for _, pred in steps] == ["add", "finish"]
    assert steps[1][0]["trajectory"].startswith("[[ ## thought_0 ## ]]\nI should add.")


def test_openai_backend_returns_tool_calls_and_the_cache_keeps_them():
    server = FakeServer(ok(called("add", '{"a": 1, "b": 2}', call_id="call_1")))
    lm = make_lm(server, function_calling=True)
    response = lm.generate(messages=[{"role": "user", "content": "add"}], tools=[{"type": "function",
                           "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}])
    assert response.tool_calls == [[{"id": "call_1", "name": "add", "arguments": '{"a": 1, "b": 2}'}]]
    assert response.outputs == [""] and response.finish_reasons == ["tool_calls"]
    again = LMResponse.from_dict(json.loads(json.dumps(response.to_dict())))
    assert again.tool_calls == response.tool_calls and response.copy().tool_calls == response.tool_calls
    plain = make_lm(FakeServer(ok(chat_body("hi"))), function_calling=True).generate(
        messages=[{"role": "user", "content": "hi"}])
    assert plain.tool_calls is None and "tool_calls" not in plain.to_dict()


@pytest.mark.parametrize(("api_base", "option", "expected"), [
    ("http://127.0.0.1:9/v1", None, False), ("http://127.0.0.1:9/v1", True, True),
    ("https://api.openai.com/v1", None, True), ("https://api.openai.com/v1", False, False)])
def test_function_calling_capability(api_base: str, option: bool | None, expected: bool):
    server = FakeServer(ok(chat_body("x")))
    extra = {} if option is None else {"function_calling": option}
    assert make_lm(server, api_base=api_base, **extra).capabilities.tools is expected
    assert make_lm(server, api_base=api_base, model_type="text", **extra).capabilities.tools is False
