"""Evaluate: ordering, failures, max_errors, context propagation, tables, compat returns, progress."""

from __future__ import annotations

import contextvars
import logging
import pickle
import threading
import time

import pytest

import plait
import plait.plugins
from plait.evaluate import (Evaluate, EvaluationError, EvaluationResult, answer_exact_match,
                            format_table)
from plait.hookspecs import hookimpl
from plait.primitives.example import Example
from plait.primitives.prediction import Prediction
from plait.settings import settings

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def make_devset(count: int) -> list[Example]:
    return [Example(question=str(number), answer=str(number % 3)).with_inputs("question")
            for number in range(count)]


def mod_two(question: str) -> Prediction:
    """Answers question % 2: right for 0 and 1 of every 6 (numbers where n % 2 == n % 3)."""
    return Prediction(answer=str(int(question) % 2))


def exact(example, prediction, trace=None) -> bool:
    return example.answer == prediction.answer


def test_score_is_a_percentage_of_the_mean_metric():
    result = Evaluate(devset=make_devset(6), metric=exact, num_threads=1)(mod_two)
    # questions 0..5: answers 0,1,2,0,1,2; predictions 0,1,0,1,0,1 -> right on 0 and 1
    assert isinstance(result, EvaluationResult)
    assert result.score == 33.33
    assert result.errors == 0
    assert [row.score for row in result.results] == [True, True, False, False, False, False]


def test_float_metric_and_rounding():
    def third(example, prediction, trace=None) -> float:
        return 1 / 3
    result = Evaluate(devset=make_devset(3), metric=third, num_threads=2)(mod_two)
    assert result.score == 33.33


def test_results_keep_devset_order_when_threads_finish_out_of_order():
    devset = make_devset(24)

    def slow_first(question: str) -> Example:
        time.sleep(0.002 * (24 - int(question)))   # early examples finish last
        return Example(answer=question)

    result = Evaluate(devset=devset, metric=exact, num_threads=8)(slow_first)
    assert [row.example for row in result.results] == devset
    assert [row.prediction.answer for row in result.results] == [str(n) for n in range(24)]


def test_one_thread_and_eight_threads_agree():
    devset = make_devset(40)
    one = Evaluate(devset=devset, metric=exact, num_threads=1)(mod_two)
    eight = Evaluate(devset=devset, metric=exact, num_threads=8)(mod_two)
    assert one.score == eight.score
    assert one.results == eight.results


def test_runs_in_threads_when_asked():
    seen: set[str] = set()

    def record(question: str) -> Example:
        seen.add(threading.current_thread().name)
        time.sleep(0.005)
        return Example(answer="0")

    Evaluate(devset=make_devset(16), metric=exact, num_threads=4)(record)
    assert len(seen) > 1 and all(name.startswith("plait-evaluate-") for name in seen)


def test_failures_score_failure_score_and_keep_the_error():
    def flaky(question: str) -> Example:
        if question == "2":
            raise ValueError("no answer for 2")
        return Example(answer=question)

    def picky(example, prediction, trace=None) -> bool:
        if example.question == "4":
            raise KeyError("metric broke on 4")
        return example.answer == prediction.answer

    result = Evaluate(devset=make_devset(6), metric=picky, num_threads=3, failure_score=0.5)(flaky)
    assert result.errors == 2
    program_failure, metric_failure = result.results[2], result.results[4]
    assert program_failure.prediction is None and program_failure.score == 0.5
    assert str(program_failure.error) == "no answer for 2"
    assert metric_failure.prediction.answer == "4"        # the program's output is kept
    assert isinstance(metric_failure.error, KeyError) and metric_failure.score == 0.5
    assert result.results[0].error is None
    # right on 0, 1, 2 (as 0.5), 4 (as 0.5): (1 + 1 + 0.5 + 0.5) / 6
    assert result.score == 50.0


def test_metric_returning_a_non_number_is_a_failure():
    result = Evaluate(devset=make_devset(2), metric=lambda e, p: "yes", num_threads=1)(mod_two)
    assert result.errors == 2
    assert "a metric must return a bool" in str(result.results[0].error)


def test_metric_may_return_a_prediction_with_a_score():
    def with_feedback(example, prediction, trace=None) -> Prediction:
        return Prediction(score=0.25, feedback="partly right")

    result = Evaluate(devset=make_devset(4), metric=with_feedback, num_threads=2)(mod_two)
    assert result.score == 25.0
    assert result.results[0].score.feedback == "partly right"   # the metric's value is kept


