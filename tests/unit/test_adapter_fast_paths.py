"""The per-call fast paths of adapters, predictions, Predict and settings give exactly what the
general code gives.

- ChatAdapter.parse reads a well-formed answer with ``exact_sections``; for any text that path
  accepts, the lenient parser (marker_sections / label_fallback + typing) gives the same result.
- ChatAdapter caches each demo's two messages per demo object; edits to demos are always seen.
- Prediction.from_completions builds ``completions`` lazily for one completion.
- ``plait.settings.effective()`` is what attribute reads see.
"""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plait
from plait.adapters import ChatAdapter, JSONAdapter
from plait.adapters._parsing import marker_sections
from plait.adapters.chat import exact_sections, label_fallback
from plait.errors import AdapterParseError
from plait.primitives.prediction import Completions, Prediction
from plait.settings import effective
from plait.signatures import InputField, OutputField, Signature

SIGNATURES = [
    Signature("question -> answer"),
    Signature("question -> reasoning, answer: int"),
    Signature("context, question -> answer: bool, tags: list[str], score: float"),
    Signature("question -> final_answer, answer"),
]
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def lenient(adapter: ChatAdapter, signature: Signature, text: str) -> dict:
    """ChatAdapter.parse without its fast path."""
    plan = adapter.plan(signature)
    raw = marker_sections(text, plan.output_keys) if "[[" in text else {}
    if not raw:
        raw = label_fallback(plan, text)
    return adapter._typed(signature, text, plan.outputs, raw, {})


def outcome(parse, *args):
    try:
        return parse(*args)
    except AdapterParseError as error:
        return ("error", str(error), error.field, error.parsed)


# Values with the characters that matter to markers: brackets, hashes, markdown, newlines.
VALUE = st.lists(st.one_of(st.sampled_from(["[[", "]]", "[", "]", "#", "**", "\n", "\n\n", " ", "\t", "42",
                                            "[1, 2]", "True", "0.5", "[[ ## answer ## ]]", "[[ ## completed ## ]]",
                                            "Answer:", "answer"]),
                           st.text(max_size=6)), max_size=8).map("".join)
SEPARATOR = st.sampled_from(["\n\n", "\n", "", " ", "\n \n", " **\n", "\n\n\n"])
ENDING = st.sampled_from(["\n\n[[ ## completed ## ]]", "\n[[ ## completed ## ]]\n", "",
                          "\n\n[[ ## completed ## ]] extra",
                          "[[ ## completed ## ]]", "\n\n[[ ## completed ## ]]\n[[ ## answer ## ]]\nlater"])


@pytest.mark.parametrize("signature", SIGNATURES, ids=lambda s: s.signature)
@FAST
@given(data=st.data())
def test_exact_path_agrees_with_the_lenient_parser(signature, data):
    adapter = ChatAdapter()
    names = list(signature.output_fields)
    text = data.draw(st.sampled_from(["", " ", "Here you go:\n"]))
    for index, name in enumerate(names):
        if index:
            text += data.draw(SEPARATOR)
        text += f"[[ ## {name} ## ]]" + data.draw(st.sampled_from(["\n", "\n", " ", ""])) + data.draw(VALUE)
    text += data.draw(ENDING)
    assert outcome(adapter.parse, signature, text) == outcome(lenient, adapter, signature, text)


