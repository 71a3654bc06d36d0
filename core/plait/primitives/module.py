"""Module (a program that composes steps) and Parameter (a learnable step, such as Predict).

Parameters are discovered by walking the module's attributes (and lists, tuples and dicts inside
them); no metaclass and no caller-frame inspection, so a subclass need not call ``__init__``.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from plait.errors import PlaitError, StateError
from plait.primitives import persistence
from plait.primitives.example import Example
from plait.primitives.saved_lms import plan_lm_restore, without_lm
from plait.settings import effective

# Attribute names discovery never looks inside. Each holds data that never contains parameters
# and may be long, so walking it would only cost time: a module's LM call history, DSPy-style
# callback lists, and a predictor's demos (Examples).
NOT_WALKED = frozenset({"history", "callbacks", "demos"})


class Parameter:
    """A learnable unit of a program (Predict is one): its state can be dumped, checked and loaded."""

    # True for a Parameter that is also a Module but holds no parameters of its own (Predict):
    # discovery then does not look inside it. False (the safe default) looks inside.
    leaf_parameter: ClassVar[bool] = False

    def dump_state(self) -> dict[str, Any]:
        """The learnable state as a JSON-safe dict."""
        raise NotImplementedError(f"{type(self).__name__} is a Parameter but does not define dump_state(); "
                                  f"return its learnable state as a JSON-safe dict")

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the learnable state with ``state`` (as returned by ``dump_state``)."""
        raise NotImplementedError(f"{type(self).__name__} is a Parameter but does not define load_state(state)")

    def validate_state(self, state: dict[str, Any]) -> None:
        """Raise StateError naming the mismatch if ``state`` cannot be loaded; never changes self."""
        raise NotImplementedError(f"{type(self).__name__} is a Parameter but does not define "
                                  f"validate_state(state); raise plait.errors.StateError on a bad state")

    def reset(self) -> None:
        """Forget everything learned (demos, tuned instructions...)."""
        raise NotImplementedError(f"{type(self).__name__} is a Parameter but does not define reset()")


class BatchError(PlaitError, RuntimeError):
    """``Module.batch`` (or ``plait.Parallel``) stopped because more items failed than
    ``max_errors`` allows.

    The error that tipped it over is chained as ``__cause__``; ``results`` (None where an item
    failed or never ran) and ``failures`` (``(index, exception)`` pairs) hold what had finished.
    """


_tracking: contextvars.ContextVar[bool] = contextvars.ContextVar("plait_module_tracking", default=False)


