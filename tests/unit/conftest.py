"""Fixtures shared by the unit tests."""

from __future__ import annotations

import importlib.metadata

import pytest


@pytest.fixture
def only_test_plugins(monkeypatch):
    """A fresh plugin manager that sees only the progress built-in and "test-*" distributions."""
    from plait import plugins

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [
        ep for ep in real(**selection)
        if ep.dist is not None and ep.dist.metadata["Name"].startswith("test-")])
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ("plait.builtins.progress",))
    for variable in ("PLAIT_PLUGINS", "PLAIT_STRICT_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    plugins.reset()
    yield
    plugins.reset()
