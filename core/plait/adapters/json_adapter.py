"""JSONAdapter: the answer is one JSON object whose keys are the output field names.

Inputs are sent like ChatAdapter's (markers). When the backend supports it the request asks
for JSON natively (``response_format``: a JSON schema built from the output fields when the
backend declares ``json_schema``, else ``{"type": "json_object"}``). Parsing takes the first
JSON object in the text (code fences and prose around it are fine), matches keys ignoring
case and spaces-vs-underscores, and types each value; without any JSON object it falls back
to ChatAdapter's marker / label parsing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from plait.adapters._parsing import (FieldInfo, FieldValueError, find_json_object, from_json_value,
                                     marker_sections, normalize_key, to_jsonable)
from plait.adapters.chat import ChatAdapter, ChatPlan, label_fallback
from plait.signatures.types import json_schema

_JSON_OBJECT = {"type": "json_object"}


class JSONAdapter(ChatAdapter):
    """Chat messages in, one JSON object out; uses the backend's JSON mode when it has one."""

    name = "json"

    def _build_plan(self, signature: Any) -> ChatPlan:
        plan = super()._build_plan(signature)
        return replace(plan, response_format=_schema_format(plan.outputs))

    def _answer_shape(self, outputs: Sequence[FieldInfo]) -> str:
        body = ", ".join(f'"{i.name}": <{i.name}: {i.hint or "a string"}>' for i in outputs)
        return "{" + body + "}"

    def _structure_note(self, inputs: Sequence[FieldInfo], outputs: Sequence[FieldInfo]) -> str:
        example = f"[[ ## {inputs[0].name} ## ]]" if inputs else "its marker"
        keys = ", ".join(f'"{i.name}"' for i in outputs)
        return (f"Each input field comes after its marker, like {example}. Answer with a single JSON "
                f"object with exactly the keys {keys} and no other text, shaped like this:")

    def _reminder(self, outputs: Sequence[FieldInfo]) -> str:
        parts = [f'"{i.name}"' + (f" ({i.hint})" if i.hint else " (a string)") for i in outputs]
        return f"Reply with one JSON object with the keys {', '.join(parts)}."

    def _request_params(self, signature: Any, lm: Any, lm_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        params = dict(lm_kwargs)
        caps = getattr(lm, "capabilities", None)
        if caps is None or "response_format" in params:
            return params
        schema_format = self.plan(signature).response_format
        if caps.json_schema and schema_format is not None:
            params["response_format"] = schema_format
        elif caps.json_object or caps.json_schema:
            params["response_format"] = _JSON_OBJECT
        return params

    def format_completion(self, signature: Any, outputs: Mapping[str, Any]) -> str:
        plan = self.plan(signature)
        return self._completion([(info, outputs[info.name]) for info in plan.outputs if info.name in outputs])

    def _completion(self, values: Sequence[tuple[FieldInfo, Any]]) -> str:   # demos' answers
        return json.dumps({info.name: to_jsonable(info, value) for info, value in values}, ensure_ascii=False)

    def parse(self, signature: Any, text: str) -> dict[str, Any]:
        plan = self.plan(signature)
        obj = find_json_object(text) if "{" in text else None
        if obj is not None and len(plan.outputs) == 1 and len(obj) == 1:
            obj = {plan.outputs[0].name: next(iter(obj.values()))}   # {"result": ...} for one field
        if obj is None or not any(normalize_key(str(key)) in plan.output_keys for key in obj):
            # No usable JSON object: accept the chat formats rather than fail outright.
            raw = marker_sections(text, plan.output_keys) if "[[" in text else {}
            raw = raw or label_fallback(plan, text, whole_text=obj is None)
            if raw:
                return self._typed(signature, text, plan.outputs, raw, {})
            expected = ", ".join(f'"{i.name}"' for i in plan.outputs)
            what = "has none of the keys" if obj is not None else "contains no JSON object with the keys"
            raise self._error(signature, f"the answer {what} {expected}", text, {})
        values = {normalize_key(str(key)): value for key, value in obj.items()}
        parsed: dict[str, Any] = {}
        for info in plan.outputs:
            key = normalize_key(info.name)
            if key not in values:
                key = normalize_key(info.label)
            if key in values:
                try:
                    parsed[info.name] = from_json_value(info, values[key])
                except FieldValueError as exc:
                    raise self._error(signature, str(exc), text, parsed, info.name) from None
        missing = [info.name for info in plan.outputs if info.name not in parsed]
        if missing:
            raise self._error(signature, f"the JSON object is missing the key(s) {', '.join(missing)}",
                              text, parsed)
        return parsed


def _schema_format(outputs: Sequence[FieldInfo]) -> dict[str, Any] | None:
    """A ``response_format`` JSON schema for the output object (None if a type has no schema)."""
    properties: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    try:
        for info in outputs:
            schema = dict(json_schema(info.annotation))
            definitions.update(schema.pop("$defs", None) or {})
            if info.desc:
                schema.setdefault("description", info.desc)
            properties[info.name] = schema
    except (TypeError, ValueError, AttributeError):
        return None
    schema = {"type": "object", "properties": properties, "required": [i.name for i in outputs],
              "additionalProperties": False}
    if definitions:
        schema["$defs"] = definitions
    name = re.sub(r"[^A-Za-z0-9_-]", "_", "_".join(i.name for i in outputs))[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
