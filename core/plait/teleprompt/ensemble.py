"""Ensemble: one program that runs several and reduces their outputs (e.g. ``plait.majority``)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.teleprompt.base import CallEstimate, Teleprompter
from plait.teleprompt.labeled import check_count
from plait.teleprompt.session import compile_session

Reducer = Callable[[list[Any]], Any]


class EnsembledProgram(Module):
    """Runs ``programs`` (all, or ``size`` of them) on the same inputs and reduces the outputs.

    Without a ``reduce_fn`` it returns the list of outputs. With ``size``, the programs are
    sampled per call: at random, or (``deterministic=True``) seeded by the inputs, so the same
    inputs always use the same programs.
    """

    def __init__(self, programs: list[Module], reduce_fn: Reducer | None, size: int | None,
                 deterministic: bool):
        super().__init__()
        self.programs = programs
        self.reduce_fn = reduce_fn
        self.size = size
        self.deterministic = deterministic

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        chosen = self.programs
        if self.size is not None:
            rng = random.Random(_inputs_seed(args, kwargs)) if self.deterministic else random
            chosen = rng.sample(self.programs, self.size)
        outputs = [program(*args, **kwargs) for program in chosen]
        return self.reduce_fn(outputs) if self.reduce_fn is not None else outputs


def _inputs_seed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    text = repr((args, sorted(kwargs.items())))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class Ensemble(Teleprompter):
    """``Ensemble(reduce_fn=plait.majority, size=None, deterministic=False).compile(programs)``.

    ``reduce_fn`` is any ``callable(list_of_outputs) -> output``. The programs are copied, so
    loading a saved ensemble never changes the programs it was built from.
    """

    name = "ensemble"

    def __init__(self, *, reduce_fn: Reducer | None = None, size: int | None = None,
                 deterministic: bool = False):
        if reduce_fn is not None and not callable(reduce_fn):
            raise TypeError(f"Ensemble(reduce_fn=...) must be callable(list of outputs) -> output, "
                            f"not {type(reduce_fn).__name__}")
        check_count("Ensemble", "size", size, 1, optional=True)
        self.reduce_fn = reduce_fn
        self.size = size
        self.deterministic = deterministic

    def estimate_calls(self, student: Module | None = None, *, trainset: Sequence[Example] | None = None,
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        return CallEstimate(0, "Ensemble combines programs; compiling makes no LM calls")

    def compile(self, programs: Sequence[Module] | Module, *, trainset: Sequence[Example] | None = None,
                teacher: Module | None = None, valset: Sequence[Example] | None = None) -> Module:
        if isinstance(programs, Module):
            raise TypeError("Ensemble.compile takes a list of programs: Ensemble(...).compile([program_a, program_b])")
        members = list(programs)
        if not members:
            raise ValueError("Ensemble.compile got no programs; pass at least one")
        for index, program in enumerate(members):
            if not callable(program):
                raise TypeError(f"programs[{index}] is a {type(program).__name__}, not a program")
        if self.size is not None and self.size > len(members):
            raise ValueError(f"Ensemble(size={self.size}) samples more programs than the {len(members)} given")
        with compile_session(self.name, None, self.estimate_calls(), programs=len(members)):
            copies = [program.deepcopy() if isinstance(program, Module) else program for program in members]
            ensembled = EnsembledProgram(copies, self.reduce_fn, self.size, self.deterministic)
            ensembled._compiled = True
        return ensembled
