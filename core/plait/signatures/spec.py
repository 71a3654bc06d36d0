"""The data behind a Signature (``SignatureSpec``) and the three ways to build one.

A spec is computed once per signature string (cached), per class (in ``__init_subclass__``)
or per edit; everything a hot path reads from it is precomputed here.
"""

from __future__ import annotations

import functools
import sys
import typing
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from plait.errors import SignatureError
from plait.signatures.fields import Field, FieldSpec, check_field_name, default_prefix, field_from_spec
from plait.signatures.typeexpr import parse_type, type_name


class SignatureSpec:
    """Immutable, precomputed contents of a signature. ``attrs`` becomes the instances' ``__dict__``."""

    __slots__ = ("instructions", "fields", "input_fields", "output_fields", "input_names",
                 "output_names", "signature", "default_instructions", "key", "hash", "attrs")

    def __init__(self, fields: Iterable[Field], instructions: str | None, where: str):
        ordered = _order_and_check(list(fields), where)
        inputs = {f.name: f for f in ordered if f.kind == "input"}
        outputs = {f.name: f for f in ordered if f.kind == "output"}
        self.input_fields = MappingProxyType(inputs)
        self.output_fields = MappingProxyType(outputs)
        self.fields = MappingProxyType({**inputs, **outputs})
        self.input_names = tuple(inputs)
        self.output_names = tuple(outputs)
        self.signature = f"{', '.join(inputs)} -> {', '.join(outputs)}"
        if instructions is None:
            instructions = default_instructions(self.input_names, self.output_names)
            self.default_instructions = True
        elif not isinstance(instructions, str):
            raise SignatureError(f"{where}: instructions must be a string, not "
                                 f"{type(instructions).__name__}")
        else:
            self.default_instructions = False
        self.instructions = instructions
        self.key = (instructions, tuple((f.name, f.kind, f.annotation, f.desc, f.prefix)
                                        for f in self.fields.values()))
        self.hash = hash((instructions, tuple(self.fields.values())))
        self.attrs = {
            "_spec": self, "instructions": instructions, "fields": self.fields,
            "input_fields": self.input_fields, "output_fields": self.output_fields,
            "input_names": self.input_names, "output_names": self.output_names,
            "signature": self.signature,
        }

    def replace(self, fields: Iterable[Field] | None = None, instructions: str | None = None,
                where: str = "invalid signature edit") -> SignatureSpec:
        """A new spec; default instructions follow the fields unless they were set explicitly."""
        if instructions is None and not self.default_instructions:
            instructions = self.instructions
        return SignatureSpec(self.fields.values() if fields is None else fields, instructions, where)


def default_instructions(inputs: tuple[str, ...], outputs: tuple[str, ...]) -> str:
    """``Given the fields `a`, `b`, produce the fields `c`.``"""
    given = ", ".join(f"`{name}`" for name in inputs)
    produce = ", ".join(f"`{name}`" for name in outputs)
    if not given:
        return f"Produce the fields {produce}." if produce else ""
    return f"Given the fields {given}, produce the fields {produce}."


def _order_and_check(fields: list[Field], where: str) -> list[Field]:
    seen: dict[str, str] = {}
    for field in fields:
        if not isinstance(field, Field):
            raise SignatureError(f"{where}: expected Field objects, got {type(field).__name__}")
        check_field_name(field.name, where)
        if field.name in seen:
            both = "an input and an output" if seen[field.name] != field.kind else f"two {field.kind}s"
            raise SignatureError(f"{where}: field {field.name!r} appears twice ({both}); "
                                 "give every field a distinct name")
        seen[field.name] = field.kind
    return [f for f in fields if f.kind == "input"] + [f for f in fields if f.kind == "output"]


# --- string form ----------------------------------------------------------------------

def split_top_level(text: str, separator: str, brackets: bool = True) -> list[str]:
    """Split at ``separator`` outside quotes and (if ``brackets``) brackets.

    Commas inside ``dict[str, int]`` or ``Literal['a,b']`` do not split fields; ``->`` splits
    anywhere but inside quotes, so an unclosed bracket is reported by the type parser.
    """
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif brackets and char in "[({":
            depth += 1
        elif brackets and char in "])}":
            depth = max(depth - 1, 0)
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return parts


