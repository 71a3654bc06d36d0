"""The LM contract for the openai plugin, against llama-cpp-python's OpenAI-compatible server
serving SmolLM2 (the ``llamacpp_server`` fixture in conftest.py starts it once per session)."""

from __future__ import annotations

import pytest

import plait
from plait.testing.lm_contract import LMContract

pytest.importorskip("openai", reason="the openai plugin needs the openai SDK: pip install 'plait[openai]'")

pytestmark = pytest.mark.integration


class TestOpenAIServerContract(LMContract):
    @pytest.fixture
    def contract_lm(self, llamacpp_server) -> plait.LM:
        return plait.LM(f"openai/{llamacpp_server.model}", api_base=llamacpp_server.base_url,
                        temperature=0, max_tokens=32)


class TestOpenAIServerTextContract(LMContract):
    """The same server through /v1/completions (``model_type="text"``)."""

    @pytest.fixture
    def contract_lm(self, llamacpp_server) -> plait.LM:
        return plait.LM(f"openai/{llamacpp_server.model}", api_base=llamacpp_server.base_url,
                        model_type="text", temperature=0, max_tokens=32)
