"""Shared fixtures: every test starts from default settings and an isolated cache directory."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before plait is imported anywhere: never touch the user's real cache from tests.
os.environ.setdefault("PLAIT_CACHE_DIR", tempfile.mkdtemp(prefix="plait-test-cache-"))
# Nothing downloads from model hubs; models come from installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OpenMP threads that spin while waiting starve everything else on a busy 2-core machine
# (a MiniLM forward pass: ~2 s spinning vs ~0.1 s passive). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _fresh_settings():
    from plait.settings import settings
    settings.reset()
    yield
    settings.reset()


@pytest.fixture
def transformers_provider():
    """The "transformers" LM provider: its entry point when installed, else registered by hand
    (a checkout run without ``pip install -e .`` has no entry points)."""
    from plait import registry
    if "transformers" in registry.backends("lm"):
        yield
        return
    import plait_transformers

    from plait.plugins import plugin
    with plugin(plait_transformers, "transformers"):
        yield
