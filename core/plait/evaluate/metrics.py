"""Answer metrics: SQuAD-style text normalization, exact match, token F1, and the DSPy-style
metric functions ``(example, pred, trace=None) -> bool | float`` built on them.

Normalization follows the SQuAD evaluation script (lowercase, drop ASCII punctuation and the
articles a/an/the, collapse whitespace) after unicode NFD normalization, so scores line up with
DSPy's metrics of the same name.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["normalize_text", "EM", "F1", "answer_exact_match", "answer_passage_match", "answer_f1"]

# Precomputed once: deleting characters with str.translate is the fastest way in CPython.
_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_text(text: Any) -> str:
    """Normalize an answer for comparison: NFD, lowercase, no punctuation or articles, single spaces.

    ``None`` becomes ``""``; other non-strings (an LM's typed ``int`` answer, say) go through ``str``.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = unicodedata.normalize("NFD", text).lower().translate(_DROP_PUNCTUATION)
    text = " ".join(_ARTICLES.sub(" ", text).split())
    # Dropping punctuation can bring combining marks together out of canonical order: reorder.
    return text if text.isascii() else unicodedata.normalize("NFD", text)


def _as_answer_list(answers: Any) -> list[Any]:
    # A bare string is one reference, not a sequence of one-character references.
    if isinstance(answers, str) or not isinstance(answers, Iterable) or isinstance(answers, Mapping):
        return [answers]
    return list(answers)


def EM(prediction: Any, answers: str | Iterable[str]) -> bool:  # noqa: N802 - DSPy's name
    """True when the normalized prediction equals any normalized reference answer."""
    predicted = normalize_text(prediction)
    return any(predicted == normalize_text(answer) for answer in _as_answer_list(answers))


def _token_f1(predicted_tokens: list[str], reference: Any) -> float:
    reference_tokens = normalize_text(reference).split()
    if not predicted_tokens or not reference_tokens:
        # Both empty is agreement (as EM says); only one empty is a miss.
        return float(predicted_tokens == reference_tokens)
    overlap = sum((Counter(predicted_tokens) & Counter(reference_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted_tokens)
    recall = overlap / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def F1(prediction: Any, answers: str | Iterable[str]) -> float:  # noqa: N802 - DSPy's name
    """Token-overlap F1 between the prediction and its best-matching reference answer (0.0 to 1.0)."""
    predicted_tokens = normalize_text(prediction).split()
    return max((_token_f1(predicted_tokens, answer) for answer in _as_answer_list(answers)), default=0.0)


# --- DSPy-style metric functions -------------------------------------------------------------

def _field_names(obj: Any) -> list[str]:
    if hasattr(obj, "keys"):
        return sorted(str(key) for key in obj.keys())
    return sorted(getattr(obj, "__dict__", {}))


def _read_field(obj: Any, name: str, role: str, metric: str, expects: str) -> Any:
    """``obj.<name>`` (or ``obj[name]`` for dicts), else a ValueError saying what the metric needs."""
    try:
        return getattr(obj, name)
    except AttributeError:
        pass
    if isinstance(obj, Mapping) and name in obj:
        return obj[name]
    raise ValueError(
        f"{metric} needs {role}.{name} ({expects}), but the {role} ({type(obj).__name__}) has "
        f"fields {_field_names(obj)}. Give the {role} a field named {name!r}, or write a metric "
        f"that reads the fields it has."
    )


def _gold_answers(example: Any, metric: str) -> list[Any]:
    gold = _read_field(example, "answer", "example", metric, "the gold answer: a str or a list of str")
    return _as_answer_list(gold)


def _predicted_answer(pred: Any, metric: str) -> Any:
    return _read_field(pred, "answer", "prediction", metric,
                       "the program's answer; its signature needs an output field named 'answer'")


def answer_exact_match(example: Any, pred: Any, trace: Any = None, frac: float = 1.0) -> bool:
    """Whether ``pred.answer`` matches ``example.answer`` (a str or a list of accepted answers).

    With ``frac < 1`` a token F1 of at least ``frac`` against some answer counts as a match.
    """
    answers = _gold_answers(example, "answer_exact_match")
    predicted = _predicted_answer(pred, "answer_exact_match")
    if frac >= 1.0:
        return EM(predicted, answers)
    return F1(predicted, answers) >= frac


def answer_f1(example: Any, pred: Any, trace: Any = None) -> float:
    """Token F1 of ``pred.answer`` against the best of ``example.answer`` (0.0 to 1.0)."""
    answers = _gold_answers(example, "answer_f1")
    return F1(_predicted_answer(pred, "answer_f1"), answers)


def _passage_text(passage: Any) -> Any:
    if isinstance(passage, str):
        return passage
    if isinstance(passage, Mapping):
        for key in ("text", "long_text"):
            if key in passage:
                return passage[key]
    else:
        for key in ("text", "long_text"):
            text = getattr(passage, key, None)
            if text is not None:
                return text
    raise ValueError(
        f"answer_passage_match cannot read a passage of type {type(passage).__name__}: a passage "
        f"must be a str, an object with .text, or a dict with 'text' or 'long_text'"
    )


def answer_passage_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """Whether some normalized gold answer appears, as whole words, in some passage of ``pred.context``.

    Passages may be strings, objects with ``.text`` (retriever passages) or dicts with ``"text"``
    or ``"long_text"``; a single string context counts as one passage.
    """
    answers = [normalize_text(answer) for answer in _gold_answers(example, "answer_passage_match")]
    answers = [f" {answer} " for answer in answers if answer]  # padded: match whole tokens only
    context = _read_field(pred, "context", "prediction", "answer_passage_match",
                          "the retrieved passages: a list of str, of objects with .text, or of dicts")
    passages = [context] if isinstance(context, (str, Mapping)) else context
    for passage in passages:
        text = f" {normalize_text(_passage_text(passage))} "
        if any(answer in text for answer in answers):
            return True
    return False
