"""64 threads, each under its own context(lm=...), many calls: no cross-talk."""

from __future__ import annotations

import threading

import plait
from plait.testing import DummyLM


def test_64_threads_keep_their_own_lm():
    predict = plait.Predict("question -> answer")
    errors: list[str] = []
    barrier = threading.Barrier(64)

    def worker(index: int) -> None:
        lm = DummyLM(lambda request, i=index: {"answer": f"thread-{i}:{request.context.inputs['question']}"})
        barrier.wait()
        with plait.context(lm=lm):
            for call in range(40):
                pred = predict(question=f"q{call}")
                if pred.answer != f"thread-{index}:q{call}":
                    errors.append(f"thread {index} call {call} got {pred.answer!r}")
        if lm.calls != 40:
            errors.append(f"thread {index} made {lm.calls} calls on its own LM")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
