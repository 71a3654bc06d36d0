"""TemplateAdapter on real SmolLM2-135M completions: each failure mode found on the real model,
replayed through DummyLM (or parse) with the strings the model actually wrote.

The completions were recorded with benchmarks/small_lm_parsing.py and small capture scripts
(greedy decoding, max_tokens=48): "in process" is ``plait.LM("llamacpp/smollm2-135m")``, which
gets ``prompt=`` (text mode); "server" is ``plait.LM("openai/smollm2", api_base=...,
small_model=True)`` against llama_cpp.server, a plain chat without prefill. "Before" strings
came from the code before this fix (commit 329c1e1), when they were wrongly accepted.
"""

from __future__ import annotations

import pytest

import plait
from plait.adapters import TemplateAdapter
from plait.errors import AdapterParseError
from plait.lm.types import LMCapabilities
from plait.testing.dummy import DummyLM

QA = plait.Predict("question -> answer").signature
COT = plait.ChainOfThought("question -> answer").predict.signature
COT_CTX = plait.ChainOfThought("context, question -> answer").predict.signature
SERVER_CAPS = LMCapabilities(chat=True, small_model=True)   # what the openai backend declares

COLOR_Q = "What color was used to emphasize the 50th anniversary of the Super Bowl?"
BIG_STONE_Q = 'The director of the romantic comedy "Big Stone Gap" is based in what New York city?'
LALELI_Q = "Are the Laleli Mosque and Esma Sultan Mansion located in the same neighborhood?"

# 1. Placeholders. Before: the guide said "${${reasoning}}" and the model copied it (in process).
BEFORE_PLACEHOLDERS = " ${${reasoning}}\nAnswer: ${answer}"
# After the fix, in process, COLOR_Q: a placeholder inside the reasoning, then the retry and the
# continuation the model wrote.
PLACEHOLDER_RUN = [" The answer is ${reasoning}\nAnswer: Red\n", " The answer is 2014.", " 2014"]

# 2. Empty answers (server). Before, Predict: an echo of the question and an empty answer,
# accepted as answer="" in one call; ChainOfThought: "Answer:" to the follow-up, accepted as "".
BEFORE_EMPTY_PREDICT = ('Question: The director of the romantic comedy "Big Stone Gap" is based in '
                        'New York City.\nAnswer:')
BIG_STONE_ANSWER = 'The director of the romantic comedy "Big Stone Gap" is based in New York City.'
BEFORE_COT_FIRST = ("Question: Is the Laleli Mosque and Esma Sultan Mansion located in the same "
                    "neighborhood?\nReasoning: Let's think step by step in order to: Let's think step by step.")
BEFORE_COT_FOLLOW_UP = "Answer:"
LALELI_ANSWER = ("Let's think step by step.\n1. The Laleli Mosque and Esma Sultan Mansion are both located "
                 "in the same neighborhood.\n2. The Laleli Mosque is a mosque, while the Esma Sultan Mansion is a")

# 3. The model repeating the old retry feedback (reported on the server by other engineers).
FEEDBACK_ECHO = "The answer is missing output field(s) Answer:"
_ECHOABLE = {"missing", "continue", "again", "could", "format"}   # words of the old feedback


def server_lm(answers: list[str]) -> DummyLM:
    lm = DummyLM(answers, small_model=True)
    lm.backend.capabilities = SERVER_CAPS   # chat only, no prefill, small: the server's path
    return lm


def requests(lm: DummyLM) -> list[dict]:
    return list(lm.history)


# --- 1. the format guide and copied placeholders ---------------------------------------------

def test_guide_wraps_each_desc_once():
    prompt = TemplateAdapter().format(COT, [], {"question": "q?"}, lm=DummyLM(small_model=True)).prompt
    assert "Question: ${question}\nReasoning: ${reasoning}\nAnswer: ${answer}\n" in prompt
    assert "${${" not in prompt and prompt.endswith("Question: q?\nReasoning:")
    described = plait.Signature("question -> answer").with_updated_fields("answer", desc="a city name")
    assert "Answer: ${a city name}" in TemplateAdapter().format(described, [], {"question": "q"}).messages[1]["content"]


