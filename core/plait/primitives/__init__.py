"""Program primitives: Example, Prediction, Completions, Module, Parameter and saved state files."""

from plait.primitives.example import Example
from plait.primitives.module import BatchError, Module, Parameter
from plait.primitives.persistence import read_state, save_state
from plait.primitives.prediction import Completions, Prediction

__all__ = ["BatchError", "Completions", "Example", "Module", "Parameter", "Prediction", "read_state",
           "save_state"]
