"""Typed values for signature fields: LM text -> value (``parse_value``) and back (``format_value``).

Parsing is lenient where LMs are sloppy (case, quotes, markdown, a number inside a short
sentence, JSON inside a code fence, a bulleted list) and strict where a guess could be wrong
(two numbers in the text, an option that is not among a Literal's values). Failures raise
ValueError saying what was expected; adapters feed that message back to the LM.

Formatting (for prompts and demos): ``str`` values as they are, Enums as their value, anything
else as JSON (``json.dumps``, non-ASCII kept). pydantic is imported only when a value needs it.
"""

from __future__ import annotations

import copy
import enum
import functools
import json
import math
import re
import typing
from typing import Any, Literal, Union

from plait.retrieve.passage import Passage
from plait.signatures.textscan import clean_word, load_structured, shorten, split_items
from plait.signatures.typeexpr import NoneType, is_text, is_union, parse_type, type_name

__all__ = ["parse_type", "type_name", "is_text", "parse_value", "format_value", "json_schema"]

_NULLS = frozenset({"", "none", "null", "nil", "n/a"})
_TRUE = frozenset({"true", "yes", "y"})
_FALSE = frozenset({"false", "no", "n"})
# One number: optional sign, thousands separators, decimals, exponent; not glued to a word.
_NUMBER = re.compile(r"(?<![\w.])(?<!\d,)[-+]?(?:\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?:\.\d+)?"
                     r"(?:[eE][-+]?\d+)?(?![\w]|[.,]\d)", re.ASCII)
_SCALARS = (str, int, float, bool)


