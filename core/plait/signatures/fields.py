"""Fields of a signature: ``Field`` (a resolved field) and ``InputField``/``OutputField`` specs.

``InputField(desc=..., prefix=...)`` returns a ``FieldSpec``: what a class body or ``append``
says about a field before it has a name. The signature turns each spec into a ``Field`` once.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from plait.errors import SignatureError

FieldKind = Literal["input", "output"]

_EMPTY_EXTRA: Mapping[str, Any] = MappingProxyType({})

# Names a field may not take, because they would collide with the API of the objects that
# carry field values by attribute or keyword:
#   Example / Prediction methods and attributes (``pred.keys`` must stay the method),
#   keywords Predict/Module calls consume themselves (``predict(signature=..., demos=...)``),
#   and Signature attributes (``sig.instructions``, ``sig.fields``).
RESERVED_NAMES: frozenset[str] = frozenset({
    # Example / Prediction
    "inputs", "labels", "with_inputs", "keys", "values", "items", "get", "copy", "without",
    "toDict", "to_dict", "completions", "from_completions", "get_lm_usage", "set_lm_usage",
    # Predict / Module call keywords and methods
    "signature", "instructions", "demos", "config", "lm", "forward",
    # Signature attributes
    "fields", "input_fields", "output_fields",
})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field declared but not yet named: what ``InputField()``/``OutputField()`` return.

    ``prefix=None`` means "derive it from the field name". ``extra`` keeps keywords plait does
    not use itself (DSPy users pass ``default=``, ``json_schema_extra=`` ...), so nothing is lost.
    """

    kind: FieldKind
    desc: str = ""
    prefix: str | None = None
    format: Callable[[Any], str] | None = field(default=None, compare=False)
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_EXTRA, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("input", "output"):
            raise SignatureError(f"field kind must be 'input' or 'output', not {self.kind!r}")
        if not isinstance(self.desc, str):
            raise SignatureError(f"desc= must be a string, not {type(self.desc).__name__}")
        if self.prefix is not None and not isinstance(self.prefix, str):
            raise SignatureError(f"prefix= must be a string or None, not {type(self.prefix).__name__}")
        if self.format is not None and not callable(self.format):
            raise SignatureError("format= must be a callable that turns a value into text")

    def __reduce__(self) -> tuple[Any, ...]:  # a mappingproxy does not pickle; a dict does
        return (_make_spec, (self.kind, self.desc, self.prefix, self.format, dict(self.extra)))


def _make_spec(kind: FieldKind, desc: str | None, prefix: str | None,
               format: Callable[[Any], str] | None, extra: dict[str, Any]) -> FieldSpec:
    frozen_extra = MappingProxyType(dict(extra)) if extra else _EMPTY_EXTRA
    return FieldSpec(kind, "" if desc is None else desc, prefix, format, frozen_extra)


def InputField(*, desc: str | None = "", prefix: str | None = None,  # noqa: N802 - DSPy's name
               format: Callable[[Any], str] | None = None, **extra: Any) -> FieldSpec:
    """Declare an input field: ``question: str = InputField(desc="a trivia question")``."""
    return _make_spec("input", desc, prefix, format, extra)


def OutputField(*, desc: str | None = "", prefix: str | None = None,  # noqa: N802 - DSPy's name
                format: Callable[[Any], str] | None = None, **extra: Any) -> FieldSpec:
    """Declare an output field: ``answer: int = OutputField(desc="the final number")``."""
    return _make_spec("output", desc, prefix, format, extra)


