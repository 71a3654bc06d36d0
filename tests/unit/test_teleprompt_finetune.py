"""BootstrapFinetune: traces -> chat records (through the adapter) -> a trainer -> a new program.

Most tests inject ``trainer=`` (a fake that records the job and returns a scripted LM), so the
bootstrapping, the records and the returned program are checked without torch. One test runs the
real LoRA trainer end to end on a tiny randomly initialised model (plumbing only: such a model
learns nothing useful; tests/integration/test_finetune_slow.py proves learning on SmolLM2).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

import plait
from plait.adapters import ChatAdapter, TemplateAdapter
from plait.errors import MissingExtraError
from plait.lm.types import LMRequest, LMResponse, Usage
from plait.teleprompt.base import Budget
from plait.teleprompt.finetune import (FINETUNE_TARGET_CAPABILITIES, BootstrapFinetune, FinetuneJob,
                                       chat_record)
from plait.testing import DummyLM, recorded_events

WORDS = ["cat", "dog", "sun", "pen", "cup", "box", "hat", "map"]
SIGNATURE = plait.Signature("word -> reversed", "Reverse the word.")


def trainset(words: list[str] = WORDS) -> list[plait.Example]:
    return [plait.Example(word=w, reversed=w[::-1]).with_inputs("word") for w in words]


def exact(example: plait.Example, prediction: Any, trace: Any = None) -> bool:
    return example.reversed == prediction.reversed


def teacher_lm(wrong: set[str] = frozenset(), fail: set[str] = frozenset()) -> DummyLM:
    """Reverses words, except ``wrong`` ones (answered as they are) and ``fail`` ones (LM error)."""
    def answer(request: LMRequest) -> dict[str, str]:
        word = request.context.inputs["word"]
        if word in fail:
            raise plait.LMError(f"scripted failure for {word}")
        return {"reversed": word if word in wrong else word[::-1]}
    return DummyLM(answer)


class TargetBackend:
    """Stands in for the finetuned model: the target's capabilities; answers perfectly and keeps
    every request, so tests can compare what the program sends with the training records."""

    capabilities = FINETUNE_TARGET_CAPABILITIES

    def __init__(self) -> None:
        self.calls: list[tuple[LMRequest, str]] = []

    def generate(self, request: LMRequest) -> LMResponse:
        word = request.context.inputs["word"]
        completion = request.context.adapter.format_completion(request.context.signature,
                                                               {"reversed": word[::-1]})
        prefill = request.prefill or ""
        output = completion[len(prefill):] if completion.startswith(prefill) else completion
        self.calls.append((request, output))
        return LMResponse([output], Usage(), request.model)


class FakeTrainer:
    """Records each job and returns an LM over a TargetBackend."""

    def __init__(self) -> None:
        self.jobs: list[FinetuneJob] = []
        self.lms: list[plait.LM] = []

    def __call__(self, job: FinetuneJob) -> plait.LM:
        self.jobs.append(job)
        lm = plait.LM("fake/finetuned", backend=TargetBackend(), cache=False)
        self.lms.append(lm)
        return lm


def student() -> plait.Predict:
    program = plait.Predict(SIGNATURE)
    program.lm = DummyLM(lambda request: {"reversed": "?"})   # the student's own (weak) LM
    return program


def compile_with(optimizer_kwargs: dict[str, Any] | None = None, *, program: Any = None,
                 teacher_model: DummyLM | None = None, examples: list[plait.Example] | None = None,
                 tmp_path: Path) -> tuple[Any, Any, FakeTrainer]:
    trainer = FakeTrainer()
    program = program if program is not None else student()
    teacher = program.deepcopy()
    teacher.set_lm(teacher_model or teacher_lm())
    options = {"metric": exact, "output_dir": tmp_path, "trainer": trainer, **(optimizer_kwargs or {})}
    compiled = BootstrapFinetune(**options).compile(program, trainset=examples or trainset(), teacher=teacher)
    return program, compiled, trainer


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the records ---------------------------------------------------------------------------------

def test_records_are_what_the_adapter_sends_and_parse_back(tmp_path):
    _, compiled, trainer = compile_with(tmp_path=tmp_path)
    (job,) = trainer.jobs
    records = job.records["self"]
    assert len(records) == len(WORDS)
    on_disk = read_jsonl(job.folder / "data" / "self.jsonl")
    assert on_disk == records
    adapter = TemplateAdapter()   # the small-model default the target resolves to
    for example, record in zip(trainset(), records):
        expected = adapter.format(SIGNATURE, [], example.inputs(), lm=compiled.lm)
        *prompt, answer = record["messages"]
        assert prompt == expected.messages
        assert answer["role"] == "assistant"
        assert expected.prefill and answer["content"].startswith(expected.prefill)
        assert adapter.parse(SIGNATURE, answer["content"]) == {"reversed": example.reversed}


def test_the_finetuned_program_sends_exactly_the_recorded_prompts(tmp_path):
    _, compiled, trainer = compile_with(tmp_path=tmp_path)
    records = trainer.jobs[0].records["self"]
    backend = compiled.lm.backend
    for example in trainset():
        assert compiled(**example.inputs()).reversed == example.reversed
    assert len(backend.calls) == len(records)
    for (request, output), record in zip(backend.calls, records):
        *prompt, answer = record["messages"]
        assert request.messages == prompt
        assert request.prefill == "Reversed:"
        assert answer["content"] == request.prefill + output   # the model learns to continue the prefill


def test_a_chosen_adapter_writes_the_records_and_is_pinned(tmp_path):
    _, compiled, trainer = compile_with({"adapter": ChatAdapter()}, tmp_path=tmp_path)
    record = trainer.jobs[0].records["self"][0]
    expected = ChatAdapter().format(SIGNATURE, [], {"word": "cat"}, lm=compiled.lm)
    assert record["messages"][:-1] == expected.messages
    assert ChatAdapter().parse(SIGNATURE, record["messages"][-1]["content"]) == {"reversed": "tac"}
    assert isinstance(compiled.adapter, ChatAdapter)
    assert compiled(word="dog").reversed == "god"


def test_chat_record_refuses_an_adapter_that_writes_text_prompts():
    class TextOnly(TemplateAdapter):
        def format(self, signature, demos, inputs, *, lm=None):
            return type(super().format(signature, demos, inputs, lm=lm))(None, "a prompt", None)

    with pytest.raises(ValueError, match="text prompt, not chat messages"):
        chat_record(TextOnly(), SIGNATURE, {"word": "cat"}, {"reversed": "tac"})


# --- which traces are used ---------------------------------------------------------------------

def test_only_traces_that_pass_the_metric_become_records(tmp_path):
    _, _, trainer = compile_with(teacher_model=teacher_lm(wrong={"dog", "pen"}), tmp_path=tmp_path)
    records = trainer.jobs[0].records["self"]
    words = [json.dumps(record) for record in records]
    assert len(records) == len(WORDS) - 2
    assert not any('"Word: dog' in text or "Word: pen" in text for text in words)
    assert all(record["messages"][-1]["content"].endswith(word[::-1])
               for record, word in zip(records, [w for w in WORDS if w not in {"dog", "pen"}]))


def test_without_a_metric_every_finished_run_is_used_and_failures_are_skipped(tmp_path):
    with recorded_events() as events:
        _, _, trainer = compile_with({"metric": None}, teacher_model=teacher_lm(wrong={"dog"}, fail={"sun"}),
                                     tmp_path=tmp_path)
    assert len(trainer.jobs[0].records["self"]) == len(WORDS) - 1   # "dog" (wrong) kept, "sun" failed
    end = [event for event in events if event.kind == "compile.end"][-1]
    assert end.data["passed"] == len(WORDS) - 1 and end.data["errors"] == 1
    progress = [event.data["done"] for event in events if event.kind == "progress"
                and event.data["task"] == "Bootstrapping"]
    assert progress[0] == 0 and progress[-1] == len(WORDS)


def test_no_passing_trace_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no training data: none of the 8 teacher runs passed the metric"):
        compile_with(teacher_model=teacher_lm(wrong=set(WORDS)), tmp_path=tmp_path)


def test_a_budget_stops_bootstrapping_and_trains_on_what_passed(tmp_path):
    _, _, trainer = compile_with({"budget": Budget(max_calls=3), "num_threads": 1}, tmp_path=tmp_path)
    assert len(trainer.jobs[0].records["self"]) == 3


def test_a_budget_spent_before_any_pass_says_so(tmp_path):
    with pytest.raises(ValueError, match="no training data: the budget ran out first"):
        compile_with({"budget": Budget(max_calls=0)}, tmp_path=tmp_path)


def test_a_numeric_metric_passes_at_the_threshold(tmp_path):
    def closeness(example, prediction, trace=None):   # 1.0 right, 0.5 for the "wrong" echo
        return 1.0 if prediction.reversed == example.reversed else 0.5

    wrong = {"dog", "pen"}
    _, _, strict = compile_with({"metric": closeness, "metric_threshold": 0.9},
                                teacher_model=teacher_lm(wrong=wrong), tmp_path=tmp_path)
    _, _, loose = compile_with({"metric": closeness, "metric_threshold": 0.5},
                               teacher_model=teacher_lm(wrong=wrong), tmp_path=tmp_path)
    assert len(strict.jobs[0].records["self"]) == len(WORDS) - 2
    assert len(loose.jobs[0].records["self"]) == len(WORDS)


# --- the returned program and purity ---------------------------------------------------------

def test_student_is_untouched_and_the_new_program_uses_the_finetuned_lm(tmp_path):
    program = student()
    program.demos = [plait.Example(word="owl", reversed="lwo")]
    original_lm = program.lm
    before = json.dumps(program.dump_state(), sort_keys=True)
    _, compiled, trainer = compile_with(program=program, tmp_path=tmp_path)
    assert json.dumps(program.dump_state(), sort_keys=True) == before
    assert program.lm is original_lm and program.adapter is None and len(program.demos) == 1
    assert compiled is not program
    assert compiled.lm is trainer.lms[0]
    assert compiled.demos == []            # trained without demos, prompted without them
    assert compiled.adapter == "template"  # pinned: the adapter the records were written with


class TwoSteps(plait.Module):
    def __init__(self) -> None:
        self.first = plait.Predict("word -> reversed")
        self.second = plait.Predict("reversed -> upper")

    def forward(self, word: str) -> plait.Prediction:
        reversed_word = self.first(word=word).reversed
        return plait.Prediction(reversed=reversed_word, upper=self.second(reversed=reversed_word).upper)


def two_step_lm() -> DummyLM:
    def answer(request: LMRequest) -> dict[str, str]:
        inputs = request.context.inputs
        return {"reversed": inputs["word"][::-1]} if "word" in inputs else {"upper": inputs["reversed"].upper()}
    return DummyLM(answer)


@pytest.mark.parametrize("multitask", [True, False])
def test_every_predictor_gets_its_records_and_one_or_several_models(tmp_path, multitask):
    program = TwoSteps()
    program.set_lm(DummyLM(lambda request: "?"))
    _, compiled, trainer = compile_with({"multitask": multitask}, program=program,
                                        teacher_model=two_step_lm(), tmp_path=tmp_path)
    if multitask:
        (job,) = trainer.jobs
        assert sorted(job.records) == ["first", "second"]
        assert sorted(p.name for p in (job.folder / "data").iterdir()) == ["first.jsonl", "second.jsonl"]
        assert compiled.first.lm is compiled.second.lm is trainer.lms[0]
    else:
        assert [job.name for job in trainer.jobs] == ["first", "second"]
        assert compiled.first.lm is trainer.lms[0] and compiled.second.lm is trainer.lms[1]
    second = read_jsonl(trainer.jobs[-1].folder / "data" / "second.jsonl")
    assert second[0]["messages"][-1]["content"].endswith("TAC")


def test_the_data_folder_is_named_by_the_data_and_the_settings(tmp_path):
    _, _, first = compile_with(tmp_path=tmp_path)
    _, _, again = compile_with(tmp_path=tmp_path)
    _, _, other = compile_with({"lr": 5e-4}, tmp_path=tmp_path)
    assert first.jobs[0].folder == again.jobs[0].folder
    assert other.jobs[0].folder != first.jobs[0].folder
    assert first.jobs[0].options["lr"] == 1e-3 and other.jobs[0].options["lr"] == 5e-4


# --- errors ----------------------------------------------------------------------------------

def test_trainset_is_required(tmp_path):
    optimizer = BootstrapFinetune(exact, trainer=FakeTrainer(), output_dir=tmp_path)
    with pytest.raises(ValueError, match="needs trainset="):
        optimizer.compile(student(), trainset=None)
    with pytest.raises(ValueError, match="trainset is empty"):
        optimizer.compile(student(), trainset=[])


def test_a_teacher_of_another_shape_is_refused(tmp_path):
    with pytest.raises(ValueError, match="do not match the student's"):
        BootstrapFinetune(exact, trainer=FakeTrainer(), output_dir=tmp_path).compile(
            student(), trainset=trainset(), teacher=TwoSteps())


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be an int >= 1"),
    ({"lr": 0}, "lr must be a number > 0"),
    ({"save": "full"}, "save must be 'merged' or 'adapter'"),
    ({"target": ""}, "must name the base model"),
    ({"metric": "exact"}, "must be callable"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        BootstrapFinetune(**kwargs)


def test_missing_extra_names_the_pip_command_before_any_lm_call(tmp_path, monkeypatch):
    from plait.teleprompt import finetune

    real = importlib.util.find_spec
    monkeypatch.setattr(finetune.importlib.util, "find_spec",
                        lambda name, *args: None if name == "peft" else real(name, *args))
    teacher = student()
    teacher.lm = teacher_lm()
    with pytest.raises(MissingExtraError, match=r"peft.* not installed.*pip install 'plait\[finetune\]'"):
        BootstrapFinetune(exact, output_dir=tmp_path).compile(student(), trainset=trainset(), teacher=teacher)
    assert teacher.lm.calls == 0


def test_estimate_counts_one_call_per_predictor_per_example():
    estimate = BootstrapFinetune(exact).estimate_calls(TwoSteps(), trainset=trainset())
    assert estimate.max_calls == 2 * len(WORDS)


# --- the real trainer, on a tiny random model (plumbing only) ------------------------------------

@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    for module in ("torch", "transformers", "peft", "plait_transformers"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install 'plait[finetune]'); the LoRA plumbing "
                        "test needs it")
    from tiny_causal_lm import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def _provider_for_tiny_models(request):
    """Tests that train the tiny model need the "transformers" LM provider (tests/conftest.py)."""
    if "tiny_model_dir" in request.fixturenames:
        request.getfixturevalue("transformers_provider")


def test_lora_training_end_to_end_on_a_tiny_random_model(tiny_model_dir, tmp_path):
    program = student()
    teacher = program.deepcopy()
    teacher.lm = teacher_lm()
    optimizer = BootstrapFinetune(exact, target=str(tiny_model_dir), output_dir=tmp_path, max_steps=2,
                                  batch_size=4, lm_kwargs={"max_tokens": 4})
    compiled = optimizer.compile(program, trainset=trainset(), teacher=teacher)
    lm = compiled.lm
    assert lm.model.startswith("transformers/") and Path(lm.model.split("/", 1)[1]).is_dir()
    (folder,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    manifest = json.loads((folder / "plait_finetune.json").read_text())
    assert manifest["steps"] == 2 and len(manifest["losses"]) == 2 and manifest["examples"] == len(WORDS)
    assert (folder / "model" / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((folder / "model" / "config.json").read_text())
    assert lm.capabilities == lm.backend.capabilities and lm.backend.capabilities.prefill
    assert isinstance(lm.generate(messages=[{"role": "user", "content": "Word: cat"}]).outputs[0], str)
    # The same data and settings again: the finished folder is reused, nothing is retrained.
    stamp = (folder / "plait_finetune.json").stat().st_mtime_ns
    again = optimizer.compile(program, trainset=trainset(), teacher=teacher)
    assert again.lm.model == lm.model
    assert (folder / "plait_finetune.json").stat().st_mtime_ns == stamp


def test_target_capabilities_match_what_the_transformers_backend_declares(tiny_model_dir):
    from plait_transformers import make_transformers_backend

    backend = make_transformers_backend(str(tiny_model_dir))
    assert backend.capabilities == FINETUNE_TARGET_CAPABILITIES
