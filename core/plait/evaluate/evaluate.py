"""Evaluate: run a program over a devset in threads, score it with a metric, report a percentage.

Each example runs in a copy of the caller's contextvars context, so ``with plait.context(lm=...)``
around the call reaches every worker. Workers pull example indices from a shared counter and
hand finished outcomes to the calling thread through one queue; the calling thread keeps the
running score, counts errors, emits progress events and stops the workers after too many errors.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import operator
import sys
import threading
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any

from plait.errors import PlaitError

__all__ = ["Evaluate", "EvaluationError", "EvaluationResult", "EvaluationRow", "format_table"]

logger = logging.getLogger("plait.evaluate")

Metric = Callable[..., Any]
# (prediction or None, the metric's value or None, that value as a float or None, the error or None)
_Outcome = tuple[Any, Any, "float | None", "Exception | None"]


class EvaluationError(PlaitError, RuntimeError):
    """Evaluate stopped because more examples failed than ``max_errors`` allows.

    The error that tipped it over is chained as ``__cause__``.
    """


class EvaluationRow(tuple):
    """One devset row: ``(example, prediction, score)``, unpackable like DSPy's 3-tuples.

    ``prediction`` is None when the program raised; ``error`` holds the exception when the
    program or the metric raised (``score`` is then the failure score).
    """

    def __new__(cls, example: Any, prediction: Any, score: Any,
                error: Exception | None = None) -> EvaluationRow:
        row = tuple.__new__(cls, (example, prediction, score))
        row.error = error
        return row

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle through __new__'s signature
        return (*self, self.error)

    example = property(operator.itemgetter(0))
    prediction = property(operator.itemgetter(1))
    score = property(operator.itemgetter(2))


class EvaluationResult(float):
    """The score of an evaluation (a percentage, 0 to 100) that also carries the per-example rows.

    It is a float so code written for DSPy 2.5, where Evaluate returned the bare score, keeps
    working (``result > 50``, ``f"{result:.1f}"``, ``sum(...)``); ``.score``, ``.results`` and
    ``.errors`` are DSPy 3's attributes. ``str()`` is the bare number, ``repr()`` the summary.
    """

    __slots__ = ("results", "errors")

    def __new__(cls, score: float, results: list[EvaluationRow], errors: int = 0) -> EvaluationResult:
        result = super().__new__(cls, score)
        result.results = results
        result.errors = errors
        return result

    @property
    def score(self) -> float:
        return float(self)

    @property
    def scores(self) -> list[Any]:
        """Each example's metric value, in devset order."""
        return [row[2] for row in self.results]

    def table(self, limit: int | None = None) -> str:
        """The rows as a text table (see :func:`format_table`)."""
        return format_table(self, limit)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (float(self), self.results, self.errors))

    def __repr__(self) -> str:
        return (f"EvaluationResult(score={float(self)!r}, errors={self.errors}, "
                f"results=<{len(self.results)} rows>)")

    __str__ = float.__repr__


