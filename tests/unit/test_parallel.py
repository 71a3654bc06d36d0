"""Parallel and Module.batch: order, example shapes, per-item errors, max_errors, context, progress."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

import plait
from plait.hookspecs import hookimpl
from plait.plugins import plugin
from plait.predict.parallel import Parallel, run_calls
from plait.primitives import BatchError, Example, Module, Prediction
from plait.testing import DummyLM


class Echo(Module):
    """Answers with the question reversed after a delay that makes later items finish first;
    fails on questions containing 'boom'."""

    def forward(self, question: str, delay: float = 0.0) -> Prediction:
        time.sleep(delay)
        if "boom" in question:
            raise RuntimeError(f"failed on {question}")
        return Prediction(answer=question[::-1])


def test_results_come_back_in_input_order_across_example_shapes():
    echo = Echo()
    pairs = [(echo, {"question": f"q{i}", "delay": 0.02 * (5 - i)}) for i in range(5)]
    pairs.append((echo, Example(question="ex", answer="ignored").with_inputs("question")))
    pairs.append((echo, ("tup",)))
    pairs.append((lambda example: example.question.upper(), Example(question="whole")))
    parallel = Parallel(num_threads=4, access_examples=True)
    results = parallel(pairs[:-1])
    assert [r.answer for r in results] == ["0q", "1q", "2q", "3q", "4q", "xe", "put"]
    assert Parallel(access_examples=False)([pairs[-1]]) == ["WHOLE"]


def test_errors_are_collected_per_item_not_raised():
    echo = Echo()
    examples = [{"question": q} for q in ["a", "boom1", "b", "boom2"]]
    results = Parallel(num_threads=2, max_errors=5)([(echo, e) for e in examples])
    assert [None if r is None else r.answer for r in results] == ["a", None, "b", None]
    parallel = Parallel(num_threads=2, max_errors=5, return_failed_examples=True)
    results, failed, errors = parallel([(echo, e) for e in examples])
    assert failed == [examples[1], examples[3]]
    assert [str(e) for e in errors] == ["failed on boom1", "failed on boom2"]
    assert parallel.failed_examples == failed and parallel.exceptions == errors
    parallel([(echo, {"question": "fine"})])
    assert parallel.failed_examples == [] and parallel.exceptions == []   # per run, not accumulated


def test_more_failures_than_max_errors_stop_the_run_with_what_finished():
    echo = Echo()
    pairs = [(echo, {"question": q}) for q in ["ok", "boom1", "boom2", "later"]]
    with pytest.raises(BatchError, match="max_errors=1") as info:
        Parallel(num_threads=1, max_errors=1)(pairs)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.results[0].answer == "ko" and info.value.results[3] is None   # cancelled
    assert [index for index, _ in info.value.failures] == [1, 2]
    with plait.context(max_errors=0):
        with pytest.raises(BatchError, match="max_errors=0"):
            Parallel()([(echo, {"question": "boom"})])


def test_each_item_runs_in_a_copy_of_the_callers_context():
    var = contextvars.ContextVar("request_id", default="unset")

    def read_then_write(question):
        seen = var.get()
        var.set("changed inside")
        return seen, threading.current_thread().name

    token = var.set("caller")
    try:
        results = Parallel(num_threads=3)([(read_then_write, {"question": str(i)}) for i in range(6)])
    finally:
        var.reset(token)
    assert [seen for seen, _ in results] == ["caller"] * 6
    assert all(name.startswith("plait-parallel") for _, name in results)


def test_settings_reach_the_workers():
    plait.configure(lm=DummyLM(lambda request: {"answer": request.context.inputs["question"] * 2}))
    predict = plait.Predict("question -> answer")
    other = DummyLM(lambda request: {"answer": "from context"})
    with plait.context(lm=other):
        results = Parallel(num_threads=2)([(predict, {"question": q}) for q in "abc"])
    assert [r.answer for r in results] == ["from context"] * 3
    assert [r.answer for r in Parallel(num_threads=2)([(predict, {"question": q}) for q in "ab"])] == ["aa", "bb"]


def test_nested_parallel_takes_a_list_of_pairs():
    echo = Echo()
    inner = Parallel(num_threads=2)
    results = Parallel(num_threads=2)([(inner, [(echo, {"question": "x1"}), (echo, {"question": "x2"})]),
                                       (echo, {"question": "y"})])
    assert [r.answer for r in results[0]] == ["1x", "2x"] and results[1].answer == "y"


def test_bad_input_is_refused_before_anything_runs():
    calls = []
    pairs = [(lambda **kw: calls.append(kw), {"question": "a"}), (Echo(), "a string")]
    with pytest.raises(TypeError, match=r"exec_pairs\[1\]'s example is a str"):
        Parallel()(pairs)
    assert calls == []
    with pytest.raises(TypeError, match=r"exec_pairs\[0\] must be a \(module, example\) pair"):
        Parallel()([Echo()])
    with pytest.raises(ValueError, match="has no input keys"):
        Parallel()([(Echo(), Example(question="no inputs set"))])
    with pytest.raises(ValueError, match="num_threads must be an int >= 1"):
        Parallel(num_threads=0)
    with pytest.raises(ValueError, match="max_errors must be an int >= 0"):
        Parallel(max_errors=-1)
    assert Parallel()([]) == []
    assert Parallel(return_failed_examples=True)([]) == ([], [], [])


def test_progress_events_count_items_and_errors():
    events = []

    class Listener:
        @hookimpl
        def plait_event(self, event):
            if event.kind == "progress" and event.source == "parallel":
                events.append(dict(event.data))

    with plugin(Listener()):
        Parallel(num_threads=1, max_errors=5, disable_progress_bar=True)(
            [(Echo(), {"question": q}) for q in ["a", "boom"]])
    assert [(e["done"], e["total"]) for e in events] == [(0, 2), (1, 2), (2, 2)]
    assert events[-1]["postfix"] == {"errors": 1} and all(e["display"] is False for e in events)


def test_module_batch_collects_errors_with_the_same_engine():
    examples = [Example(question=q).with_inputs("question") for q in ["a", "boom", "c"]]
    results, failed, errors = Echo().batch(examples, num_threads=2, max_errors=3, return_failed_examples=True)
    assert [None if r is None else r.answer for r in results] == ["a", None, "c"]
    assert failed == [examples[1]] and isinstance(errors[0], RuntimeError)
    assert Echo().batch(examples, max_errors=3)[1] is None   # collected, not raised
    with pytest.raises(BatchError, match="batch stopped after 2 failed items") as info:
        Echo().batch([{"question": "boom1"}, {"question": "boom2"}], num_threads=1, max_errors=1)
    assert len(info.value.failures) == 2


def test_run_calls_returns_results_and_sorted_failures():
    def fail(index):
        raise ValueError(str(index))

    calls = [lambda: 1, lambda: fail(1), lambda: 3, lambda: fail(3)]
    results, failures = run_calls(calls, num_threads=4, max_errors=None)
    assert results == [1, None, 3, None]
    assert [(index, str(error)) for index, error in failures] == [(1, "1"), (3, "3")]
