"""ProgramOfThought: the LM writes Python, a sandbox runs it, the LM turns the output into answers.

Behaviour and field names follow DSPy's ProgramOfThought, so DSPy programs and DummyLM-scripted
tests port: ``code_generate`` (a ChainOfThought over the inputs) answers ``generated_code``; the
code runs in a :class:`~plait.sandbox.Sandbox` (a limited subprocess; see docs/sandbox.md); on an
error ``code_regenerate`` gets ``previous_code`` and ``error`` and writes new code, up to
``max_iters`` attempts in all, after which a :class:`ProgramOfThoughtError` (a RuntimeError whose
message starts "Max hops reached", as DSPy's) is raised; finally ``generate_output`` turns
``final_generated_code`` and ``code_output`` into ``reasoning`` and the signature's outputs.

The code's output is the value of its last expression (a trailing ``x = ...`` assignment counts
as ``x``), or what it passes to ``SUBMIT(...)``, or else what it printed. Differences from DSPy,
on purpose: code that runs but produces no output at all counts as an error (so the LM repairs it
instead of the answer step guessing), errors carry the sandbox's traceback rather than the bare
message, and a string output reaches the answer step as the text itself, not JSON-quoted.

The episode is one generator (``_episode``) yielding the LM steps and sandbox runs it needs, which
``forward`` and ``aforward`` serve, so sync and async runs behave identically.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Generator
from typing import Any

from plait.errors import PlaitError, SignatureError
from plait.predict.chain_of_thought import ChainOfThought
from plait.primitives.module import Module
from plait.primitives.prediction import Prediction
from plait.sandbox import Sandbox, SandboxResult
from plait.signatures import InputField, OutputField, Signature, ensure_signature

ADDED_FIELDS = ("generated_code", "previous_code", "error", "final_generated_code", "code_output")
_CALL_OPTIONS = ("lm", "config", "adapter")   # per-call Predict options passed to every step
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_CODE_DESC = "python code that answers the question"

Step = tuple[str, Any, dict[str, Any]]   # ("predict", module, kwargs) or ("run", code, {})


class ProgramOfThoughtError(PlaitError, RuntimeError):
    """The generated code still failed after ``max_iters`` attempts. ``code`` holds the last
    program and ``error`` the sandbox's last error message."""

    def __init__(self, message: str, *, code: str = "", error: str = ""):
        super().__init__(message)
        self.code = code
        self.error = error


class ProgramOfThought(Module):
    """``ProgramOfThought("question -> answer", max_iters=3)(question="What is 17 * 23?")``.

    ``sandbox``: the :class:`~plait.sandbox.Sandbox` that runs the code (default: ``Sandbox()``,
    5 s, 512 MiB, standard library only); anything with ``run(code) -> SandboxResult`` and
    ``arun`` works. Per call, ``lm=``, ``config=`` and ``adapter=`` reach every LM step.
    """

    def __init__(self, signature: str | Signature | type[Signature], max_iters: int = 3, *,
                 sandbox: Sandbox | None = None):
        super().__init__()
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
            raise ValueError(f"ProgramOfThought max_iters must be a positive integer (the number of "
                             f"code attempts), got {max_iters!r}")
        self.signature = signature = ensure_signature(signature)
        clashes = [name for name in ADDED_FIELDS if name in signature.fields]
        if clashes:
            raise SignatureError(f"ProgramOfThought adds the fields {list(ADDED_FIELDS)}; your signature "
                                 f"already has {clashes}: rename them")
        self.max_iters = max_iters
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self.code_generate = ChainOfThought(_mode_signature(signature, "generate"))
        self.code_regenerate = ChainOfThought(_mode_signature(signature, "regenerate"))
        self.generate_output = ChainOfThought(_mode_signature(signature, "answer"))

    @property
    def input_fields(self) -> Any:
        return self.signature.input_fields

    @property
    def output_fields(self) -> Any:
        return self.signature.output_fields

    # --- running ------------------------------------------------------------------------------
    def forward(self, **kwargs: Any) -> Prediction:
        episode = self._episode(kwargs)
        reply: Any = None
        while True:
            try:
                kind, target, arguments = episode.send(reply)
            except StopIteration as finished:
                return finished.value
            reply = target(**arguments) if kind == "predict" else self.sandbox.run(target)

    async def aforward(self, **kwargs: Any) -> Prediction:
        episode = self._episode(kwargs)
        reply: Any = None
        while True:
            try:
                kind, target, arguments = episode.send(reply)
            except StopIteration as finished:
                return finished.value
            reply = await (target.acall(**arguments) if kind == "predict" else self.sandbox.arun(target))

    def _episode(self, kwargs: dict[str, Any]) -> Generator[Step, Any, Prediction]:
        inputs, options = self._split_arguments(kwargs)
        prediction = yield "predict", self.code_generate, {**inputs, **options}
        code, error = extract_code(prediction.get("generated_code"))
        output = None
        if error is None:
            output, error = _outcome((yield "run", code, {}))
        attempt = 1
        while error is not None:
            _emit_failure(attempt, self.max_iters, error)
            if attempt >= self.max_iters:
                raise ProgramOfThoughtError(
                    f"Max hops reached. Failed to run ProgramOfThought: the code still failed after "
                    f"{attempt} attempt(s) (max_iters={self.max_iters}); last error:\n{error}",
                    code=code, error=error)
            prediction = yield "predict", self.code_regenerate, {**inputs, "previous_code": code,
                                                                 "error": error, **options}
            code, error = extract_code(prediction.get("generated_code"))
            if error is None:
                output, error = _outcome((yield "run", code, {}))
            attempt += 1
        return (yield "predict", self.generate_output, {**inputs, "final_generated_code": code,
                                                       "code_output": output, **options})

    def _split_arguments(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        names = self.signature.input_fields
        missing = [name for name in names if name not in kwargs]
        unknown = [name for name in kwargs if name not in names and name not in _CALL_OPTIONS]
        if missing or unknown:
            problems = ([f"missing input(s) {missing}"] if missing else []) + (
                [f"unknown argument(s) {unknown}"] if unknown else [])
            raise TypeError(f"ProgramOfThought({self.signature.signature!r}) got {' and '.join(problems)}; "
                            f"pass the input fields {list(names)} (and optionally lm=, config=, adapter=)")
        inputs = {name: kwargs[name] for name in names}
        options = {name: kwargs[name] for name in _CALL_OPTIONS if name in kwargs}
        return inputs, options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature!r}, max_iters={self.max_iters})"