def _call_tracking_usage(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """Run the outermost module call under a usage tracker; attach the usage to its Prediction."""
    from plait.lm.usage import track_usage
    from plait.primitives.prediction import Prediction
    token = _tracking.set(True)
    try:
        with track_usage() as tracker:
            result = fn(*args, **kwargs)
    finally:
        _tracking.reset(token)
    if isinstance(result, Prediction):
        result.set_lm_usage(tracker.by_model())
    return result


def needs_usage_tracking() -> bool:
    """True for the outermost module call while the ``track_usage`` setting is on: that call
    runs under a usage tracker (see ``Module.__call__``)."""
    return bool(effective().get("track_usage")) and not _tracking.get()


class Module:
    """A program: subclass it, create predictors in ``__init__`` and compose them in ``forward``."""

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        # Kept for DSPy compatibility; plait's instrumentation goes through plugin hooks.
        self.callbacks = list(callbacks) if callbacks else []
        self._compiled = False

    # --- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not effective().get("track_usage") or _tracking.get():
            return self.forward(*args, **kwargs)
        return _call_tracking_usage(self.forward, args, kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, ...) "
                                  f"to say what the program does with its inputs")

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        return await self.aforward(*args, **kwargs)

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """Runs ``forward`` in a worker thread; to_thread carries the caller's contextvars over."""
        import asyncio

        return await asyncio.to_thread(self.forward, *args, **kwargs)

    # --- discovery ------------------------------------------------------------------------
    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """Every Parameter reachable from the attributes, once each, in attribute order."""
        named: list[tuple[str, Parameter]] = [("self", self)] if isinstance(self, Parameter) else []
        named.extend((name, value) for name, value, _, _ in _walk(self) if isinstance(value, Parameter))
        return named

    def parameters(self) -> list[Parameter]:
        return [parameter for _, parameter in self.named_parameters()]

    def named_predictors(self) -> list[tuple[str, Parameter]]:
        """The parameters that are predictors (they have a ``signature``)."""
        return [(name, p) for name, p in self.named_parameters() if hasattr(p, "signature")]

    def predictors(self) -> list[Parameter]:
        return [predictor for _, predictor in self.named_predictors()]

    def named_sub_modules(self, type_: type | None = None, skip_compiled: bool = False) -> list[tuple[str, Any]]:
        """``("self", self)`` then every Module reachable from the attributes (of ``type_`` if given)."""
        wanted = Module if type_ is None else type_
        found = [("self", self)] if isinstance(self, wanted) else []
        found.extend((name, value) for name, value, _, _ in _walk(self, skip_compiled) if isinstance(value, wanted))
        return found

    def map_named_predictors(self, func: Callable[[Any], Any]) -> Module:
        """Replace every predictor ``p`` with ``func(p)`` where it is stored; returns self."""
        if isinstance(self, Parameter) and hasattr(self, "signature"):
            raise TypeError(f"this {type(self).__name__} is itself a predictor and cannot replace itself; "
                            f"call func(program) instead")
        for name, value, owner, key in _walk(self):
            if isinstance(value, Parameter) and hasattr(value, "signature"):
                replacement = func(value)
                if isinstance(owner, tuple):
                    raise TypeError(f"cannot replace predictor {name}: it is stored in a tuple; use a list")
                if isinstance(owner, (list, dict)):
                    owner[key] = replacement
                else:
                    setattr(owner, key, replacement)
        return self

    # --- copies ---------------------------------------------------------------------------
    def deepcopy(self) -> Module:
        """An independent copy (LMs and retrievers define ``__deepcopy__`` to stay shared)."""
        return copy.deepcopy(self)

    def reset_copy(self) -> Module:
        """A deep copy with every parameter reset (no demos, no tuned instructions)."""
        new = self.deepcopy()
        for parameter in new.parameters():
            parameter.reset()
        return new

    # --- LMs ------------------------------------------------------------------------------
    def set_lm(self, lm: Any) -> None:
        """Use ``lm`` for every predictor of this program."""
        for _, predictor in self.named_predictors():
            predictor.lm = lm

    def get_lm(self) -> Any:
        """The LM every predictor uses; ValueError when they use different ones."""
        named = self.named_predictors()
        if not named:
            raise ValueError(f"{type(self).__name__} has no predictors, so it uses no LM")
        first = getattr(named[0][1], "lm", None)
        for name, predictor in named[1:]:
            if getattr(predictor, "lm", None) is not first:
                raise ValueError(f"the predictors use different LMs ({named[0][0]} and {name} differ), so there "
                                 f"is no single LM to return; call set_lm(lm) to use one LM everywhere")
        return first

    # --- state ----------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        """``{parameter name: parameter state}`` for every parameter."""
        return _dump_states(self.named_parameters())

    def validate_state(self, state: Mapping[str, Any]) -> None:
        """Raise StateError if ``state`` does not fit this program; changes nothing."""
        _check_states(self, self.named_parameters(), state, "state")

    def load_state(self, state: Mapping[str, Any], *, restore_lm: bool = True) -> None:
        """Load every parameter's state; all or nothing (checked first, rolled back on failure).
        ``restore_lm``: also give each predictor the LM it was saved with (see ``load``)."""
        named = self.named_parameters()
        _check_states(self, named, state, "state")
        _load_with_lms(named, state, "state", restore_lm)

    def save(self, path: str | os.PathLike[str], *, save_program: bool = False) -> None:
        """Write every parameter's state to ``path`` as versioned JSON, atomically."""
        if save_program:
            raise NotImplementedError(
                "plait saves a program's state only, by design: whole-program saving (save_program=True) "
                "would need pickle, which can run arbitrary code when loaded. Save with "
                "program.save(path), then rebuild the program in code and call program.load(path)")
        if os.fspath(path).endswith(".pkl"):
            raise StateError(f"cannot save to {os.fspath(path)!r}: plait writes JSON, never pickle; "
                             f"use a .json path")
        # not self.dump_state(): a Parameter-module (Predict) overrides that with its own state
        parameters = _dump_states(self.named_parameters())
        persistence.save_state(path, persistence.make_document(type(self).__qualname__, parameters))

    def load(self, path: str | os.PathLike[str], *, allow_pickle: bool = False, restore_lm: bool = True) -> None:
        """Load a file written by ``save``. The whole file is checked before the program changes.

        Each predictor saved with an LM gets that LM back (``plait.LM(model, **settings)``, built
        before anything changes; credentials come from the environment, as they were never
        saved). ``restore_lm=False`` keeps the predictors' current LMs instead."""
        if allow_pickle:
            raise NotImplementedError("plait never unpickles (a pickle can run arbitrary code); "
                                      "it loads the JSON files program.save(path) writes")
        document = persistence.read_state(path)
        named = self.named_parameters()
        _check_states(self, named, document["parameters"], os.fspath(path), document.get("program"))
        _load_with_lms(named, document["parameters"], os.fspath(path), restore_lm)

    # --- running many ---------------------------------------------------------------------
    def batch(self, examples: Iterable[Example | Mapping[str, Any]], num_threads: int | None = None,
              max_errors: int | None = None, return_failed_examples: bool = False,
              provide_traceback: bool | None = None, disable_progress_bar: bool = False) -> Any:
        """Run the program on each example in threads; results come back in input order.

        A failed example gives None in ``results``; its error is collected, not raised. With
        ``return_failed_examples`` the return is ``(results, failed_examples, exceptions)`` (both
        in input order). More than ``max_errors`` failures (default ``plait.settings.max_errors``)
        raise BatchError, whose ``results`` and ``failures`` hold what had finished. Workers run
        in a copy of the caller's context, so ``plait.context(lm=...)`` applies inside them.
        """
        from plait.predict.parallel import run_calls   # the engine plait.Parallel uses too

        examples = list(examples)
        calls = [functools.partial(_call_program, self, _batch_kwargs(example, index))
                 for index, example in enumerate(examples)]
        results, failures = run_calls(calls, num_threads=num_threads, max_errors=max_errors,
                                      provide_traceback=provide_traceback, display=not disable_progress_bar,
                                      task="batch", thread_name_prefix="plait-batch")
        if return_failed_examples:
            return results, [examples[i] for i, _ in failures], [error for _, error in failures]
        return results

    # --- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        lines = []
        for name, predictor in self.named_predictors():
            shown = (f"{type(predictor).__name__}({getattr(predictor, 'signature', '')!r})"
                     if predictor is self else repr(predictor))
            lines.append(f"  {name} = {shown}")
        body = "\n".join(lines)
        return f"{type(self).__name__}(\n{body}\n)" if lines else f"{type(self).__name__}()"


