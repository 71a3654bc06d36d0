"""Test helpers for plait programs and plugins: DummyLM and the contract suites."""

from plait.testing.dummy import DummyBackend, DummyLM, DummyLMExhausted

__all__ = ["DummyBackend", "DummyLM", "DummyLMExhausted"]
