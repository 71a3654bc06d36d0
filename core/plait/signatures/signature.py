"""``Signature``: what an LM step takes and returns, as an immutable value.

Three ways to write one::

    Signature("context, question -> answer")
    Signature("question: str, k: int -> answers: list[str]", "Answer briefly.")

    class QA(Signature):
        \"\"\"Answer briefly.\"\"\"
        question: str = InputField(desc="a trivia question")
        answer: int = OutputField()

The class form is computed once in ``__init_subclass__`` (no metaclass): ``QA.fields`` and
``QA.with_instructions(...)`` work on the class through two small descriptors, and ``QA()`` is
the equal instance. Every edit returns a new signature; instances never change.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

from plait.errors import SignatureError
from plait.signatures.fields import Field, FieldSpec, default_prefix, field_from_spec
from plait.signatures.spec import (SignatureSpec, custom_types_key, default_instructions,
                                   spec_from_class, spec_from_dict, spec_from_string)
from plait.signatures.typeexpr import parse_type, type_name

_UNSET: Any = object()
_CHANGEABLE = ("desc", "prefix", "annotation", "format")


class _SpecAttribute:
    """Reads one precomputed attribute on a class-form signature (``QA.fields``).

    A non-data descriptor: instances carry the same values in their ``__dict__``, which wins.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        spec = getattr(owner, "_class_spec", None)
        if spec is None:
            raise AttributeError(f"{getattr(owner, '__name__', 'Signature')} has no {self.name}: "
                                 "build a signature first, e.g. Signature('question -> answer')")
        return getattr(spec, self.name)


class _SignatureMethod:
    """A method that also works on a class-form signature: ``QA.append(...)`` acts on ``QA()``."""

    def __init__(self, func: Callable[..., Any]):
        self.func = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__wrapped__ = func

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            instance = getattr(owner, "_class_instance", None)
            if instance is None:  # plain ``Signature.append``: the unbound function
                return self.func
            obj = instance
        return types.MethodType(self.func, obj)


def _new(cls: type, spec: SignatureSpec) -> Any:
    obj = object.__new__(cls)
    # Every instance of one spec shares its precomputed attribute dict (instances are read-only),
    # so ``sig.fields`` is a plain instance-dict lookup.
    object.__setattr__(obj, "__dict__", spec.attrs)
    return obj


