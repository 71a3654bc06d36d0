"""``plait.Tool``: a Python function (sync or async) an agent can call.

``Tool(func)`` reads the function once: its name, its docstring (the description; a
Google-style ``Args:`` section also describes the arguments) and its typed arguments (one JSON
schema each, through ``plait.signatures.types.json_schema``). Calling the tool checks and
coerces the arguments an LM sent (``"3"`` for an ``int`` is fine; ``"three"`` is an error naming
the argument) and runs the function. DSPy-compatible attributes: ``name``, ``desc``, ``args``
(argument name -> JSON schema), ``arg_types``, ``arg_desc``, ``has_kwargs``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import traceback
import typing
from collections.abc import Callable, Mapping
from typing import Any

from plait.errors import PlaitError
from plait.settings import ContextThreadPoolExecutor

# OpenAI-style function names: what every function-calling API accepts.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\*{0,2}\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_MISSING = inspect.Parameter.empty


class ToolArgumentError(PlaitError, ValueError):
    """Arguments that do not fit a tool's signature (the message names the argument and the fix)."""


class Tool:
    """A function an agent can call, with its name, description and argument schemas.

    ``Tool(func, name=None, desc=None, args=None, arg_types=None, arg_desc=None)``: anything
    given explicitly wins over what is read from ``func``. ``tool(**kwargs)`` calls it (an
    async function is run to completion), ``await tool.acall(**kwargs)`` awaits it (a sync
    function runs in a worker thread, so the event loop stays free).
    """

    def __init__(self, func: Callable[..., Any], name: str | None = None, desc: str | None = None,
                 args: dict[str, Any] | None = None, arg_types: dict[str, Any] | None = None,
                 arg_desc: dict[str, str] | None = None):
        if not callable(func):
            raise TypeError(f"Tool() wraps a function or callable object, not {type(func).__name__}")
        self.func = func
        self.name = name or _function_name(func)
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} is not usable: a name is 1-64 letters, digits, "
                             "'_' or '-'; pass Tool(func, name='my_tool')")
        doc = _docstring(func)
        self.desc = desc if desc is not None else doc
        parameters, self.has_kwargs = _parameters(func)
        hints = _type_hints(func)
        described = {**_docstring_args(doc), **(arg_desc or {})}
        self.arg_desc: dict[str, str] = {k: v for k, v in described.items() if k in parameters}
        self.arg_types: dict[str, Any] = (dict(arg_types) if arg_types is not None else
                                          {n: hints.get(n, Any) for n in parameters})
        self.args: dict[str, Any] = (dict(args) if args is not None else
                                     self._schemas(parameters, self.arg_types, self.arg_desc))
        # Which arguments must be given: advertised in args, with no default in the function
        # nor in their schema.
        self._required = tuple(n for n, p in parameters.items() if p.default is _MISSING
                               and n in self.args and "default" not in self.args[n])
        self._is_async = _is_async(func)

    @staticmethod
    def _schemas(parameters: Mapping[str, inspect.Parameter], types: Mapping[str, Any],
                 descriptions: Mapping[str, str]) -> dict[str, Any]:
        schemas: dict[str, Any] = {}
        for name, parameter in parameters.items():
            schema = _schema(types.get(name, Any))
            if parameter.default is not _MISSING:
                schema["default"] = _json_default(parameter.default)
            if name in descriptions:
                schema["description"] = descriptions[name]
            schemas[name] = schema
        return schemas

    # --- calling ----------------------------------------------------------------------------
    def validate(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments coerced to the declared types; ToolArgumentError names a bad one."""
        missing = [name for name in self._required if name not in kwargs]
        if missing:
            raise ToolArgumentError(f"tool {self.name!r} needs argument(s) {', '.join(missing)}; "
                                    f"its arguments are {self._listed()}")
        coerced: dict[str, Any] = {}
        for name, value in kwargs.items():
            annotation = self.arg_types.get(name, _MISSING)
            if annotation is _MISSING:
                if name not in self.args and not self.has_kwargs:
                    raise ToolArgumentError(f"tool {self.name!r} has no argument {name!r}; "
                                            f"its arguments are {self._listed()}")
                coerced[name] = value
                continue
            try:
                coerced[name] = coerce(value, annotation)
            except (ValueError, TypeError) as exc:
                from plait.signatures.types import type_name
                raise ToolArgumentError(f"argument {name!r} of tool {self.name!r} expects "
                                        f"{type_name(annotation)}: {exc}") from None
        return coerced

    def __call__(self, **kwargs: Any) -> Any:
        result = self.func(**self.validate(kwargs))
        if inspect.isawaitable(result):
            return run_coroutine(result)
        return result

    async def acall(self, **kwargs: Any) -> Any:
        arguments = self.validate(kwargs)
        if self._is_async:
            return await self.func(**arguments)
        import asyncio   # loaded already by whoever runs this coroutine
        result = await asyncio.to_thread(self.func, **arguments)   # contextvars travel along
        if inspect.isawaitable(result):
            return await result
        return result

    # --- describing ---------------------------------------------------------------------------
    def format(self) -> str:
        """One line for a prompt: name, description, argument schemas (JSON)."""
        return str(self)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI function-calling schema (``{"type": "function", "function": {...}}``)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.desc,
                             "parameters": {"type": "object", "properties": self.args,
                                            "required": list(self._required)}}}

    format_as_litellm_function_call = to_openai   # DSPy's name

    def _listed(self) -> str:
        return ", ".join(self.args) or "none"

    def __str__(self) -> str:
        desc = f", whose description is <desc>{' '.join(self.desc.split())}</desc>." if self.desc else "."
        return f"{self.name}{desc} It takes arguments {json.dumps(self.args, default=str)}."

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, desc={self.desc!r}, args={self.args!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Tool:
        return self   # a tool wraps code and its resources: copies of a program share it


# --- argument coercion ------------------------------------------------------------------------

def coerce(value: Any, annotation: Any) -> Any:
    """``value`` (from an LM's JSON) as ``annotation``: exact types pass, text and JSON values
    are converted leniently (``"3"`` -> 3, a dict -> a pydantic model); ValueError otherwise."""
    if annotation is Any or annotation is object:
        return value
    kind = type(value)
    if annotation is str:
        if kind is str:
            return value
        if kind in (int, float):
            return str(value)   # small models send 42 for a str argument
        raise ValueError(f"got {_short(value)}")
    if annotation is int:
        if kind is int:
            return value
        if kind is float and value.is_integer():
            return int(value)
    elif annotation is float:
        if kind is float or kind is int:
            return float(value)
    elif annotation is bool:
        if kind is bool:
            return value
    elif isinstance(annotation, type) and typing.get_origin(annotation) is None and isinstance(value, annotation):
        return value   # already the right object (a caller passing a model instance)
    if kind is bool and annotation in (int, float):
        raise ValueError(f"got {_short(value)}")
    text = value if kind is str else json.dumps(value, default=str)
    from plait.signatures.types import parse_value   # not at import: it loads plait.retrieve
    return parse_value(text, annotation)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- errors as the LM reads them ----------------------------------------------------------------

# Frames of a tool's traceback that are plumbing (plait's call path, asyncio, worker threads),
# not the tool: left out of what the LM reads. Paths, so that nothing is imported for them.
_STDLIB = os.path.dirname(os.path.abspath(os.__file__))
_PLUMBING = (os.path.join(_STDLIB, "asyncio") + os.sep, os.path.join(_STDLIB, "concurrent") + os.sep,
             os.path.join(_STDLIB, "threading.py"), os.path.dirname(os.path.abspath(__file__)) + os.sep)


def error_for_lm(error: BaseException, frames: int = 5) -> str:
    """A tool's exception as feedback: the traceback without plait's and asyncio's frames (at
    most ``frames``, outermost first) ending with ``Type: message``; just the message when
    the error came from the call itself (bad arguments)."""
    if isinstance(error, ToolArgumentError):   # the arguments were wrong: no code to show
        return str(error)
    summary = traceback.TracebackException(type(error), error, error.__traceback__)
    own = [frame for frame in summary.stack if not frame.filename.startswith(_PLUMBING)]
    if not own:
        return str(error) or type(error).__name__
    summary.stack = traceback.StackSummary.from_list(own[:frames])
    return "\n" + "".join(summary.format(chain=False)).strip()


# --- running a coroutine from sync code -------------------------------------------------------

def run_coroutine(awaitable: Any) -> Any:
    """Run ``awaitable`` to completion from sync code: directly when this thread has no event
    loop, else in a worker thread with its own loop (a running loop cannot be re-entered)."""
    import asyncio   # only when an async tool is called from sync code
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    with ContextThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _await(awaitable)).result()


async def _await(awaitable: Any) -> Any:
    return await awaitable


# --- reading a function -----------------------------------------------------------------------

def _function_name(func: Any) -> str:
    if isinstance(func, functools.partial):
        return _function_name(func.func)
    name = getattr(func, "__name__", None) or type(func).__name__
    if name == "<lambda>":
        raise ValueError("a lambda has no name to call it by: pass Tool(func, name='my_tool')")
    return name


def _docstring(func: Any) -> str:
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isroutine(target):
        return inspect.getdoc(target) or ""
    # a callable object: its class's docstring, else its __call__'s
    own = type(target).__doc__
    return inspect.cleandoc(own) if own else (inspect.getdoc(getattr(type(target), "__call__", None)) or "")


def _parameters(func: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the arguments of {func!r} ({exc}); pass Tool(func, args={{...}}, "
                        "arg_types={...})") from None
    named = {name: p for name, p in signature.parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    has_kwargs = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    return named, has_kwargs


def _type_hints(func: Any) -> dict[str, Any]:
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(type(target), "__call__", target)
    try:
        return typing.get_type_hints(target)
    except Exception:   # an unresolvable forward reference: the arguments are untyped then
        return {}


def _is_async(func: Any) -> bool:
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(type(target), "__call__", None)
    return not inspect.isroutine(target) and inspect.iscoroutinefunction(call)


def _docstring_args(doc: str) -> dict[str, str]:
    """``name -> description`` from a Google-style ``Args:`` section (continuation lines joined)."""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    inside, indent, current = False, None, None
    for line in lines:
        if _ARGS_HEADER.match(line):
            inside, indent, current = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            current = None
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent or (depth == indent and line.rstrip().endswith(":") and " " not in line.strip()):
            inside = False   # the next section ("Returns:")
            continue
        match = _ARG_LINE.match(line)
        if depth == indent and match:
            current = match.group(1)
            found[current] = match.group(2).strip()
        elif current is not None:
            found[current] = f"{found[current]} {line.strip()}".strip()
    return found


def _schema(annotation: Any) -> dict[str, Any]:
    """The argument's JSON schema with ``$ref``s inlined (function-calling APIs want one object)."""
    if annotation is Any or annotation is object:
        return {}
    from plait.signatures.types import json_schema
    try:
        schema = json_schema(annotation)
    except Exception:   # a type pydantic cannot describe: say nothing rather than something wrong
        return {}
    definitions = schema.pop("$defs", None)
    return _inline(schema, definitions, ()) if definitions else schema


def _inline(node: Any, definitions: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            key = ref[len("#/$defs/"):]
            if key in seen or key not in definitions:   # a recursive model: leave the reference open
                return {k: v for k, v in node.items() if k != "$ref"}
            rest = {k: _inline(v, definitions, seen) for k, v in node.items() if k != "$ref"}
            return {**_inline(definitions[key], definitions, (*seen, key)), **rest}
        return {k: _inline(v, definitions, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions, seen) for item in node]
    return node


def _json_default(value: Any) -> Any:
    """A default value as JSON (anything JSON cannot hold is described by its repr)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)
