"""Prediction (what a module returns) and Completions (every sampled completion of one call)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from plait.primitives.example import Example


class Prediction(Example):
    """The output of a module: ``pred.answer``, ``pred["answer"]``, ``pred.completions``.

    Behaves as a number when it has a ``score`` field (``float(pred)``, ``pred + 1``, ``pred / 2``,
    ``pred > 0.5``, ``sum(preds)``), as DSPy reward and metric code expects.
    """

    __slots__ = ("_completions", "_lm_usage")
    _slot_names: frozenset[str] = Example._slot_names | frozenset(__slots__)

    def __init__(self, base: Example | dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(base, **kwargs)
        object.__setattr__(self, "_completions", None)
        object.__setattr__(self, "_lm_usage", None)

    @classmethod
    def from_completions(cls, completions: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
                         signature: Any = None) -> Prediction:
        """A Prediction whose fields are the first completion's; ``completions`` holds all of them."""
        if (cls is Prediction and type(completions) is list and len(completions) == 1
                and type(completions[0]) is dict):
            # One completion (the usual call): nothing to check, so skip the general path.
            row = completions[0]
            prediction = object.__new__(Prediction)
            _set_store(prediction, dict(row))
            _set_input_keys(prediction, None)
            _set_completions(prediction, (row, signature))   # built on first use (most never are)
            _set_lm_usage(prediction, None)
            return prediction
        all_completions = Completions(completions, signature=signature)
        rows = all_completions._rows
        prediction = cls(rows[0]) if rows else cls()
        object.__setattr__(prediction, "_completions", all_completions)
        return prediction

    @property
    def completions(self) -> Completions | None:
        completions = self._completions
        if type(completions) is tuple:   # (row, signature) left by from_completions
            completions = Completions._one(*completions)
            _set_completions(self, completions)
        return completions

    def get_lm_usage(self) -> dict[str, dict[str, Any]] | None:
        """LM usage per model name for the call that made this prediction (None when not tracked)."""
        return self._lm_usage

    def set_lm_usage(self, usage: dict[str, dict[str, Any]] | None) -> None:
        object.__setattr__(self, "_lm_usage", usage)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self._store.items())
        completions = self.completions
        count = 0 if completions is None else len(completions)
        suffix = f" ({count} completions)" if count > 1 else ""
        return f"{type(self).__name__}({fields}){suffix}"

    __str__ = __repr__

    # --- numbers: a Prediction with a ``score`` field stands for that score ------------------
    def __float__(self) -> float:
        try:
            score = self._store["score"]
        except KeyError:
            raise ValueError(f"this Prediction has no 'score' field to use as a number; it has "
                             f"{sorted(self._store)}. Return Prediction(score=...) from the metric "
                             f"or reward function") from None
        return float(score)

    def __add__(self, other: object) -> float:
        number = _as_number(other)
        return NotImplemented if number is None else float(self) + number

    def __radd__(self, other: object) -> float:
        number = _as_number(other)
        return NotImplemented if number is None else number + float(self)

    def __truediv__(self, other: object) -> float:
        number = _as_number(other)
        return NotImplemented if number is None else float(self) / number

    def __rtruediv__(self, other: object) -> float:
        number = _as_number(other)
        return NotImplemented if number is None else number / float(self)

    def __lt__(self, other: object) -> bool:
        number = _as_number(other)
        return NotImplemented if number is None else float(self) < number

    def __le__(self, other: object) -> bool:
        number = _as_number(other)
        return NotImplemented if number is None else float(self) <= number

    def __gt__(self, other: object) -> bool:
        number = _as_number(other)
        return NotImplemented if number is None else float(self) > number

    def __ge__(self, other: object) -> bool:
        number = _as_number(other)
        return NotImplemented if number is None else float(self) >= number


# Slot setters: Example.__setattr__ routes field names into the record, so slots are set
# through their descriptors.
_set_store = Example._store.__set__               # type: ignore[attr-defined]
_set_input_keys = Example._input_keys.__set__     # type: ignore[attr-defined]


def _as_number(value: object) -> float | None:
    if isinstance(value, Prediction):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    return None


_set_completions = Prediction._completions.__set__   # type: ignore[attr-defined]
_set_lm_usage = Prediction._lm_usage.__set__         # type: ignore[attr-defined]


class Completions:
    """All completions of one call: ``comps.answer`` is the list of answers, ``comps[0]`` a Prediction.

    Built from a list of dicts (one per completion) or from a dict of equal-length lists.
    """

    __slots__ = ("_rows", "_fields", "signature")

    def __init__(self, completions: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
                 signature: Any = None):
        rows = _rows_from(completions)
        fields: tuple[str, ...] = tuple(rows[0]) if rows else ()
        for index in range(1, len(rows)):
            if rows[index].keys() != rows[0].keys():
                raise ValueError(f"completion {index} has fields {sorted(rows[index])} but completion 0 has "
                                 f"{sorted(rows[0])}; every completion must have the same fields")
        self._rows = rows
        self._fields = fields
        self.signature = signature

    @classmethod
    def _one(cls, row: dict[str, Any], signature: Any) -> Completions:
        """``Completions([row], signature)`` for a dict ``row``, without the general checks."""
        completions = cls.__new__(cls)
        completions._rows = [row]
        completions._fields = tuple(row)
        completions.signature = signature
        return completions

    def __getattr__(self, name: str) -> list[Any]:
        if name.startswith("_") or name == "signature":   # unset slots during copy/unpickle
            raise AttributeError(name)
        if name not in self._fields:
            raise AttributeError(f"Completions has no field {name!r}; it has {list(self._fields)}")
        return [row[name] for row in self._rows]

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            if key not in self._fields:
                raise KeyError(f"Completions has no field {key!r}; it has {list(self._fields)}")
            return [row[key] for row in self._rows]
        if isinstance(key, int):
            if not -len(self._rows) <= key < len(self._rows):
                raise IndexError(f"completion index {key} is out of range: there are {len(self._rows)} completions")
            return Prediction(self._rows[key])
        raise TypeError(f"Completions index must be an int (a completion) or a str (a field), "
                        f"not {type(key).__name__}")

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Prediction]:
        for row in self._rows:
            yield Prediction(row)

    def __contains__(self, field: object) -> bool:
        return field in self._fields

    def keys(self) -> list[str]:
        return list(self._fields)

    def items(self) -> list[tuple[str, list[Any]]]:
        """``(field, values across completions)`` pairs."""
        return [(name, [row[name] for row in self._rows]) for name in self._fields]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Completions) and self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]  # mutable contents

    def __repr__(self) -> str:
        return f"Completions({dict(self.items())!r})"


def _rows_from(completions: object) -> list[dict[str, Any]]:
    """One dict per completion, from a list of mappings or a mapping of equal-length lists."""
    if isinstance(completions, Mapping):
        lengths = {name: len(values) for name, values in completions.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Completions from a dict needs lists of one length per field; got lengths {lengths}")
        names = list(completions)
        return [dict(zip(names, values)) for values in zip(*(completions[name] for name in names))]
    if isinstance(completions, (list, tuple)):
        rows = []
        for index, row in enumerate(completions):
            if isinstance(row, dict):
                rows.append(row)
            elif isinstance(row, (Mapping, Example)):
                rows.append(dict(row.items()))
            else:
                raise TypeError(f"completion {index} is a {type(row).__name__}; each completion must be "
                                f"a dict of field values")
        return rows
    raise TypeError(f"Completions takes a list of dicts (one per completion) or a dict of lists, "
                    f"not {type(completions).__name__}")
