"""Rebuild the LMs a saved program's predictors used (``program.load`` restores them, as DSPy does).

A predictor's saved state holds ``"lm": LM.dump_state()`` (model name and settings, never
credentials). Loading builds ``plait.LM(**saved)`` for each predictor that had one, before the
program changes, so a load whose LM cannot be built here fails as a whole with a StateError that
names the fix. An LM that is already in use with the same settings (the predictor's own, or the
configured one) is kept rather than rebuilt: it holds credentials and loaded weights. An LM whose
backend object was passed in (``injected_backend`` in the file) cannot be rebuilt from a name and
is left as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from plait.errors import StateError
from plait.settings import effective


def plan_lm_restore(named: list[tuple[str, Any]], state: Mapping[str, Any],
                    source: str) -> list[tuple[Any, Any]]:
    """``(predictor, lm)`` pairs to assign after a successful load; builds LMs, changes nothing."""
    built: dict[str, Any] = {}   # identical saved settings share one LM (one model load)
    plan = []
    for name, parameter in named:
        saved = state[name].get("lm") if isinstance(state[name], Mapping) else None
        if not isinstance(saved, Mapping) or "injected_backend" in saved or not hasattr(parameter, "lm"):
            continue
        key = json.dumps(saved, sort_keys=True, default=str)
        if key not in built:
            built[key] = _live_lm(saved, parameter) or _build_lm(saved, name, source)
        plan.append((parameter, built[key]))
    return plan


def saved_lm(parameter: Any, state: Mapping[str, Any]) -> Any:
    """The LM ``state`` (one predictor's) was saved with, built or reused; None if it has none
    that can be rebuilt. For ``Predict.load_state`` called on its own."""
    plan = plan_lm_restore([("self", parameter)], {"self": state}, "state")
    return plan[0][1] if plan else None


def without_lm(state: Any) -> Any:
    """``state`` without its ``"lm"`` entry (program loads set LMs themselves, after the rest)."""
    if isinstance(state, Mapping) and "lm" in state:
        return {key: value for key, value in state.items() if key != "lm"}
    return state


def _live_lm(saved: Mapping[str, Any], parameter: Any) -> Any:
    for lm in (parameter.lm, effective().get("lm")):
        if lm is not None and getattr(lm, "dump_state", None) is not None and lm.dump_state() == dict(saved):
            return lm
    return None


def _build_lm(saved: Mapping[str, Any], name: str, source: str) -> Any:
    from plait.lm.base import LM

    settings = dict(saved)
    model = settings.pop("model", None)
    if not isinstance(model, str) or not model:
        raise StateError(f"{source}: parameter {name!r}: the saved LM has no 'model' name: {dict(saved)!r}")
    try:
        return LM(model, **settings)
    except Exception as error:   # any failure to build (missing extra, credentials, file) is reported alike
        raise StateError(
            f"{source}: parameter {name!r} was saved with LM {model!r}, which cannot be built here "
            f"({type(error).__name__}: {error}). Make it buildable (install its plugin's extra, set its "
            f"credentials, restore its model files), or load with restore_lm=False and call "
            f"program.set_lm(...)") from error