class Signature:
    """An LM step's inputs, outputs and instructions. Immutable; edits return new signatures.

    ``Signature(spec, instructions=None, *, custom_types=None)`` where ``spec`` is a string
    (``"question: str -> answer: int"``) or a dict ``{name: (type, InputField())}``;
    ``custom_types`` names your own types used in the string (``{"Color": Color}``).
    """

    # Set by __init_subclass__ on class-form signatures (no annotations here on purpose:
    # typing.get_type_hints on a user's subclass would read them too).
    _class_spec = None
    _class_instance = None

    instructions = _SpecAttribute()
    fields = _SpecAttribute()
    input_fields = _SpecAttribute()
    output_fields = _SpecAttribute()
    input_names = _SpecAttribute()
    output_names = _SpecAttribute()
    signature = _SpecAttribute()

    def __new__(cls, spec: str | Mapping[str, Any] | None = None, instructions: str | None = None,
                *, custom_types: Mapping[str, Any] | None = None) -> Signature:
        if spec is None:
            class_spec = cls._class_spec
            if class_spec is None:
                raise SignatureError(
                    "Signature() needs a spec: Signature('question -> answer'), or subclass it "
                    "with InputField()/OutputField() class attributes and call the subclass")
            if instructions is None:
                return cls._class_instance  # type: ignore[return-value]
            return _new(cls, class_spec.replace(instructions=_check_instructions(instructions)))
        if isinstance(spec, str):
            key = custom_types_key(custom_types)
            _check_instructions(instructions)
            try:
                hash(key)
            except TypeError:  # unhashable custom types: parse without the cache
                return _new(cls, spec_from_string.__wrapped__(spec, instructions, key))
            return _new(cls, spec_from_string(spec, instructions, key))
        if isinstance(spec, Mapping):
            custom_types_key(custom_types)
            return _new(cls, spec_from_dict(spec, _check_instructions(instructions), custom_types))
        raise SignatureError(
            f"Signature() takes a string like 'question -> answer' or a dict of fields, not "
            f"{type(spec).__name__}; for a class-form signature call the class itself, e.g. QA()")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        bases = [base._class_spec for base in cls.__bases__
                 if isinstance(base, type) and issubclass(base, Signature) and base._class_spec]
        cls._class_spec = spec_from_class(cls, bases)
        cls._class_instance = _new(cls, cls._class_spec)

    # --- value semantics ----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        mine, theirs = self._spec, other._spec
        return mine is theirs or (mine.hash == theirs.hash and mine.key == theirs.key)

    def __hash__(self) -> int:
        return self._spec.hash

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"signatures are immutable (setting {name!r}); use with_instructions(), "
                             "with_updated_fields(), append() ... which return a new signature")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"signatures are immutable (deleting {name!r}); use delete(name)")

    def __copy__(self) -> Signature:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        spec = self._spec
        instructions = None if spec.default_instructions else spec.instructions
        return (_restore, (type(self), tuple(spec.fields.values()), instructions))

    def __repr__(self) -> str:
        spec = self._spec

        def typed(names: tuple[str, ...]) -> str:
            return ", ".join(f"{name}: {type_name(spec.fields[name].annotation)}" for name in names)

        return (f"{type(self).__name__}({typed(spec.input_names)} -> {typed(spec.output_names)}"
                f"\n  instructions={spec.instructions!r})")

    # --- edits: each returns a new signature ----------------------------------------------
    @_SignatureMethod
    def with_instructions(self, instructions: str) -> Signature:
        """The same fields with new instructions."""
        if not isinstance(instructions, str):
            raise SignatureError("with_instructions() takes the new instructions as a string, not "
                                 f"{type(instructions).__name__}")
        return _new(type(self), self._spec.replace(instructions=instructions))

    @_SignatureMethod
    def with_updated_fields(self, name: str, type_: Any = _UNSET, **changes: Any) -> Signature:
        """Change one field's ``desc``, ``prefix`` (None: derive from the name), ``annotation``
        (or ``type_``) or ``format``."""
        field = self._field(name, "with_updated_fields")
        unknown = sorted(set(changes) - set(_CHANGEABLE))
        if unknown:
            raise SignatureError(f"with_updated_fields() cannot change {unknown}; it changes "
                                 f"{', '.join(_CHANGEABLE)} (or type_)")
        if type_ is not _UNSET:
            if "annotation" in changes:
                raise SignatureError("with_updated_fields(): pass annotation= or type_=, not both")
            changes["annotation"] = type_
        if "annotation" in changes:
            changes["annotation"] = _annotation(changes["annotation"])
        if "prefix" in changes and changes["prefix"] is None:
            changes["prefix"] = default_prefix(name)
        for key in ("desc", "prefix"):
            if key in changes and not isinstance(changes[key], str):
                raise SignatureError(f"with_updated_fields(): {key}= must be a string")
        if changes.get("format") is not None and not callable(changes["format"]):
            raise SignatureError("with_updated_fields(): format= must be a callable or None")
        updated = dataclasses.replace(field, **changes)
        return self._rebuild([updated if f.name == name else f for f in self._spec.fields.values()])

    @_SignatureMethod
    def append(self, name: str, field: FieldSpec | Field, type_: Any = None) -> Signature:
        """Add a field last among the fields of its kind (inputs or outputs)."""
        return self._insert(-1, name, field, type_, "append")

    @_SignatureMethod
    def prepend(self, name: str, field: FieldSpec | Field, type_: Any = None) -> Signature:
        """Add a field first among the fields of its kind (inputs or outputs)."""
        return self._insert(0, name, field, type_, "prepend")

    @_SignatureMethod
    def insert(self, index: int, name: str, field: FieldSpec | Field, type_: Any = None) -> Signature:
        """Add a field at ``index`` among the fields of its kind; -1 means last."""
        return self._insert(index, name, field, type_, "insert")

    @_SignatureMethod
    def delete(self, name: str) -> Signature:
        """The signature without field ``name``."""
        self._field(name, "delete")
        return self._rebuild([f for f in self._spec.fields.values() if f.name != name])

    @_SignatureMethod
    def equals(self, other: object) -> bool:
        """DSPy's name for ``==``."""
        return isinstance(other, Signature) and self == other

    # --- state (for saving optimized programs) ------------------------------------------
    @_SignatureMethod
    def dump_state(self) -> dict[str, Any]:
        """JSON-safe instructions and per-field desc/prefix (types are kept as text, for reading)."""
        return {
            "instructions": self._spec.instructions,
            "fields": [{"name": f.name, "kind": f.kind, "type": type_name(f.annotation),
                        "desc": f.desc, "prefix": f.prefix} for f in self._spec.fields.values()],
        }

    @_SignatureMethod
    def load_state(self, state: Mapping[str, Any]) -> Signature:
        """A new signature with the saved instructions and field descs/prefixes applied.

        Field names and kinds must match in order; types stay those of this signature.
        """
        if not isinstance(state, Mapping) or not isinstance(state.get("fields"), list):
            raise SignatureError("load_state() takes the dict dump_state() returned: "
                                 "{'instructions': ..., 'fields': [...]}")
        saved, current = state["fields"], list(self._spec.fields.values())
        for position, (entry, field) in enumerate(zip(saved, current)):
            if not isinstance(entry, Mapping):
                raise SignatureError(f"load_state(): saved field {position} is not a dict")
            if entry.get("name") != field.name or entry.get("kind") != field.kind:
                raise SignatureError(
                    f"load_state(): saved field {position} is {entry.get('name')!r} "
                    f"({entry.get('kind')}) but this signature has {field.name!r} ({field.kind}) "
                    f"there; the saved state belongs to a different signature ({self._spec.signature!r})")
        if len(saved) != len(current):
            raise SignatureError(f"load_state(): the saved state has {len(saved)} fields but this "
                                 f"signature has {len(current)} ({self._spec.signature!r})")
        fields = [dataclasses.replace(field, desc=_text(entry, "desc", field.desc),
                                      prefix=_text(entry, "prefix", field.prefix))
                  for entry, field in zip(saved, current)]
        instructions = _check_instructions(state.get("instructions", self._spec.instructions))
        if instructions == default_instructions(self._spec.input_names, self._spec.output_names):
            instructions = None  # still the default: keep following later field edits
        return _new(type(self), SignatureSpec(fields, instructions, "load_state()"))

    # --- helpers ---------------------------------------------------------------------------
    def _field(self, name: str, method: str) -> Field:
        try:
            return self._spec.fields[name]
        except (KeyError, TypeError):
            raise SignatureError(f"{method}(): no field {name!r}; the fields are "
                                 f"{list(self._spec.fields)}") from None

    def _rebuild(self, fields: list[Field]) -> Signature:
        return _new(type(self), self._spec.replace(fields=fields))

    def _insert(self, index: int, name: str, field: FieldSpec | Field, type_: Any,
                method: str) -> Signature:
        if isinstance(field, FieldSpec):
            new = field_from_spec(name, field, str if type_ is None else _annotation(type_))
        elif isinstance(field, Field):
            new = dataclasses.replace(field, name=name)
            if type_ is not None:
                new = dataclasses.replace(new, annotation=_annotation(type_))
        else:
            raise SignatureError(f"{method}() takes InputField() or OutputField() as the field, "
                                 f"not {type(field).__name__}")
        if not isinstance(index, int) or isinstance(index, bool):
            raise SignatureError(f"{method}(): index must be an integer, not {type(index).__name__}")
        current = list(self._spec.fields.values())
        same_kind = [f for f in current if f.kind == new.kind]
        position = index + len(same_kind) + 1 if index < 0 else index
        if not 0 <= position <= len(same_kind):
            raise SignatureError(f"{method}(): index {index} is out of range for the "
                                 f"{len(same_kind)} {new.kind} fields")
        same_kind.insert(position, new)
        others = [f for f in current if f.kind != new.kind]
        return self._rebuild(same_kind + others)


