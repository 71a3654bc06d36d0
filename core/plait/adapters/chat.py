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

from plait.adapters._parsing import (MARKER_RE, FieldInfo, keys_for, label_regex, label_sections,
                                     marker_sections, normalize_key, render_value)
from plait.adapters.base import (Adapter, Formatted, as_prompt, base_infos, check_inputs,
                                 default_instructions, demo_parts)
from plait.primitives.example import Example

COMPLETED = "[[ ## completed ## ]]"
_COMPLETED_LINE = "\n" + COMPLETED
_DEMO_CACHE_SIZE = 1024   # cached demos per plan; cleared when full
_PARTIAL_NOTE = "(An example of the task; some of its fields are missing.)\n\n"
# A text end that may still grow into a MARKER_RE match ("[", "[[ ## ans", "**[[ ## a ## ]"):
# held back while streaming until the next chunk decides.
_PARTIAL_MARKER = re.compile(r"[ \t]*[#*_>`]*[ \t]*(?:\[(?:\[[ \t]*#*[ \t]*[^\[\]#\n]*[ \t]*#*[ \t]*\]?)?)?\Z")
_MAX_MARKER_CHARS = 200   # longer "[[ ..." runs are not held back (marker names are short)


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

    def stream_parser(self, signature: Any) -> MarkerStreamParser | None:
        if type(self).parse is not ChatAdapter.parse:
            return None   # a subclass with another answer format (JSONAdapter)
        return MarkerStreamParser(self.plan(signature).output_keys)

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


class MarkerStreamParser:
    """Splits a marker-delimited answer, fed chunk by chunk, into each output field's text.

    ``feed(chunk)`` and ``finish()`` return ``(field name, text, is last)`` pieces; a whole
    answer can be given at once to ``finish(text)``. Sections follow ``marker_sections`` (the
    lenient parser): unknown markers (``completed``, input echoes) end a section, a field's
    second section is ignored, text before the first marker is ignored. A field's pieces join
    to its section with surrounding whitespace stripped, so for a text field they join to
    exactly the parsed value. Text that may be the start of the next marker, and trailing
    whitespace, wait for the next chunk; each field ends with one piece marked last (possibly
    empty).
    """

    __slots__ = ("_keys", "_buffer", "_field", "_started", "_seen")

    def __init__(self, keys: Mapping[str, FieldInfo]):
        self._keys = keys
        self._buffer = ""
        self._field: str | None = None   # the output field whose text is arriving
        self._started = False            # its leading whitespace is behind us
        self._seen: set[str] = set()

    def feed(self, chunk: str) -> list[tuple[str, str, bool]]:
        self._buffer += chunk
        return self._drain(final=False)

    def finish(self, chunk: str = "") -> list[tuple[str, str, bool]]:
        """The pieces left once the answer is complete (``chunk``: its last part, if any)."""
        self._buffer += chunk
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[tuple[str, str, bool]]:
        pieces: list[tuple[str, str, bool]] = []
        buffer = self._buffer
        pos = 0
        hold = len(buffer)
        while True:
            match = MARKER_RE.search(buffer, pos)
            if match is None:
                break
            if match.end() == len(buffer) and not final:
                hold = match.start()   # markdown or a newline after "]]" may still come
                break
            self._text(buffer[pos:match.start()], pieces, last=True)
            info = self._keys.get(normalize_key(match.group(1)))
            self._field = info.name if info is not None and info.name not in self._seen else None
            if self._field is not None:
                self._seen.add(self._field)
            self._started = False
            pos = match.end()
        if final:
            self._text(buffer[pos:], pieces, last=True)
            self._field, self._buffer = None, ""
            return pieces
        if hold == len(buffer):
            partial = _PARTIAL_MARKER.search(buffer, max(pos, len(buffer) - _MAX_MARKER_CHARS))
            hold = partial.start() if partial is not None else hold   # it matches "" at the end
        kept = self._text(buffer[pos:hold], pieces, last=False)
        self._buffer = kept + buffer[hold:]
        return pieces

    def _text(self, text: str, pieces: list[tuple[str, str, bool]], *, last: bool) -> str:
        """Emit ``text`` for the current field; returns the trailing whitespace kept back."""
        field = self._field
        if field is None:
            return ""
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        body = text.rstrip()
        if last:
            pieces.append((field, body, True))
            return ""
        if body:
            pieces.append((field, body, False))
        return text[len(body):]
