"""Evaluation: :class:`Evaluate` runs a program over a devset; metrics score its answers."""

from plait.evaluate.evaluate import (Evaluate, EvaluationError, EvaluationResult, EvaluationRow,
                                     format_table)
from plait.evaluate.metrics import (EM, F1, answer_exact_match, answer_f1, answer_passage_match,
                                    normalize_text)

__all__ = [
    "EM", "F1", "Evaluate", "EvaluationError", "EvaluationResult", "EvaluationRow",
    "answer_exact_match", "answer_f1", "answer_passage_match", "format_table", "normalize_text",
]