@pytest.mark.parametrize("text", [BEFORE_PLACEHOLDERS, " ${$day_game}\nAnswer: ${answer}", "Answer: ${answer}."])
def test_a_copied_placeholder_is_missing_not_an_answer(text):
    with pytest.raises(AdapterParseError, match="missing output field") as info:
        TemplateAdapter().parse(COT, text)
    assert "answer" not in info.value.parsed
    with pytest.raises(AdapterParseError, match="missing output field"):
        TemplateAdapter().parse(QA, "Answer: ${answer}")


def test_placeholder_in_a_value_retries_without_the_guide_then_continues():
    lm = DummyLM(PLACEHOLDER_RUN, small_model=True)
    with plait.context(lm=lm):
        prediction = plait.ChainOfThought("question -> answer")(question=COLOR_Q)
    assert (prediction.reasoning, prediction.answer) == ("The answer is 2014.", "2014")
    first, retry, continuation = (entry["prompt"] for entry in requests(lm))
    assert "Follow the following format." in first
    # Nothing usable: the same inputs without the guide the placeholder was copied from.
    assert "Follow the following format." not in retry and "${" not in retry
    assert retry.endswith(f"Question: {COLOR_Q}\nReasoning:")
    # The retry gave the reasoning (progress: it did not use up the budget), so it is continued,
    # with the guide again: the request differs from the first one now.
    assert continuation == first + " The answer is 2014.\nAnswer:"


# --- 2. empty answers --------------------------------------------------------------------------

def test_an_empty_answer_is_missing_and_retried():
    with pytest.raises(AdapterParseError, match="missing output field"):
        TemplateAdapter().parse(QA, BEFORE_EMPTY_PREDICT)
    lm = server_lm([BEFORE_EMPTY_PREDICT, BIG_STONE_ANSWER])
    with plait.context(lm=lm):
        assert plait.Predict("question -> answer")(question=BIG_STONE_Q).answer == BIG_STONE_ANSWER
    first, retry = (entry["messages"] for entry in requests(lm))
    # The server path sends no format guide (SmolLM2 copied it and stopped)...
    assert first[1] == {"role": "user", "content": f"Question: {BIG_STONE_Q}\nAnswer:"}
    # ...and the identical request would fail again at temperature 0: the label is left off.
    assert retry == [first[0], {"role": "user", "content": f"Question: {BIG_STONE_Q}"}]


def test_an_empty_answer_never_comes_back_as_the_answer():
    lm = server_lm([BEFORE_COT_FIRST, BEFORE_COT_FOLLOW_UP])
    with plait.context(lm=lm), pytest.raises(AdapterParseError, match="missing output field") as info:
        plait.ChainOfThought("question -> answer")(question=LALELI_Q)
    assert info.value.parsed == {"reasoning": "Let's think step by step in order to: Let's think step by step."}
    assert info.value.completion == BEFORE_COT_FOLLOW_UP


def test_empty_is_missing_only_for_required_fields():
    optional = plait.Signature("question -> answer: str | None")
    assert TemplateAdapter().parse(optional, "Answer:") == {"answer": None}
    assert TemplateAdapter().parse(optional, "Answer: \n") == {"answer": None}


# --- 3. echoed feedback and the shape of the follow-up ------------------------------------------

@pytest.mark.parametrize("echo", [FEEDBACK_ECHO, BEFORE_COT_FOLLOW_UP, "Follow the following format."])
def test_an_echo_of_instructions_or_a_bare_label_is_missing(echo):
    with pytest.raises(AdapterParseError, match="missing output field"):
        TemplateAdapter().parse(COT, f"Reasoning: they are in Istanbul.\nAnswer: {echo}")


