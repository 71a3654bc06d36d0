"""Modules that call an LM: Predict and ChainOfThought."""

from plait.predict.chain_of_thought import ChainOfThought
from plait.predict.predict import Predict

__all__ = ["ChainOfThought", "Predict"]
