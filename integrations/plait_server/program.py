"""Loading the program ``plait serve program MODULE:ATTR [--state FILE]`` serves.

``ATTR`` (dotted names allowed) is either a program (a plait Module instance) or a factory called
with no arguments that returns one. The factory is the place to configure the LM the program
uses (``plait.configure(lm=plait.LM(...))``). ``--state`` loads a file saved with
``program.save(path)`` (for example a compiled program) into it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any


def load_program(target: str, state: str | Path | None = None) -> Any:
    """Import ``module:attr``, call it when it is a factory, then load the saved ``state`` file."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"the program must be given as MODULE:ATTR (for example myapp.rag:make_program), "
                         f"got {target!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise ValueError(f"cannot import {module_name!r} ({error}); run plait serve from the folder that "
                             f"holds it, or install it") from error
        raise
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}; name a program or a factory "
                             f"that returns one")
        value = getattr(value, part)
    from plait.primitives import Module

    program = value if isinstance(value, Module) else _call_factory(value, target)
    if not callable(program):
        raise TypeError(f"{target} gave a {type(program).__name__}, which cannot be called; it must be a "
                        f"plait Module or a factory returning one")
    if state is not None:
        if not callable(getattr(program, "load", None)):
            raise TypeError(f"--state needs a plait Module (with load()); {target} gave a "
                            f"{type(program).__name__}")
        if not Path(state).is_file():
            raise FileNotFoundError(f"the program state file {state} does not exist; save one with "
                                    f"program.save(path)")
        program.load(state)
    return program


def _call_factory(factory: Any, target: str) -> Any:
    if not callable(factory):
        raise TypeError(f"{target} is a {type(factory).__name__}; it must be a plait Module or a factory "
                        f"(called with no arguments) returning one")
    return factory()
