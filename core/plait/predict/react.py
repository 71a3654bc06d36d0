"""ReAct: an agent that reasons, calls tools and then extracts the signature's outputs.

Behaviour and field names follow DSPy's ReAct, so DSPy programs and DummyLM-scripted tests port
unchanged: each step a ``react`` Predict over the signature's inputs plus ``trajectory`` answers
``next_thought``, ``next_tool_name`` (one of the tools or ``finish``) and ``next_tool_args``;
the tool's result (or ``"Execution error in <tool>: ..."``) becomes the step's observation; the
loop ends at ``finish`` or after ``max_iters`` steps; an ``extract`` ChainOfThought over the inputs
plus the trajectory produces ``reasoning`` and the outputs. The result also carries
``trajectory``: ``{"thought_0", "tool_name_0", "tool_args_0", "observation_0", "thought_1", ...}``.

Differences from DSPy, on purpose: a tool name the LM invents is fed back as an error
observation (DSPy ends the episode); with ``use_native_tools`` the steps use the backend's
function calling (OpenAI-style ``tools``) instead of text fields.

The episode is written once, as a generator (``_episode``) that yields what it needs (an LM
step, a tool call, the extraction) and that ``forward`` and ``aforward`` serve, so sync and
async runs behave identically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from plait.errors import AdapterParseError, ConfigurationError, LMContextWindowError
from plait.predict.chain_of_thought import ChainOfThought
from plait.predict.predict import Predict
from plait.predict.tool import Tool, error_for_lm
from plait.primitives.module import Module
from plait.primitives.prediction import Prediction
from plait.settings import effective
from plait.signatures import InputField, OutputField, Signature, ensure_signature

if TYPE_CHECKING:
    from plait.lm.types import LMResponse

TRUNCATION_ATTEMPTS = 3      # LM calls per step while the trajectory overflows the context
FINISHED = "Completed."      # the finish tool's observation (DSPy's)
STEP_FIELDS = ("thought", "tool_name", "tool_args", "observation")
_NATIVE_NOTE = ("Call exactly one of the provided functions in every turn (its name is your "
                "next_tool_name, its arguments your next_tool_args) and write your next_thought as "
                "the message text. Call finish when you are done.")

Step = tuple[str, Any, Any]   # (thought, tool name, tool args) as the LM gave them


class ReAct(Module):
    """``ReAct("question -> answer", tools=[search, calculate])(question=...)``.

    ``tools``: functions, callable objects or :class:`Tool` instances. ``max_iters``: the most
    tool calls per episode (override per call with ``max_iters=``). ``use_native_tools``: False
    (text fields, DSPy's way), True (the backend's function calling; an LM without it is a
    ConfigurationError) or ``"auto"`` (function calling when ``lm.capabilities.tools``).
    """

    def __init__(self, signature: str | Signature | type[Signature], tools: Sequence[Any],
                 max_iters: int = 10, *, use_native_tools: bool | str = False):
        super().__init__()
        self.signature = signature = ensure_signature(signature)
        self.max_iters = _check_max_iters(max_iters)
        if use_native_tools not in (False, True, "auto"):
            raise ValueError(f"use_native_tools must be False, True or 'auto', not {use_native_tools!r}")
        self.use_native_tools = use_native_tools
        outputs = ", ".join(f"`{name}`" for name in signature.output_fields)
        self.tools: dict[str, Tool] = _tool_table(tools)
        self.tools["finish"] = Tool(_finish, name="finish", args={}, desc=(
            f"Marks the task as complete: signals that everything needed to produce the outputs "
            f"({outputs}) is now available to be extracted."))
        self.react = Predict(_step_signature(signature, self.tools))
        self.extract = ChainOfThought(signature.with_instructions(signature.instructions)
                                      .append("trajectory", InputField(), str))
        self._openai_tools = [tool.to_openai() for tool in self.tools.values()]

    # --- sync and async drivers ---------------------------------------------------------------
    def forward(self, **input_args: Any) -> Prediction:
        episode = self._episode(input_args)
        request = next(episode)
        while True:
            try:
                result, failure = self._serve(request, input_args), None
            except Exception as error:   # the episode decides (a context overflow ends the loop)
                result, failure = None, error
            try:
                request = episode.send(result) if failure is None else episode.throw(failure)
            except StopIteration as done:
                return done.value

    async def aforward(self, **input_args: Any) -> Prediction:
        episode = self._episode(input_args)
        request = next(episode)
        while True:
            try:
                result, failure = await self._aserve(request, input_args), None
            except Exception as error:
                result, failure = None, error
            try:
                request = episode.send(result) if failure is None else episode.throw(failure)
            except StopIteration as done:
                return done.value

    # --- the episode ------------------------------------------------------------------------
    def _episode(self, input_args: dict[str, Any]) -> Generator[tuple[Any, ...], Any, Prediction]:
        """Yields ("step", trajectory), ("tool", name, args) and ("extract", trajectory); receives
        their results (or has their exceptions thrown in)."""
        max_iters = _check_max_iters(input_args.pop("max_iters", self.max_iters))
        trajectory: dict[str, Any] = {}
        for idx in range(max_iters):
            try:
                thought, name, args = yield ("step", trajectory)
            except LMContextWindowError as error:
                _emit("react.stopped", reason="context_window", error=str(error), step=idx)
                break
            except AdapterParseError as error:
                recovered = self._unknown_tool_step(error)
                if recovered is None:   # the answer is unusable: end the episode, as DSPy does
                    _emit("react.stopped", reason="unparsable_step", error=str(error), step=idx)
                    break
                thought, name, args = recovered
            trajectory[f"thought_{idx}"] = thought
            trajectory[f"tool_name_{idx}"] = name
            trajectory[f"tool_args_{idx}"] = args
            trajectory[f"observation_{idx}"] = yield ("tool", name, args)
            if name == "finish":
                break
        extract = yield ("extract", trajectory)
        return Prediction(trajectory=trajectory, **dict(extract.items()))

    def _serve(self, request: tuple[Any, ...], inputs: dict[str, Any]) -> Any:
        kind = request[0]
        if kind == "tool":
            return self._run_tool(request[1], request[2])
        trajectory = request[1]
        if kind == "extract":
            return self._call_with_potential_trajectory_truncation(self.extract, trajectory, **inputs)
        lm = self._native_lm()
        if lm is not None:
            def native_step() -> Step:
                response = lm.generate(**self._native_request(inputs, trajectory))
                return self._read_native(response, inputs, trajectory)
            return self._truncating(native_step, trajectory)
        pred = self._call_with_potential_trajectory_truncation(self.react, trajectory, **inputs)
        return pred.next_thought, pred.next_tool_name, pred.next_tool_args

    async def _aserve(self, request: tuple[Any, ...], inputs: dict[str, Any]) -> Any:
        kind = request[0]
        if kind == "tool":
            return await self._arun_tool(request[1], request[2])
        trajectory = request[1]
        if kind == "extract":
            return await self._async_call_with_potential_trajectory_truncation(self.extract, trajectory, **inputs)
        lm = self._native_lm()
        if lm is not None:
            async def native_step() -> Step:
                response = await lm.agenerate(**self._native_request(inputs, trajectory))
                return self._read_native(response, inputs, trajectory)
            return await self._atruncating(native_step, trajectory)
        pred = await self._async_call_with_potential_trajectory_truncation(self.react, trajectory, **inputs)
        return pred.next_thought, pred.next_tool_name, pred.next_tool_args

    # --- tools ------------------------------------------------------------------------------
    def _run_tool(self, name: Any, args: Any) -> Any:
        problem = self._check_call(name, args)
        if problem is not None:
            return problem
        try:
            return self.tools[name](**args)
        except Exception as error:   # the LM reads what went wrong and may try again
            return f"Execution error in {name}: {error_for_lm(error)}"

    async def _arun_tool(self, name: Any, args: Any) -> Any:
        problem = self._check_call(name, args)
        if problem is not None:
            return problem
        try:
            return await self.tools[name].acall(**args)
        except Exception as error:
            return f"Execution error in {name}: {error_for_lm(error)}"

    def _check_call(self, name: Any, args: Any) -> str | None:
        if not isinstance(name, str) or name not in self.tools:
            return (f"Execution error in {name}: there is no tool named {name!r}; the tool must be "
                    f"one of: {', '.join(self.tools)}")
        if not isinstance(args, dict):
            return (f"Execution error in {name}: the arguments must be a JSON object (a dict of "
                    f"argument names to values), got {_text(args)[:200]}")
        return None

    def _unknown_tool_step(self, error: AdapterParseError) -> Step | None:
        """The step when its only fault is a tool name that is not one of the tools (parsed again
        with the name as free text), else None."""
        signature = getattr(self.react, "signature", None)
        if not isinstance(signature, Signature) or not error.completion:
            return None
        from plait.adapters import resolve_adapter
        adapter = resolve_adapter(getattr(self.react, "adapter", None), self._lm())
        try:
            values = adapter.parse(signature.with_updated_fields("next_tool_name", type_=str), error.completion)
        except (AdapterParseError, ValueError):
            return None
        name = values.get("next_tool_name")
        if not name or name in self.tools:
            return None
        return values.get("next_thought", ""), name, values.get("next_tool_args", {})

    # --- context overflow -------------------------------------------------------------------
    def _call_with_potential_trajectory_truncation(self, module: Callable[..., Any], trajectory: dict[str, Any],
                                                   **input_args: Any) -> Any:
        return self._truncating(lambda: module(**input_args, trajectory=self._format_trajectory(trajectory)),
                                trajectory)

    async def _async_call_with_potential_trajectory_truncation(self, module: Any, trajectory: dict[str, Any],
                                                               **input_args: Any) -> Any:
        async def call() -> Any:
            return await module.acall(**input_args, trajectory=self._format_trajectory(trajectory))
        return await self._atruncating(call, trajectory)

    def _truncating(self, call: Callable[[], Any], trajectory: dict[str, Any]) -> Any:
        last_error: LMContextWindowError | None = None
        for _attempt in range(TRUNCATION_ATTEMPTS):
            try:
                return call()
            except LMContextWindowError as error:
                last_error = error
                self._drop_oldest(trajectory)
        raise _exhausted() from last_error

    async def _atruncating(self, call: Callable[[], Any], trajectory: dict[str, Any]) -> Any:
        last_error: LMContextWindowError | None = None
        for _attempt in range(TRUNCATION_ATTEMPTS):
            try:
                return await call()
            except LMContextWindowError as error:
                last_error = error
                self._drop_oldest(trajectory)
        raise _exhausted() from last_error

    def _drop_oldest(self, trajectory: dict[str, Any]) -> None:
        before = len(trajectory)
        self.truncate_trajectory(trajectory)
        _emit("react.truncated", removed=before - len(trajectory), remaining=len(trajectory))

    def truncate_trajectory(self, trajectory: dict[str, Any]) -> dict[str, Any]:
        """Drop the oldest tool call (its four entries) in place so the prompt fits the context.

        Raises LMContextWindowError when one call or less is left. Override to truncate otherwise.
        """
        keys = list(trajectory)
        if len(keys) <= len(STEP_FIELDS):
            raise LMContextWindowError(
                "the prompt exceeds the LM's context window and the trajectory cannot be truncated "
                "further (it holds at most one tool call): shorten the inputs or the tools' results, "
                "or use a model with a longer context")
        for key in keys[:len(STEP_FIELDS)]:
            del trajectory[key]
        return trajectory

    # --- trajectory text --------------------------------------------------------------------
    def _format_trajectory(self, trajectory: dict[str, Any]) -> str:
        """The trajectory as prompt text: ``[[ ## thought_0 ## ]]`` blocks for the chat and JSON
        adapters (DSPy's format), "Thought 0: ..." lines for the template adapter."""
        if not trajectory:
            return ""
        if self._uses_labels():
            return "\n".join(f"{_label(key)}: {_text(value)}" for key, value in trajectory.items())
        return "\n\n".join(f"[[ ## {key} ## ]]\n{_text(value)}" for key, value in trajectory.items())

    def _uses_labels(self) -> bool:
        from plait.adapters import TemplateAdapter, resolve_adapter
        return isinstance(resolve_adapter(getattr(self.react, "adapter", None), self._lm()), TemplateAdapter)

    def _lm(self) -> Any:
        """The LM the steps use (the ``react`` predictor's own, else the configured one)."""
        return getattr(self.react, "lm", None) or effective().get("lm")

    # --- native function calling ------------------------------------------------------------
    def _native_lm(self) -> Any:
        """The LM to call with ``tools=`` when native function calling is on, else None."""
        if self.use_native_tools is False:
            return None
        lm = self._lm()
        if lm is None:
            raise ConfigurationError("no LM is configured: call plait.configure(lm=plait.LM('provider/model')) "
                                     "or set react.react.lm")
        if lm.capabilities.tools:
            return lm
        if self.use_native_tools is True:
            raise ConfigurationError(
                f"ReAct(use_native_tools=True) needs an LM whose backend does function calling, and "
                f"{lm.model!r} does not (capabilities.tools is False); use use_native_tools='auto' "
                "to fall back to text steps")
        return None

    def _native_request(self, inputs: dict[str, Any], trajectory: dict[str, Any]) -> dict[str, Any]:
        """``lm.generate`` keyword arguments: the instructions, the inputs, then each step as an
        assistant tool call followed by the tool's result."""
        signature = self.react.signature
        user = "\n\n".join(f"[[ ## {name} ## ]]\n{_text(inputs[name])}"
                           for name in self.signature.input_fields if name in inputs)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"{signature.instructions}\n\n{_NATIVE_NOTE}"},
            {"role": "user", "content": user}]
        for idx in _step_indices(trajectory):
            call_id = f"call_{idx}"
            arguments = trajectory.get(f"tool_args_{idx}")
            messages.append({"role": "assistant", "content": str(trajectory.get(f"thought_{idx}", "")),
                             "tool_calls": [{"id": call_id, "type": "function", "function": {
                                 "name": str(trajectory.get(f"tool_name_{idx}")),
                                 "arguments": json.dumps(arguments if isinstance(arguments, dict) else {},
                                                         default=str)}}]})
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": _text(trajectory.get(f"observation_{idx}", ""))})
        from plait.lm.types import RequestContext   # plait.lm loads with the first LM, not before
        context = RequestContext(signature, None, inputs)
        return {**self.react.config, "messages": messages, "context": context,
                "tools": self._openai_tools, "tool_choice": "auto"}

    def _read_native(self, response: LMResponse, inputs: dict[str, Any], trajectory: dict[str, Any]) -> Step:
        """(thought, tool, args) from the first choice: its first tool call, or ``finish`` when the
        model answered in plain text."""
        text = (response.outputs[0] if response.outputs else "") or ""
        calls = response.tool_calls[0] if response.tool_calls else None
        name, args = (calls[0].get("name"), _arguments(calls[0].get("arguments"))) if calls else ("finish", {})
        step = (text.strip(), name, args)
        trace = effective().get("trace")
        if trace is not None:   # optimizers see the step as the text-mode predictor's
            shown = {**inputs, "trajectory": self._format_trajectory(trajectory)}
            trace.append((self.react, shown, Prediction(next_thought=step[0], next_tool_name=name,
                                                         next_tool_args=args)))
        return step


# --- helpers -------------------------------------------------------------------------------------

def _finish(**_ignored: Any) -> str:
    return FINISHED   # small models pass arguments to finish too: they change nothing


def _check_max_iters(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"max_iters must be a non-negative int (the most tool calls per episode), not {value!r}")
    return value


def _tool_table(tools: Any) -> dict[str, Tool]:
    if isinstance(tools, (str, bytes, dict)) or not isinstance(tools, Sequence):
        raise TypeError("ReAct(signature, tools=[...]) takes a list of functions or plait.Tool objects, "
                        f"not {type(tools).__name__}")
    table: dict[str, Tool] = {}
    for item in tools:
        tool = item if isinstance(item, Tool) else Tool(item)
        if tool.name == "finish":
            raise ValueError("'finish' is ReAct's own tool (it ends the episode): rename your tool, "
                             "e.g. Tool(func, name='finish_task')")
        if tool.name in table:
            raise ValueError(f"two tools are named {tool.name!r}: give one another name with "
                             f"Tool(func, name='...')")
        table[tool.name] = tool
    return table


def _step_signature(signature: Signature, tools: dict[str, Tool]) -> Signature:
    """The per-step signature: the inputs plus ``trajectory`` -> thought, tool name, tool args."""
    inputs = ", ".join(f"`{name}`" for name in signature.input_fields)
    outputs = ", ".join(f"`{name}`" for name in signature.output_fields)
    lines = [f"{signature.instructions}\n"] if signature.instructions else []
    lines += [
        f"You are an agent. Each episode gives you the input fields {inputs} and the trajectory of "
        "your steps so far.",
        f"Use the tools below, as often as needed, to gather what you need to produce {outputs}.\n",
        "In every turn, give next_thought, next_tool_name and next_tool_args, also when finishing.",
        "Each tool call's result is appended to your trajectory as an observation.\n",
        "In next_thought, reason about the situation so far and plan the next steps.",
        "next_tool_name must be one of these tools:\n",
    ]
    lines += [f"({number}) {tool.format()}" for number, tool in enumerate(tools.values(), 1)]
    lines.append("next_tool_args must be a JSON object holding the tool's arguments.")
    step = signature.with_instructions("\n".join(lines)).append("trajectory", InputField(), str)
    for name in signature.output_fields:
        step = step.delete(name)
    return (step.append("next_thought", OutputField(), str)
            .append("next_tool_name", OutputField(), Literal[tuple(tools)])
            .append("next_tool_args", OutputField(), dict[str, Any]))


def _text(value: Any) -> str:
    """A value as prompt text (str as is, Passages as numbered quotes, the rest as JSON)."""
    from plait.signatures.types import format_value   # not at import: it loads plait.retrieve
    return format_value(value)


def _arguments(raw: Any) -> Any:
    """A tool call's arguments: the JSON text decoded, or the text itself when it is not JSON
    (reported to the LM as an error observation)."""
    if not isinstance(raw, str):
        return {} if raw is None else raw
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        return raw


def _step_indices(trajectory: dict[str, Any]) -> list[int]:
    return [int(key[len("thought_"):]) for key in trajectory
            if key.startswith("thought_") and key[len("thought_"):].isdigit()]


def _label(key: str) -> str:
    base, _, index = key.rpartition("_")
    return f"{base.replace('_', ' ').title()} {index}" if index.isdigit() else key


def _exhausted() -> LMContextWindowError:
    return LMContextWindowError(f"the context window was exceeded even after {TRUNCATION_ATTEMPTS} attempts "
                                "to truncate the trajectory: shorten the inputs or the tools' results")


def _emit(kind: str, **data: Any) -> None:
    from plait.plugins import emit   # events only on these rare paths: no import cost otherwise
    emit(kind, source="ReAct", **data)
