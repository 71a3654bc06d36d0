"""``majority``: the most common answer across several completions (self-consistency voting)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plait.primitives.prediction import Completions, Prediction


def default_normalize(value: Any) -> str | None:
    """SQuAD-style normalized text (lowercase, no punctuation or articles); None when empty,
    so empty answers do not vote."""
    from plait.evaluate.metrics import normalize_text   # first use only: keeps import light

    return normalize_text(value) or None


def majority(prediction_or_completions: Prediction | Completions | list[Any],
             normalize: Callable[[Any], Any] | None = default_normalize,
             field: str | None = None) -> Prediction:
    """The completion whose ``field`` value (normalized) is the most common, as a Prediction.

    ``field`` defaults to the signature's last output field (or the completions' last key).
    Completions whose value normalizes to None do not vote (unless none votes). Ties go to the
    value seen first. ``normalize=None`` compares raw values.
    """
    rows, signature = _rows_and_signature(prediction_or_completions)
    if not rows:
        raise ValueError("majority() needs at least one completion; got none. Ask for several, "
                         "e.g. plait.Predict(sig, n=5), then call majority(prediction)")
    if field is None:
        outputs = getattr(signature, "output_fields", None)
        field = list(outputs)[-1] if outputs else list(rows[0])[-1]
    for index, row in enumerate(rows):
        if field not in row:
            raise ValueError(f"majority(field={field!r}): completion {index} has no such field; "
                             f"it has {sorted(row)}")
    key = normalize or _identity
    keys = [key(row[field]) for row in rows]
    voters = [k for k in keys if k is not None] or keys
    counts: dict[Any, int] = {}
    for value in voters:   # dict order is first-seen order, so max() breaks ties by it
        counts[value] = counts.get(value, 0) + 1
    winner = max(counts, key=counts.__getitem__)
    chosen = rows[keys.index(winner)]
    return Prediction.from_completions([dict(chosen)], signature=signature)


def _identity(value: Any) -> Any:
    return value


def _rows_and_signature(source: Any) -> tuple[list[Mapping[str, Any]], Any]:
    if isinstance(source, Prediction):
        completions = source.completions
        if completions is None:   # a hand-made Prediction: it is its own single completion
            return [dict(source.items())], None
        source = completions
    if isinstance(source, Completions):
        return [dict(row) for row in source._rows], source.signature
    if isinstance(source, (list, tuple)):
        rows = []
        for index, item in enumerate(source):
            if not isinstance(item, Mapping) and not hasattr(item, "items"):
                raise TypeError(f"majority(): item {index} is a {type(item).__name__}; pass Predictions, "
                                f"dicts of field values, a Completions or a Prediction with completions")
            rows.append(dict(item.items()))
        return rows, None
    raise TypeError(f"majority() takes a Prediction, a Completions or a list of completions, "
                    f"not {type(source).__name__}")
