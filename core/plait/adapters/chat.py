"""ChatAdapter: fields delimited by ``[[ ## name ## ]]`` markers in chat messages.

The system prompt (instructions, fields, the answer structure) is built once per signature;
per call only demos and inputs are rendered. Parsing is lenient: marker names in any case and
spacing, markdown around markers, "Label: value" lines when there are no markers, and plain
prose for a signature with a single output field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.adapters._parsing import (FieldInfo, keys_for, label_regex, label_sections, marker_sections,
                                     render_value)
from plait.adapters.base import (Adapter, Formatted, as_prompt, base_infos, check_inputs,
                                 default_instructions, demo_parts)

COMPLETED = "[[ ## completed ## ]]"
_PARTIAL_NOTE = "(An example of the task; some of its fields are missing.)\n\n"


def marker(name: str) -> str:
    return f"[[ ## {name} ## ]]"


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """Everything ChatAdapter (and JSONAdapter) needs for one signature, computed once."""

    inputs: tuple[FieldInfo, ...]
    outputs: tuple[FieldInfo, ...]
    input_names: tuple[str, ...]
    input_heads: tuple[str, ...]          # "[[ ## question ## ]]\n"
    system: str
    reminder: str                         # ends every user message
    output_format: str                    # the answer's exact shape (system prompt and feedback)
    output_keys: dict[str, FieldInfo]     # normalized marker name -> output field
    label_keys: dict[str, FieldInfo]      # normalized label -> input or output field
    labels: re.Pattern[str]               # "Label: value" fallback
    response_format: dict[str, Any] | None = None   # JSONAdapter only


class ChatAdapter(Adapter):
    """Chat messages with ``[[ ## field ## ]]`` markers; the default for chat models."""

    name = "chat"

    # --- the plan -------------------------------------------------------------------------
    def _build_plan(self, signature: Any) -> ChatPlan:
        inputs, outputs = base_infos(signature)
        output_format = self._answer_shape(outputs)
        system = "\n\n".join([
            default_instructions(signature, inputs, outputs),
            _field_list("Input fields", inputs) + "\n" + _field_list("Output fields", outputs),
            self._structure_note(inputs, outputs),
            output_format,
        ])
        return ChatPlan(inputs, outputs, tuple(i.name for i in inputs),
                        tuple(marker(i.name) + "\n" for i in inputs), system, self._reminder(outputs),
                        output_format, keys_for(outputs), keys_for(inputs + outputs),
                        label_regex(inputs + outputs, colon_required=False))

    def _answer_shape(self, outputs: Sequence[FieldInfo]) -> str:
        blocks = [marker(i.name) + "\n{" + i.name + (f": {i.hint}" if i.hint else "") + "}" for i in outputs]
        return "\n\n".join([*blocks, COMPLETED])

    def _structure_note(self, inputs: Sequence[FieldInfo], outputs: Sequence[FieldInfo]) -> str:
        example = f", like {marker(inputs[0].name)}" if inputs else ""
        return (f"Each input field comes after its marker{example}. Answer with every output field "
                f"after its own marker, in this order, then end with {COMPLETED}:")

    def _reminder(self, outputs: Sequence[FieldInfo]) -> str:
        parts = [marker(i.name) + (f" ({i.hint})" if i.hint else "") for i in outputs]
        return f"Reply with {', then '.join(parts)}, then {COMPLETED}."

    # --- format ---------------------------------------------------------------------------
    def format(self, signature: Any, demos: Sequence[Any], inputs: Mapping[str, Any], *,
               lm: Any = None) -> Formatted:
        plan = self.plan(signature)
        check_inputs(signature, inputs, plan.input_names)
        messages: list[dict[str, Any]] = [{"role": "system", "content": plan.system}]
        if demos:
            for shown_in, shown_out, complete in demo_parts(demos, plan.inputs, plan.outputs):
                user = "\n\n".join(f"[[ ## {info.name} ## ]]\n{text}" for info, text in shown_in)
                messages.append({"role": "user", "content": user if complete else _PARTIAL_NOTE + user})
                messages.append({"role": "assistant", "content": self._completion(shown_out)})
        parts = [head + render_value(info, inputs[info.name])
                 for head, info in zip(plan.input_heads, plan.inputs)]
        parts.append(plan.reminder)
        messages.append({"role": "user", "content": "\n\n".join(parts)})
        if lm is not None:
            caps = lm.capabilities
            if caps.text and not caps.chat:
                return Formatted(None, as_prompt(messages), None)
        return Formatted(messages, None, None)

    def format_completion(self, signature: Any, outputs: Mapping[str, Any]) -> str:
        plan = self.plan(signature)
        return self._completion([(info, outputs[info.name]) for info in plan.outputs if info.name in outputs])

    def _completion(self, values: Sequence[tuple[FieldInfo, Any]]) -> str:
        blocks = [f"[[ ## {info.name} ## ]]\n{render_value(info, value)}" for info, value in values]
        blocks.append(COMPLETED)
        return "\n\n".join(blocks)

    # --- parse ----------------------------------------------------------------------------
    def parse(self, signature: Any, text: str) -> dict[str, Any]:
        plan = self.plan(signature)
        raw = marker_sections(text, plan.output_keys) if "[[" in text else {}
        if not raw:
            raw = label_fallback(plan, text)
        return self._typed(signature, text, plan.outputs, raw, {})


def label_fallback(plan: ChatPlan, text: str, *, whole_text: bool = True) -> dict[str, str]:
    """No output markers: "Label: value" lines, else (``whole_text``) the whole text for a
    signature with a single output field."""
    sections = label_sections(text, plan.labels, plan.label_keys)
    raw = {info.name: sections[info.name] for info in plan.outputs if info.name in sections}
    if not raw and whole_text and len(plan.outputs) == 1 and text.strip():
        # One output answered in plain prose: the whole text is the value (minus a stray marker).
        body = text.split(COMPLETED, 1)[0] if COMPLETED in text else text
        raw = {plan.outputs[0].name: body}
    return raw


def _field_list(title: str, infos: Sequence[FieldInfo]) -> str:
    if not infos:
        return f"{title}: none"
    lines = [f"{index}. `{info.name}` ({info.type_name})" + (f": {info.desc}" if info.desc else "")
             for index, info in enumerate(infos, 1)]
    return f"{title}:\n" + "\n".join(lines)