class Evaluate:
    """Score a program on a devset: ``Evaluate(devset=dev, metric=answer_exact_match)(program)``.

    Args:
        devset: Examples with input keys set (``Example(...).with_inputs("question")``).
        metric: ``metric(example, prediction) -> bool | float``; may be given per call instead.
        num_threads: worker threads (default ``plait.settings.num_threads``); 1 runs inline.
        display_progress: ask the progress listener (``plait.builtins.progress``) to draw a bar.
        display_table: write a table of the results to stdout: True for every row, N for the first N.
        max_errors: how many failed examples are tolerated (default ``plait.settings.max_errors``);
            one more stops the run with :class:`EvaluationError`.
        failure_score: the score of an example whose program or metric raised.
        return_all_scores / return_outputs: DSPy 2.5's tuple returns, kept for old code:
            ``return_all_scores`` -> ``(score, scores)``, ``return_outputs`` -> ``(score, rows)``,
            both -> ``(score, rows, scores)``. Otherwise an :class:`EvaluationResult`.
        provide_traceback: log each failure with its traceback (otherwise its message only).

    The score is the mean metric value over the devset times 100, rounded to 2 decimals
    (bools count as 0/1; failed examples count as ``failure_score``).
    """

    def __init__(self, *, devset: Sequence[Any], metric: Metric | None = None,
                 num_threads: int | None = None, display_progress: bool = False,
                 display_table: bool | int = False, max_errors: int | None = None,
                 failure_score: float = 0.0, return_all_scores: bool = False,
                 return_outputs: bool = False, provide_traceback: bool | None = None):
        self.devset = devset
        self.metric = metric
        self.num_threads = _check_count("num_threads", num_threads, minimum=1)
        self.display_progress = display_progress
        self.display_table = _check_table(display_table)
        self.max_errors = _check_count("max_errors", max_errors, minimum=0)
        self.failure_score = failure_score
        self.return_all_scores = return_all_scores
        self.return_outputs = return_outputs
        self.provide_traceback = provide_traceback

    def __call__(self, program: Callable[..., Any], metric: Metric | None = None,
                 devset: Sequence[Any] | None = None, num_threads: int | None = None,
                 display_progress: bool | None = None, display_table: bool | int | None = None,
                 return_all_scores: bool | None = None, return_outputs: bool | None = None,
                 ) -> EvaluationResult | tuple[Any, ...]:
        """Run ``program(**example.inputs())`` on every example and score it; see the class doc."""
        from plait.settings import settings

        metric = metric if metric is not None else self.metric
        if metric is None:
            raise ValueError("Evaluate needs a metric: pass Evaluate(devset=..., metric=fn) or "
                             "evaluate(program, metric=fn), where fn(example, prediction) returns "
                             "a bool or a float")
        devset = list(self.devset if devset is None else devset)
        if not devset:
            raise ValueError("Evaluate got an empty devset: pass at least one Example")
        threads = _check_count("num_threads", num_threads, minimum=1) or self.num_threads
        threads = threads or settings.num_threads
        max_errors = self.max_errors if self.max_errors is not None else settings.max_errors
        display_progress = self.display_progress if display_progress is None else display_progress
        table = self.display_table if display_table is None else _check_table(display_table)

        inputs = [_inputs_of(index, example) for index, example in enumerate(devset)]
        run = _Run(devset, max_errors, self.failure_score, bool(self.provide_traceback),
                   bool(display_progress))
        # Snapshot the caller's context now; each example runs in its own copy of it.
        caller_context = contextvars.copy_context()

        def task(index: int) -> _Outcome:
            return caller_context.copy().run(_run_example, program, metric, devset[index],
                                             inputs[index])

        run.start()
        if min(threads, len(devset)) <= 1:
            for index in range(len(devset)):
                run.add(index, task(index))
        else:
            _run_threaded(task, len(devset), min(threads, len(devset)), max_errors, run.add)
        result = run.finish()

        if table:
            _write_table(format_table(result, None if table is True else table))
        all_scores = self.return_all_scores if return_all_scores is None else return_all_scores
        outputs = self.return_outputs if return_outputs is None else return_outputs
        if all_scores:
            return (result, result.results, result.scores) if outputs else (result, result.scores)
        return (result, result.results) if outputs else result


def _run_example(program: Callable[..., Any], metric: Metric, example: Any, inputs: Any) -> _Outcome:
    """One example: the program, then the metric. Failures are returned, not raised."""
    prediction = None
    try:
        prediction = program(**inputs)
        value = metric(example, prediction)
        return prediction, value, _as_number(value), None
    except Exception as exc:  # counted and reported by the caller; never kills a worker
        return prediction, None, None, exc


def _as_number(value: Any) -> float:
    if isinstance(value, (int, float)):   # bool is an int: True counts 1
        return float(value)
    score = getattr(value, "score", None)  # e.g. Prediction(score=..., feedback=...)
    if isinstance(score, (int, float)):
        return float(score)
    raise TypeError(f"the metric returned {type(value).__name__} {value!r}; a metric must return "
                    "a bool, an int, a float, or an object with a numeric .score")


