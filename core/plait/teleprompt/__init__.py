"""Optimizers (teleprompters): compile a program against a metric and a few examples.

``from plait.teleprompt import BootstrapFewShot`` works as in DSPy; every optimizer is also
registered through ``plait_register_teleprompters`` (``plait.teleprompter("bootstrap-few-shot")``).
"""

from plait.teleprompt.base import Budget, BudgetExceeded, CallEstimate, Teleprompter
from plait.teleprompt.bootstrap import BootstrapError, BootstrapFewShot
from plait.teleprompt.copro import COPRO
from plait.teleprompt.ensemble import Ensemble
from plait.teleprompt.finetune import BootstrapFinetune
from plait.teleprompt.knn import KNNFewShot
from plait.teleprompt.labeled import LabeledFewShot
from plait.teleprompt.mipro import MIPROv2
from plait.teleprompt.random_search import BootstrapFewShotWithRandomSearch

__all__ = [
    "BootstrapError", "BootstrapFewShot", "BootstrapFinetune", "BootstrapFewShotWithRandomSearch", "Budget", "BudgetExceeded",
    "COPRO", "CallEstimate", "Ensemble", "KNNFewShot", "LabeledFewShot", "MIPROv2", "Teleprompter",
]
