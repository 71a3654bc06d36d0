"""The built-in progress bar: drawn from ``progress`` events, throttled, switchable by env."""

from __future__ import annotations

import importlib.metadata
import threading

import pytest

from plait import plugins
from plait.builtins import progress


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    # only the progress bar listens: installed entry-point plugins are hidden
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [])
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ("plait.builtins.progress",))
    monkeypatch.setenv("PLAIT_PROGRESS", "1")
    monkeypatch.setattr(progress, "_tasks", {})
    plugins.reset()
    yield
    plugins.reset()


def test_draws_bar_counts_and_postfix_and_ends_the_line(capsys):
    plugins.emit("progress", task="evaluate", done=4, total=10, postfix={"score": 41.2})
    plugins.emit("progress", task="evaluate", done=10, total=10, postfix={"score": 43.75})
    err = capsys.readouterr().err
    first, final = err.split("\r")[1:]
    assert first.startswith("evaluate  40%|" + "#" * 9 + "." * 15 + "| 4/10")
    assert first.rstrip().endswith("score=41.2")
    assert final.startswith("evaluate 100%|" + "#" * 24 + "| 10/10")
    assert final.endswith("score=43.75\n")
    assert capsys.readouterr().out == ""


def test_dotted_progress_kinds_draw_and_other_kinds_do_not(capsys):
    plugins.emit("compile.start", task="x", done=1, total=2)
    assert capsys.readouterr().err == ""
    plugins.emit("evaluate.progress", task="dev", done=1, total=2)
    assert "dev  50%" in capsys.readouterr().err


def test_redraws_are_throttled_but_the_final_one_always_shows(capsys):
    for done in range(1, 201):
        plugins.emit("progress", task="fast", done=done, total=200)
    err = capsys.readouterr().err
    assert 2 <= err.count("\r") < 20
    assert "200/200" in err and err.endswith("\n")


def test_display_false_and_progress_0_draw_nothing(capsys, monkeypatch):
    plugins.emit("progress", task="quiet", done=1, total=1, display=False)
    monkeypatch.setenv("PLAIT_PROGRESS", "0")
    plugins.emit("progress", task="off", done=1, total=1)
    assert capsys.readouterr().err == ""


def test_not_a_terminal_draws_only_when_asked(capsys, monkeypatch):
    monkeypatch.delenv("PLAIT_PROGRESS")
    plugins.emit("progress", task="piped", done=1, total=1)
    assert capsys.readouterr().err == ""  # capsys's stderr is not a tty


def test_unknown_total_shows_a_count(capsys):
    plugins.emit("progress", task="stream", done=7, total=None)
    assert "stream 7 [" in capsys.readouterr().err


def test_a_shorter_line_blanks_out_the_longer_one_before_it(capsys):
    plugins.emit("progress", task="t", done=1, total=3, postfix={"a_long_metric_name": 1})
    progress._tasks[("", "t")][1] = -1.0  # let the next redraw through the throttle
    plugins.emit("progress", task="t", done=2, total=3)
    first, second = capsys.readouterr().err.split("\r")[1:]
    assert len(second) == len(first) and second.endswith(" ")


def test_threads_share_one_well_formed_output(capsys):
    def run(task: str) -> None:
        for done in range(1, 51):
            plugins.emit("progress", task=task, done=done, total=50)

    threads = [threading.Thread(target=run, args=(f"worker{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    err = capsys.readouterr().err
    assert sorted(part.split()[0] for part in err.split("\r")[1:] if "50/50" in part) == [
        f"worker{i}" for i in range(4)]
    assert err.count("\n") == 4 and progress._tasks == {}


def test_render_clamps_and_formats():
    assert progress.render("x", 15, 10, 2.0).startswith("x 100%|" + "#" * 24 + "| 15/10 [2.0s,")
    assert progress.render("x", 0, 5, 0.0, {"loss": 0.123456, "step": 3}).endswith(
        "[0.0s, ?it/s] loss=0.1235, step=3")
