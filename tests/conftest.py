"""Shared fixtures: every test starts from default settings and an isolated cache directory."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before plait is imported anywhere: never touch the user's real cache from tests.
os.environ.setdefault("PLAIT_CACHE_DIR", tempfile.mkdtemp(prefix="plait-test-cache-"))


@pytest.fixture(autouse=True)
def _fresh_settings():
    from plait.settings import settings
    settings.reset()
    yield
    settings.reset()
