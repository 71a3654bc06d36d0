"""DSPy-style aliases (OpenAI, HFClientVLLM, OllamaLocal) resolve to plait.LM("openai/...").

Only resolution is tested: the backend factory is replaced by a recorder, so no SDK client is
built and nothing touches the network.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from plait import registry
from plait.lm.aliases import HFClientVLLM, OllamaLocal, OpenAI


@pytest.fixture
def created(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """Every backend LM() asks the registry to build: (provider, config)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(kind: str, name: str, /, **config: Any) -> object:
        assert kind == "lm"
        calls.append((name, config))
        return object()

    monkeypatch.setattr(registry, "create", record)
    return calls


def test_openai_alias(created):
    lm = OpenAI(model="gpt-4o-mini", api_key="sk-x", temperature=0.3, max_tokens=50)
    assert lm.model == "openai/gpt-4o-mini" and lm.kwargs == {"temperature": 0.3, "max_tokens": 50}
    assert created == [("openai", {"model": "gpt-4o-mini", "model_type": "chat", "api_key": "sk-x",
                                   "api_base": None})]
    OpenAI(model="openai/gpt-4o", api_base="http://localhost:8000/v1", model_type="text")
    assert created[1][1]["model"] == "gpt-4o" and created[1][1]["model_type"] == "text"
    assert created[1][1]["api_base"] == "http://localhost:8000/v1"


@pytest.mark.parametrize(("url", "port", "api_base"), [
    ("http://localhost", 8000, "http://localhost:8000/v1"),
    ("http://gpu-box/", "8001", "http://gpu-box:8001/v1"),
    ("gpu-box", 8001, "http://gpu-box:8001/v1"),
    ("http://gpu-box:9000", None, "http://gpu-box:9000/v1"),
    ("http://gpu-box:9000/v1", 9000, "http://gpu-box:9000/v1"),
])
def test_vllm_alias_builds_the_v1_url(created, url, port, api_base):
    lm = HFClientVLLM(model="meta-llama/Llama-3.1-8B-Instruct", url=url, port=port)
    name, config = created[0]
    assert name == "openai" and lm.model == "openai/meta-llama/Llama-3.1-8B-Instruct"
    assert config["api_base"] == api_base
    assert config["api_key"] == "EMPTY"             # never the user's OPENAI_API_KEY


def test_vllm_alias_rejects_conflicting_ports_and_url_lists(created):
    with pytest.raises(ValueError, match="already names port 9000"):
        HFClientVLLM(model="m", url="http://h:9000", port=8000)
    with pytest.raises(ValueError, match="one server URL"):
        HFClientVLLM(model="m", url=["http://a", "http://b"])
    assert created == []


def test_ollama_alias(created):
    lm = OllamaLocal(model="llama3.2", temperature=0)
    assert lm.model == "openai/llama3.2" and lm.kwargs == {"temperature": 0}
    assert created[0][1]["api_base"] == "http://localhost:11434/v1"
    assert created[0][1]["api_key"] == "ollama"
    OllamaLocal(model="llama3.2", base_url="http://box:11434/", api_key="mine")
    assert created[1][1]["api_base"] == "http://box:11434/v1" and created[1][1]["api_key"] == "mine"


def test_an_empty_model_name_is_a_clear_error(created):
    with pytest.raises(ValueError, match="model="):
        OpenAI(model="")


def test_aliases_do_not_import_the_sdk():
    script = "import sys, plait.lm.aliases; print('openai' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
