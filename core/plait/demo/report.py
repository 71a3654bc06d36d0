"""What a demo run measured, and the table the CLI prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CompileStats", "DemoReport", "RunStats", "SampleAnswer", "TABLE_COLUMNS", "format_table"]

TABLE_COLUMNS = ("program", "exact match", "F1", "recall@{k}", "errors", "LM calls sent", "cached",
                 "seconds")


@dataclass(slots=True)
class RunStats:
    """One evaluation of a program on the dev split (scores are percentages)."""

    name: str
    exact_match: float
    f1: float
    recall: float          # share of questions with a gold paragraph among the retrieved passages
    errors: int            # examples whose program or metric raised (they score 0)
    calls: int             # LM calls made, cache hits included
    cached_calls: int
    seconds: float

    @property
    def sent_calls(self) -> int:
        return self.calls - self.cached_calls


@dataclass(slots=True)
class CompileStats:
    """The BootstrapFewShot compile on the train split."""

    optimizer: str
    train_size: int
    attempted: int         # train examples the teacher ran on (it stops once it has enough demos)
    errors: int            # teacher runs that raised (an unparseable answer, say)
    bootstrapped: int      # demos per predictor taken from passing teacher traces (at most)
    demos: dict[str, int]  # predictor name -> demos it ended with
    calls: int
    cached_calls: int
    seconds: float


@dataclass(slots=True)
class SampleAnswer:
    """The reloaded program's answer to one question."""

    question: str
    gold: str
    answer: str
    same_as_compiled: bool


@dataclass(slots=True)
class DemoReport:
    """Everything a demo run measured; ``table()`` is what the CLI prints."""

    lm: str
    retriever: str
    program: str
    k: int
    train_size: int
    dev_size: int
    passages: int
    index_seconds: float
    index_reused: bool
    zero_shot: RunStats
    compile: CompileStats
    compiled: RunStats
    program_path: str
    sample: SampleAnswer
    total_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[RunStats]:
        return [self.zero_shot, self.compiled]

    def table(self) -> str:
        return format_table(self.rows(), self.k, self.program)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_table(rows: list[RunStats], k: int, program: str = "rag") -> str:
    """Zero-shot vs compiled, one line each, columns aligned."""
    recall_label = f"recall@{k}" if program == "rag" else f"recall@{k}/hop"
    columns = [column.replace("recall@{k}", recall_label) for column in TABLE_COLUMNS]
    cells = [[row.name, f"{row.exact_match:.1f}", f"{row.f1:.1f}", f"{row.recall:.1f}", str(row.errors),
              str(row.sent_calls), str(row.cached_calls), f"{row.seconds:.1f}"] for row in rows]
    widths = [max(len(column), *(len(line[index]) for line in cells)) for index, column in enumerate(columns)]

    def line(values: list[str]) -> str:
        # the first column reads left-aligned, the numbers right-aligned
        return "  ".join(value.ljust(width) if index == 0 else value.rjust(width)
                         for index, (value, width) in enumerate(zip(values, widths)))

    return "\n".join([line(columns), line(["-" * width for width in widths]), *(line(c) for c in cells)])