def _inputs_of(index: int, example: Any) -> Any:
    inputs = getattr(example, "inputs", None)
    if not callable(inputs):
        raise TypeError(f"devset[{index}] is a {type(example).__name__}, not an Example: build it "
                        "as plait.Example(...).with_inputs('question', ...)")
    try:
        return inputs()
    except ValueError as exc:
        raise ValueError(f"devset[{index}]: {exc}") from exc


class _Run:
    """The calling thread's bookkeeping: rows in devset order, running score, errors, progress."""

    def __init__(self, devset: list[Any], max_errors: int, failure_score: float,
                 provide_traceback: bool, display: bool):
        self.devset = devset
        self.rows: list[EvaluationRow | None] = [None] * len(devset)
        self.max_errors = max_errors
        self.failure_score = failure_score
        self.provide_traceback = provide_traceback
        self.display = display
        self.total = 0.0
        self.done = 0
        self.errors = 0
        self.first_error: tuple[int, Exception] | None = None
        from plait.plugins import emit
        self.emit = emit

    def start(self) -> None:
        self.emit("progress", source="evaluate", task="Evaluate", done=0, total=len(self.devset),
                  postfix={"score": 0.0}, display=self.display)

    def add(self, index: int, outcome: _Outcome) -> None:
        prediction, value, number, error = outcome
        example = self.devset[index]
        if error is None:
            self.rows[index] = EvaluationRow(example, prediction, value)
            self.total += number
        else:
            self.rows[index] = EvaluationRow(example, prediction, self.failure_score, error)
            self.total += self.failure_score
            self._failed(index, error)
        self.done += 1
        self.emit("progress", source="evaluate", task="Evaluate", done=self.done,
                  total=len(self.devset), postfix={"score": round(100 * self.total / self.done, 1)},
                  display=self.display)

    def _failed(self, index: int, error: Exception) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = (index, error)
        logger.warning("Evaluate: example %d failed: %s: %s%s", index, type(error).__name__, error,
                       "" if self.provide_traceback else " (provide_traceback=True logs the traceback)",
                       exc_info=error if self.provide_traceback else None)
        if self.errors > self.max_errors:
            first_index, first = self.first_error
            raise EvaluationError(
                f"Evaluate stopped after {self.errors} failed examples (max_errors={self.max_errors}); "
                f"{self.done + 1} of {len(self.devset)} examples had finished. First failure "
                f"(devset[{first_index}]): {type(first).__name__}: {first}. The last failure is "
                f"chained below. Fix the program or metric, or raise max_errors."
            ) from error

    def finish(self) -> EvaluationResult:
        count = len(self.devset)
        score = round(100 * self.total / count, 2)
        logger.info("Evaluate: average metric %.4g / %d (%.1f%%), %d failed",
                    self.total, count, 100 * self.total / count, self.errors)
        return EvaluationResult(score, self.rows, self.errors)  # type: ignore[arg-type]


def _run_threaded(task: Callable[[int], _Outcome], count: int, num_threads: int, max_errors: int,
                  on_outcome: Callable[[int, _Outcome], None]) -> None:
    """Run ``task(i)`` for i < count on ``num_threads`` threads; ``on_outcome`` runs in this thread.

    Workers take the next index from a locked counter (the only per-example lock) and put
    ``(i, outcome)`` on a queue. They stop taking indices once more than ``max_errors`` outcomes
    failed (counted by the workers themselves, so fast failures cannot run ahead of the caller)
    or once ``on_outcome`` raised. Workers in flight are waited for, so nothing of the run
    continues after this returns or raises (Ctrl-C excepted).
    """
    next_index = itertools.count().__next__
    lock = threading.Lock()
    stop = threading.Event()
    failures = [0]
    # (index, outcome) per example; (-1, None or the BaseException that ended it) per worker exit
    finished: SimpleQueue[tuple[int, Any]] = SimpleQueue()

    def worker() -> None:
        error: BaseException | None = None
        try:
            while not stop.is_set():
                with lock:
                    index = next_index()
                if index >= count:
                    return
                outcome = task(index)
                if outcome[3] is not None:
                    with lock:
                        failures[0] += 1
                        if failures[0] > max_errors:
                            stop.set()
                finished.put((index, outcome))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            error = exc
        finally:
            finished.put((-1, error))  # after its outcomes: the caller has seen them all

    workers = [threading.Thread(target=worker, name=f"plait-evaluate-{number}", daemon=True)
               for number in range(num_threads)]
    for thread in workers:
        thread.start()
    wait_for_workers = True
    try:
        running = num_threads
        while running:
            index, payload = finished.get()
            if index >= 0:
                on_outcome(index, payload)
                continue
            running -= 1
            if payload is not None:
                raise payload
    except KeyboardInterrupt:
        wait_for_workers = False  # daemon threads finish the example in hand and exit
        raise
    finally:
        stop.set()
        if wait_for_workers:
            for thread in workers:
                thread.join()


