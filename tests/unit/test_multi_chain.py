"""MultiChainComparison: the signature it builds, the attempts it formats, and its checks."""

from __future__ import annotations

import pytest

import plait
from plait.predict.multi_chain import MultiChainComparison
from plait.testing import DummyLM


def test_signature_has_m_attempt_inputs_and_a_rationale_first():
    mcc = MultiChainComparison("question -> answer", M=3)
    signature = mcc.predict.signature
    assert list(signature.input_fields) == ["question", "reasoning_attempt_1", "reasoning_attempt_2",
                                            "reasoning_attempt_3"]
    assert list(signature.output_fields) == ["rationale", "answer"]
    assert signature.input_fields["reasoning_attempt_2"].prefix == "Student Attempt #2:"
    assert signature.output_fields["rationale"].prefix.startswith("Accurate Reasoning: Thank you everyone.")
    assert mcc.predict.config == {"temperature": 0.7}
    assert mcc.last_key == "answer"
    assert [name for name, _ in mcc.named_predictors()] == ["predict"]


def test_attempts_are_formatted_from_first_lines_and_sent_to_the_lm():
    seen = []

    def answer(request):
        seen.append(dict(request.context.inputs))
        return {"rationale": "compare them: most say 4", "answer": "4"}

    lm = DummyLM(answer)
    completions = [{"reasoning": "add 2 and 2\nextra detail", "answer": "4\nmore"},
                   {"rationale": "  two plus two ", "answer": 5},
                   plait.Prediction(reasoning="count", answer="4")]
    pred = MultiChainComparison("question -> answer", M=3)(completions, question="2+2?", lm=lm)
    assert pred.rationale == "compare them: most say 4" and pred.answer == "4"
    assert seen[0]["question"] == "2+2?"
    assert seen[0]["reasoning_attempt_1"] == "«I'm trying to add 2 and 2 I'm not sure but my prediction is 4»"
    assert seen[0]["reasoning_attempt_2"] == "«I'm trying to two plus two I'm not sure but my prediction is 5»"
    assert seen[0]["reasoning_attempt_3"] == "«I'm trying to count I'm not sure but my prediction is 4»"
    prompt = "\n".join(str(m["content"]) for m in lm.history[-1]["messages"])
    assert "[[ ## reasoning_attempt_3 ## ]]" in prompt and "comparing every attempt" in prompt
    assert "«I'm trying to count I'm not sure but my prediction is 4»" in prompt
    assert lm.history[-1]["params"]["temperature"] == 0.7


def test_takes_a_chain_of_thought_prediction_with_m_completions():
    lm = DummyLM([{"reasoning": f"way {i}", "answer": str(i)} for i in range(3)]
                 + [{"rationale": "best is 1", "answer": "1"}])
    attempts = plait.ChainOfThought("question -> answer", n=3)(question="q", lm=lm)
    pred = MultiChainComparison("question -> answer", M=3, temperature=0.2)(attempts, question="q", lm=lm)
    assert pred.answer == "1"
    assert lm.history[-1]["params"]["temperature"] == 0.2
    assert "«I'm trying to way 2 I'm not sure but my prediction is 2»" in lm.history[-1]["messages"][-1]["content"]


def test_the_last_output_field_is_the_one_compared():
    mcc = MultiChainComparison("question -> confidence: float, answer", M=2)
    attempts = mcc.attempts([{"reasoning": "r", "confidence": 0.5, "answer": "A"},
                             {"reasoning": "s", "confidence": 0.9, "answer": "B"}])
    assert attempts["reasoning_attempt_2"].endswith("my prediction is B»")
    assert list(mcc.predict.signature.output_fields) == ["rationale", "confidence", "answer"]


def test_bad_attempts_are_rejected_with_the_fix():
    mcc = MultiChainComparison("question -> answer", M=2)
    with pytest.raises(ValueError, match="M=2 attempts but got 3"):
        mcc.attempts([{"reasoning": "r", "answer": "a"}] * 3)
    with pytest.raises(ValueError, match="no 'reasoning'"):
        mcc.attempts([{"answer": "a"}, {"reasoning": "r", "answer": "b"}])
    with pytest.raises(ValueError, match="no 'answer' field"):
        mcc.attempts([{"reasoning": "r"}, {"reasoning": "r", "answer": "b"}])
    with pytest.raises(TypeError, match="completions\\[0\\] is a str"):
        mcc.attempts(["a", "b"])
    with pytest.raises(ValueError, match="int >= 1"):
        MultiChainComparison("question -> answer", M=0)


async def test_acall_answers_like_call():
    lm = DummyLM([{"rationale": "r", "answer": "yes"}])
    mcc = MultiChainComparison("question -> answer", M=1)
    pred = await mcc.acall([{"reasoning": "x", "answer": "yes"}], question="q", lm=lm)
    assert pred.answer == "yes" and lm.calls == 1
