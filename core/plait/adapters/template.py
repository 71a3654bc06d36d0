"""TemplateAdapter: the "Label: value" prompt template, for small and text-completion models.

The prompt is the instructions, "---", a "Follow the following format." block with one line
per field, "---", the demos as "Label: value" blocks, then the current inputs followed by the
FIRST output label, so the model only has to continue. How it is sent depends on the backend:

- text completion (``capabilities.text`` and not chat, or a small model that takes text):
  ``prompt=`` ending with the first output label;
- chat with ``prefill``: the template as the user message, ``prefill=`` the first label;
- plain chat: the template, ending with the first label, as the user message.

Small models ramble on into a new example, so parsing stops at "---" or a repeated input
label, and text before any label belongs to the first expected output field. When trailing
output fields are missing, the adapter CONTINUES the partial answer (the prompt or prefill
becomes the answer so far plus the next label), which counts against the retry budget: this
is what lets a 135M model do reasoning-then-answer.
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


@dataclass(frozen=True, slots=True)
class TemplatePlan:
    inputs: tuple[FieldInfo, ...]
    outputs: tuple[FieldInfo, ...]
    input_names: tuple[str, ...]
    system: str                          # the instructions (chat modes)
    text_header: str                     # instructions + format guide (text mode)
    chat_header: str                     # format guide (chat modes: instructions are the system)
    first_label: str                     # "Answer:"
    output_format: str                   # the "Label: ${...}" lines of the outputs
    keys: dict[str, FieldInfo]           # normalized label or name -> field
    output_index: dict[str, int]         # output name -> position
    labels: re.Pattern[str]              # any "Label:" at a line start
    inline: tuple[re.Pattern[str], ...]  # per output: "Label:" anywhere (run-on answers)
    stop: list[str]                      # stop sequences for text / prefill requests


class TemplateAdapter(Adapter):
    """"Label: value" prompts that a small or text-completion model continues."""

    name = "template"

    def _build_plan(self, signature: Any) -> TemplatePlan:
        inputs, outputs = base_infos(signature)
        instructions = default_instructions(signature, inputs, outputs)
        guide_lines = [f"{info.label}: ${{{info.desc or info.name}}}"
                       + (f" ({info.hint})" if info.hint else "") for info in inputs + outputs]
        output_format = "\n".join(guide_lines[len(inputs):])
        guide = "Follow the following format.\n\n" + "\n".join(guide_lines) + _SEPARATOR
        first_label = f"{outputs[0].label}:" if outputs else ""
        inline = tuple(re.compile(r"(?:^|(?<=[\s*_.]))[*_]{0,2}" + re.escape(info.label)
                                  + r"[*_]{0,2}[ \t]*:[*_]{0,2}[ \t]?", re.I) for info in outputs)
        stop = ["\n---"] + ([f"\n{inputs[0].label}:"] if inputs else [])
        return TemplatePlan(inputs, outputs, tuple(i.name for i in inputs), instructions,
                            instructions + _SEPARATOR + guide, guide, first_label, output_format,
                            keys_for(inputs + outputs), {info.name: i for i, info in enumerate(outputs)},
                            label_regex(inputs + outputs, colon_required=True), inline, stop)

    # --- format ---------------------------------------------------------------------------
    def format(self, signature: Any, demos: Sequence[Any], inputs: Mapping[str, Any], *,
               lm: Any = None) -> Formatted:
        plan = self.plan(signature)
        check_inputs(signature, inputs, plan.input_names)
        blocks = []
        if demos:
            for shown_in, shown_out, _complete in demo_parts(demos, plan.inputs, plan.outputs):
                lines = [f"{info.label}: {text}" for info, text in shown_in]
                lines += [f"{info.label}: {render_value(info, value)}" for info, value in shown_out]
                blocks.append("\n".join(lines))
        blocks.append("\n".join(f"{info.label}: {render_value(info, inputs[info.name])}"
                                for info in plan.inputs))
        body = _SEPARATOR.join(blocks)
        mode = _mode(lm)
        if mode == "text":
            return Formatted(None, f"{plan.text_header}{body}\n{plan.first_label}", None)
        system = {"role": "system", "content": plan.system}
        if mode == "prefill":
            return Formatted([system, {"role": "user", "content": plan.chat_header + body}], None,
                             plan.first_label)
        user = f"{plan.chat_header}{body}\n{plan.first_label}"
        return Formatted([system, {"role": "user", "content": user}], None, None)

    def _request_params(self, signature: Any, lm: Any, lm_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        params = dict(lm_kwargs)
        if "stop" not in params and _mode(lm) != "chat":
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
                # Past a blank line after the last field, small models ramble: cut it.
                sections[last.name] = sections[last.name].strip().split("\n\n", 1)[0]
        return self._typed(signature, text, outs, sections, dict(known))

    # --- continuing a partial answer ------------------------------------------------------
    def _next_request(self, signature: Any, original: Formatted, current: Formatted,
                      error: AdapterParseError, lm: Any) -> tuple[Formatted, dict[str, Any]]:
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
        if original.prompt is not None:
            base = original.prompt[:len(original.prompt) - len(plan.first_label)]
            return Formatted(None, base + done + label, None), known
        if original.prefill is not None:
            return Formatted(list(original.messages or ()), None, done + label), known
        if not count:   # chat without prefill and nothing usable: feedback with the format
            formatted, _ = super()._next_request(signature, original, current, error, lm)
            return formatted, known
        missing = ", ".join(o.label for o in plan.outputs[count:])
        follow_up = (f"{error}\n\nContinue the answer: give the missing field(s) ({missing}), "
                     f"starting with\n{label}")
        messages = [*(original.messages or []), {"role": "assistant", "content": done.rstrip()},
                    {"role": "user", "content": follow_up}]
        return Formatted(messages, None, None), known


def _mode(lm: Any) -> str:
    """"text" (prompt=), "prefill" (chat + prefill=) or "chat" for this LM."""
    caps = getattr(lm, "capabilities", None) if lm is not None else None
    if caps is None:
        return "chat"
    if caps.text and (not caps.chat or caps.small_model):
        return "text"
    return "prefill" if caps.prefill else "chat"


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
