"""Example: one data point (dict-like with attribute access) that knows its input keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Example:
    """A training or evaluation record: ``Example(question="...", answer="...")``.

    ``with_inputs("question")`` marks which keys are inputs; ``inputs()`` and ``labels()``
    split the record accordingly. Every key is an ordinary field (``dspy_uuid`` etc. included).
    """

    __slots__ = ("_store", "_input_keys")
    # Attribute names that live in slots, not in the record. Subclasses that add slots extend
    # this set, so ``__setattr__`` and copy/pickle (which restore slots with setattr) find them.
    _slot_names: frozenset[str] = frozenset(__slots__)

    def __init__(self, base: Example | dict[str, Any] | None = None, **kwargs: Any):
        if base is None:
            store: dict[str, Any] = {}
            input_keys = None
        elif isinstance(base, Example):
            store = dict(base._store)
            input_keys = base._input_keys
        elif isinstance(base, dict):
            store = dict(base)
            input_keys = None
        else:
            raise TypeError(f"Example(base=...) takes an Example or a dict, not {type(base).__name__}")
        store.update(kwargs)
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_input_keys", input_keys)

    # --- attribute and item access ------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        # Dunders and unset slots (during copy/unpickle) must not be looked up in the record.
        if (key.startswith("__") and key.endswith("__")) or key in self._slot_names:
            raise AttributeError(key)
        try:
            return self._store[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {key!r}; "
                                 f"it has {sorted(self._store)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self._slot_names:
            object.__setattr__(self, key, value)
        else:
            self._store[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self._store[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len(self._store)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def keys(self):
        return self._store.keys()

    def values(self):
        return self._store.values()

    def items(self):
        return self._store.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    # --- equality and display -----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and self._store == other._store

    def __hash__(self) -> int:
        return hash(tuple((k, repr(v)) for k, v in self._store.items()))

    def __repr__(self) -> str:
        inputs = "" if self._input_keys is None else f", input_keys={sorted(self._input_keys)}"
        return f"{type(self).__name__}({self._store!r}{inputs})"

    __str__ = __repr__

    # --- inputs and labels --------------------------------------------------------------
    def with_inputs(self, *keys: str) -> Example:
        """A copy whose ``inputs()`` are ``keys`` (the rest are labels)."""
        new = self.copy()
        object.__setattr__(new, "_input_keys", frozenset(keys))
        return new

    def inputs(self) -> Example:
        """The input fields only. Raises ValueError when ``with_inputs`` was never called."""
        if self._input_keys is None:
            raise ValueError("this Example has no input keys: call example.with_inputs('question', ...) "
                             "to say which fields are inputs")
        new = type(self)({k: v for k, v in self._store.items() if k in self._input_keys})
        object.__setattr__(new, "_input_keys", self._input_keys)
        return new

    def labels(self) -> Example:
        """Every field that is not an input."""
        keys = self._input_keys or frozenset()
        return type(self)({k: v for k, v in self._store.items() if k not in keys})

    def copy(self, **kwargs: Any) -> Example:
        """A shallow copy with ``kwargs`` set on it."""
        new = type(self)(dict(self._store), **kwargs)
        object.__setattr__(new, "_input_keys", self._input_keys)
        return new

    def without(self, *keys: str) -> Example:
        """A copy without ``keys``."""
        new = self.copy()
        for key in keys:
            new._store.pop(key, None)
        return new

    def toDict(self) -> dict[str, Any]:  # noqa: N802 - DSPy's name
        return dict(self._store)

    to_dict = toDict
