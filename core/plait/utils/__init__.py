"""DSPy-compatible home of test helpers: ``from plait.utils import DummyLM``."""

from plait.testing.dummy import DummyLM

__all__ = ["DummyLM"]