@functools.lru_cache(maxsize=1024)
def spec_from_string(text: str, instructions: str | None,
                     custom_types: tuple[tuple[str, Any], ...] = ()) -> SignatureSpec:
    """Parse ``"question: str, k: int -> answers: list[str]"`` (cached: specs are immutable)."""
    where = f"invalid signature {text!r}"
    example = "write it as 'inputs -> outputs', e.g. 'context, question -> answer'"
    if not text.strip():
        raise SignatureError(f"{where}: the signature is empty; {example}")
    sides = split_top_level(text, "->", brackets=False)
    if len(sides) == 1:
        raise SignatureError(f"{where}: '->' is missing between the inputs and the outputs; {example}")
    if len(sides) > 2:
        raise SignatureError(f"{where}: it has {len(sides) - 1} '->' but needs exactly one; {example}")
    if not sides[0].strip():
        raise SignatureError(f"{where}: there are no input fields before '->'; name at least one, "
                             "e.g. 'question -> answer'")
    if not sides[1].strip():
        raise SignatureError(f"{where}: there are no output fields after '->'; name at least one, "
                             "e.g. 'question -> answer'")
    types = dict(custom_types)
    fields = []
    for kind, side in (("input", sides[0]), ("output", sides[1])):
        for item in split_top_level(side, ","):
            name, colon, type_text = item.partition(":")
            name = check_field_name(name.strip(), where)
            annotation: Any = str
            if colon:
                if not type_text.strip():
                    raise SignatureError(f"{where}: field {name!r} has ':' but no type after it; "
                                         f"write e.g. '{name}: str' or drop the ':'")
                try:
                    annotation = parse_type(type_text, types)
                except SignatureError as exc:
                    raise SignatureError(f"{where}: field {name!r}: {exc}") from None
            fields.append(Field(name, kind, annotation, "", default_prefix(name)))  # type: ignore[arg-type]
    return SignatureSpec(fields, instructions, where)


def custom_types_key(custom_types: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    if custom_types is None:
        return ()
    if not isinstance(custom_types, Mapping) or not all(isinstance(k, str) for k in custom_types):
        raise SignatureError("custom_types must be a dict of type names to types, e.g. "
                             "custom_types={'Color': Color}")
    return tuple(custom_types.items())


# --- dict form (DSPy's make_signature) ------------------------------------------------

def spec_from_dict(spec: Mapping[str, Any], instructions: str | None,
                   custom_types: Mapping[str, Any] | None) -> SignatureSpec:
    """``{"question": (str, InputField()), "answer": OutputField()}``."""
    where = "invalid signature dict"
    fields = []
    for name, value in spec.items():
        annotation: Any = str
        if isinstance(value, tuple) and len(value) == 2:
            annotation, value = value
            if isinstance(annotation, str):
                annotation = parse_type(annotation, custom_types)
        if not isinstance(value, FieldSpec):
            raise SignatureError(f"{where}: the value for {name!r} must be InputField()/OutputField() "
                                 "or a (type, InputField()) pair, not "
                                 f"{type(value).__name__}")
        fields.append(field_from_spec(check_field_name(name, where), value, annotation))
    return SignatureSpec(fields, instructions, where)


# --- class form -----------------------------------------------------------------------

def spec_from_class(cls: type, bases: list[SignatureSpec]) -> SignatureSpec:
    """Fields declared in a class body (``question: str = InputField()``), after the bases' ones.

    Removes the FieldSpec class attributes so they do not shadow the signature's attributes.
    """
    import inspect

    where = f"invalid signature class {cls.__qualname__}"
    raw = inspect.get_annotations(cls)
    declared = [(name, value) for name, value in cls.__dict__.items() if isinstance(value, FieldSpec)]
    declared_names = {name for name, _ in declared}
    for name, annotation in raw.items():
        if name in declared_names or name.startswith("_") or _is_classvar(annotation):
            continue
        raise SignatureError(
            f"{where}: {name!r} has a type but is not declared as a field; write "
            f"'{name}: {type_name(annotation)} = InputField()' (or OutputField()), or mark "
            "it ClassVar[...] if it is a plain class attribute")
    hints = _resolve_string_annotations(cls, raw, declared_names)
    own = []
    for name, spec in declared:
        check_field_name(name, where)
        annotation = hints.get(name, raw.get(name, str))
        if isinstance(annotation, str):
            annotation = _fallback_parse(cls, name, annotation, where)
        own.append(field_from_spec(name, spec, annotation))
    for name in declared_names:
        delattr(cls, name)

    merged: dict[str, Field] = {}
    for base in bases:
        for field in base.fields.values():
            merged.setdefault(field.name, field)
    for field in own:
        merged[field.name] = field  # a subclass redeclaring a field replaces it in place

    doc = cls.__dict__.get("__doc__")
    if isinstance(doc, str) and doc.strip():
        instructions: str | None = inspect.cleandoc(doc)
    else:
        explicit = [base for base in bases if not base.default_instructions]
        instructions = explicit[0].instructions if explicit else None
    return SignatureSpec(merged.values(), instructions, where)


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar


def _resolve_string_annotations(cls: type, raw: dict[str, Any], names: set[str]) -> dict[str, Any]:
    if not any(isinstance(raw.get(name), str) for name in names):
        return {}
    try:  # `from __future__ import annotations`: evaluate in the class's module
        return typing.get_type_hints(cls)
    except Exception:  # one unresolvable name fails them all; resolve field by field below
        return {}


def _fallback_parse(cls: type, name: str, text: str, where: str) -> Any:
    module = sys.modules.get(cls.__module__)
    known = {key: value for key, value in vars(module).items() if isinstance(value, type)} if module else {}
    try:
        return parse_type(text, known)
    except SignatureError:
        raise SignatureError(
            f"{where}: cannot resolve the type {text!r} of field {name!r}. With `from __future__ "
            "import annotations` annotations are text, resolved in the module's globals: define "
            "or import the types it names at module level (a class defined inside a function "
            "cannot be found), or drop the __future__ import") from None