def test_follow_ups_re_prime_with_the_label_and_explain_nothing():
    lm = server_lm([BEFORE_COT_FIRST, FEEDBACK_ECHO, LALELI_ANSWER])
    with plait.context(lm=lm, adapter_retries=2):
        prediction = plait.ChainOfThought("question -> answer")(question=LALELI_Q)
    assert prediction.answer == LALELI_ANSWER
    first, continuation, retry = (entry["messages"] for entry in requests(lm))
    done = f"Question: {LALELI_Q}\nReasoning: Let's think step by step in order to: Let's think step by step."
    assert first[1]["content"] == f"Question: {LALELI_Q}\nReasoning:"
    assert continuation == [first[0], {"role": "user", "content": done + "\nAnswer:"}]
    assert retry == [first[0], {"role": "user", "content": done}]
    for messages in (continuation, retry):
        assert len(messages) == 2 and not _ECHOABLE & set(messages[1]["content"].lower().split())


def test_with_the_default_budget_an_echo_is_an_error_not_an_answer():
    lm = server_lm([BEFORE_COT_FIRST, FEEDBACK_ECHO])
    with plait.context(lm=lm), pytest.raises(AdapterParseError, match="after 2 attempt"):
        plait.ChainOfThought("question -> answer")(question=LALELI_Q)


# --- 4. rambling --------------------------------------------------------------------------------

@pytest.mark.parametrize("signature, text, expected", [
    # in process, context: a second "The answer is: ..." line after the answer
    (COT_CTX, " The game was played on February 7, 2016 at Levi's Stadium in the San Francisco Bay Area."
              "\nAnswer: Santa Clara\nThe answer is: Santa Clara California", "Santa Clara"),
    # chat with prefill, context: an "Explanation:" line
    (COT_CTX, " The American Football Conference (AFC) won Super Bowl 50.\nAnswer: Carolina Panthers\n"
              "Explanation: The answer is the NFL team that won Super Bowl 50, which was Carolina Panthers.",
     "Carolina Panthers"),
    # in process, before (stopped only at "\nContext:"): a new example starting with a repeated input label
    (plait.Predict("context, question -> answer").signature,
     " Denver Broncos\nQuestion: Which NFL team won the Super Bowl 2017?\nAnswer: Carolina Panthers\n"
     "Question: Which NFL team won the Super Bowl 2019?\nAnswer: Carolina Panthers\n", "Denver Broncos"),
    # server: the question echoed first, chatter after a blank line
    (QA, "Question: Which NFL team won Super Bowl 50?\nAnswer: New England\n\nThis is a classic example of "
         "a question that requires the use of multiple-choice questions.", "New England"),
    # in process, "---" ends the answer
    (QA, " Paris\n---\nQuestion: What is the capital of Italy?\nAnswer: Rome", "Paris"),
])
def test_rambling_is_cut(signature, text, expected):
    assert TemplateAdapter().parse(signature, text)["answer"] == expected


def test_a_plain_second_line_is_kept():
    # Only labels, blank lines and "---" end the answer; SmolLM2's real two-line answer stays whole.
    assert TemplateAdapter().parse(QA, " AFC\nAFFC (AFC) is a Canadian football team.") == {
        "answer": "AFC\nAFFC (AFC) is a Canadian football team."}


def test_generation_stops_at_every_input_label():
    lm = DummyLM([" Denver Broncos"], small_model=True)
    with plait.context(lm=lm):
        plait.Predict("context, question -> answer")(context="c", question="q")
    assert requests(lm)[0]["params"]["stop"] == ["\n---", "\nContext:", "\nQuestion:"]
    many = plait.Signature("a, b, c, d, e -> answer")
    assert TemplateAdapter().plan(many).stop == ["\n---", "\nA:", "\nB:", "\nC:"]   # servers take 4