# --- the results table -----------------------------------------------------------------------

_CELL_WIDTH = 40


def _fields(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "items"):
        return dict(value.items())
    if hasattr(value, "__dict__"):
        return {key: item for key, item in vars(value).items() if not key.startswith("_")}
    return {"value": value}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = " ".join(str(value).split())  # one line: newlines and runs of spaces collapse
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 3] + "..."


def format_table(result: EvaluationResult, limit: int | None = None) -> str:
    """A plain-text table of the first ``limit`` rows (all when None).

    Columns: the example's inputs, its labels (``example_<name>``), the prediction's fields
    (``pred_<name>``), the score, and ``error`` when a shown row failed.
    """
    rows = result.results if limit is None else result.results[:limit]
    input_keys: dict[str, None] = {}
    label_keys: dict[str, None] = {}
    pred_keys: dict[str, None] = {}
    shown = []
    for example, prediction, score in rows:
        inputs = dict(example.inputs().items())
        labels = dict(example.labels().items())
        predicted = _fields(prediction)
        input_keys.update(dict.fromkeys(inputs))
        label_keys.update(dict.fromkeys(labels))
        pred_keys.update(dict.fromkeys(predicted))
        shown.append((inputs, labels, predicted, score))
    any_error = any(getattr(row, "error", None) is not None for row in rows)
    header = ([*input_keys, *(f"example_{key}" for key in label_keys),
               *(f"pred_{key}" for key in pred_keys), "score"] + (["error"] if any_error else []))
    lines = []
    for (inputs, labels, predicted, score), row in zip(shown, rows):
        cells = ([inputs.get(key, "") for key in input_keys] + [labels.get(key, "") for key in label_keys]
                 + [predicted.get(key, "") for key in pred_keys] + [score])
        if any_error:
            error = getattr(row, "error", None)
            cells.append("" if error is None else f"{type(error).__name__}: {error}")
        lines.append([_cell(value) for value in cells])
    widths = [max([len(name)] + [len(line[column]) for line in lines])
              for column, name in enumerate(header)]
    out = [" | ".join(name.ljust(width) for name, width in zip(header, widths)).rstrip(),
           "-+-".join("-" * width for width in widths)]
    out += [" | ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines]
    hidden = len(result.results) - len(rows)
    if hidden > 0:
        out.append(f"... {hidden} more rows not shown")
    out.append(f"score: {float(result)} ({result.errors} failed of {len(result.results)})")
    return "\n".join(out)


def _write_table(text: str) -> None:
    # The only place Evaluate writes to stdout: the user asked for it with display_table.
    sys.stdout.write(text + "\n")


def _check_count(name: str, value: int | None, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Evaluate({name}={value!r}): {name} must be an int >= {minimum} or None")
    return value


def _check_table(value: bool | int) -> bool | int:
    if isinstance(value, bool) or (isinstance(value, int) and value >= 0):
        return value
    raise ValueError(f"Evaluate(display_table={value!r}): pass True (every row), False, or the "
                     "number of rows to show")