# --- discovery ----------------------------------------------------------------------------
# A found object with where it is stored: (name, object, owner, key), where owner is the module
# holding it as attribute ``key`` or the list / tuple / dict holding it at ``key``.
_Found = tuple[str, Any, Any, Any]


def _walk(root: Module, skip_compiled: bool = False) -> list[_Found]:
    """Every Module and Parameter reachable from ``root``'s attributes, depth first, once each."""
    found: list[_Found] = []
    if not (isinstance(root, Parameter) and root.leaf_parameter):
        _walk_attributes(root, "", {id(root)}, found, skip_compiled)
    return found


def _walk_attributes(module: Any, prefix: str, seen: set[int], found: list[_Found], skip_compiled: bool) -> None:
    for attribute, value in list(getattr(module, "__dict__", {}).items()):
        if attribute not in NOT_WALKED:
            _walk_value(value, prefix + attribute, module, attribute, seen, found, skip_compiled)


def _walk_value(value: Any, name: str, owner: Any, key: Any, seen: set[int], found: list[_Found],
                skip_compiled: bool) -> None:
    is_parameter = isinstance(value, Parameter)
    if is_parameter or isinstance(value, Module):
        if id(value) in seen:
            return
        seen.add(id(value))
        found.append((name, value, owner, key))
        if (isinstance(value, Module) and not (is_parameter and value.leaf_parameter)
                and not (skip_compiled and getattr(value, "_compiled", False))):
            _walk_attributes(value, name + ".", seen, found, skip_compiled)
    elif isinstance(value, (list, tuple, dict)):
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, dict):
            for item_key, item in list(value.items()):
                _walk_value(item, f"{name}[{item_key!r}]", value, item_key, seen, found, skip_compiled)
        else:
            for index, item in enumerate(value):
                _walk_value(item, f"{name}[{index}]", value, index, seen, found, skip_compiled)


