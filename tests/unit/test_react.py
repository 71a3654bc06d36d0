"""ReAct driven by DummyLM scripts written the DSPy way (step dicts, then the extraction's dict)."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

import pytest
from pydantic import BaseModel

import plait
from plait.backends import Event
from plait.errors import ConfigurationError, LMContextWindowError
from plait.hookspecs import hookimpl
from plait.lm.types import LMRequest
from plait.plugins import plugin
from plait.predict.react import ReAct
from plait.predict.tool import Tool
from plait.retrieve import Passage
from plait.testing import DummyLM


def add(a, b):
    """Add two numbers."""
    return a + b


def step(thought: str, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"next_thought": thought, "next_tool_name": tool, "next_tool_args": args or {}}


class Events:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    @hookimpl
    def plait_event(self, event: Event) -> None:
        if event.source == "ReAct":
            self.seen.append(event)


# --- the DSPy-shaped episode --------------------------------------------------------------------

def test_trajectory_and_outputs_like_dspy():
    react = ReAct("a, b -> c:int", tools=[add])
    lm = DummyLM([step("I need to add two numbers.", "add", {"a": 1, "b": 2}),
                  step("I have the sum, now I can finish.", "finish"),
                  {"reasoning": "I added the numbers successfully", "c": 3}])
    plait.configure(lm=lm)
    outputs = react(a=1, b=2)
    assert outputs.trajectory == {
        "thought_0": "I need to add two numbers.", "tool_name_0": "add", "tool_args_0": {"a": 1, "b": 2},
        "observation_0": 3,
        "thought_1": "I have the sum, now I can finish.", "tool_name_1": "finish", "tool_args_1": {},
        "observation_1": "Completed.",
    }
    assert outputs.c == 3 and outputs.reasoning == "I added the numbers successfully"
    assert list(outputs.keys()) == ["trajectory", "reasoning", "c"]
    # the second step saw the first step's observation in its trajectory
    second_prompt = lm.history[1]["messages"][-1]["content"]
    assert "[[ ## observation_0 ## ]]\n3" in second_prompt


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: dict[str, str]


def test_pydantic_tool_arguments_are_validated_and_the_raw_args_kept():
    def write_invitation_letter(participant_name: str, event_info: CalendarEvent):
        if participant_name not in event_info.participants:
            return None
        return f"It's my honor to invite {participant_name} to event {event_info.name} on {event_info.date}"

    class InvitationSignature(plait.Signature):
        participant_name: str = plait.InputField(desc="The name of the participant to invite")
        event_info: CalendarEvent = plait.InputField(desc="The information about the event")
        invitation_letter: str = plait.OutputField(desc="The invitation letter")

    info = {"name": "Science Fair", "date": "Friday", "participants": {"Alice": "female", "Bob": "male"}}
    lm = DummyLM([step("Write the letter.", "write_invitation_letter", {"participant_name": "Alice", "event_info": info}),
                  step("Done.", "finish"),
                  {"reasoning": "trust me", "invitation_letter": "Dear Alice"}])
    plait.configure(lm=lm)
    outputs = ReAct(InvitationSignature, tools=[write_invitation_letter])(
        participant_name="Alice", event_info=CalendarEvent(**info))
    assert outputs.invitation_letter == "Dear Alice"
    assert outputs.trajectory["tool_args_0"] == {"participant_name": "Alice", "event_info": info}
    assert outputs.trajectory["observation_0"] == "It's my honor to invite Alice to event Science Fair on Friday"


def test_step_and_extract_signatures_have_dspys_shape():
    class QA(plait.Signature):
        """Answer with care."""
        question: str = plait.InputField()
        answer: str = plait.OutputField()

    react = ReAct(QA, tools=[add, Tool(add, name="plus")])
    step_signature = react.react.signature
    assert list(step_signature.input_fields) == ["question", "trajectory"]
    assert list(step_signature.output_fields) == ["next_thought", "next_tool_name", "next_tool_args"]
    assert step_signature.output_fields["next_tool_name"].annotation == Literal["add", "plus", "finish"]
    assert step_signature.output_fields["next_tool_args"].annotation == dict[str, Any]
    instructions = step_signature.instructions
    assert instructions.startswith("Answer with care.")
    assert "(1) add, whose description is <desc>Add two numbers.</desc>" in instructions
    assert "(3) finish" in instructions and "JSON object" in instructions
    extract = react.extract.predict.signature
    assert list(extract.input_fields) == ["question", "trajectory"]
    assert list(extract.output_fields) == ["reasoning", "answer"]
    assert extract.instructions == "Answer with care."
    assert [name for name, _ in react.named_predictors()] == ["react", "extract.predict"]
    assert list(react.tools) == ["add", "plus", "finish"]


def test_tool_errors_are_fed_back_as_observations():
    def foo(a, b):
        raise Exception("tool error")

    react = ReAct("a, b -> c:int", tools=[foo])
    lm = DummyLM([step("Add.", "foo", {"a": 1, "b": 2}), step("Again.", "foo", {"a": 1, "b": 2}),
                  {"reasoning": "gave up", "c": 0}])
    plait.configure(lm=lm)
    traj = react(a=1, b=2, max_iters=2).trajectory
    for i in range(2):
        assert re.search(r"\btool error\b", traj[f"observation_{i}"])
    assert "Execution error in foo" in lm.history[1]["messages"][-1]["content"]   # the next step saw it
    assert len(lm.history) == 3


def test_tool_error_observation_format_matches_dspy():
    def failing_tool():
        raise ValueError("tool blew up")

    lm = DummyLM([step("I will call the tool.", "failing_tool"), {"reasoning": "The tool failed.", "answer": "n/a"}])
    plait.configure(lm=lm)
    obs = ReAct("question -> answer", tools=[failing_tool])(question="?", max_iters=1).trajectory["observation_0"]
    assert obs.startswith("Execution error in failing_tool: \nTraceback (most recent call last):")
    assert obs.endswith("ValueError: tool blew up")
    assert "plait/predict" not in obs   # plait's own frames are left out


def test_bad_tool_arguments_are_an_observation_naming_the_argument():
    def square(x: int) -> int:
        return x * x

    lm = DummyLM([step("Square it.", "square", {"x": "lots"}), step("Fix it.", "square", {"x": "3"}),
                  step("Done.", "finish"), {"reasoning": "r", "answer": "9"}])
    plait.configure(lm=lm)
    traj = ReAct("question -> answer", tools=[square])(question="?").trajectory
    assert traj["observation_0"].startswith("Execution error in square: argument 'x' of tool 'square' expects int")
    assert traj["observation_1"] == 9


def test_max_iters_exhausted_still_extracts():
    def echo(text: str) -> str:
        return f"Echoed: {text}"

    lm = DummyLM([step("Echo once.", "echo", {"text": "a"}), step("Echo twice.", "echo", {"text": "b"}),
                  {"reasoning": "Extracted.", "answer": "extracted answer"}])
    plait.configure(lm=lm)
    react = ReAct("question -> answer", tools=[echo], max_iters=2)
    outputs = react(question="q")
    assert outputs.answer == "extracted answer"
    assert len(lm.history) == 3
    assert outputs.trajectory["observation_1"] == "Echoed: b"


def test_unknown_tool_name_is_fed_back_as_an_error_observation():
    lm = DummyLM([step("Use the web.", "web_search", {"q": "x"}), step("OK, finish.", "finish"),
                  {"reasoning": "r", "answer": "a"}])
    with plait.context(lm=lm, adapter_retries=0):
        outputs = ReAct("question -> answer", tools=[add])(question="?")
    traj = outputs.trajectory
    assert traj["tool_name_0"] == "web_search" and traj["tool_args_0"] == {"q": "x"}
    assert traj["observation_0"] == ("Execution error in web_search: there is no tool named 'web_search'; "
                                     "the tool must be one of: add, finish")
    assert traj["tool_name_1"] == "finish" and outputs.answer == "a"


def test_an_unusable_step_ends_the_episode_and_extraction_still_runs():
    events = Events()
    lm = DummyLM(["I do not follow formats.", {"reasoning": "r", "answer": "fallback"}])
    with plait.context(lm=lm, adapter_retries=0), plugin(events):
        outputs = ReAct("question -> answer", tools=[add])(question="?")
    assert outputs.trajectory == {} and outputs.answer == "fallback"
    assert [(e.kind, e.data["reason"]) for e in events.seen] == [("react.stopped", "unparsable_step")]


def test_replaced_submodules_are_called_like_dspy():
    react = ReAct("input_text -> output_text", tools=[add])
    calls: list[dict[str, Any]] = []

    def fake_react(**kwargs: Any) -> plait.Prediction:
        calls.append(kwargs)
        if len(calls) == 1:
            return plait.Prediction(next_thought="t", next_tool_name="add", next_tool_args={"a": 2, "b": 3})
        return plait.Prediction(next_thought="done", next_tool_name="finish", next_tool_args={})

    react.react = fake_react
    react.extract = lambda **kwargs: plait.Prediction(output_text=kwargs["trajectory"].count("[[ ## "))
    result = react(input_text="x")
    assert result.trajectory["observation_0"] == 5
    assert calls[0]["trajectory"] == "" and "[[ ## observation_0 ## ]]\n5" in calls[1]["trajectory"]
    assert result.output_text == 8


# --- context overflow ----------------------------------------------------------------------------

def test_context_overflow_truncates_the_oldest_step_and_retries():
    def echo(text: str) -> str:
        return f"Echoed: {text}"

    script = [step("Thought 0", "echo", {"text": "0"}), step("Thought 1", "echo", {"text": "1"}),
              step("Final thought", "finish")]
    prompts: list[str] = []

    def answer(request: LMRequest) -> dict[str, Any]:
        inputs = request.context.inputs
        if "next_thought" not in request.context.signature.output_fields:
            return {"reasoning": "r", "output_text": "Final output"}
        prompts.append(inputs["trajectory"])
        if inputs["trajectory"].count("[[ ## thought_") >= 2:   # two steps do not fit
            raise LMContextWindowError("prompt too long")
        return script[len([p for p in prompts if p.count("[[ ## thought_") < 2]) - 1]

    events = Events()
    with plait.context(lm=DummyLM(answer)), plugin(events):
        result = ReAct("input_text -> output_text", tools=[echo])(input_text="test input")
    assert "thought_0" not in result.trajectory
    assert result.trajectory["thought_1"] == "Thought 1" and result.trajectory["tool_name_2"] == "finish"
    assert result.output_text == "Final output"
    assert "[[ ## thought_0 ## ]]" not in prompts[-1] and "[[ ## thought_1 ## ]]" in prompts[-1]
    assert [e.kind for e in events.seen] == ["react.truncated"] and events.seen[0].data["removed"] == 4


def test_overflow_with_nothing_to_truncate_ends_the_loop_then_extracts():
    react = ReAct("input_text -> output_text", tools=[add])

    def always_exceed(**kwargs: Any) -> plait.Prediction:
        raise LMContextWindowError("too long")

    extract_calls: list[dict[str, Any]] = []
    react.react = always_exceed
    react.extract = lambda **kwargs: extract_calls.append(kwargs) or plait.Prediction(output_text="Fallback")
    result = react(input_text="test input")
    assert result.trajectory == {} and result.output_text == "Fallback"
    assert extract_calls == [{"input_text": "test input", "trajectory": ""}]


def test_truncation_gives_up_after_three_attempts():
    react = ReAct("input_text -> output_text", tools=[add])

    def always_exceed(**kwargs: Any) -> None:
        raise LMContextWindowError("too long")

    trajectory = {f"{field}_{i}": "x" for i in range(4) for field in ("thought", "tool_name", "tool_args", "observation")}
    with pytest.raises(LMContextWindowError, match="even after 3 attempts") as caught:
        react._call_with_potential_trajectory_truncation(always_exceed, trajectory, input_text="t")
    assert isinstance(caught.value.__cause__, LMContextWindowError)
    assert list(trajectory)[0] == "thought_3"   # three steps dropped, in place


def test_truncate_trajectory_refuses_to_drop_the_last_step():
    react = ReAct("input_text -> output_text", tools=[])
    with pytest.raises(LMContextWindowError, match="cannot be truncated"):
        react.truncate_trajectory({"thought_0": "t", "tool_name_0": "finish", "tool_args_0": {},
                                   "observation_0": "Completed."})


# --- async ---------------------------------------------------------------------------------------

async def test_aforward_awaits_async_tools():
    seen_tasks: list[Any] = []

    async def lookup(key: str) -> str:
        seen_tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        return key.upper()

    lm = DummyLM([step("Look it up.", "lookup", {"key": "abc"}), step("Done.", "finish"),
                  {"reasoning": "r", "answer": "ABC"}])
    with plait.context(lm=lm):
        outputs = await ReAct("question -> answer", tools=[lookup]).acall(question="?")
    assert outputs.trajectory["observation_0"] == "ABC" and outputs.answer == "ABC"
    assert seen_tasks[0] is not None   # awaited in the caller's event loop


def test_sync_forward_runs_async_tools():
    async def lookup(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    lm = DummyLM([step("Look it up.", "lookup", {"key": "abc"}), step("Done.", "finish"),
                  {"reasoning": "r", "answer": "ABC"}])
    plait.configure(lm=lm)
    assert ReAct("question -> answer", tools=[lookup])(question="?").trajectory["observation_0"] == "ABC"


async def test_async_tool_errors_and_overflow_behave_as_in_sync():
    async def broken() -> str:
        raise RuntimeError("nope")

    react = ReAct("question -> answer", tools=[broken])
    lm = DummyLM([step("Try.", "broken"), {"reasoning": "r", "answer": "a"}])
    with plait.context(lm=lm):
        outputs = await react.acall(question="?", max_iters=1)
    assert outputs.trajectory["observation_0"].endswith("RuntimeError: nope")

    async def exceed(**kwargs: Any) -> None:
        raise LMContextWindowError("too long")

    async def extract(**kwargs: Any) -> plait.Prediction:
        return plait.Prediction(answer="Fallback")

    react.react.acall = exceed
    react.extract.acall = extract
    result = await react.acall(question="?")
    assert result.trajectory == {} and result.answer == "Fallback"


async def test_hundred_concurrent_episodes():
    async def double(x: int) -> int:
        await asyncio.sleep(0.001)
        return 2 * x

    def answer(request: LMRequest) -> dict[str, Any]:
        inputs = request.context.inputs
        if "next_thought" not in request.context.signature.output_fields:
            return {"reasoning": "r", "answer": inputs["trajectory"].split("[[ ## observation_0 ## ]]\n")[1].split()[0]}
        if inputs["trajectory"]:
            return step("Done.", "finish")
        return step("Double it.", "double", {"x": inputs["question"]})

    react = ReAct("question -> answer", tools=[double])
    with plait.context(lm=DummyLM(answer)):
        results = await asyncio.gather(*(react.acall(question=str(i)) for i in range(100)))
    assert [r.answer for r in results] == [str(2 * i) for i in range(100)]


# --- prompts for small models, tool results, bad construction ------------------------------------

def test_template_adapter_gets_a_labelled_trajectory_and_passages_read_as_quotes():
    def retrieve(query: str) -> list[Passage]:
        return [Passage("Paris is the capital of France.", 1.0), Passage("France is in Europe.", 0.5)]

    lm = DummyLM([step("Search.", "retrieve", {"query": "capital"}), step("Done.", "finish"),
                  {"reasoning": "r", "answer": "Paris"}], small_model=True)
    plait.configure(lm=lm)
    assert ReAct("question -> answer", tools=[retrieve])(question="?").answer == "Paris"
    entry = lm.history[1]
    prompt = entry["prompt"] or entry["messages"][-1]["content"]   # text mode or chat with prefill
    assert "Thought 0: Search.\nTool Name 0: retrieve\nTool Args 0: {\"query\": \"capital\"}" in prompt
    assert "Observation 0: [1] «Paris is the capital of France.»\n[2] «France is in Europe.»" in prompt


def test_construction_errors_name_the_problem():
    def finish() -> str:
        return "x"

    with pytest.raises(ValueError, match="'finish' is ReAct's own tool"):
        ReAct("q -> a", tools=[finish])
    with pytest.raises(ValueError, match="two tools are named 'add'"):
        ReAct("q -> a", tools=[add, add])
    with pytest.raises(TypeError, match="list of functions"):
        ReAct("q -> a", tools=add)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_iters"):
        ReAct("q -> a", tools=[], max_iters=-1)
    with pytest.raises(ValueError, match="use_native_tools"):
        ReAct("q -> a", tools=[], use_native_tools="yes")


def test_native_tools_need_a_backend_that_calls_functions():
    plait.configure(lm=DummyLM([step("t", "finish"), {"reasoning": "r", "a": "x"}]))
    with pytest.raises(ConfigurationError, match="capabilities.tools is False"):
        ReAct("q -> a", tools=[add], use_native_tools=True)(q="?")
    assert ReAct("q -> a", tools=[add], use_native_tools="auto")(q="?").a == "x"   # text steps


def test_state_round_trips_and_copies_share_tools():
    react = ReAct("question -> answer", tools=[add])
    react.react.demos = [plait.Example(question="q", trajectory="", **step("t", "finish"))]
    state = react.dump_state()
    assert set(state) == {"react", "extract.predict"}
    fresh = ReAct("question -> answer", tools=[add])
    fresh.load_state(state)
    assert fresh.react.demos[0].next_tool_name == "finish"
    copy = react.deepcopy()
    assert copy.tools["add"] is react.tools["add"] and copy.react is not react.react
