"""ChatAdapter: fields delimited by ``[[ ## name ## ]]`` markers in chat messages.

The system prompt (instructions, fields, the answer structure) is built once per signature;
per call only demos and inputs are rendered. Parsing is lenient: marker names in any case and
spacing, markdown around markers, "Label: value" lines when there are no markers, and plain
prose for a signature with a single output field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plait.adapters._parsing import (FieldInfo, keys_for, label_regex, label_sections, marker_sections,
                                     normalize_key, render_value)
from plait.adapters.base import (Adapter, Formatted, as_prompt, base_infos, check_inputs,
                                 default_instructions, demo_parts)
from plait.primitives.example import Example

COMPLETED = "[[ ## completed ## ]]"
_COMPLETED_LINE = "\n" + COMPLETED
_DEMO_CACHE_SIZE = 1024   # cached demos per plan; cleared when full
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
    # The well-formed answer's marker lines ("[[ ## answer ## ]]\n", later ones after a "\n"),
    # or None when a field's name would not map back to it (see exact_sections).
    exact_heads: tuple[str, ...] | None = None
    all_text: bool = False                # every output is str-like: parsing is stripping
    demo_names: tuple[str, ...] = ()      # input then output names: what a demo's messages show
    plain_render: bool = False            # no field has its own format= callable
    demo_cache: dict[int, Any] = field(default_factory=dict)   # see _demo_messages


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
        output_keys = keys_for(outputs)
        return ChatPlan(inputs, outputs, tuple(i.name for i in inputs),
                        tuple(marker(i.name) + "\n" for i in inputs), system, self._reminder(outputs),
                        output_format, output_keys, keys_for(inputs + outputs),
                        label_regex(inputs + outputs, colon_required=False),
                        exact_heads=_exact_heads(outputs, output_keys),
                        all_text=all(info.text for info in outputs),
                        demo_names=tuple(info.name for info in inputs + outputs),
                        plain_render=all(info.render is None for info in inputs + outputs))

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
        for name in plan.input_names:
            if name not in inputs:
                check_inputs(signature, inputs, plan.input_names)   # raises, naming all missing
        messages: list[dict[str, Any]] = [{"role": "system", "content": plan.system}]
        if demos:
            self._demo_messages(plan, demos, messages)
        parts = []
        for head, info in zip(plan.input_heads, plan.inputs):
            value = inputs[info.name]
            parts.append(head + (value if type(value) is str and info.render is None else render_value(info, value)))
        parts.append(plan.reminder)
        messages.append({"role": "user", "content": "\n\n".join(parts)})
        if lm is not None:
            caps = lm.capabilities
            if caps.text and not caps.chat:
                return Formatted(None, as_prompt(messages), None)
        return Formatted(messages, None, None)

    def _demo_messages(self, plan: ChatPlan, demos: Sequence[Any], messages: list[dict[str, Any]]) -> None:
        """Append a user and an assistant message per usable demo.

        A demo's two texts are cached per demo object, and reused only while the values of its
        fields are the very same objects (checked on every call, so editing a demo is seen); only
        demos whose values are all str or None are cached (immutable, rendered as they are).
        """
        cache = plan.demo_cache
        names = plan.demo_names
        for demo in demos:
            store = demo._store if type(demo) is Example else demo if type(demo) is dict else None
            if store is None or not plan.plain_render:
                texts = self._demo_texts(plan, demo)
            else:
                values = tuple([store.get(name) for name in names])
                identity = tuple(map(id, values))
                cached = cache.get(id(demo))
                if cached is not None and cached[0] == identity:
                    texts = cached[2]
                else:
                    texts = self._demo_texts(plan, demo)
                    if all(type(value) is str or value is None for value in values):
                        if len(cache) >= _DEMO_CACHE_SIZE:
                            cache.clear()
                        cache[id(demo)] = (identity, values, texts)   # values kept: ids stay unique
            if texts is not None:
                messages.append({"role": "user", "content": texts[0]})
                messages.append({"role": "assistant", "content": texts[1]})

    def _demo_texts(self, plan: ChatPlan, demo: Any) -> tuple[str, str] | None:
        """(user text, assistant text) for one demo, or None when it teaches nothing."""
        for shown_in, shown_out, complete in demo_parts((demo,), plan.inputs, plan.outputs):
            user = "\n\n".join(f"[[ ## {info.name} ## ]]\n{text}" for info, text in shown_in)
            return (user if complete else _PARTIAL_NOTE + user), self._completion(shown_out)
        return None

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
        raw = exact_sections(plan, text, strip=plan.all_text)
        if raw is not None:   # a well-formed answer
            if plan.all_text:
                return raw   # text fields: their typed value is the stripped text
        else:
            raw = marker_sections(text, plan.output_keys) if "[[" in text else {}
            if not raw:
                raw = label_fallback(plan, text)
        return self._typed(signature, text, plan.outputs, raw, {})


def _exact_heads(outputs: Sequence[FieldInfo], output_keys: Mapping[str, FieldInfo]) -> tuple[str, ...] | None:
    """The marker lines of a well-formed answer, or None when exact_sections cannot be used:
    a field whose marker the lenient parser would map to another field, a field named like
    the ``completed`` marker, or no output fields."""
    if not outputs or normalize_key("completed") in output_keys:
        return None
    for info in outputs:
        if not info.name.isidentifier() or output_keys.get(normalize_key(info.name)) is not info:
            return None
    return tuple(("" if index == 0 else "\n") + marker(info.name) + "\n" for index, info in enumerate(outputs))


def exact_sections(plan: ChatPlan, text: str, *, strip: bool = False) -> dict[str, str] | None:
    """Field name -> raw text (``strip``: stripped) for an answer in exactly the requested
    shape, else None.

    The fast path of ``parse``: the text starts with the first output's marker line, each
    later marker line follows a newline, the last value ends at the text's end or at a newline
    before ``[[ ## completed ## ]]``, and no value contains ``[[``. For such a text
    ``marker_sections`` finds the same sections (up to surrounding whitespace, which typed
    parsing strips), so anything else goes to the lenient parser.
    """
    heads = plan.exact_heads
    if heads is None or not text.startswith(heads[0]):
        return None
    outputs = plan.outputs
    sections: dict[str, str] = {}
    start = len(heads[0])
    for index in range(1, len(heads)):
        head = heads[index]
        end = text.find(head, start)
        if end < 0:
            return None
        value = text[start:end]
        if "[[" in value:
            return None
        sections[outputs[index - 1].name] = value.strip() if strip else value
        start = end + len(head)
    end = text.find(_COMPLETED_LINE, start)
    value = text[start:] if end < 0 else text[start:end]
    if "[[" in value:
        return None
    sections[outputs[-1].name] = value.strip() if strip else value
    return sections


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
