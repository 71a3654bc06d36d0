"""``plait.Suggest`` / ``plait.Assert``: DSPy 2-era constraints, retried through Refine's hints.

Inside a module wrapped by :func:`with_assertions`, a failing constraint records its message and
stops the attempt; the wrapper re-runs the module with the message as a ``hint_`` input on the
predictor that ran last before the failure (or ``target_module``), as Refine feeds its advice.
After ``max_retries`` re-runs, a failing Suggest lets the run finish (its prediction is kept)
and a failing Assert raises :class:`AssertionFailedError`. Outside a wrapped module, a failing
Suggest only sends an ``assertion.failed`` event and a failing Assert raises at once.
See docs/assertions.md.
"""

from __future__ import annotations

import contextvars
from typing import Any

from plait.errors import PlaitError
from plait.primitives.module import Module, Parameter
from plait.settings import effective, settings

__all__ = ["AssertionFailedError", "Assert", "Suggest", "WithAssertions", "with_assertions"]


class AssertionFailedError(PlaitError, AssertionError):
    """A ``plait.Assert`` condition stayed false (after the retries of a wrapped module, or at
    once outside one). ``messages`` holds every failed constraint's message of the last attempt."""

    def __init__(self, message: str, *, messages: list[str] | None = None, attempts: int = 1):
        super().__init__(message)
        self.messages = messages if messages is not None else [message]
        self.attempts = attempts


class _ConstraintFailed(Exception):
    """Private: stops an attempt after a failed constraint; the wrapper catches it. The failure is
    also recorded in the scope, so a module that swallows this still gets retried."""


class _Failure:
    __slots__ = ("kind", "message", "targets")

    def __init__(self, kind: str, message: str, targets: tuple[str, ...]):
        self.kind = kind
        self.message = message
        self.targets = targets   # the predictor names the hint goes to; empty: every predictor


class _Scope:
    """One attempt of a wrapped module: its program, whether it is the last try, its failures."""

    __slots__ = ("program", "attempt", "final", "failures")

    def __init__(self, program: Module, attempt: int, final: bool):
        self.program = program
        self.attempt = attempt
        self.final = final
        self.failures: list[_Failure] = []


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("plait_assertion_scope", default=None)


def Suggest(condition: Any, message: str = "", target_module: Any = None) -> bool:  # noqa: N802 - DSPy's name
    """A soft constraint: True when ``condition`` holds. When it does not, inside a module wrapped
    by ``with_assertions`` the attempt is retried with ``message`` as a hint (the last attempt
    just goes on); elsewhere an ``assertion.failed`` event is sent and the program goes on."""
    if condition:
        return True
    _failed("suggest", message, target_module)
    return False


def Assert(condition: Any, message: str = "", target_module: Any = None) -> bool:  # noqa: N802 - DSPy's name
    """A hard constraint: True when ``condition`` holds. When it does not, inside a module wrapped
    by ``with_assertions`` the attempt is retried with ``message`` as a hint and the last attempt
    raises AssertionFailedError; elsewhere it raises AssertionFailedError at once."""
    if condition:
        return True
    _failed("assert", message, target_module)
    return False


def _failed(kind: str, message: str, target_module: Any) -> None:
    from plait.plugins import emit

    text = str(message) if message else f"a {kind.title()} condition was false"
    scope = _scope.get()
    source = "plait.Suggest" if kind == "suggest" else "plait.Assert"
    if scope is None:
        emit("assertion.failed", source=source, constraint=kind, message=text, retrying=False)
        if kind == "assert":
            raise AssertionFailedError(text)
        return
    scope.failures.append(_Failure(kind, text, _target_names(scope.program, target_module)))
    emit("assertion.failed", source=source, constraint=kind, message=text, retrying=not scope.final)
    if not scope.final:
        raise _ConstraintFailed(text)
    if kind == "assert":
        raise _final_error(scope)