@pytest.mark.parametrize("threads", [1, 4])
def test_max_errors_stops_early_with_a_clear_error(threads):
    calls = []

    def broken(question: str) -> Example:
        calls.append(question)
        raise ZeroDivisionError(f"division failed on {question}")

    evaluate = Evaluate(devset=make_devset(200), metric=exact, num_threads=threads, max_errors=3)
    with pytest.raises(EvaluationError) as info:
        evaluate(broken)
    error = info.value
    assert isinstance(error, RuntimeError)
    message = str(error)
    assert "4 failed examples (max_errors=3)" in message
    assert "ZeroDivisionError: division failed on" in message
    assert isinstance(error.__cause__, ZeroDivisionError)
    # stopped scheduling: at most the tolerated errors, the one that tipped it, and those in flight
    assert len(calls) <= 4 + threads
    time.sleep(0.02)
    assert len(calls) <= 4 + threads              # and no worker kept going afterwards


def test_max_errors_default_comes_from_settings():
    def broken(question: str) -> Example:
        raise ValueError("nope")

    with plait.context(max_errors=0):
        with pytest.raises(EvaluationError, match="1 failed examples"):
            Evaluate(devset=make_devset(5), metric=exact, num_threads=1)(broken)
    with plait.context(max_errors=10):
        assert Evaluate(devset=make_devset(5), metric=exact)(broken).errors == 5


def test_caller_context_reaches_workers_and_stays_isolated():
    seen: list[tuple[str, object]] = []
    lock = threading.Lock()
    marker_lm = object()

    def program(question: str) -> Example:
        with lock:
            seen.append((REQUEST_ID.get(), settings.lm))
        REQUEST_ID.set(f"changed by {question}")   # must not leak to other examples
        return Example(answer="0")

    token = REQUEST_ID.set("from-caller")
    try:
        with plait.context(lm=marker_lm):
            Evaluate(devset=make_devset(12), metric=exact, num_threads=4)(program)
            Evaluate(devset=make_devset(3), metric=exact, num_threads=1)(program)
        assert REQUEST_ID.get() == "from-caller"
    finally:
        REQUEST_ID.reset(token)
    assert seen == [("from-caller", marker_lm)] * 15


def test_worker_system_exit_reaches_the_caller():
    def exits(question: str) -> Example:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        Evaluate(devset=make_devset(8), metric=exact, num_threads=4)(exits)


def test_per_call_arguments_override_the_constructor():
    evaluate = Evaluate(devset=make_devset(3), metric=lambda e, p: False, num_threads=1)
    assert evaluate(mod_two).score == 0.0
    assert evaluate(mod_two, metric=lambda e, p: True, devset=make_devset(2)).score == 100.0


def test_dspy_style_metric_from_the_package():
    result = Evaluate(devset=make_devset(6), metric=answer_exact_match, num_threads=2)(mod_two)
    assert result.score == 33.33


# --- EvaluationResult --------------------------------------------------------------------------

def test_evaluation_result_behaves_like_its_score():
    result = Evaluate(devset=make_devset(6), metric=exact, num_threads=1)(mod_two)
    assert float(result) == 33.33 and result == 33.33
    assert 30 < result < 40 and result >= 33.33
    assert f"{result:.1f}" == "33.3" and str(result) == "33.33"
    assert repr(result) == "EvaluationResult(score=33.33, errors=0, results=<6 rows>)"
    example, prediction, score = result.results[0]          # rows unpack as DSPy's 3-tuples
    assert example.question == "0" and prediction.answer == "0" and score is True
    assert result.scores == [row[2] for row in result.results]


def test_evaluation_result_pickles():
    result = Evaluate(devset=make_devset(3), metric=exact, num_threads=1)(mod_two)
    copy = pickle.loads(pickle.dumps(result))
    assert copy == result and copy.results == result.results and copy.errors == 0
    assert type(copy.results[0]).__name__ == "EvaluationRow" and copy.results[0].error is None


# --- DSPy 2.5 tuple returns ----------------------------------------------------------------------

