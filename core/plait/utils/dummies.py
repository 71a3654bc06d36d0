"""``from dspy.utils.dummies import DummyLM`` works as ``from plait.utils.dummies import DummyLM``."""

from plait.testing.dummy import DummyLM

__all__ = ["DummyLM"]