def parse_value(text: str, annotation: Any) -> Any:
    """Turn the LM's text for one field into a value of ``annotation``'s type.

    Raises ValueError saying what was expected, e.g. ``expected an integer, got 'many'``.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_value() takes the LM's text, not {type(text).__name__}")
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return parse_value(text, typing.get_args(annotation)[0])
    if annotation is str:
        return text.strip()
    if annotation is Any or annotation is object:
        return text.strip()
    if annotation is bool:
        return _parse_bool(text)
    if annotation is int or annotation is float:
        return _parse_number(text, annotation)
    if annotation is NoneType or annotation is None:
        if clean_word(text).lower() in _NULLS:
            return None
        raise ValueError(f"expected None (null), got {shorten(text)}")
    if annotation is bytes:
        return text.strip().encode()
    if origin is Literal:
        return _parse_literal(text, typing.get_args(annotation))
    if origin is Union or is_union(annotation):
        return _parse_union(text, typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _parse_enum(text, annotation)
    container = origin if origin is not None else annotation
    if container in (list, set, frozenset, tuple):
        return _parse_sequence(text, annotation, container)
    found, value = load_structured(text)
    if not found:
        raise ValueError(f"expected {_describe(annotation)} as JSON, got {shorten(text)}")
    return _coerce(value, annotation)


def _parse_bool(text: str) -> bool:
    word = clean_word(text).lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false or yes/no), got {shorten(text)}")


def _parse_number(text: str, kind: type) -> int | float:
    what = "an integer" if kind is int else "a number"
    cleaned = clean_word(text)
    try:
        direct: int | float = int(cleaned) if kind is int else float(cleaned)
    except ValueError:
        matches = _NUMBER.findall(cleaned)
        if len(matches) != 1:
            found = f" (found {len(matches)} numbers; answer with just one)" if matches else ""
            raise ValueError(f"expected {what}, got {shorten(text)}{found}") from None
        token = matches[0].replace(",", "")
        try:
            direct = int(token) if kind is int and token.lstrip("+-").isdigit() else float(token)
        except ValueError:  # more digits than int() converts
            raise ValueError(f"expected {what}, got {shorten(text)} (too many digits)") from None
    if kind is float:
        return float(direct)
    if isinstance(direct, float):
        if not math.isfinite(direct) or not direct.is_integer():
            raise ValueError(f"expected {what}, got {shorten(text)}")
        return int(direct)
    return direct


def _parse_literal(text: str, options: tuple[Any, ...]) -> Any:
    raw = text.strip()
    for option in options:  # exact first: Literal['Yes.', 'Yes'] keeps its punctuation
        if isinstance(option, str) and option == raw:
            return option
    word = clean_word(text).strip("[]()").lower()
    for option in options:
        if option is None:
            if word in _NULLS:
                return None
        elif str(option).lower() == word:
            return option
    leading = _leading_option(word, options)
    if leading is not _NO_OPTION:
        return leading
    listed = ", ".join(repr(option) for option in options)
    raise ValueError(f"expected one of {listed}, got {shorten(text)}")


_NO_OPTION = object()
# After a leading option: a parenthesis, a full stop or a new line, then anything (small LMs add
# "(exactly one of: ...)" or a reason). " or ...", ", ..." and "/" stay ambiguous.
_AFTER_OPTION = re.compile(r"\s*(?:[(\[]|[.:;!-]\s|\n)")


def _leading_option(word: str, options: tuple[Any, ...]) -> Any:
    """The one option ``word`` starts with, followed by an aside; ``_NO_OPTION`` otherwise."""
    found = [option for option in options if option is not None and word.startswith(str(option).lower())
             and _AFTER_OPTION.match(word, len(str(option)))]
    if not found:
        return _NO_OPTION
    return max(found, key=lambda option: len(str(option)))   # "very positive" over "very"


def _parse_enum(text: str, enum_type: type[enum.Enum]) -> enum.Enum:
    word = clean_word(text).lower()
    prefix = enum_type.__name__.lower() + "."
    if word.startswith(prefix):
        word = word[len(prefix):]
    for member in enum_type:
        if str(member.value).lower() == word or member.name.lower() == word:
            return member
    listed = ", ".join(repr(member.value) for member in enum_type)
    raise ValueError(f"expected one of {listed} ({enum_type.__name__}), got {shorten(text)}")


def _parse_union(text: str, members: tuple[Any, ...]) -> Any:
    if NoneType in members and clean_word(text).lower() in _NULLS:
        return None
    # Text always parses as str, so try the other members first ("42" -> 42 for int | str).
    ordered = [m for m in members if m is not NoneType and not is_text(m)]
    ordered += [m for m in members if m is not NoneType and is_text(m)]
    errors = []
    for member in ordered:
        try:
            return parse_value(text, member)
        except ValueError as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise ValueError(errors[0] + (" (or None)" if NoneType in members else ""))
    raise ValueError(f"expected {_describe(Union[members])}, got {shorten(text)}")


def _parse_sequence(text: str, annotation: Any, container: type) -> Any:
    found, value = load_structured(text)
    if found and isinstance(value, dict) and len(value) == 1:
        only = next(iter(value.values()))  # {"items": [...]}: a JSON answer wrapped once
        value = only if isinstance(only, list) else value
    if found and isinstance(value, (list, tuple, set, frozenset)):
        return _coerce(value, annotation)
    if found and isinstance(value, dict):
        raise ValueError(f"expected {_describe(annotation)} as a JSON array, got a JSON object")
    item_types = _item_types(annotation)
    if not all(_is_scalar(t) for t in item_types if t is not Ellipsis):
        raise ValueError(f"expected {_describe(annotation)} as a JSON array, got {shorten(text)}")
    return _coerce(split_items(text), annotation)


def _item_types(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation) or (Any,)


def _is_scalar(annotation: Any) -> bool:
    if annotation in _SCALARS or annotation is Any:
        return True
    if typing.get_origin(annotation) is Literal:
        return True
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def _describe(annotation: Any) -> str:
    return f"a value of type {type_name(annotation)}"


# --- JSON-decoded values -> the annotation's type ---------------------------------------

def _coerce(value: Any, annotation: Any, where: str = "") -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _coerce(value, args[0], where)
    if annotation is Any or annotation is object:
        return value
    if annotation is str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                               default=str)
    if isinstance(value, str) and _is_scalar(annotation) or annotation is NoneType:
        return _at(where, parse_value, value if isinstance(value, str) else json.dumps(value),
                   annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        return _fail(where, f"expected a boolean, got {value!r}")
    if annotation is int or annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _fail(where, f"expected {'an integer' if annotation is int else 'a number'}, "
                                f"got {value!r}")
        if annotation is float:
            return float(value)
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return _fail(where, f"expected an integer, got {value!r}")
        return int(value)
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return _at(where, parse_value, json.dumps(value) if value is None else str(value),
                   annotation)
    if origin is Union or is_union(annotation):
        return _coerce_union(value, args, where)
    container = origin if origin is not None else annotation
    if container in (list, set, frozenset, tuple):
        return _coerce_sequence(value, annotation, container, args, where)
    if container is dict:
        if not isinstance(value, dict):
            return _fail(where, f"expected a JSON object, got {shorten(repr(value))}")
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return {_coerce(k, key_type, f"{where}key {k!r}: "): _coerce(v, value_type, f"{where}[{k!r}]: ")
                for k, v in value.items()}
    return _validate_with_pydantic(value, annotation, where)


def _coerce_union(value: Any, members: tuple[Any, ...], where: str) -> Any:
    if value is None and NoneType in members:
        return None
    errors = []
    for member in sorted((m for m in members if m is not NoneType), key=is_text):
        try:
            return _coerce(value, member, where)
        except ValueError as exc:
            errors.append(str(exc))
    return _fail(where, "; or ".join(errors) or f"expected None, got {value!r}")


def _coerce_sequence(value: Any, annotation: Any, container: type, args: tuple[Any, ...],
                     where: str) -> Any:
    if not isinstance(value, (list, tuple, set, frozenset)):
        return _fail(where, f"expected {_describe(annotation)}, got {shorten(repr(value))}")
    items = list(value)
    if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            return _fail(where, f"expected {len(args)} items for {type_name(annotation)}, "
                                f"got {len(items)}")
        return tuple(_coerce(item, t, f"{where}item {i}: ")
                     for i, (item, t) in enumerate(zip(items, args)))
    item_type = args[0] if args else Any
    coerced = [_coerce(item, item_type, f"{where}item {i}: ") for i, item in enumerate(items)]
    try:
        return coerced if container is list else container(coerced)
    except TypeError:  # unhashable items for a set
        return _fail(where, f"expected hashable items for {type_name(annotation)}")


def _at(where: str, func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except ValueError as exc:
        if not where:
            raise
        raise ValueError(f"{where}{exc}") from None


def _fail(where: str, message: str) -> Any:
    raise ValueError(f"{where}{message}")


def _validate_with_pydantic(value: Any, annotation: Any, where: str) -> Any:
    try:
        adapter = _type_adapter(annotation)
    except Exception as exc:  # pydantic cannot build a validator for this type
        raise ValueError(f"{where}cannot parse values of type {type_name(annotation)}: {exc}") from None
    try:
        return adapter.validate_python(value)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"{where}expected {_describe(annotation)}: {_summary(exc)}") from None


def _summary(exc: ValueError) -> str:
    """pydantic's errors on one line each ("a: Input should be a valid integer"), no URLs."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    try:
        items = errors(include_url=False)
    except TypeError:
        return str(exc)
    return "; ".join(f"{'.'.join(str(part) for part in item.get('loc', ())) or 'value'}: "
                     f"{item.get('msg', '')}" for item in items)


@functools.lru_cache(maxsize=256)
def _type_adapter(annotation: Any) -> Any:
    from pydantic import TypeAdapter  # lazily: importing plait must not import pydantic

    return TypeAdapter(annotation)


# --- value -> text, and JSON schemas --------------------------------------------------

def format_value(value: Any, annotation: Any = str) -> str:
    """Text for a value in a prompt: str as is, an Enum as its value, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, enum.Enum):
        return format_value(value.value, annotation)
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, Passage) for item in value):
        # retrieved context reads best as numbered quotes, not as JSON objects
        return "\n".join(f"[{i}] «{item.text}»" for i, item in enumerate(value, 1))
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def json_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema for an annotation (pydantic's), e.g. ``{"type": "integer"}``.

    Cached per annotation; each call returns a fresh copy the caller may change.
    """
    try:
        schema = _cached_schema(annotation)
    except TypeError:  # unhashable annotation: compute without the cache
        schema = _type_adapter.__wrapped__(annotation).json_schema()
    return copy.deepcopy(schema)


@functools.lru_cache(maxsize=256)
def _cached_schema(annotation: Any) -> dict[str, Any]:
    return _type_adapter(annotation).json_schema()
