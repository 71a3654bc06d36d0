"""Finding values in LM text: words without decoration, JSON in prose or fences, bare lists."""

from __future__ import annotations

import json
import re
from typing import Any

_EDGE = " \t\r\n\"'`*"
_TRAILING = ".!,;:?"
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)```", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)]|\(\d{1,3}\))\s+")
_JSON = json.JSONDecoder(strict=False)  # LMs put raw newlines inside JSON strings


def clean_word(text: str) -> str:
    """Strip whitespace, quotes, markdown emphasis and trailing punctuation around a word."""
    return text.strip().strip(_EDGE).rstrip(_TRAILING).strip(_EDGE)


def shorten(text: str, limit: int = 80) -> str:
    """``repr`` of the text, cut at ``limit`` characters (for error messages)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def split_items(text: str) -> list[str]:
    """A bare list: one item per line (bullets and numbering removed), else comma separated."""
    text = text.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        return []
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        lines = [part for part in _BULLET.sub("", lines[0]).split(",") if part.strip()]
    return [_BULLET.sub("", line).strip() for line in lines]


def load_structured(text: str) -> tuple[bool, Any]:
    """JSON (or a Python literal) in the text: whole, inside a ``` fence, or after some prose."""
    candidate = text.strip()
    fenced = _FENCE.search(candidate)
    if fenced:
        candidate = fenced.group(1).strip()
    try:
        return True, _JSON.decode(candidate)
    except (ValueError, RecursionError):
        pass
    starts = [i for i in (candidate.find("["), candidate.find("{")) if i >= 0]
    if not starts:
        return False, None
    start = min(starts)
    try:
        return True, _JSON.raw_decode(candidate, start)[0]
    except (ValueError, RecursionError):
        pass
    try:  # LMs often answer with Python reprs: ['a', 'b'], {'k': None, 'x': True}
        return True, _JSON.raw_decode(_python_to_json(candidate[start:]))[0]
    except (ValueError, RecursionError):
        return False, None


_PY_TOKEN = re.compile(r"""'((?:[^'\\]|\\.)*)'|"(?:[^"\\]|\\.)*"|\b(True|False|None)\b|,(\s*[\]}])""",
                       re.DOTALL)
_PY_WORDS = {"True": "true", "False": "false", "None": "null"}


def _python_to_json(text: str) -> str:
    """Rewrite a Python literal's single-quoted strings, True/False/None, trailing commas as JSON."""
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:  # 'text' -> "text"
            body = re.sub(r"\\(.)", lambda m: m.group(1) if m.group(1) in "'\"" else m.group(),
                          match.group(1), flags=re.DOTALL)
            return '"' + body.replace('"', '\\"') + '"'
        if match.group(2):
            return _PY_WORDS[match.group(2)]
        if match.group(3) is not None:
            return match.group(3)
        return match.group()

    return _PY_TOKEN.sub(replace, text)
