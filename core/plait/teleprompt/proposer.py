"""Instruction proposals for the instruction optimizers (COPRO and MIPROv2).

COPRO asks a prompt model to rewrite one instruction (and the prefix of the last output field),
first from the instruction alone, then from earlier attempts with their scores. MIPROv2's
proposals are "grounded": the prompt model sees a short summary of the training data, the
program's structure, a few demos of the step being tuned and a randomly chosen writing tip.
Every proposal is a plain plait ``Predict`` call on the prompt model, so it is cached, traced in
the LM history and counted by usage trackers like any other call.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

from plait.errors import AdapterParseError
from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.signatures import Signature

logger = logging.getLogger("plait.teleprompt")

# Tips MIPROv2 draws from (one per proposal) so the candidates differ in style, not only by chance.
TIPS: dict[str, str] = {
    "none": "",
    "concise": "Keep the instruction short, clear and concise.",
    "creative": "Be creative: try a fresh way of framing the task.",
    "descriptive": "Make the instruction informative: say what a good answer contains.",
    "persona": "Start the instruction with a persona that suits the task (\"You are a ...\").",
    "careful": "Tell the model the task matters and answers will be checked carefully.",
    "format": "Say exactly what form each output should take.",
}

_MAX_VALUE_CHARS = 300      # a long field value is cut when shown to the prompt model
_MAX_PREFIX_CHARS = 60      # an output prefix is a short label, never a paragraph


@cache
def basic_instruction_signature() -> Signature:
    """COPRO's first round: propose an instruction and output prefix from the current instruction."""
    return (Signature("basic_instruction -> proposed_instruction, proposed_prefix_for_output_field",
                      "You improve instructions for language models. Given the instruction a step of "
                      "a program uses now, write a better instruction that makes a capable language "
                      "model do the task well, and a short label to put before its final output.")
            .with_updated_fields("basic_instruction", desc="the instruction used now")
            .with_updated_fields("proposed_instruction", desc="the improved instruction")
            .with_updated_fields("proposed_prefix_for_output_field",
                                 desc="a short label (a few words) that starts the final output"))


@cache
def attempts_signature() -> Signature:
    """COPRO's later rounds: propose a better instruction from scored attempts."""
    return (Signature("attempted_instructions -> proposed_instruction, proposed_prefix_for_output_field",
                      "You improve instructions for language models. Below are instructions already "
                      "tried, each with its output label and validation score, from the lowest score "
                      "to the highest. Write a new instruction that should score higher than all of "
                      "them, and a short label to put before its final output.")
            .with_updated_fields("attempted_instructions", desc="earlier attempts, worst first")
            .with_updated_fields("proposed_instruction", desc="the improved instruction")
            .with_updated_fields("proposed_prefix_for_output_field",
                                 desc="a short label (a few words) that starts the final output"))


@cache
def dataset_summary_signature() -> Signature:
    return (Signature("examples -> summary",
                      "Read these examples from a dataset and describe, in two or three sentences, "
                      "what they have in common: the topic, the form of inputs and outputs, and "
                      "what task the dataset is probably for.")
            .with_updated_fields("examples", desc="a few records from the dataset")
            .with_updated_fields("summary", desc="two or three sentences"))


@cache
def grounded_signature() -> Signature:
    """MIPROv2: propose one instruction for one step, grounded in data, program and demos."""
    return (Signature("dataset_summary, program_structure, step_name, step_signature, current_instruction, "
                      "example_demos, tip -> proposed_instruction",
                      "You write instructions for one step of a language-model program. Using the "
                      "description of the data, the program's structure, the step's inputs and "
                      "outputs and a few worked examples of the step, write an instruction that "
                      "makes a language model do this step well. Follow the tip if there is one.")
            .with_updated_fields("dataset_summary", desc="what the training data looks like")
            .with_updated_fields("program_structure", desc="every step of the program")
            .with_updated_fields("step_name", desc="the step to write the instruction for")
            .with_updated_fields("step_signature", desc="that step's inputs -> outputs")
            .with_updated_fields("current_instruction", desc="the step's instruction now")
            .with_updated_fields("example_demos", desc="worked examples of the step (may be empty)")
            .with_updated_fields("tip", desc="a suggestion for the style of the instruction")
            .with_updated_fields("proposed_instruction", desc="the new instruction"))


# --- text helpers --------------------------------------------------------------------------

_FENCE = re.compile(r"^```[\w-]*\s*|\s*```$")


def clean_instruction(text: Any) -> str:
    """A proposal as usable text: whitespace, a wrapping code fence and wrapping quotes stripped."""
    return _FENCE.sub("", str(text or "").strip()).strip().strip('"').strip("'").strip()


