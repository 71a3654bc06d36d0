"""TemplateAdapter: the "Label: value" prompt template, for small and text-completion models.

The prompt is the instructions, "---", a "Follow the following format." block with one line
per field, "---", the demos as "Label: value" blocks, then the current inputs followed by the
FIRST output label, so the model only has to continue. How it is sent depends on the backend:

- text completion (``capabilities.text`` and not chat, or a small model that takes text, as
  the llama.cpp plugin's SmolLM2): ``prompt=`` ending with the first output label;
- chat with ``prefill``: the template as the user message, ``prefill=`` the first label;
- plain chat: the template, ending with the first label, as the user message; for a small
  model without the format guide (SmolLM2 behind an OpenAI-style server copied the guide's
  inputs and label and stopped there), so it sees only the instructions, demos and inputs.

Small models ramble on into a new example, so generation stops at "---" and the input labels,
parsing stops at "---" or a repeated input label, the last field ends at a blank line or at a
new unknown label ("Explanation:"), and text before any label belongs to the first expected
output field. They also copy the guide's ``${...}`` placeholders, answer with nothing or echo
instructions: such a value counts as MISSING. When output fields are missing, the adapter
CONTINUES the partial answer: the same request with the fields so far filled in, ending with
the next label; no explanation is sent, since small models copy it into their answer. A
follow-up that adds a field is free; one that adds nothing counts against the retry budget.
This is what lets a 135M model do reasoning-then-answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.adapters._parsing import FieldInfo, keys_for, label_regex, normalize_key, render_value
from plait.adapters.base import (Adapter, Formatted, base_infos, check_inputs, default_instructions,
                                 demo_parts)
from plait.errors import AdapterParseError

_SEPARATOR = "\n\n---\n\n"
_SEPARATOR_LINE = re.compile(r"^[ \t]*-{3,}[ \t]*$", re.M)
_MAX_STOPS = 4
_PLACEHOLDER = re.compile(r"\$\{[^\n]*\}")
# A later line that starts a label of its own: "Explanation: ...", "Note: ...", "Step 2:".
_NEW_LABEL_LINE = re.compile(r"\n[ \t]*[*_]{0,2}[A-Z][\w'-]*(?:[ \t]+[\w'-]+){0,2}[*_]{0,2}:(?=[ \t]|$)", re.M)
# Our own phrases that a small model echoed as its answer: the guide's heading and the parse
# error that retries used to quote. Specific on purpose: a real answer may say "could not".
_ECHO = re.compile(r"missing output field|follow the following format", re.I)


@dataclass(frozen=True, slots=True)
class TemplatePlan:
    inputs: tuple[FieldInfo, ...]
    outputs: tuple[FieldInfo, ...]
    input_names: tuple[str, ...]
    system: str                          # the instructions (chat modes)
    text_header: str                     # instructions + format guide (text mode)
    chat_header: str                     # format guide (chat modes: instructions are the system)
    first_label: str                     # "Answer:"
    hinted_first_label: str              # "Answer (a single int value):"; first_label for text
    output_format: str                   # the "Label: ${...}" lines of the outputs
    keys: dict[str, FieldInfo]           # normalized label or name -> field
    output_index: dict[str, int]         # output name -> position
    labels: re.Pattern[str]              # any "Label:" at a line start
    inline: tuple[re.Pattern[str], ...]  # per output: "Label:" anywhere (run-on answers)
    stop: list[str]                      # stop sequences for text / prefill requests
    placeholders: tuple[str, ...]        # the guide's "${...}" texts, which models copy


class TemplateAdapter(Adapter):
    """"Label: value" prompts that a small or text-completion model continues."""

    name = "template"

    def _build_plan(self, signature: Any) -> TemplatePlan:
        inputs, outputs = base_infos(signature)
        instructions = default_instructions(signature, inputs, outputs)
        placeholders = tuple(_placeholder(info) for info in inputs + outputs)
        guide_lines = [f"{info.label}: {placeholder}" + (f" ({info.hint})" if info.hint else "")
                       for info, placeholder in zip(inputs + outputs, placeholders)]
        output_format = "\n".join(guide_lines[len(inputs):])
        guide = "Follow the following format.\n\n" + "\n".join(guide_lines) + _SEPARATOR
        first_label = f"{outputs[0].label}:" if outputs else ""
        hinted = f"{outputs[0].label} ({outputs[0].hint}):" if outputs and outputs[0].hint else first_label
        inline = tuple(re.compile(r"(?:^|(?<=[\s*_.]))[*_]{0,2}" + re.escape(info.label)
                                  + r"[*_]{0,2}[ \t]*:[*_]{0,2}[ \t]?", re.I) for info in outputs)
        # A new example starts with an input label; OpenAI-style servers take at most 4 stops.
        stop = ["\n---"] + [f"\n{info.label}:" for info in inputs[:_MAX_STOPS - 1]]
        return TemplatePlan(inputs, outputs, tuple(i.name for i in inputs), instructions,
                            instructions + _SEPARATOR + guide, guide, first_label, hinted, output_format,
                            keys_for(inputs + outputs), {info.name: i for i, info in enumerate(outputs)},
                            label_regex(inputs + outputs, colon_required=True), inline, stop,
                            tuple(sorted(set(placeholders))))

    # --- format ---------------------------------------------------------------------------
    def format(self, signature: Any, demos: Sequence[Any], inputs: Mapping[str, Any], *,
               lm: Any = None) -> Formatted:
        plan = self.plan(signature)
        check_inputs(signature, inputs, plan.input_names)
        mode = _mode(lm)
        if mode == "small_chat" and demos:
            parts = demo_parts(demos, plan.inputs, plan.outputs)
            # Turns only when every demo shows every field: an assistant turn without the
            # reasoning (a labelled demo for ChainOfThought) taught Qwen2.5-0.5B to skip it, and
            # 19 of 20 answers failed to parse; packed into the prompt, none did.
            if parts and all(complete for _, _, complete in parts):
                return self._format_turns(plan, parts, inputs)
        blocks = []
        if demos:
            for shown_in, shown_out, _complete in demo_parts(demos, plan.inputs, plan.outputs):
                lines = [f"{info.label}: {text}" for info, text in shown_in]
                lines += [f"{info.label}: {render_value(info, value)}" for info, value in shown_out]
                blocks.append("\n".join(lines))
        blocks.append("\n".join(f"{info.label}: {render_value(info, inputs[info.name])}"
                                for info in plan.inputs))
        body = _SEPARATOR.join(blocks)
        if mode == "text":
            return Formatted(None, f"{plan.text_header}{body}\n{plan.first_label}", None)
        system = {"role": "system", "content": plan.system}
        if mode == "prefill":
            return Formatted([system, {"role": "user", "content": plan.chat_header + body}], None,
                             plan.first_label)
        # Without a prefill a small model copies the format guide (inputs, label) and stops
        # there: measured on SmolLM2-135M, see benchmarks/README.md. Demos still show the format.
        if mode == "small_chat":   # no guide, so the label carries the type hint (the retry's words)
            return Formatted([system, {"role": "user", "content": f"{body}\n{plan.hinted_first_label}"}],
                             None, None)
        return Formatted([system, {"role": "user", "content": f"{plan.chat_header}{body}\n{plan.first_label}"}],
                         None, None)

    def _format_turns(self, plan: TemplatePlan, parts: list[Any], inputs: Mapping[str, Any]) -> Formatted:
        """A small model's plain chat with complete demos: each demo is a user turn ending with
        the first output label and an assistant turn answering it. All demos packed into one user
        turn made Qwen2.5-0.5B answer one label to 48 of 50 SST-2 sentences; as turns it scored
        43 of 50 with the same demos (benchmarks/README.md "Compile quality")."""
        messages = [{"role": "system", "content": plan.system}]
        for shown_in, shown_out, _complete in parts:
            user = "\n".join(f"{info.label}: {text}" for info, text in shown_in) + "\n" + plan.first_label
            answer = [render_value(*shown_out[0])]   # continues the label that ends the user turn
            answer += [f"{info.label}: {render_value(info, value)}" for info, value in shown_out[1:]]
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": "\n".join(answer)}]
        body = "\n".join(f"{info.label}: {render_value(info, inputs[info.name])}" for info in plan.inputs)
        messages.append({"role": "user", "content": f"{body}\n{plan.first_label}"})
        return Formatted(messages, None, None)

    def _request_params(self, signature: Any, lm: Any, lm_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        params = dict(lm_kwargs)
        if "stop" not in params and _mode(lm) in ("text", "prefill"):
            # The model continues a template: stop it where a new example would begin.
            params["stop"] = self.plan(signature).stop
        return params

    def format_completion(self, signature: Any, outputs: Mapping[str, Any]) -> str:
        plan = self.plan(signature)
        return "\n".join(f"{info.label}: {render_value(info, outputs[info.name])}"
                         for info in plan.outputs if info.name in outputs)

    # --- parse ----------------------------------------------------------------------------
    def parse(self, signature: Any, text: str) -> dict[str, Any]:
        return self._parse_from(signature, text, {})

    def _parse_rest(self, signature: Any, text: str, known: Mapping[str, Any]) -> dict[str, Any]:
        return self._parse_from(signature, text, known)

    def _parse_from(self, signature: Any, text: str, known: Mapping[str, Any]) -> dict[str, Any]:
        """Parse the output fields after the ``known`` ones (a leading run of the outputs)."""
        plan = self.plan(signature)
        start = len(known)
        outs = plan.outputs[start:]
        separator = _SEPARATOR_LINE.search(text)
        body = text[:separator.start()] if separator else text
        sections = _sections(plan, body, start)
        if outs:
            _split_inline(plan, sections, start)
            last = plan.outputs[-1]
            if last.text and last.name in sections:
                sections[last.name] = _cut_rambling(sections[last.name])
            for info in outs:
                if info.name in sections and not _usable(plan, info, sections[info.name]):
                    del sections[info.name]   # counts as missing: continued or retried
        return self._typed(signature, text, outs, sections, dict(known))

    # --- continuing a partial answer ------------------------------------------------------
    def _next_request(self, signature: Any, original: Formatted, current: Formatted,
                      error: AdapterParseError, lm: Any) -> tuple[Formatted, dict[str, Any]]:
        """Re-prime rather than explain: the same template with the fields parsed so far filled
        in, ending with the next label (with its type hint after an invalid value). Small models
        copy explanations into their answer, so none is sent. With nothing usable the same
        prompt would give the same answer at temperature 0, so it goes without the format guide
        (the usual source of copied ``${...}`` placeholders and echoed inputs); a chat request
        that would repeat the one that just failed goes without the trailing label."""
        plan = self.plan(signature)
        count = 0
        while count < len(plan.outputs) and plan.outputs[count].name in error.parsed:
            count += 1
        known = {info.name: error.parsed[info.name] for info in plan.outputs[:count]}
        if count == len(plan.outputs):   # nothing to continue (cannot happen after a parse error)
            return super()._next_request(signature, original, current, error, lm)
        info = plan.outputs[count]
        invalid = error.field == info.name
        label = f"{info.label} ({info.hint}):" if invalid and info.hint else f"{info.label}:"
        done = "".join(f"{o.label}: {render_value(o, known[o.name])}\n" for o in plan.outputs[:count])
        drop_guide = not count and not invalid
        if original.prompt is not None:
            prompt = original.prompt[:len(original.prompt) - len(plan.first_label)]
            if drop_guide and prompt.startswith(plan.text_header):
                prompt = plan.system + _SEPARATOR + prompt[len(plan.text_header):]
            return Formatted(None, prompt + done + label, None), known
        messages = list(original.messages or ())
        user = messages[-1]["content"] if messages else ""
        if original.prefill is None:   # plain chat: the user turn ends with the first label
            first = plan.hinted_first_label if user.endswith(plan.hinted_first_label) else plan.first_label
            user = user[:len(user) - len(first)]
        if drop_guide and user.startswith(plan.chat_header):
            user = user[len(plan.chat_header):]
        if original.prefill is not None:
            return Formatted(messages[:-1] + [{"role": "user", "content": user}], None, done + label), known
        messages[-1:] = [{"role": "user", "content": user + done + label}]
        if messages == current.messages:
            # The very request that just failed would fail the same way at temperature 0: leave
            # the label off and let the model answer freely (its text goes to the next field).
            # Showing SmolLM2 its failed answer made it repeat that answer.
            messages[-1:] = [{"role": "user", "content": (user + done).rstrip()}]
        return Formatted(messages, None, None), known

    def _progressed(self, signature: Any, known: Mapping[str, Any], error: AdapterParseError) -> bool:
        """The attempt parsed the field after ``known``, so it does not use up the budget (each
        free attempt adds a field: at most as many as there are output fields)."""
        outputs = self.plan(signature).outputs
        return len(known) < len(outputs) and outputs[len(known)].name in error.parsed


def _mode(lm: Any) -> str:
    """"text" (prompt=), "prefill" (chat + prefill=), "small_chat" (a small model's plain chat)
    or "chat" for this LM."""
    caps = getattr(lm, "capabilities", None) if lm is not None else None
    if caps is None:
        return "chat"
    if caps.text and (not caps.chat or caps.small_model):
        return "text"
    if caps.prefill:
        return "prefill"
    return "small_chat" if caps.small_model else "chat"


def _placeholder(info: FieldInfo) -> str:
    """The guide's stand-in for a field's value: ``${desc}``, or the desc itself when it is
    one already (ChainOfThought's reasoning desc is ``${reasoning}``)."""
    desc = info.desc or info.name
    return desc if _PLACEHOLDER.fullmatch(desc) else f"${{{desc}}}"


def _cut_rambling(text: str) -> str:
    """The last field ends at a blank line or at a line starting a new, unknown label
    ("Explanation: ..."): past it small models ramble on."""
    text = text.strip().split("\n\n", 1)[0]
    match = _NEW_LABEL_LINE.search(text)
    return text[:match.start()].rstrip() if match else text


def _usable(plan: TemplatePlan, info: FieldInfo, raw: str) -> bool:
    """False for what a small model writes instead of a value: nothing (for a required field),
    a copied ``${...}`` placeholder, a bare field label, or an echo of our own instructions."""
    text = raw.strip()
    if not text:
        return info.optional
    bare = text.strip("*_`'\". ")
    if _PLACEHOLDER.fullmatch(bare) or any(p in text for p in plan.placeholders):
        return False
    if _ECHO.search(text):
        return False
    label = plan.labels.match(text)
    return label is None or bool(text[label.end():].strip(" \t*_:"))


def _sections(plan: TemplatePlan, body: str, start: int) -> dict[str, str]:
    """Output name -> raw text, for the outputs from ``start`` on. Text before any label belongs
    to the first of them; an input label or a repeated output label after the answer began
    starts a new example, where reading stops."""
    sections: dict[str, str] = {}
    lead: str | None = None
    current: str | None = None
    section_start = 0
    for match in plan.labels.finditer(body):
        info = plan.keys.get(normalize_key(match.group(1)))
        if info is None:
            continue
        if lead is None:
            lead = body[:match.start()]
        elif current is not None:
            sections[current] = body[section_start:match.start()]
        index = plan.output_index.get(info.name, -1)
        if index < start or info.name in sections:
            if current is not None or sections or lead.strip():
                current = None
                break
            current = None   # the model echoed the inputs before answering: skip them
            continue
        current = info.name
        section_start = match.end()
    if current is not None:
        sections[current] = body[section_start:]
    if lead is None:
        lead = body
    first = plan.outputs[start].name if start < len(plan.outputs) else None
    if first is not None and first not in sections and lead.strip():
        sections = {first: lead, **sections}
    return sections


def _split_inline(plan: TemplatePlan, sections: dict[str, str], start: int) -> None:
    """"Reasoning: ... so 4. Answer: 4" on one line: split off the missing next fields."""
    for index in range(start + 1, len(plan.outputs)):
        name, previous = plan.outputs[index].name, plan.outputs[index - 1].name
        if name in sections:
            continue
        if previous not in sections:
            return
        match = plan.inline[index].search(sections[previous])
        if match is None:
            return
        text = sections[previous]
        sections[previous], sections[name] = text[:match.start()], text[match.end():]
