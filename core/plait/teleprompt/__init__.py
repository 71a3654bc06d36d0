"""Optimizers (teleprompters): compile a program against a metric and a few examples.

``from plait.teleprompt import BootstrapFewShot`` works as in DSPy; every optimizer is also
registered through ``plait_register_teleprompters`` (``plait.teleprompter("bootstrap-few-shot")``).
"""

from plait.teleprompt.base import Budget, BudgetExceeded, CallEstimate, Teleprompter

__all__ = ["Budget", "BudgetExceeded", "CallEstimate", "Teleprompter"]