def _check_instructions(instructions: Any) -> Any:
    if instructions is not None and not isinstance(instructions, str):
        raise SignatureError(f"instructions must be a string, not {type(instructions).__name__}")
    return instructions


def _annotation(value: Any) -> Any:
    return parse_type(value) if isinstance(value, str) else value


def _text(entry: Mapping[str, Any], key: str, default: str) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise SignatureError(f"load_state(): field {entry.get('name')!r} has a non-string {key}")
    return value


def _restore(cls: type, fields: tuple[Field, ...], instructions: str | None) -> Signature:
    return _new(cls, SignatureSpec(fields, instructions, "unpickling a signature"))


def ensure_signature(signature: Any, instructions: str | None = None) -> Signature:
    """A Signature from a string, a Signature, or a Signature subclass (class form)."""
    if isinstance(signature, str):
        return Signature(signature, instructions)
    if isinstance(signature, Signature):
        return signature if instructions is None else signature.with_instructions(instructions)
    if isinstance(signature, type) and issubclass(signature, Signature) and signature._class_spec:
        return signature(instructions=instructions)
    raise SignatureError(
        "expected a signature: a string like 'question -> answer', a Signature, or a Signature "
        f"subclass; got {signature!r}")


def make_signature(signature: str | Mapping[str, Any], instructions: str | None = None,
                   signature_name: str = "StringSignature", *,
                   custom_types: Mapping[str, Any] | None = None) -> Signature:
    """DSPy-compatible builder: a string or ``{name: (type, InputField())}`` dict.

    ``signature_name`` is accepted for compatibility and ignored (signatures are values here).
    """
    if isinstance(signature, (str, Mapping)):
        return Signature(signature, instructions, custom_types=custom_types)
    return ensure_signature(signature, instructions)
