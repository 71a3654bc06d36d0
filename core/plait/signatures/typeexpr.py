"""Type expressions in signature strings: a small, safe parser (no ``eval``) and its inverse.

``parse_type("dict[str, list[int]]")`` -> ``dict[str, list[int]]``; ``type_name`` turns an
annotation back into text that ``parse_type`` reads again (given the same ``custom_types``).
Grammar::

    union   := primary ("|" primary)*
    primary := NAME ["[" args "]"] | "None"
    args    := arg ("," arg)* [","]          (Literal[...] args are literal values)
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Optional, Union

from plait.errors import SignatureError

NoneType = type(None)

# Plain names; typing's capitalised generics map onto the builtin ones so that
# ``type_name`` prints one spelling ("list[str]") whichever was written.
_SIMPLE: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "bytes": bytes,
    "list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset,
    "List": list, "Dict": dict, "Tuple": tuple, "Set": set, "FrozenSet": frozenset,
    "Any": Any, "object": object, "None": NoneType, "NoneType": NoneType,
}
_SPECIAL = ("Optional", "Union", "Literal")
# How many type arguments each generic takes (None: any number >= 1).
_ARITY: dict[Any, int | None] = {list: 1, set: 1, frozenset: 1, dict: 2, tuple: None}
_MAX_DEPTH = 32

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<number>[-+]?\d[\w.]*)
  | (?P<name>[^\W\d]\w*(?:\.[^\W\d]\w*)*)
  | (?P<ellipsis>\.\.\.)
  | (?P<punct>[\[\],|])
""", re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _error(text, f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def _error(text: str, problem: str) -> SignatureError:
    return SignatureError(
        f"invalid type {text!r}: {problem}. Write types as in Python annotations, e.g. 'int', "
        "'list[str]', 'dict[str, int]', 'Optional[int]', 'int | None', \"Literal['a', 'b']\"")


class _Parser:
    def __init__(self, text: str, custom_types: Mapping[str, Any]):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.custom = custom_types

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if value is not None and token[1] != value:
            found = "the end" if token[0] == "end" else repr(token[1])
            raise _error(self.text, f"expected {value!r} but found {found}")
        if token[0] == "end":
            raise _error(self.text, "it ends too early")
        self.pos += 1
        return token

    def parse(self) -> Any:
        if not self.tokens:
            raise _error(self.text, "it is empty")
        result = self.union(0)
        if result is Ellipsis:
            raise _error(self.text, "'...' is only allowed as in tuple[int, ...]")
        if self.pos != len(self.tokens):
            raise _error(self.text, f"unexpected {self.peek()[1]!r} after the type")
        return result

    def union(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _error(self.text, f"it nests deeper than {_MAX_DEPTH} levels")
        members = [self.primary(depth)]
        while self.peek()[1] == "|":
            self.take("|")
            members.append(self.primary(depth))
        if len(members) > 1 and Ellipsis in members:
            raise _error(self.text, "'...' is only allowed as in tuple[int, ...]")
        return members[0] if len(members) == 1 else Union[tuple(members)]

    def primary(self, depth: int) -> Any:
        kind, name = self.take()
        if kind == "ellipsis":
            return Ellipsis  # only valid as tuple[X, ...]; subscript() checks where it stands
        if kind != "name":
            raise _error(self.text, f"expected a type name but found {name!r}")
        base = self.resolve(name)
        if self.peek()[1] != "[":
            if _is_special(base):
                raise _error(self.text, f"{base} needs arguments in brackets, e.g. {base}[...]")
            return base
        self.take("[")
        if _is_special(base) and base == "Literal":
            args = self.arguments(self.literal_value)
        else:
            args = self.arguments(lambda: self.union(depth + 1))
        self.take("]")
        return self.subscript(name, base, args)

    def arguments(self, parse_one: typing.Callable[[], Any]) -> list[Any]:
        if self.peek()[1] == "]":
            raise _error(self.text, "empty brackets '[]'")
        args = [parse_one()]
        while self.peek()[1] == ",":
            self.take(",")
            if self.peek()[1] == "]":
                break
            args.append(parse_one())
        return args

    def literal_value(self) -> Any:
        kind, raw = self.take()
        if kind == "string":
            return _unquote(raw)
        if kind == "number" and re.fullmatch(r"[-+]?\d+", raw):
            return int(raw)
        if kind == "name" and raw in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[raw]
        raise _error(self.text, f"Literal values must be quoted strings, integers, True, False "
                                f"or None; {raw!r} is not")

    def resolve(self, name: str) -> Any:
        if name in self.custom:
            return self.custom[name]
        short = name[len("typing."):] if name.startswith("typing.") else name
        if short in _SIMPLE:
            return _SIMPLE[short]
        if short in _SPECIAL:
            return short
        raise SignatureError(
            f"unknown type {name!r} in {self.text!r}: plait reads builtins (str, int, float, bool, "
            "list, dict, tuple, set), Any, Optional, Union and Literal by itself; for your own "
            f"types pass them by name, e.g. custom_types={{{name.split('.')[-1]!r}: "
            f"{name.split('.')[-1]}}}")

    def subscript(self, name: str, base: Any, args: list[Any]) -> Any:
        if not _is_special(base):
            return self.generic(name, base, args)
        if base == "Literal":
            return Literal[tuple(args)]
        if any(arg is Ellipsis for arg in args):
            raise _error(self.text, "'...' is only allowed as in tuple[int, ...]")
        if base == "Optional" and len(args) != 1:
            raise _error(self.text, f"Optional takes one type, got {len(args)}")
        try:
            return Optional[args[0]] if base == "Optional" else Union[tuple(args)]
        except TypeError as exc:  # a custom_types entry that is not a type
            raise _error(self.text, str(exc)) from None

    def generic(self, name: str, base: Any, args: list[Any]) -> Any:
        known = [arity for generic, arity in _ARITY.items() if generic is base]
        if not known:
            raise _error(self.text, f"{name} does not take type arguments")
        expected = known[0]
        ellipsis_at = [i for i, arg in enumerate(args) if arg is Ellipsis]
        if ellipsis_at and not (base is tuple and len(args) == 2 and ellipsis_at == [1]):
            raise _error(self.text, "'...' is only allowed as in tuple[int, ...]")
        if expected is not None and len(args) != expected:
            raise _error(self.text, f"{name}[...] takes {expected} type argument"
                                    f"{'s' if expected > 1 else ''}, got {len(args)}")
        return base[tuple(args)] if len(args) > 1 else base[args[0]]


def _is_special(base: Any) -> bool:
    return isinstance(base, str) and base in _SPECIAL


def _unquote(raw: str) -> str:
    # Our token regex only admits a quoted string with backslash escapes; decode the common
    # escapes ourselves (no eval).
    body = raw[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPE.sub(_decode_escape, body)


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _decode_escape(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) > 1:
        value = int(code[1:], 16)
        return chr(value) if value <= 0x10FFFF else match.group()
    return _SIMPLE_ESCAPES.get(code, match.group())


def parse_type(text: str, custom_types: Mapping[str, Any] | None = None) -> Any:
    """Parse a type expression such as ``"list[str]"`` or ``"Literal['yes', 'no']"``.

    ``custom_types`` maps names to your own types (an Enum, a pydantic model). Raises
    SignatureError naming the problem.
    """
    if not isinstance(text, str):
        raise SignatureError(f"a type expression must be a string, not {type(text).__name__}")
    return _Parser(text.strip(), custom_types or {}).parse()


def type_name(annotation: Any) -> str:
    """Text for an annotation that ``parse_type`` reads back: ``"list[str]"``, ``"Optional[int]"``."""
    if annotation is NoneType or annotation is None:
        return "None"
    if annotation is Any:
        return "Any"
    if annotation is Ellipsis:
        return "..."
    if isinstance(annotation, str):
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is Literal:
        return "Literal[" + ", ".join(repr(arg) for arg in args) + "]"
    if origin is Union or is_union(annotation):
        if len(args) == 2 and NoneType in args:
            other = args[0] if args[1] is NoneType else args[1]
            return f"Optional[{type_name(other)}]"
        return "Union[" + ", ".join(type_name(arg) for arg in args) + "]"
    if origin is not None:
        head = getattr(origin, "__name__", None) or str(origin)
        return f"{head}[{', '.join(type_name(arg) for arg in args)}]" if args else head
    name = getattr(annotation, "__name__", None)
    if isinstance(name, str):
        return name
    return repr(annotation)


def is_union(annotation: Any) -> bool:
    # ``int | None`` builds a types.UnionType (Python >= 3.10), not a typing.Union.
    union_type = getattr(types, "UnionType", None)
    return union_type is not None and isinstance(annotation, union_type)


def is_text(annotation: Any) -> bool:
    """True for annotations whose values are plain text (``str`` or ``Any``)."""
    return annotation is str or annotation is Any