# 4. Demos on a small model's plain chat (server). Packed into one user turn, the four bootstrapped
# SST-2 demos made Qwen2.5-Coder-0.5B answer "Positive" to 48 of 50 dev sentences; as user /
# assistant turns it scored 43 of 50 (benchmarks/README.md "Compile quality").
def test_demos_on_a_small_plain_chat_are_user_and_assistant_turns():
    sentiment = plait.Predict("sentence -> sentiment").signature
    demos = [plait.Example(sentence="a joy", sentiment="positive"),
             plait.Example(sentence="a mess", sentiment="negative")]
    lm = server_lm(["negative"])
    formatted = TemplateAdapter().format(sentiment, demos, {"sentence": "dull"}, lm=lm)
    roles = [message["role"] for message in formatted.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert formatted.messages[1]["content"] == "Sentence: a joy\nSentiment:"
    assert formatted.messages[2]["content"] == "positive"
    assert formatted.messages[4]["content"] == "negative"
    assert formatted.messages[-1]["content"] == "Sentence: dull\nSentiment:"
    with plait.context(lm=lm, adapter=TemplateAdapter()):
        predictor = plait.Predict(sentiment)
        predictor.demos = demos
        assert predictor(sentence="dull").sentiment == "negative"


def test_multi_field_demo_turns_continue_the_first_label_and_label_the_rest():
    demo = plait.Example(question="2+2?", reasoning="two and two", answer="4")
    formatted = TemplateAdapter().format(COT, [demo], {"question": "3+3?"}, lm=server_lm([]))
    user, assistant = formatted.messages[1]["content"], formatted.messages[2]["content"]
    assert user.endswith("\nReasoning:") and assistant == "two and two\nAnswer: 4"


# 4b. A demo without every field (a labelled demo for ChainOfThought has no reasoning) keeps the
# packed layout: as an assistant turn "Answer: 4" it taught Qwen2.5-0.5B to skip the reasoning,
# and 19 of 20 SST-2 answers failed to parse (packed: none failed).
def test_incomplete_demos_on_a_small_plain_chat_stay_packed_in_one_user_turn():
    partial = plait.Example(question="2+2?", answer="4")
    complete = plait.Example(question="1+1?", reasoning="one and one", answer="2")
    formatted = TemplateAdapter().format(COT, [complete, partial], {"question": "3+3?"}, lm=server_lm([]))
    assert [m["role"] for m in formatted.messages] == ["system", "user"]
    user = formatted.messages[1]["content"]
    assert "Question: 2+2?\nAnswer: 4" in user and user.endswith("Question: 3+3?\nReasoning:")


def test_demos_in_text_mode_stay_one_prompt():
    sentiment = plait.Predict("sentence -> sentiment").signature
    demos = [plait.Example(sentence="a joy", sentiment="positive")]
    formatted = TemplateAdapter().format(sentiment, demos, {"sentence": "dull"}, lm=DummyLM(small_model=True))
    assert formatted.messages is None and "Sentence: a joy\nSentiment: positive" in formatted.prompt


# 5. The type hint on a small plain chat's label. Without it Qwen2.5-Coder-0.5B wrote "The
# sentiment of this movie review sentence is positive. ..." to 45 of 50 SST-2 sentences and every
# one needed a retry (95 calls); with it, 51 calls and the same accuracy. SmolLM2: 7/50 -> 6/50.
def test_a_small_plain_chat_label_carries_the_type_hint():
    from typing import Literal

    class Sentiment(plait.Signature):
        sentence: str = plait.InputField()
        sentiment: Literal["positive", "negative"] = plait.OutputField()

    lm = server_lm(["The sentiment of this sentence is unclear.", "negative"])
    with plait.context(lm=lm, adapter=TemplateAdapter()):
        assert plait.Predict(Sentiment)(sentence="dull").sentiment == "negative"
    first, retry = (entry["messages"][-1]["content"] for entry in requests(lm))
    assert first == "Sentence: dull\nSentiment (exactly one of: positive; negative):"
    # the hinted label is what the retry would ask again, so the retry leaves it off (see 2.)
    assert retry == "Sentence: dull", retry
    formatted = TemplateAdapter().format(QA, [], {"question": "q?"}, lm=server_lm([]))
    assert formatted.messages[-1]["content"].endswith("\nAnswer:"), "text fields have no hint"