def clean_prefix(text: Any, fallback: str) -> str:
    """One short line; ``fallback`` (the current prefix) when the proposal is empty."""
    lines = clean_instruction(text).splitlines()
    prefix = lines[0].strip() if lines else ""
    return prefix[:_MAX_PREFIX_CHARS].strip() or fallback


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def render_examples(examples: Iterable[Example | dict[str, Any]], keys: Sequence[str] | None = None) -> str:
    """Numbered records, one "key: value" line per field (values cut to a few hundred chars)."""
    blocks = []
    for number, example in enumerate(examples, 1):
        items = example.items() if hasattr(example, "items") else dict(example).items()
        lines = [f"{key}: {_short(value)}" for key, value in items
                 if (keys is None or key in keys) and not str(key).startswith(("_", "augmented"))]
        blocks.append(f"Example {number}:\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def predictors_of(program: Module) -> list[tuple[str, Any]]:
    """The student's named predictors, or a clear error when it is not a program with any."""
    if not isinstance(program, Module):
        raise TypeError(f"compile() takes a plait.Module as the student, not {type(program).__name__}")
    named = program.named_predictors()
    if not named:
        raise ValueError(f"{type(program).__name__} has no predictors to optimize: give it a plait.Predict "
                         f"(or a module holding one)")
    return named


def describe_program(program: Module) -> str:
    """The program's structure as text: each predictor's name, signature and instruction."""
    lines = []
    for name, predictor in program.named_predictors():
        signature = predictor.signature
        lines.append(f"- {name}: {signature.signature}. Instruction: {_short(signature.instructions)}")
    return "\n".join(lines)


def dedupe(texts: Iterable[str]) -> list[str]:
    """Non-empty texts, first occurrence kept (whitespace-insensitive)."""
    seen: set[str] = set()
    kept = []
    for text in texts:
        key = " ".join(text.split())
        if key and key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


# --- calls to the prompt model ----------------------------------------------------------------

def _predict(signature: Signature, prompt_model: Any, **config: Any) -> Any:
    from plait.predict import Predict   # loaded on use: keeps importing the optimizers light
    predictor = Predict(signature, **config)
    predictor.lm = prompt_model
    return predictor


def propose_pairs(signature: Signature, inputs: dict[str, str], *, prompt_model: Any, n: int,
                  temperature: float) -> list[tuple[str, str]]:
    """(instruction, raw prefix) pairs from one call with ``n`` completions (COPRO)."""
    prediction = _predict(signature, prompt_model, n=n, temperature=temperature)(**inputs)
    completions = prediction.completions
    if completions is None:
        return [(prediction.proposed_instruction, prediction.proposed_prefix_for_output_field)]
    return list(zip(completions.proposed_instruction, completions.proposed_prefix_for_output_field))


def format_attempts(attempts: Sequence[tuple[str, str, float]]) -> str:
    """COPRO's history: (instruction, prefix, score) worst first, numbered."""
    lines = []
    for number, (instruction, prefix, score) in enumerate(attempts, 1):
        lines += [f"Instruction #{number}: {instruction}", f"Prefix #{number}: {prefix}",
                  f"Resulting Score #{number}: {score:.2f}"]
    return "\n".join(lines)


def summarize_dataset(trainset: Sequence[Example], *, prompt_model: Any, view_size: int) -> str:
    """A short LM-written summary of the first ``view_size`` training examples (one call)."""
    try:
        prediction = _predict(dataset_summary_signature(), prompt_model)(
            examples=render_examples(trainset[:view_size]))
    except AdapterParseError as error:   # proposals can go on without a summary
        logger.warning("MIPROv2: the dataset summary could not be read: %s", error)
        return "(no summary)"
    return clean_instruction(prediction.summary)


def propose_grounded(program: Module, *, dataset_summary: str, demo_sets: Sequence[Sequence[list[Example]]],
                     count: int, prompt_model: Any, rng: random.Random, temperature: float,
                     checkpoint: Callable[[], None], on_proposal: Callable[[], None]) -> list[list[str]]:
    """Per predictor: its current instruction first, then up to ``count - 1`` distinct proposals.

    ``demo_sets[i]`` are predictor i's candidate demo sets; proposal k shows up to three demos of
    set ``k % len(demo_sets[i])``. Each proposal draws a tip from :data:`TIPS` with ``rng``.
    """
    structure = describe_program(program)
    proposer = _predict(grounded_signature(), prompt_model, temperature=temperature)
    tip_names = sorted(TIPS)
    proposals: list[list[str]] = []
    for index, (name, predictor) in enumerate(program.named_predictors()):
        signature = predictor.signature
        sets = demo_sets[index] if index < len(demo_sets) else []
        texts = [signature.instructions]
        for number in range(1, count):
            checkpoint()
            demos = sets[number % len(sets)][:3] if sets else []
            tip = TIPS[rng.choice(tip_names)]
            try:
                prediction = proposer(
                    dataset_summary=dataset_summary, program_structure=structure, step_name=name,
                    step_signature=signature.signature, current_instruction=signature.instructions,
                    example_demos=render_examples(demos) or "(none)", tip=tip or "(none)")
            except AdapterParseError as error:   # one unusable answer costs one candidate, not the run
                logger.warning("MIPROv2: proposal %d for %s was unreadable: %s", number, name, error)
                continue
            finally:
                on_proposal()
            texts.append(clean_instruction(prediction.proposed_instruction))
        proposals.append(dedupe(texts))
    return proposals