def extract_code(text: Any) -> tuple[str, str | None]:
    """(code, None) from the LM's ``generated_code``, or (text, message) when there is none.

    Takes the first fenced block (```python ... ```) when there is one, else the whole text;
    a trailing single-name assignment (``result = ...``) gets the name appended so its value
    becomes the output.
    """
    text = "" if text is None else str(text)
    match = _FENCE.search(text)
    code = textwrap.dedent(match.group(1) if match else text).strip()
    if not code:
        return text, "Error: Empty code after parsing: write the Python program in generated_code."
    return _expose_final_assignment(code), None


def _expose_final_assignment(code: str) -> str:
    import ast   # only here: parsing is the sandbox's job, this is a convenience
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code   # the sandbox reports it with the line, for the repair step
    last = tree.body[-1] if tree.body else None
    target = None
    if isinstance(last, ast.Assign) and len(last.targets) == 1:
        target = last.targets[0]
    elif isinstance(last, (ast.AnnAssign, ast.AugAssign)):
        target = last.target
    if isinstance(target, ast.Name):
        return f"{code}\n{target.id}"
    return code


def _outcome(result: SandboxResult) -> tuple[str | None, str | None]:
    """(output text, None) or (None, error message for the LM)."""
    if not result.ok:
        return None, result.error or f"{result.error_type}: the code failed"
    output = result.output
    if output is None or output == "":
        return None, ("Error: the code ran but produced no output; end it with an expression whose "
                      "value is the answer, print the answer, or call SUBMIT(...)")
    if isinstance(output, str):
        return output, None
    return json.dumps(output, ensure_ascii=False), None


def _emit_failure(attempt: int, max_iters: int, error: str) -> None:
    from plait.plugins import emit   # loaded by the LM call already; keeps this import light
    emit("program_of_thought.error", source="ProgramOfThought", attempt=attempt, max_iters=max_iters,
         error=error)


def _mode_signature(base: Signature, mode: str) -> Signature:
    """The signature of one step: "generate" and "regenerate" answer ``generated_code``,
    "answer" gets the final code and its output and answers the original outputs."""
    signature = base
    if mode != "answer":
        for name in base.output_fields:
            signature = signature.delete(name)
    if mode == "regenerate":
        signature = signature.append("previous_code", InputField(
            desc="previously-generated python code that errored"))
        signature = signature.append("error", InputField(
            desc="error message from previously-generated python code"))
    if mode == "answer":
        signature = signature.append("final_generated_code", InputField(desc=_CODE_DESC))
        signature = signature.append("code_output", InputField(desc="output of previously-generated python code"))
    else:
        signature = signature.append("generated_code", OutputField(desc=_CODE_DESC))
    return signature.with_instructions(_instructions(base, signature, mode))


def _instructions(base: Signature, signature: Signature, mode: str) -> str:
    def names(fields: Any) -> str:
        return ", ".join(f"`{name}`" for name in fields)

    inputs, outputs, finals = names(signature.input_fields), names(signature.output_fields), \
        names(base.output_fields)
    if mode == "generate":
        return "\n".join([
            f"You will be given {inputs} and you will respond with {outputs}.",
            f"Write executable Python code that computes the correct {finals} programmatically.",
            "Only the Python standard library is available: no network, no subprocesses, and no "
            "files outside the working directory.",
            f"The output is the value of the code's last expression; or finish by calling the "
            f"preloaded function SUBMIT with the result for {finals} (e.g. SUBMIT({{...}})).",
        ])
    if mode == "regenerate":
        return "\n".join([
            f"You are given {inputs}: the previous code failed with that error.",
            "Correct the error and respond with the new `generated_code`.",
        ])
    return f"Given the final code {inputs}, provide the final {outputs}."