# --- state helpers ------------------------------------------------------------------------
def _state_method(parameter: Any, method: str) -> Callable[..., Any]:
    """``parameter.<method>``, refusing Module's program-level version on a Parameter that did not
    define its own (it would describe the parameter's sub-parameters, or recurse forever)."""
    if isinstance(parameter, Module) and getattr(type(parameter), method) is getattr(Module, method):
        raise NotImplementedError(f"{type(parameter).__name__} is a Parameter but does not define {method}(); "
                                  f"a Parameter must define dump_state, load_state, validate_state and reset")
    return getattr(parameter, method)


def _dump_states(named: list[tuple[str, Parameter]]) -> dict[str, Any]:
    return {name: _state_method(parameter, "dump_state")() for name, parameter in named}


def _check_states(program: Module, named: list[tuple[str, Parameter]], state: Any, source: str,
                  saved_from: str | None = None) -> None:
    """Raise StateError unless ``state`` has exactly these parameters, each accepting its state."""
    if not isinstance(state, Mapping):
        raise StateError(f"{source}: a program state maps parameter names to states; got {type(state).__name__}")
    ours = type(program).__qualname__
    origin = f" (the file is from {saved_from!r}; this program is {ours!r})" if saved_from else ""
    names = [name for name, _ in named]
    for name in names:
        if name not in state:
            raise StateError(f"{source}: parameter {name!r} of this program is missing from the saved state; "
                             f"it was saved from a different program structure{origin}. Load it into the "
                             f"program it was saved from, or save this program again")
    known = set(names)
    for name in state:
        if name not in known:
            raise StateError(f"{source}: the saved state has a parameter {name!r} that this program does not "
                             f"have; it was saved from a different program structure{origin}. This program's "
                             f"parameters are {names}")
    for name, parameter in named:
        try:
            _state_method(parameter, "validate_state")(state[name])
        except StateError as error:
            raise StateError(f"{source}: parameter {name!r}: {error}") from error
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise StateError(f"{source}: parameter {name!r} rejected its saved state: "
                             f"{type(error).__name__}: {error}") from error


def _load_with_lms(named: list[tuple[str, Parameter]], state: Mapping[str, Any], source: str,
                   restore_lm: bool) -> None:
    lms = plan_lm_restore(named, state, source) if restore_lm else []   # may fail: nothing changed yet
    _load_states(named, state)
    for predictor, lm in lms:
        predictor.lm = lm


def _load_states(named: list[tuple[str, Parameter]], state: Mapping[str, Any]) -> None:
    """Load each state; if one load fails, put back what the earlier ones (and it) held before.
    LMs are not part of it: ``_load_with_lms`` sets them once everything else loaded, so the
    parameters get their states without ``"lm"`` (a rollback then keeps the LM objects)."""
    backups = [without_lm(_state_method(parameter, "dump_state")()) for _, parameter in named]
    attempted = 0
    try:
        for name, parameter in named:
            attempted += 1
            _state_method(parameter, "load_state")(without_lm(state[name]))
    except BaseException:
        for (_, parameter), backup in zip(named[:attempted], backups):
            try:
                _state_method(parameter, "load_state")(backup)
            except Exception:  # noqa: BLE001 - best effort; the original error is what matters
                _logger().warning("could not restore the state of %r after a failed load", parameter)
        raise


def _logger() -> Any:
    import logging   # imported on first failure only: keeps ``import plait`` light

    return logging.getLogger("plait.primitives")


# --- batch helpers ------------------------------------------------------------------------
def _batch_kwargs(example: Any, index: int) -> Mapping[str, Any]:
    if isinstance(example, Example):
        try:
            return example.inputs()
        except ValueError as error:
            raise ValueError(f"batch: examples[{index}] has no input keys; call "
                             f".with_inputs('question', ...) on each example first") from error
    if isinstance(example, Mapping):
        return example
    raise TypeError(f"batch: examples[{index}] is a {type(example).__name__}; pass Examples "
                    f"(with .with_inputs(...)) or dicts of keyword arguments")


def _call_program(program: Module, kwargs: Mapping[str, Any]) -> Any:
    return program(**kwargs)