TRICKY = [
    "[[ ## answer ## ]]\nParis **[[ ## completed ## ]]",      # markdown before the end marker
    "[[ ## answer ## ]]\nParis ## [[ ## completed ## ]]",
    "[[ ## answer ## ]]\nParis\n  [[ ## completed ## ]]",   # indented end marker
    "[[ ## answer ## ]]\nParis\n\n> [[ ## completed ## ]]",
    "[[ ## answer ## ]]\nsee [[note]]\n\n[[ ## completed ## ]]",
    "[[ ## answer ## ]]\n[[ ## completed ## ]]",
    "[[ ## answer ## ]]\n\n[[ ## completed ## ]]",
    "[[ ## answer ## ]] Paris\n[[ ## completed ## ]]",
    "[[ ## answer ## ]]\n[[1, 2], [3]]\n[[ ## completed ## ]]",
    "[[ ## answer ## ]]\nParis\r\n[[ ## completed ## ]]",
    "[[ ## answer ## ]]\nParis\n[[ ## answer ## ]]\nRome",
    "[[ ## answer ## ]]\nParis [[ ## question ## ]] what",
    "[[ ## answer ## ]]\n**Paris**",
    "[[ ## answer ## ]]\n",
    "[[ ## answer ## ]]",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_answers_parse_as_the_lenient_parser_does(text):
    adapter = ChatAdapter()
    for signature in (Signature("question -> answer"), Signature("question -> answer: list[list[int]]")):
        assert outcome(adapter.parse, signature, text) == outcome(lenient, adapter, signature, text)
    two = Signature("question -> reasoning, answer")
    for before in ("[[ ## reasoning ## ]]\nthink *\n", "[[ ## reasoning ## ]]\nthink **", "[[ ## reasoning ## ]]\n"):
        assert outcome(adapter.parse, two, before + text) == outcome(lenient, adapter, two, before + text)


@pytest.mark.parametrize("signature", SIGNATURES, ids=lambda s: s.signature)
def test_well_formed_answers_take_the_exact_path(signature):
    adapter = ChatAdapter()
    values = {"answer": "Paris", "reasoning": "because\n\nit is", "final_answer": "x [1] y",
              "tags": ["a", "b"], "score": 0.5}
    values["answer"] = {"int": 3, "bool": True}.get(signature.output_fields["answer"].annotation.__name__, "Paris")
    outputs = {name: values[name] for name in signature.output_fields}
    text = adapter.format_completion(signature, outputs)
    assert exact_sections(adapter.plan(signature), text) is not None
    assert adapter.parse(signature, text) == outputs == lenient(adapter, signature, text)


def test_exact_path_is_off_when_a_field_is_named_like_the_end_marker():
    adapter = ChatAdapter()
    signature = Signature("question -> completed, answer")
    assert adapter.plan(signature).exact_heads is None
    text = adapter.format_completion(signature, {"completed": "yes", "answer": "no"})
    assert adapter.parse(signature, text) == lenient(adapter, signature, text)


# --- demo messages --------------------------------------------------------------------------

def fresh_format(signature, demos, inputs):
    return ChatAdapter().format(signature, demos, inputs).messages   # a new adapter: nothing cached


@pytest.mark.parametrize("adapter_type", [ChatAdapter, JSONAdapter])
def test_demo_edits_are_always_seen(adapter_type):
    adapter = adapter_type()
    signature = Signature("question -> answer")
    demos = [plait.Example(question="q1", answer="a1"), {"question": "q2", "answer": "a2"},
             plait.Example(question="q3", answer="a3")]
    inputs = {"question": "now?"}

    def check():
        expected = adapter_type().format(signature, demos, inputs).messages
        assert adapter.format(signature, demos, inputs).messages == expected
        assert adapter.format(signature, demos, inputs).messages == expected   # served from the cache
        return expected

    check()
    demos[0].answer = "changed"
    assert any("changed" in m["content"] for m in check())
    demos[1]["question"] = "q2 edited"
    assert any("q2 edited" in m["content"] for m in check())
    del demos[2]["answer"]                                   # no output: the demo is skipped
    assert not any("q3" in m["content"] for m in check())
    demos[2]["answer"] = None                                # None counts as missing
    check()
    demos[2]["answer"] = 7                                   # not a str: rendered, never cached
    assert any("7" in m["content"] for m in check())
    demos.append(plait.Example(question="q4"))               # no output field: skipped
    demos.insert(0, plait.Example(question="q0", answer="a0"))
    check()
    demos[0] = plait.Example(question="other", answer="a0")  # a new object in the same place
    assert any("other" in m["content"] for m in check())


def test_partial_demos_and_fields_with_their_own_format():
    class Sig(Signature):
        question: str = InputField(format=lambda value: f"<<{value}>>")
        context: str = InputField()
        answer: str = OutputField()

    adapter = ChatAdapter()
    demos = [plait.Example(question="q", answer="a"), plait.Example(question="q2", context="c", answer="b")]
    for _ in range(2):
        messages = adapter.format(Sig, demos, {"question": "x", "context": "y"}).messages
        assert messages == fresh_format(Sig, demos, {"question": "x", "context": "y"})
    assert "<<q>>" in messages[1]["content"] and "some of its fields are missing" in messages[1]["content"]


def test_the_demo_cache_is_bounded(monkeypatch):
    from plait.adapters import chat

    monkeypatch.setattr(chat, "_DEMO_CACHE_SIZE", 4)
    adapter = ChatAdapter()
    signature = Signature("question -> answer")
    for index in range(10):
        demos = [plait.Example(question=f"q{index}", answer="a")]
        expected = fresh_format(signature, demos, {"question": "x"})
        assert adapter.format(signature, demos, {"question": "x"}).messages == expected
        assert len(adapter.plan(signature).demo_cache) <= 4


# --- predictions ----------------------------------------------------------------------------

def test_one_completion_prediction_is_complete():
    row = {"answer": "a", "n": 1}
    signature = Signature("question -> answer, n: int")
    pred = Prediction.from_completions([row], signature=signature)
    pred.answer = "edited"                       # the prediction's fields are its own copy
    assert pred.completions.answer == ["a"] and pred.completions.signature is signature
    assert pred.completions is pred.completions and isinstance(pred.completions, Completions)
    assert repr(pred) == "Prediction(answer='edited', n=1)" and pred.get_lm_usage() is None
    for twin in (pickle.loads(pickle.dumps(pred)), copy.copy(pred), copy.deepcopy(pred)):
        assert twin == pred and twin.completions.answer == ["a"]
    fresh = Prediction.from_completions([{"answer": "b"}])
    assert copy.deepcopy(fresh).completions.answer == ["b"] and "_completions" not in fresh.keys()


def test_subclasses_and_other_shapes_take_the_general_path():
    class Scored(Prediction):
        def __init__(self, base=None, **kwargs):
            super().__init__(base, **kwargs)
            self.score = 1.0

    assert Scored.from_completions([{"answer": "a"}]).score == 1.0
    assert Prediction.from_completions(({"answer": "a"},)).completions.answer == ["a"]
    with pytest.raises(TypeError, match="completion 0"):
        Prediction.from_completions(["not a dict"])


# --- settings -------------------------------------------------------------------------------

@pytest.fixture
def clean_settings():
    yield
    plait.settings.reset()


def test_effective_matches_what_attribute_reads_see(clean_settings):
    plait.configure(lm="global", adapter=None)
    assert effective()["lm"] == plait.settings.lm == "global"
    with plait.context(lm="local", trace=[]):
        view = effective()
        assert view["lm"] == "local" and view["trace"] == [] and view["num_threads"] == plait.settings.num_threads
        plait.configure(num_threads=3)           # a global change shows through the override
        assert effective()["num_threads"] == 3 and effective()["lm"] == "local"
        with plait.context(lm="inner"):
            assert effective()["lm"] == "inner"
        assert effective()["lm"] == "local"
        seen = []
        thread = threading.Thread(target=lambda: seen.append(effective()["lm"]))
        thread.start()
        thread.join()
        assert seen == ["global"]
    assert effective()["lm"] == "global"


def test_a_finished_context_is_not_kept_alive_by_the_effective_memo(clean_settings):
    import gc
    import weakref

    class Held:   # stands for an LM or a retriever: heavy, and owned by the context
        pass

    value = Held()
    gone = weakref.ref(value)
    with plait.context(lm=value):
        assert effective()["lm"] is value
    del value
    gc.collect()
    assert gone() is None, "effective() still holds the last context's values after it ended"


def test_predict_reads_settings_per_call(clean_settings):
    lm_a = plait.testing.DummyLM([{"answer": "from a"}] * 3)
    lm_b = plait.testing.DummyLM([{"answer": "from b"}] * 3)
    predict = plait.Predict("question -> answer")
    plait.configure(lm=lm_a)
    assert predict(question="q").answer == "from a"
    trace: list = []
    with plait.context(lm=lm_b, trace=trace):
        assert predict(question="q").answer == "from b"
    assert len(trace) == 1 and trace[0][0] is predict
    assert predict(question="q").answer == "from a"