def _target_names(program: Module, target: Any) -> tuple[str, ...]:
    """The names (in ``program``) of the predictors a hint is for: ``target`` (a predictor, a
    module and so its predictors, or a name) if given, else the predictor that ran last in this
    attempt; empty when unknown (then every predictor gets the hint)."""
    if isinstance(target, str):
        return (target,)
    if target is None:
        trace = effective().get("trace")
        if not trace:
            return ()
        target = trace[-1][0]
    wanted = {id(target)}
    if isinstance(target, Module):
        wanted.update(id(predictor) for predictor in target.predictors())
    return tuple(name for name, predictor in program.named_predictors() if id(predictor) in wanted)


def _final_error(scope: _Scope) -> AssertionFailedError:
    messages = [failure.message for failure in scope.failures if failure.kind == "assert"]
    return AssertionFailedError(messages[-1], messages=messages, attempts=scope.attempt + 1)


class WithAssertions(Module):
    """``module`` run with its Suggest / Assert constraints retried (see :func:`with_assertions`).

    Its parameters are the wrapped module's, under the same names, so saved states and optimizers
    treat it exactly like the module itself.
    """

    def __init__(self, module: Module, max_retries: int = 2):
        if not isinstance(module, Module):
            raise TypeError(f"with_assertions() takes a plait Module, not {type(module).__name__}")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValueError(f"with_assertions(max_retries={max_retries!r}): the number of re-runs after a "
                             f"failed constraint, an int >= 0")
        self.module = module
        self.max_retries = max_retries

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return self.module.named_parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        hints: dict[str | None, list[str]] = {}
        for attempt in range(self.max_retries + 1):
            scope, program, steps = self._start(attempt, hints)
            token = _scope.set(scope)
            try:
                with settings.context(trace=steps):
                    try:
                        result = program(*args, **kwargs)
                    except _ConstraintFailed:
                        result = None
            finally:
                _scope.reset(token)
            if self._done(scope, program, steps, hints):
                return result
        raise AssertionError("unreachable: the last attempt always finishes")

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        hints: dict[str | None, list[str]] = {}
        for attempt in range(self.max_retries + 1):
            scope, program, steps = self._start(attempt, hints)
            token = _scope.set(scope)
            try:
                with settings.context(trace=steps):
                    try:
                        result = await program.acall(*args, **kwargs)
                    except _ConstraintFailed:
                        result = None
            finally:
                _scope.reset(token)
            if self._done(scope, program, steps, hints):
                return result
        raise AssertionError("unreachable: the last attempt always finishes")

    def _start(self, attempt: int, hints: dict[str | None, list[str]]) -> tuple[_Scope, Module, list[Any]]:
        # The first attempt runs the module itself; a retry runs a copy carrying the hints.
        program = self.module if not hints else _hinted_copy(self.module, hints)
        return _Scope(program, attempt, final=attempt == self.max_retries), program, []

    def _done(self, scope: _Scope, program: Module, steps: list[Any],
              hints: dict[str | None, list[str]]) -> bool:
        """True when this attempt's result is the answer; else the failures become hints."""
        from plait.predict.best_of_n import commit_trace

        if scope.final and any(failure.kind == "assert" for failure in scope.failures):
            raise _final_error(scope)   # the module caught the Assert's error: still a failure
        if not scope.failures or scope.final:
            commit_trace(steps, program, self.module)
            return True
        for failure in scope.failures:
            for target in failure.targets or (None,):
                messages = hints.setdefault(target, [])
                if failure.message not in messages:
                    messages.append(failure.message)
        return False


def with_assertions(module: Module, max_retries: int = 2) -> WithAssertions:
    """Run ``module`` so that a failing ``plait.Suggest`` / ``plait.Assert`` in its forward re-runs
    it (up to ``max_retries`` times) with the constraint's message as a hint to the predictor that
    produced the failing output. Then Suggest gives up quietly; Assert raises AssertionFailedError."""
    return WithAssertions(module, max_retries)


def _hinted_copy(module: Module, hints: dict[str | None, list[str]]) -> Module:
    from plait.predict.refine import install_hints

    program = module.deepcopy()
    for_all = hints.get(None, [])
    per_name = {}
    for name, _ in program.named_predictors():
        messages = hints.get(name, []) + [m for m in for_all if m not in hints.get(name, [])]
        if messages:
            per_name[name] = "\n".join(messages)
    install_hints(program, per_name)
    return program
