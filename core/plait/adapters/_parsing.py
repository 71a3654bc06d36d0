"""Helpers shared by the adapters: per-field facts computed once, value rendering, lenient
typed parsing, marker / label sectioning and tolerant JSON object extraction.

Everything that depends only on the signature is computed once (``FieldInfo``, regexes) and
cached by the adapter; the functions here that run per call are plain string work.
"""

from __future__ import annotations

import ast
import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from plait.signatures.types import format_value, is_text, json_schema, parse_value, type_name

_NONE_TYPE = type(None)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What an adapter needs to know about one field, computed once per signature."""

    name: str
    annotation: Any
    text: bool                                  # str-like: the raw text is the value
    label: str                                  # the prefix without its colon: "Search Query"
    desc: str
    type_name: str                              # "int", "list[str]", "Answer" ...
    hint: str                                   # "a single int value"; "" for text fields
    render: Callable[[Any], str] | None         # the field's own format= callable
    optional: bool                              # None is an accepted value


def normalize_key(name: str) -> str:
    """``" Search-Query "`` -> ``"search_query"``: how marker names and JSON keys are compared."""
    return "_".join(name.strip().strip("*_`'\"").lower().replace("-", " ").split())


def field_infos(fields: Mapping[str, Any]) -> tuple[FieldInfo, ...]:
    return tuple(_field_info(field) for field in fields.values())


def _field_info(field: Any) -> FieldInfo:
    annotation = field.annotation
    text = bool(is_text(annotation))
    label = (field.prefix or "").strip().rstrip(":").strip() or field.name
    args = get_args(annotation)
    optional = annotation is None or (_is_union(annotation) and _NONE_TYPE in args)
    return FieldInfo(field.name, annotation, text, label, field.desc or "", type_name(annotation),
                     "" if text else type_hint(annotation), field.format, optional)


def keys_for(infos: Iterable[FieldInfo]) -> dict[str, FieldInfo]:
    """Normalized name and normalized label -> field (``"final_answer"`` finds ``answer``)."""
    keys: dict[str, FieldInfo] = {}
    for info in infos:
        keys.setdefault(normalize_key(info.label), info)
        keys[normalize_key(info.name)] = info   # the name wins over another field's label
    return keys


def _is_union(annotation: Any) -> bool:
    origin = get_origin(annotation)
    return origin is Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType")


def type_hint(annotation: Any) -> str:
    """A short instruction saying what a value of ``annotation`` must look like."""
    if annotation is int:
        return "a single int value"
    if annotation is float:
        return "a single float value"
    if annotation is bool:
        return "True or False"
    origin = get_origin(annotation)
    if origin is Literal:
        return "exactly one of: " + "; ".join(str(choice) for choice in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "exactly one of: " + "; ".join(str(member.value) for member in annotation)
    if _is_union(annotation):
        options = [arg for arg in get_args(annotation) if arg is not _NONE_TYPE]
        hint = type_hint(options[0]) if len(options) == 1 else f"a {type_name(annotation)} value"
        return hint + ", or None" if _NONE_TYPE in get_args(annotation) else hint
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set):
        return f"a JSON array ({type_name(annotation)})"
    if origin is dict or annotation is dict:
        return f"a JSON object ({type_name(annotation)})"
    if hasattr(annotation, "model_json_schema"):   # a pydantic model, without importing pydantic
        return f"a JSON object matching this schema: {json.dumps(json_schema(annotation))}"
    return f"a single {type_name(annotation)} value"


# --- rendering values ---------------------------------------------------------------------

def render_value(info: FieldInfo, value: Any) -> str:
    """An input or output value as prompt text (str as is, the rest through format_value)."""
    if info.render is not None:
        return info.render(value)
    if type(value) is str:
        return value
    try:
        return format_value(value, info.annotation)
    except (TypeError, ValueError):
        return str(value)


def present(values: Mapping[str, Any], name: str) -> bool:
    """A demo "has" a field when the key is there and not None."""
    return name in values and values[name] is not None


# --- typed parsing ------------------------------------------------------------------------

def short(text: str, limit: int = 160) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


_FENCE = re.compile(r"^```[\w-]*[ \t]*\n?(.*?)\n?```\s*$", re.S)


def _candidates(raw: str) -> Iterable[str]:
    """Cleaner variants of a value tried when the raw text does not parse (small models add
    markdown, quotes, a trailing period or a second line of chatter)."""
    text = raw.strip()
    fence = _FENCE.match(text)
    if fence:
        text = fence.group(1).strip()
        yield text
    plain = text.strip("*_` \t").rstrip(".").strip("*_` \t")
    yield plain
    if len(plain) >= 2 and plain[0] == plain[-1] and plain[0] in "'\"":
        yield plain[1:-1]
    for cut in ("\n\n", "\n"):
        head = plain.split(cut, 1)[0].strip()
        if head != plain:
            yield head.strip("*_` \t").rstrip(".")


class FieldValueError(ValueError):
    """A field's text did not parse as its type (the message names field, type and value)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def parse_typed(info: FieldInfo, raw: str) -> Any:
    """The typed value of ``raw`` for ``info``; text fields return the stripped text."""
    if info.text:
        return raw.strip()
    text = raw.strip()
    if info.optional and text.lower() in ("none", "null", ""):
        return None
    try:
        return parse_value(text, info.annotation)
    except (ValueError, TypeError) as exc:
        first = exc
    for candidate in _candidates(text):
        if candidate and candidate != text:
            try:
                return parse_value(candidate, info.annotation)
            except (ValueError, TypeError):
                continue
    reason = str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__
    raise FieldValueError(f"field `{info.name}` expects {info.type_name}, but the answer was "
                          f"{short(text)!r}: {reason}", info.name)


