"""Modules that call an LM: Predict, ChainOfThought, and the modules built from them."""

from plait.predict.aggregation import default_normalize, majority
from plait.predict.best_of_n import BestOfN
from plait.predict.chain_of_thought import ChainOfThought
from plait.predict.multi_chain import MultiChainComparison
from plait.predict.parallel import Parallel
from plait.predict.predict import Predict
from plait.predict.program_of_thought import ProgramOfThought
from plait.predict.refine import Refine

__all__ = ["BestOfN", "ChainOfThought", "MultiChainComparison", "Parallel", "Predict", "ProgramOfThought", "Refine",
           "default_normalize", "majority"]