@dataclass(frozen=True, slots=True)
class Field:
    """One resolved field of a signature. Immutable and hashable.

    Equality covers ``name, kind, annotation, desc, prefix`` (not ``format`` or ``extra``).
    """

    name: str
    kind: FieldKind
    annotation: Any = str
    desc: str = ""
    prefix: str = ""
    format: Callable[[Any], str] | None = field(default=None, compare=False)
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_EXTRA, compare=False, repr=False)

    def __hash__(self) -> int:
        # Some annotations (Annotated[...] with dict metadata) are unhashable; hash a stand-in.
        return hash((self.name, self.kind, _hashable(self.annotation), self.desc, self.prefix))

    @property
    def is_input(self) -> bool:
        return self.kind == "input"

    def __reduce__(self) -> tuple[Any, ...]:  # a mappingproxy does not pickle; a dict does
        return (_restore_field, (self.name, self.kind, self.annotation, self.desc, self.prefix,
                                 self.format, dict(self.extra)))


def _restore_field(name: str, kind: FieldKind, annotation: Any, desc: str, prefix: str,
                   format: Callable[[Any], str] | None, extra: dict[str, Any]) -> Field:
    return Field(name, kind, annotation, desc, prefix, format,
                 MappingProxyType(extra) if extra else _EMPTY_EXTRA)


def _hashable(annotation: Any) -> Any:
    try:
        hash(annotation)
    except TypeError:
        return repr(annotation)
    return annotation


def field_from_spec(name: str, spec: FieldSpec, annotation: Any = str) -> Field:
    """Name a ``FieldSpec``: fills the default prefix."""
    prefix = default_prefix(name) if spec.prefix is None else spec.prefix
    return Field(name, spec.kind, annotation, spec.desc, prefix, spec.format, spec.extra)


def _split_words(name: str) -> list[str]:
    """Split an identifier into words at ``_``, lower->Upper, "HTMLParser"-style and digit edges."""
    words: list[str] = []
    for part in name.split("_"):
        start = 0
        for i in range(1, len(part)):
            prev, cur = part[i - 1], part[i]
            nxt = part[i + 1] if i + 1 < len(part) else ""
            if ((prev.islower() and cur.isupper())
                    or (prev.isupper() and cur.isupper() and nxt.islower())
                    or (prev.isdigit() != cur.isdigit())):
                words.append(part[start:i])
                start = i
        if part[start:]:
            words.append(part[start:])
    return words


def default_prefix(name: str) -> str:
    """``"search_query"`` -> ``"Search Query:"``, ``"camelCase"`` -> ``"Camel Case:"``."""
    words = _split_words(name)
    if not words:
        return name + ":"
    return " ".join(word[:1].upper() + word[1:] for word in words) + ":"


def check_field_name(name: object, where: str) -> str:
    """Return ``name`` if it can be a field name; else raise SignatureError saying why.

    ``where`` is prepended to the message (e.g. "invalid signature 'a b -> c'").
    """
    if not isinstance(name, str):
        raise SignatureError(f"{where}: field names must be strings, not {type(name).__name__}")
    if not name:
        raise SignatureError(f"{where}: a field name is empty; check for a stray or doubled comma")
    if any(ch.isspace() for ch in name):
        raise SignatureError(
            f"{where}: field name {name!r} contains a space; separate fields with commas "
            f"({', '.join(name.split())!r}) or join the words with an underscore "
            f"({'_'.join(name.split())!r})")
    if not name.isidentifier():
        raise SignatureError(
            f"{where}: field name {name!r} is not a valid Python identifier; use letters, digits "
            "and underscores, not starting with a digit (e.g. 'search_query')")
    if keyword.iskeyword(name):
        raise SignatureError(
            f"{where}: field name {name!r} is a Python keyword; rename it (e.g. '{name}_')")
    if name.startswith("_"):
        raise SignatureError(
            f"{where}: field name {name!r} starts with '_', which plait keeps for private "
            "attributes; rename it without the leading underscore")
    if name in RESERVED_NAMES:
        raise SignatureError(
            f"{where}: field name {name!r} is reserved (it collides with the API of Example, "
            f"Prediction, Predict or Signature); rename it, e.g. '{name}_text' or 'my_{name}'")
    return name