def from_json_value(info: FieldInfo, value: Any) -> Any:
    """A value taken from a parsed JSON object, typed for ``info``.

    A text field accepts any JSON value: strings as they are, null as None when the field is
    optional (else ""), lists/objects through ``json.dumps`` and numbers/booleans through ``str``.
    """
    if info.text:
        if isinstance(value, str):
            return value
        if value is None:
            return None if info.optional else ""
        if isinstance(value, (list, dict)):
            return json.dumps(value, ensure_ascii=False)
        return str(value)
    annotation, kind = info.annotation, type(value)
    if (annotation is int and kind is int) or (annotation is bool and kind is bool):
        return value
    if annotation is float and kind in (int, float):
        return float(value)
    if value is None and info.optional:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return parse_typed(info, text)


def to_jsonable(info: FieldInfo, value: Any) -> Any:
    """A Python value as a JSON-native value (models dumped, sets listed)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError):
        return render_value(info, value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --- sections by markers or labels --------------------------------------------------------

# "[[ ## name ## ]]" with any spacing or case, optionally wrapped in markdown ("### ", "**").
MARKER_RE = re.compile(r"[ \t]*[#*_>`]*[ \t]*\[\[[ \t]*#*[ \t]*([^\[\]#\n]*?)[ \t]*#*[ \t]*\]\]"
                       r"[*_`:]*[ \t]*\n?")


def marker_sections(text: str, keys: Mapping[str, FieldInfo]) -> dict[str, str]:
    """field name -> raw text after its ``[[ ## name ## ]]`` marker up to the next marker.

    Unknown markers (input echoes, ``completed``) end the section before them; the first
    occurrence of a field wins.
    """
    return label_sections(text, MARKER_RE, keys)


def label_regex(infos: Iterable[FieldInfo], *, colon_required: bool) -> re.Pattern[str]:
    """A line-start regex for "Label: value" (also ``**Label:**``, ``- Label:``, ``## Label``).

    Group 1 is the label as written; map it with ``normalize_key``. Without ``colon_required``
    a line holding only the label (a markdown heading style) also counts.
    """
    names: set[str] = set()
    for info in infos:
        for name in (info.label, info.name):
            words = normalize_key(name).split("_")
            names.add(r"[ \t_-]+".join(re.escape(word) for word in words))
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    end = r"[ \t]*:[*_`]{0,2}[ \t]?" if colon_required else \
        r"(?:[ \t]*:[*_`]{0,2}[ \t]?|[ \t]*(?=\n|$))"
    return re.compile(r"^[ \t]*(?:[-*>][ \t]+)?(?:#{1,6}[ \t]*)?[*_`]{0,2}(" + alternatives
                      + r")[*_`]{0,2}" + end, re.I | re.M)


def label_sections(text: str, regex: re.Pattern[str], keys: Mapping[str, FieldInfo]) -> dict[str, str]:
    """field name -> raw text after its "Label:" line start up to the next recognised label."""
    sections: dict[str, str] = {}
    current: str | None = None
    start = 0
    for match in regex.finditer(text):
        if current is not None:
            sections[current] = text[start:match.start()]
        info = keys.get(normalize_key(match.group(1)))
        current = info.name if info is not None and info.name not in sections else None
        start = match.end()
    if current is not None:
        sections[current] = text[start:]
    return sections


# --- JSON objects in prose ----------------------------------------------------------------

_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def find_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: inside a code fence, after prose, or with small
    slips (trailing commas, Python-style quotes/True/None). None when there is none."""
    stripped = text.strip()
    if stripped[:1] == "{" and stripped[-1:] == "}":   # the usual case: just the object
        try:
            value = json.loads(stripped)
        except ValueError:
            pass
        else:
            if isinstance(value, dict):
                return value
    start = text.find("{")
    while start != -1:
        end = _balanced_end(text, start)
        if end == -1:
            return None
        obj = _load_object(text[start:end])
        if obj is not None:
            return obj
        start = text.find("{", start + 1)
    return None


def _balanced_end(text: str, start: int) -> int:
    """Index just after the brace matching ``text[start]``, skipping strings; -1 if none."""
    depth = 0
    quote = ""
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char if char == '"' or _opens_single_quote(text, index) else ""
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return -1


def _opens_single_quote(text: str, index: int) -> bool:
    # An apostrophe inside a word ("don't") is not a Python-style string quote.
    before = text[index - 1] if index else " "
    return not before.isalnum()


def _load_object(candidate: str) -> dict[str, Any] | None:
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            value = json.loads(attempt)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    try:
        value = ast.literal_eval(candidate)   # {'answer': 'x', 'ok': True}: small models do this
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    return value if isinstance(value, dict) else None
