"""``import plait as dspy`` runs the seed's syntax and DSPy 3's."""

from __future__ import annotations

from typing import Literal

import plait as dspy
from plait.evaluate import answer_exact_match
from plait.utils.dummies import DummyLM


class GenerateAnswer(dspy.Signature):
    """Answer questions with short factoid answers."""

    context = dspy.InputField(desc="may contain relevant facts")
    question = dspy.InputField()
    answer = dspy.OutputField(desc="often between 1 and 5 words")


PASSAGES = ["Hamlet is a tragedy written by William Shakespeare.",
            "Paris is the capital and largest city of France.",
            "The Nile is a major north-flowing river in Africa."]


class RAG(dspy.Module):
    """The seed README's RAG program, verbatim."""

    def __init__(self, num_passages=3):
        super().__init__()
        self.retrieve = dspy.Retrieve(k=num_passages)
        self.generate_answer = dspy.ChainOfThought(GenerateAnswer)

    def forward(self, question):
        context = self.retrieve(question).passages
        prediction = self.generate_answer(context=context, question=question)
        return dspy.Prediction(context=context, answer=prediction.answer)


def test_seed_rag_program_runs_and_evaluates():
    lm = DummyLM({"Hamlet": {"reasoning": "The passage says so.", "answer": "William Shakespeare"},
                  "France": {"reasoning": "The passage says so.", "answer": "Paris"}})
    retriever = dspy.retriever("memory", embedder=dspy.embedder("hashing"))
    retriever.add(PASSAGES)
    dspy.settings.configure(lm=lm, rm=retriever)
    devset = [dspy.Example(question="Who wrote Hamlet?", answer="William Shakespeare").with_inputs("question"),
              dspy.Example(question="Capital of France?", answer="Lyon").with_inputs("question")]
    evaluate = dspy.evaluate.Evaluate(devset=devset, metric=answer_exact_match, num_threads=2)
    result = evaluate(RAG(num_passages=1))
    assert float(result) == 50.0
    hamlet = result.results[0][1]
    assert [p.text for p in hamlet.context] == [PASSAGES[0]]      # the retriever found the passage
    assert [name for name, _ in RAG().named_predictors()] == ["generate_answer.predict"]


def test_dspy3_style_typed_signature_configure_and_context():
    class Classify(dspy.Signature):
        """Classify sentiment of a given sentence."""

        sentence: str = dspy.InputField()
        sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
        confidence: float = dspy.OutputField()

    dspy.configure(lm=DummyLM([{"sentiment": "positive", "confidence": 0.75}]))
    with dspy.context(lm=DummyLM([{"sentiment": "negative", "confidence": 0.5}])):
        inner = dspy.Predict(Classify)(sentence="awful film")
    outer = dspy.Predict(Classify)(sentence="great film")
    assert (inner.sentiment, inner.confidence) == ("negative", 0.5)
    assert (outer.sentiment, outer.confidence) == ("positive", 0.75)


def test_dspy_lm_class_and_inspect_history(capsys):
    lm = dspy.LM("dummy/echo", answers=[{"answer": "42"}])
    dspy.configure(lm=lm)
    assert dspy.Predict("question -> answer")(question="6*7?").answer == "42"
    dspy.inspect_history(n=1)
    assert "6*7?" in capsys.readouterr().out