def test_tuple_returns_for_dspy_25_code():
    devset = make_devset(3)
    evaluate = Evaluate(devset=devset, metric=exact, num_threads=1)
    score, scores = evaluate(mod_two, return_all_scores=True)
    assert score == 66.67 and scores == [True, True, False]
    score, rows = evaluate(mod_two, return_outputs=True)
    assert score == 66.67 and [row[0] for row in rows] == devset
    score, rows, scores = Evaluate(devset=devset, metric=exact, num_threads=1,
                                   return_all_scores=True, return_outputs=True)(mod_two)
    assert len(rows) == 3 and scores == [True, True, False]


# --- the results table ---------------------------------------------------------------------------

def test_format_table_text():
    def flaky(question: str) -> Example:
        if question == "1":
            raise ValueError("bad\nthing")
        return Example(answer=question, reasoning="because " * 20)

    result = Evaluate(devset=make_devset(3), metric=exact, num_threads=1)(flaky)
    lines = format_table(result, limit=2).splitlines()
    assert lines[0].split(" | ") == ["question", "example_answer", "pred_answer",
                                     "pred_reasoning".ljust(40), "score", "error"]
    assert set(lines[1]) <= {"-", "+"}
    assert lines[2].split(" | ")[:3] == ["0       ", "0             ", "0          "]
    assert "because because" in lines[2] and lines[2].split(" | ")[3].endswith("...")
    assert lines[3].rstrip().endswith("ValueError: bad thing")
    assert lines[4] == "... 1 more rows not shown"
    assert lines[5] == "score: 66.67 (1 failed of 3)"
    assert len(format_table(result).splitlines()) == 2 + 3 + 1


def test_table_is_written_only_when_asked(capsys):
    devset = make_devset(4)
    Evaluate(devset=devset, metric=exact, num_threads=1)(mod_two)
    assert capsys.readouterr().out == ""
    Evaluate(devset=devset, metric=exact, num_threads=1, display_table=2)(mod_two)
    out = capsys.readouterr().out
    assert out.startswith("question | example_answer | pred_answer | score")
    assert "... 2 more rows not shown" in out
    Evaluate(devset=devset, metric=exact, num_threads=1)(mod_two, display_table=True)
    assert "more rows not shown" not in capsys.readouterr().out


# --- progress events and logging -----------------------------------------------------------------

class ProgressRecorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def plait_event(self, event):
        if event.source == "evaluate":
            self.events.append((event.kind, dict(event.data)))


def test_progress_events_reach_plugins():
    recorder = ProgressRecorder()
    with plait.plugins.plugin(recorder, name="test-evaluate-progress"):
        Evaluate(devset=make_devset(6), metric=exact, num_threads=3, display_progress=True)(mod_two)
    kinds = {kind for kind, _ in recorder.events}
    assert kinds == {"progress"}
    data = [payload for _, payload in recorder.events]
    assert [payload["done"] for payload in data] == list(range(7))
    assert all(payload["total"] == 6 and payload["task"] == "Evaluate" for payload in data)
    assert all(payload["display"] is True for payload in data)
    assert data[-1]["postfix"] == {"score": 33.3}


def test_failures_are_logged_with_traceback_on_request(caplog):
    def broken(question: str) -> Example:
        raise ValueError("logged failure")

    with caplog.at_level(logging.WARNING, logger="plait.evaluate"):
        Evaluate(devset=make_devset(1), metric=exact, num_threads=1)(broken)
        Evaluate(devset=make_devset(1), metric=exact, num_threads=1, provide_traceback=True)(broken)
    first, second = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "logged failure" in first.getMessage() and first.exc_info is None
    assert second.exc_info is not None


# --- bad input ---------------------------------------------------------------------------------

def test_bad_input_errors_name_the_fix():
    with pytest.raises(ValueError, match="needs a metric"):
        Evaluate(devset=make_devset(1))(mod_two)
    with pytest.raises(ValueError, match="empty devset"):
        Evaluate(devset=[], metric=exact)(mod_two)
    with pytest.raises(ValueError, match=r"devset\[1\]: .*with_inputs"):
        Evaluate(devset=[make_devset(1)[0], Example(question="q")], metric=exact)(mod_two)
    with pytest.raises(TypeError, match=r"devset\[0\] is a dict"):
        Evaluate(devset=[{"question": "q"}], metric=exact)(mod_two)
    with pytest.raises(ValueError, match="num_threads must be an int >= 1"):
        Evaluate(devset=make_devset(1), metric=exact, num_threads=0)
    with pytest.raises(ValueError, match="display_table"):
        Evaluate(devset=make_devset(1), metric=exact, display_table=-1)
