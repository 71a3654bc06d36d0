"""The adapter contract: signature + demos + inputs -> LM request; completion -> typed fields.

``Adapter.__call__`` (and ``acall``) runs one predictor step: format, ask the LM, parse every
completion, and when none parses, ask again with the error fed back (bounded by
``max_retries``). The first attempt is plain code; the re-asks are written once as a generator
(``_drive_retries``) that the sync and async entry points feed with LM responses, so both
behave identically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from plait.adapters._parsing import (FieldInfo, FieldValueError, field_infos, parse_typed, present,
                                     render_value)
from plait.errors import AdapterParseError
from plait.lm.types import LMResponse, RequestContext
from plait.settings import settings

# Plans are cached per signature; optimizers create many signatures, so the cache is bounded.
_PLAN_CACHE_SIZE = 256


@dataclass(slots=True)
class Formatted:
    """One formatted request: ``messages`` (chat) or ``prompt`` (text completion), plus the
    text the assistant turn starts with (``prefill``; the LM's output continues it)."""

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    prefill: str | None = None


class Adapter(ABC):
    """Turns (signature, demos, inputs) into an LM request and completions into typed outputs.

    Subclasses implement ``_build_plan`` (everything that depends only on the signature,
    computed once and cached), ``format``, ``parse`` and ``format_completion``.
    """

    name: ClassVar[str] = "adapter"

    def __init__(self, *, max_retries: int | None = None):
        if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
            raise ValueError(f"max_retries must be a non-negative int or None (use the "
                             f"'adapter_retries' setting), not {max_retries!r}")
        self.max_retries = max_retries
        self._plans: dict[Any, Any] = {}
        self._last: tuple[Any, Any] = (None, None)   # identity fast path for the hot loop

    def __repr__(self) -> str:
        retries = "" if self.max_retries is None else f"max_retries={self.max_retries}"
        return f"{type(self).__name__}({retries})"

    # --- per-signature plan ---------------------------------------------------------------
    def plan(self, signature: Any) -> Any:
        """The precomputed prompt parts and parsers for ``signature`` (built once, cached)."""
        last_signature, last_plan = self._last
        if signature is last_signature:
            return last_plan
        plan = self._plans.get(signature)
        if plan is None:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            plan = self._plans[signature] = self._build_plan(signature)
        self._last = (signature, plan)
        return plan

    @abstractmethod
    def _build_plan(self, signature: Any) -> Any:
        """Compute everything that depends only on the signature."""

    # --- the public contract --------------------------------------------------------------
    @abstractmethod
    def format(self, signature: Any, demos: Sequence[Any], inputs: Mapping[str, Any], *,
               lm: Any = None) -> Formatted:
        """The request for ``inputs`` (with ``demos`` as examples) as messages or a prompt."""

    @abstractmethod
    def parse(self, signature: Any, text: str) -> dict[str, Any]:
        """Typed output values from a completion; raises AdapterParseError."""

    @abstractmethod
    def format_completion(self, signature: Any, outputs: Mapping[str, Any]) -> str:
        """What a perfect LM would answer for ``outputs`` (inverse of ``parse``); fields missing
        from ``outputs`` are left out."""

    def __call__(self, lm: Any, lm_kwargs: Mapping[str, Any] | None, signature: Any,
                 demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Ask ``lm`` and return one dict of typed output values per usable completion."""
        formatted = self.format(signature, demos, inputs, lm=lm)
        params = self._request_params(signature, lm, lm_kwargs or {})
        context = RequestContext(signature, self, inputs)
        results, error = self._parse_outputs(signature, lm.generate(**_request(formatted, context, params)), {})
        if results:   # the usual case: no retry loop, no generator
            return results
        driver = self._drive_retries(lm, signature, formatted, context, params, error)
        request = next(driver)
        while True:
            response = lm.generate(**request)
            try:
                request = driver.send(response)
            except StopIteration as done:
                return done.value

    async def acall(self, lm: Any, lm_kwargs: Mapping[str, Any] | None, signature: Any,
                    demos: Sequence[Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``__call__`` for async code: awaits ``lm.agenerate`` (or runs ``generate`` in a thread)."""
        formatted = self.format(signature, demos, inputs, lm=lm)
        params = self._request_params(signature, lm, lm_kwargs or {})
        context = RequestContext(signature, self, inputs)
        agenerate = getattr(lm, "agenerate", None)

        async def ask(request: dict[str, Any]) -> LMResponse:
            if agenerate is not None:
                return await agenerate(**request)
            import asyncio   # a sync-only LM: keep the event loop free (asyncio imported only here)
            return await asyncio.to_thread(lm.generate, **request)

        results, error = self._parse_outputs(signature, await ask(_request(formatted, context, params)), {})
        if results:
            return results
        driver = self._drive_retries(lm, signature, formatted, context, params, error)
        request = next(driver)
        while True:
            response = await ask(request)
            try:
                request = driver.send(response)
            except StopIteration as done:
                return done.value

    def stream_parser(self, signature: Any) -> Any:
        """An incremental parser for streaming this adapter's answers (``feed(chunk)`` and
        ``finish(last_chunk="")``, each returning ``(field name, text, is last)`` pieces), or None when
        the answer format cannot be split into fields as it arrives (the default)."""
        return None

    # --- the request / parse / retry loop -------------------------------------------------
    def retries(self) -> int:
        """Re-asks allowed after the first attempt (``max_retries`` or the setting)."""
        if self.max_retries is not None:
            return self.max_retries
        value = settings.get("adapter_retries", 1)
        return value if isinstance(value, int) and value >= 0 else 1

    def _parse_outputs(self, signature: Any, response: LMResponse, known: Mapping[str, Any]
                       ) -> tuple[list[dict[str, Any]], AdapterParseError | None]:
        """Every completion that parses, and the first parse error (or "no completions")."""
        outputs = response.outputs
        if type(outputs) is list and len(outputs) == 1:   # the usual single completion
            try:
                return [self._parse_rest(signature, outputs[0], known)], None
            except AdapterParseError as exc:
                return [], exc
        results: list[dict[str, Any]] = []
        error: AdapterParseError | None = None
        for text in response.outputs:
            try:
                results.append(self._parse_rest(signature, text, known))
            except AdapterParseError as exc:
                error = error or exc
        if not results and error is None:
            error = self._error(signature, "the LM returned no completions", "", known)
        return results, error

    def _drive_retries(self, lm: Any, signature: Any, original: Formatted, context: RequestContext,
                       params: dict[str, Any], error: AdapterParseError | None
                       ) -> Generator[dict[str, Any], LMResponse, list[dict[str, Any]]]:
        """The re-asks after a first attempt that gave ``error``, written once as a generator
        that ``__call__`` and ``acall`` feed with LM responses, so both behave identically."""
        budget = self.retries()
        attempts = 1
        formatted = original
        while budget > 0:
            assert error is not None
            formatted, known = self._next_request(signature, original, formatted, error, lm)
            response = yield _request(formatted, context, params)
            attempts += 1
            results, error = self._parse_outputs(signature, response, known)
            if results:
                return results
            if not self._progressed(signature, known, error):   # an attempt that added a field is free
                budget -= 1
        assert error is not None
        raise AdapterParseError(
            f"{self.name} adapter gave up after {attempts} attempt(s): {error}",
            completion=error.completion, adapter=self.name, signature=signature,
            parsed=error.parsed)

    def _request_params(self, signature: Any, lm: Any, lm_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Per-call LM settings; adapters add what they need (response_format, stop)."""
        return dict(lm_kwargs)

    def _progressed(self, signature: Any, known: Mapping[str, Any], error: AdapterParseError) -> bool:
        """Whether a re-ask that still failed got further than ``known`` (the fields it was
        given); such an attempt does not use up the retry budget. Adapters that continue partial
        answers say so; since each free attempt must add a field, the number of attempts stays
        bounded. Plain re-asks never progress."""
        return False

    def _parse_rest(self, signature: Any, text: str, known: Mapping[str, Any]) -> dict[str, Any]:
        """Parse a completion given the fields already parsed by earlier attempts."""
        return self.parse(signature, text)

    def _next_request(self, signature: Any, original: Formatted, current: Formatted,
                      error: AdapterParseError, lm: Any) -> tuple[Formatted, dict[str, Any]]:
        """The follow-up request after ``error``: the conversation so far, the bad answer, and a
        user turn quoting the error and restating the output format."""
        feedback = (f"Your answer could not be used: {error}\n\n"
                    f"Answer again, using exactly this format:\n\n{self._output_format(signature)}")
        answer = (current.prefill or "") + error.completion
        if current.messages is not None:
            messages = [*current.messages, {"role": "assistant", "content": answer},
                        {"role": "user", "content": feedback}]
            return Formatted(messages, None, None), {}
        return Formatted(None, f"{current.prompt}{answer}\n\n{feedback}\n\n", None), {}

    def _output_format(self, signature: Any) -> str:
        """The exact shape of a correct answer (restated in retry feedback)."""
        return self.plan(signature).output_format

    # --- helpers for subclasses -----------------------------------------------------------
    def _error(self, signature: Any, message: str, text: str, parsed: Mapping[str, Any],
               field: str | None = None) -> AdapterParseError:
        return AdapterParseError(message, completion=text, adapter=self.name, signature=signature,
                                 parsed=dict(parsed), field=field)

    def _typed(self, signature: Any, text: str, infos: Sequence[FieldInfo],
               raw: Mapping[str, str], parsed: dict[str, Any]) -> dict[str, Any]:
        """Type every field of ``infos`` from ``raw`` into ``parsed`` (in field order); raise
        AdapterParseError naming missing fields or the first value that failed validation."""
        missing = [info.name for info in infos if info.name not in raw]
        for info in infos:
            if info.name in raw:
                try:
                    parsed[info.name] = parse_typed(info, raw[info.name])
                except FieldValueError as exc:
                    raise self._error(signature, str(exc), text, parsed, info.name) from None
        if missing:
            raise self._error(signature, f"the answer is missing output field(s) "
                              f"{', '.join(missing)}", text, parsed)
        return parsed


def _request(formatted: Formatted, context: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``lm.generate`` for one attempt."""
    request = {"messages": formatted.messages, "prompt": formatted.prompt, "prefill": formatted.prefill,
               "context": context}
    if params:
        request.update(params)
    return request


def check_inputs(signature: Any, inputs: Mapping[str, Any], names: Sequence[str]) -> None:
    """Raise ValueError naming the input fields ``inputs`` lacks (extra keys are ignored)."""
    missing = [name for name in names if name not in inputs]
    if missing:
        given = ", ".join(sorted(map(str, inputs))) or "none"
        raise ValueError(f"missing input field(s) {', '.join(missing)} for signature "
                         f"'{_signature_text(signature)}' (given: {given}); pass every input field "
                         "as a keyword argument")


def _signature_text(signature: Any) -> str:
    text = getattr(signature, "signature", None)
    return text if isinstance(text, str) else repr(signature)


def demo_parts(demos: Sequence[Any], inputs: Sequence[FieldInfo], outputs: Sequence[FieldInfo]
               ) -> list[tuple[list[tuple[FieldInfo, str]], list[tuple[FieldInfo, Any]], bool]]:
    """Usable demos as (rendered inputs, output values, complete?). A demo without any input
    or any output field teaches nothing and is skipped; one with some fields missing is kept."""
    parts = []
    for demo in demos or ():
        shown_in = [(info, render_value(info, demo[info.name])) for info in inputs
                    if present(demo, info.name)]
        shown_out = [(info, demo[info.name]) for info in outputs if present(demo, info.name)]
        if shown_in and shown_out:
            parts.append((shown_in, shown_out, len(shown_in) + len(shown_out) == len(inputs) + len(outputs)))
    return parts


def base_infos(signature: Any) -> tuple[tuple[FieldInfo, ...], tuple[FieldInfo, ...]]:
    return field_infos(signature.input_fields), field_infos(signature.output_fields)


def default_instructions(signature: Any, inputs: Sequence[FieldInfo], outputs: Sequence[FieldInfo]) -> str:
    instructions = (getattr(signature, "instructions", "") or "").strip()
    if instructions:
        return instructions
    given = ", ".join(f"`{info.name}`" for info in inputs) or "nothing"
    return f"Given the fields {given}, produce the fields {', '.join(f'`{i.name}`' for i in outputs)}."


def as_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """A chat conversation flattened for a text-completion-only LM."""
    return "\n\n".join(str(message.get("content", "")) for message in messages) + "\n\n"
