"""Adapters end to end with a scripted fake LM: request shapes, demos, retries with feedback,
n > 1, TemplateAdapter continuation, async, and resolve_adapter precedence."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plait.adapters import ChatAdapter, Formatted, JSONAdapter, TemplateAdapter, resolve_adapter
from plait.errors import AdapterParseError, UnknownBackendError
from plait.lm.types import LMCapabilities, LMResponse, RequestContext
from plait.primitives.example import Example
from plait.settings import settings
from plait.signatures import Signature

QA = Signature("question -> answer", "Answer the question in a few words.")
COT = Signature("question -> reasoning, answer: int", "Solve the arithmetic problem.")
SMALL_TEXT = LMCapabilities(chat=True, text=True, small_model=True)
CHAT_PREFILL = LMCapabilities(chat=True, prefill=True)


class FakeLM:
    """Answers from a script (a str, or a list of str for n > 1) and records every call."""

    def __init__(self, *answers: str | list[str], capabilities: LMCapabilities | None = None):
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []
        self.capabilities = capabilities or LMCapabilities()

    def generate(self, *, messages=None, prompt=None, prefill=None, context=None, **params) -> LMResponse:
        self.calls.append({"messages": messages, "prompt": prompt, "prefill": prefill,
                           "context": context, "params": params})
        answer = self.answers.pop(0)
        return LMResponse(answer if isinstance(answer, list) else [answer])

    async def agenerate(self, **kwargs: Any) -> LMResponse:
        await asyncio.sleep(0)
        return self.generate(**kwargs)


# --- format: request shapes -----------------------------------------------------------------

def test_chat_format_shape_and_system_prompt_built_once():
    adapter = ChatAdapter()
    first = adapter.format(COT, [], {"question": "2+2?"})
    second = adapter.format(COT, [], {"question": "3+3?"})
    assert [m["role"] for m in first.messages] == ["system", "user"]
    system = first.messages[0]["content"]
    assert system is second.messages[0]["content"]          # built once per signature
    assert system.startswith("Solve the arithmetic problem.")
    for text in ("`question` (str)", "`reasoning` (str)", "`answer` (int)", "[[ ## reasoning ## ]]",
                 "[[ ## completed ## ]]", "a single int value"):
        assert text in system
    user = first.messages[1]["content"]
    assert user.startswith("[[ ## question ## ]]\n2+2?")
    assert "[[ ## answer ## ]] (a single int value)" in user and user.rstrip().endswith("[[ ## completed ## ]].")
    assert first.prompt is None and first.prefill is None


def test_plan_cache_is_per_equal_signature():
    adapter = ChatAdapter()
    plan = adapter.plan(QA)
    assert adapter.plan(Signature("question -> answer", "Answer the question in a few words.")) is plan
    assert adapter.plan(QA.with_instructions("Other.")) is not plan


def test_non_str_inputs_are_rendered_as_json_and_extra_inputs_ignored():
    sig = Signature("tags: list[str], limits: dict[str, int] -> answer")
    formatted = ChatAdapter().format(sig, [], {"tags": ["a", "b"], "limits": {"x": 1}, "unused": object()})
    user = formatted.messages[-1]["content"]
    assert '[[ ## tags ## ]]\n["a", "b"]' in user and '{"x": 1}' in user


def test_missing_input_names_field_and_signature():
    with pytest.raises(ValueError, match=r"missing input field\(s\) context.*question, context -> answer"):
        ChatAdapter().format(Signature("question, context -> answer"), [], {"question": "q"})


def test_json_format_and_response_format_by_capability():
    adapter = JSONAdapter()
    formatted = adapter.format(COT, [], {"question": "2+2?"})
    assert '"reasoning"' in formatted.messages[0]["content"] and "JSON" in formatted.messages[-1]["content"]
    schema_lm = FakeLM('{"reasoning": "2 and 2", "answer": 4}',
                       capabilities=LMCapabilities(json_object=True, json_schema=True))
    assert adapter(schema_lm, {"temperature": 0}, COT, [], {"question": "2+2?"}) == [
        {"reasoning": "2 and 2", "answer": 4}]
    params = schema_lm.calls[0]["params"]
    assert params["temperature"] == 0
    schema = params["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"] == {"type": "integer"} and schema["required"] == ["reasoning", "answer"]
    object_lm = FakeLM('{"reasoning": "r", "answer": 1}', capabilities=LMCapabilities(json_object=True))
    adapter(object_lm, {}, COT, [], {"question": "q"})
    assert object_lm.calls[0]["params"]["response_format"] == {"type": "json_object"}
    plain_lm = FakeLM('{"reasoning": "r", "answer": 1}')
    adapter(plain_lm, {}, COT, [], {"question": "q"})
    assert "response_format" not in plain_lm.calls[0]["params"]


def test_template_text_mode_prompt_ends_with_first_output_label():
    lm = FakeLM(" Paris", capabilities=SMALL_TEXT)
    formatted = TemplateAdapter().format(QA, [{"question": "Capital of Italy?", "answer": "Rome"}],
                                         {"question": "Capital of France?"}, lm=lm)
    assert formatted.messages is None and formatted.prefill is None
    assert formatted.prompt == ("Answer the question in a few words.\n\n---\n\nFollow the following format."
                                "\n\nQuestion: ${question}\nAnswer: ${answer}\n\n---\n\n"
                                "Question: Capital of Italy?\nAnswer: Rome\n\n---\n\n"
                                "Question: Capital of France?\nAnswer:")
    assert TemplateAdapter()(lm, {}, QA, [], {"question": "Capital of France?"}) == [{"answer": "Paris"}]
    assert lm.calls[0]["params"]["stop"] == ["\n---", "\nQuestion:"]


def test_template_chat_modes():
    adapter = TemplateAdapter()
    prefill = adapter.format(QA, [], {"question": "q?"}, lm=FakeLM(capabilities=CHAT_PREFILL))
    assert prefill.prefill == "Answer:" and prefill.messages[0] == {
        "role": "system", "content": "Answer the question in a few words."}
    assert prefill.messages[1]["content"].endswith("Question: q?")
    plain = adapter.format(QA, [], {"question": "q?"}, lm=FakeLM())
    assert plain.prefill is None and plain.messages[1]["content"].endswith("Question: q?\nAnswer:")


# --- demos ----------------------------------------------------------------------------------

def test_chat_demos_complete_partial_and_skipped():
    demos = [Example(question="1+1?", reasoning="one plus one", answer=2),
             {"question": "5+5?", "answer": 10},                   # partial: no reasoning
             {"reasoning": "no inputs here", "answer": 3},          # no input fields: skipped
             {"question": "only an input"}]                         # no outputs: skipped
    messages = ChatAdapter().format(COT, demos, {"question": "2+2?"}).messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == "[[ ## question ## ]]\n1+1?"
    assert messages[2]["content"] == ("[[ ## reasoning ## ]]\none plus one\n\n[[ ## answer ## ]]\n2"
                                      "\n\n[[ ## completed ## ]]")
    assert "some of its fields are missing" in messages[3]["content"]
    assert messages[4]["content"] == "[[ ## answer ## ]]\n10\n\n[[ ## completed ## ]]"


def test_template_and_json_demos():
    demos = [{"question": "1+1?", "reasoning": "one plus one", "answer": 2}, {"question": "5+5?", "answer": 10}]
    user = TemplateAdapter().format(COT, demos, {"question": "2+2?"}).messages[1]["content"]
    assert "Question: 1+1?\nReasoning: one plus one\nAnswer: 2\n\n---\n\nQuestion: 5+5?\nAnswer: 10" in user
    messages = JSONAdapter().format(COT, demos, {"question": "2+2?"}).messages
    assert messages[2]["content"] == '{"reasoning": "one plus one", "answer": 2}'
    assert messages[4]["content"] == '{"answer": 10}'


# --- the call loop: retries with feedback, n > 1, async ---------------------------------------

def test_call_passes_context_and_params():
    lm = FakeLM("[[ ## answer ## ]]\nParis")
    assert ChatAdapter()(lm, {"temperature": 0.5, "n": 1}, QA, [], {"question": "q"}) == [{"answer": "Paris"}]
    call = lm.calls[0]
    assert call["params"] == {"temperature": 0.5, "n": 1}
    assert isinstance(call["context"], RequestContext) and call["context"].signature == QA
    assert call["context"].inputs == {"question": "q"}


def test_retry_feeds_back_the_error_and_format():
    bad = "[[ ## reasoning ## ]]\nfour things\n\n[[ ## answer ## ]]\nfour\n\n[[ ## completed ## ]]"
    lm = FakeLM(bad, "[[ ## reasoning ## ]]\n2+2=4\n\n[[ ## answer ## ]]\n4")
    assert ChatAdapter(max_retries=1)(lm, {}, COT, [], {"question": "2+2?"}) == [
        {"reasoning": "2+2=4", "answer": 4}]
    retry = lm.calls[1]["messages"]
    assert retry[:2] == lm.calls[0]["messages"]
    assert retry[2] == {"role": "assistant", "content": bad}
    feedback = retry[3]["content"]
    assert retry[3]["role"] == "user" and "`answer`" in feedback and "'four'" in feedback
    assert "[[ ## answer ## ]]\n{answer: a single int value}" in feedback


def test_final_error_keeps_raw_completion_and_attempts():
    lm = FakeLM("no idea, sorry", "still no idea", "never asked")
    with pytest.raises(AdapterParseError, match="after 2 attempt") as info:
        ChatAdapter(max_retries=1)(lm, {}, COT, [], {"question": "2+2?"})
    assert info.value.completion == "still no idea" and info.value.adapter == "chat"
    assert info.value.signature == COT and len(lm.calls) == 2


def test_retries_follow_the_setting():
    lm = FakeLM("x", "y", "z", "w")
    with settings.context(adapter_retries=2), pytest.raises(AdapterParseError, match="after 3 attempt"):
        ChatAdapter()(lm, {}, COT, [], {"question": "q"})
    lm = FakeLM("x")
    with pytest.raises(AdapterParseError, match="after 1 attempt"):
        ChatAdapter(max_retries=0)(lm, {}, COT, [], {"question": "q"})
    with pytest.raises(ValueError, match="max_retries"):
        ChatAdapter(max_retries=-1)


def test_n_completions_keep_the_ones_that_parse():
    good = "[[ ## reasoning ## ]]\nok\n\n[[ ## answer ## ]]\n4"
    lm = FakeLM([good, "garbage", good.replace("4", "5")])
    results = ChatAdapter()(lm, {"n": 3}, COT, [], {"question": "q"})
    assert results == [{"reasoning": "ok", "answer": 4}, {"reasoning": "ok", "answer": 5}]
    assert lm.calls[0]["params"]["n"] == 3 and len(lm.calls) == 1


def test_text_only_lm_gets_a_prompt_from_chat_adapter():
    lm = FakeLM("[[ ## answer ## ]]\nParis", capabilities=LMCapabilities(chat=False, text=True))
    assert ChatAdapter()(lm, {}, QA, [], {"question": "q"}) == [{"answer": "Paris"}]
    assert lm.calls[0]["messages"] is None and "[[ ## question ## ]]\nq" in lm.calls[0]["prompt"]


async def test_acall_retries_like_call():
    lm = FakeLM("[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\nmany",
                "[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n7")
    assert await ChatAdapter().acall(lm, {}, COT, [], {"question": "q"}) == [{"reasoning": "r", "answer": 7}]
    assert len(lm.calls) == 2 and "`answer`" in lm.calls[1]["messages"][-1]["content"]


async def test_acall_without_agenerate_runs_generate_in_a_thread():
    class SyncOnly:
        capabilities = LMCapabilities()

        def generate(self, **kwargs: Any) -> LMResponse:
            return LMResponse(["[[ ## answer ## ]]\nParis"])

    assert await ChatAdapter().acall(SyncOnly(), {}, QA, [], {"question": "q"}) == [{"answer": "Paris"}]


# --- TemplateAdapter continuation ---------------------------------------------------------

def test_template_continues_missing_trailing_field_text_mode():
    lm = FakeLM(" First add 2 and 2, which makes four.\n\nQuestion: What is 3+3?", " 4",
                capabilities=SMALL_TEXT)
    assert TemplateAdapter()(lm, {}, COT, [], {"question": "2+2?"}) == [
        {"reasoning": "First add 2 and 2, which makes four.", "answer": 4}]
    first, second = lm.calls[0]["prompt"], lm.calls[1]["prompt"]
    assert first.endswith("Question: 2+2?\nReasoning:")
    assert second == first + " First add 2 and 2, which makes four.\nAnswer:"


def test_template_continuation_with_prefill_and_invalid_value():
    lm = FakeLM(" add them\nAnswer: a lot", "4", capabilities=CHAT_PREFILL)
    assert TemplateAdapter()(lm, {}, COT, [], {"question": "2+2?"}) == [{"reasoning": "add them", "answer": 4}]
    assert lm.calls[0]["prefill"] == "Reasoning:"
    assert lm.calls[1]["messages"] == lm.calls[0]["messages"]
    assert lm.calls[1]["prefill"] == "Reasoning: add them\nAnswer (a single int value):"


def test_template_continuation_plain_chat_and_budget():
    lm = FakeLM("Reasoning: two and two", "Answer: 4")
    assert TemplateAdapter()(lm, {}, COT, [], {"question": "2+2?"}) == [{"reasoning": "two and two", "answer": 4}]
    # Re-primed, not explained: the same user turn with the reasoning filled in and the next label.
    first, follow_up = lm.calls[0]["messages"], lm.calls[1]["messages"]
    assert follow_up == [first[0], {"role": "user", "content": first[1]["content"] + " two and two\nAnswer:"}]
    lm = FakeLM(" still thinking", " more thinking", capabilities=SMALL_TEXT)
    with pytest.raises(AdapterParseError, match="field `answer` expects int") as info:
        TemplateAdapter(max_retries=1)(lm, {}, COT, [], {"question": "2+2?"})
    assert info.value.parsed == {"reasoning": "still thinking"} and info.value.completion == " more thinking"


# --- with the real LM path (DummyLM answers with the adapter's own format_completion) ------

@pytest.mark.parametrize("adapter", [ChatAdapter(), JSONAdapter(), TemplateAdapter()], ids=lambda a: a.name)
@pytest.mark.parametrize("small_model", [False, True])
def test_dummy_lm_round_trip_through_hooks(adapter, small_model):
    from plait.testing.dummy import DummyLM
    lm = DummyLM([{"reasoning": "two and two", "answer": 4}], small_model=small_model)
    demos = [{"question": "1+1?", "reasoning": "one and one", "answer": 2}]
    assert adapter(lm, {}, COT, demos, {"question": "2+2?"}) == [{"reasoning": "two and two", "answer": 4}]
    assert lm.calls == 1


# --- resolve_adapter ------------------------------------------------------------------------

def test_resolve_adapter_precedence():
    explicit = JSONAdapter()
    small = FakeLM(capabilities=LMCapabilities(small_model=True))
    text_only = FakeLM(capabilities=LMCapabilities(chat=False, text=True))
    assert resolve_adapter(explicit, small) is explicit
    assert isinstance(resolve_adapter("json", small), JSONAdapter)
    assert resolve_adapter("json", small) is resolve_adapter("json", None)   # cached by name
    with settings.context(adapter="json"):
        assert isinstance(resolve_adapter(None, small), JSONAdapter)
        assert resolve_adapter(explicit, small) is explicit
    with settings.context(adapter=explicit):
        assert resolve_adapter(None, FakeLM()) is explicit
    assert isinstance(resolve_adapter(None, small), TemplateAdapter)
    assert isinstance(resolve_adapter(None, text_only), TemplateAdapter)
    default = resolve_adapter(None, FakeLM())
    assert type(default) is ChatAdapter and resolve_adapter(None, FakeLM()) is default
    assert type(resolve_adapter(None, None)) is ChatAdapter


def test_resolve_adapter_errors():
    with pytest.raises(UnknownBackendError, match="nope"):
        resolve_adapter("nope", None)
    with pytest.raises(TypeError, match="Adapter instance or a registered adapter name"):
        resolve_adapter(42, None)


def test_builtin_plugin_registers_the_three_adapters():
    from plait.builtins.adapters import plait_register_adapters
    backends = {b.name: b for b in plait_register_adapters()}
    assert set(backends) == {"chat", "json", "template"}
    assert type(backends["template"].factory(max_retries=3)) is TemplateAdapter
    assert backends["template"].factory(max_retries=3).max_retries == 3
    assert all(b.summary for b in backends.values())


def test_formatted_is_a_slots_dataclass():
    formatted = Formatted(prompt="p")
    assert (formatted.messages, formatted.prompt, formatted.prefill) == (None, "p", None)
    with pytest.raises(AttributeError):
        formatted.other = 1  # type: ignore[attr-defined]
