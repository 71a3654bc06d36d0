"""The subset of Marqo's filter DSL the Marqo conformance server understands.

Grammar (whitespace separates keywords; ``\\`` escapes the next character anywhere)::

    expression := and ("OR" and)*
    and        := unary ("AND" unary)*
    unary      := "NOT" unary | "(" expression ")" | term
    term       := field ":" ( "(" exact value ")" | "[" low "TO" high "]" | bare value )

A value matches a string field exactly, a boolean field when it is ``true``/``false``, a
numeric field when it parses to the same number, and a list field when the list holds it.
Ranges are numeric and inclusive (``*`` leaves an end open). Wildcards are not implemented.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]


def parse_filter(text: str) -> Predicate:
    """Parse a filter string into a predicate over a document's fields (ValueError if malformed)."""
    parser = _Parser(text)
    predicate = parser.expression()
    parser.skip_space()
    if parser.pos != len(text):
        raise ValueError(f"unexpected {text[parser.pos:]!r} in filter {text!r}")
    return predicate


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def keyword(self, word: str) -> bool:
        self.skip_space()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (end == len(self.text) or self.text[end].isspace()
                                                     or self.text[end] == "("):
            self.pos = end
            return True
        return False

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda doc: any(part(doc) for part in parts))

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("AND"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda doc: all(part(doc) for part in parts))

    def unary(self) -> Predicate:
        if self.keyword("NOT"):
            operand = self.unary()
            return lambda doc: not operand(doc)
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == "(":
            self.pos += 1
            inner = self.expression()
            self.skip_space()
            self.expect(")")
            return inner
        return self.term()

    def expect(self, char: str) -> None:
        if self.pos >= len(self.text) or self.text[self.pos] != char:
            raise ValueError(f"expected {char!r} at position {self.pos} in filter {self.text!r}")
        self.pos += 1

    def read_until(self, stops: str) -> str:
        """Read up to an unescaped character in ``stops`` (or whitespace when ' ' is in it), unescaping."""
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char in stops or (" " in stops and char.isspace()):
                break
            out.append(char)
            self.pos += 1
        return "".join(out)

    def term(self) -> Predicate:
        start = self.pos
        field = self.read_until(": ()")
        if not field:
            raise ValueError(f"expected a field name at position {start} in filter {self.text!r}")
        self.expect(":")
        if self.pos < len(self.text) and self.text[self.pos] == "(":
            self.pos += 1
            value = self.read_until(")")
            self.expect(")")
        elif self.pos < len(self.text) and self.text[self.pos] == "[":
            self.pos += 1
            bounds = self.read_until("]").split(" TO ")
            self.expect("]")
            if len(bounds) != 2:
                raise ValueError(f"a range is [low TO high], got {bounds!r} in filter {self.text!r}")
            return _range(field, bounds[0].strip(), bounds[1].strip())
        else:
            value = self.read_until(" )")
            if not value:
                raise ValueError(f"{field!r} has no value at position {self.pos} in filter {self.text!r}")
        if any(char in value for char in "*?") and "\\" not in self.text[start:self.pos]:
            raise ValueError("wildcards in filter values are not implemented by the conformance server")
        return lambda doc: _equals(doc.get(field), value)


def _equals(stored: Any, value: str) -> bool:
    if isinstance(stored, bool):
        return value.lower() in ("true", "false") and stored == (value.lower() == "true")
    if isinstance(stored, (int, float)):
        try:
            return float(value) == float(stored)
        except ValueError:
            return False
    if isinstance(stored, list):
        return value in stored
    return stored == value


def _range(field: str, low: str, high: str) -> Predicate:
    try:
        lower = None if low == "*" else float(low)
        upper = None if high == "*" else float(high)
    except ValueError as exc:
        raise ValueError(f"range bounds must be numbers or *, got {low!r} TO {high!r}") from exc

    def inside(doc: Mapping[str, Any]) -> bool:
        value = doc.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (lower is None or value >= lower) and (upper is None or value <= upper)

    return inside
