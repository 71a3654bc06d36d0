"""plait: programming, not prompting, language models.

The public API mirrors DSPy's, so ``import plait as dspy`` runs DSPy programs. Submodules load
lazily on first attribute access: ``import plait`` itself imports almost nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # signatures
    "Signature": "plait.signatures", "InputField": "plait.signatures", "OutputField": "plait.signatures",
    "ensure_signature": "plait.signatures", "make_signature": "plait.signatures",
    # primitives
    "Example": "plait.primitives", "Prediction": "plait.primitives", "Completions": "plait.primitives",
    "Module": "plait.primitives", "Parameter": "plait.primitives",
    # modules
    "Predict": "plait.predict", "ChainOfThought": "plait.predict", "majority": "plait.predict",
    "MultiChainComparison": "plait.predict", "BestOfN": "plait.predict", "Refine": "plait.predict",
    "Parallel": "plait.predict", "ProgramOfThought": "plait.predict", "ReAct": "plait.predict",
    "Tool": "plait.predict",
    "Sandbox": "plait.sandbox", "SandboxResult": "plait.sandbox",
    "Suggest": "plait.assertions", "Assert": "plait.assertions", "with_assertions": "plait.assertions",
    "AssertionFailedError": "plait.assertions",
    # LMs
    "LM": "plait.lm.base", "BaseLM": "plait.lm.base", "inspect_history": "plait.lm.history",
    "track_usage": "plait.lm.usage", "configure_cache": "plait.lm.cache",
    "OpenAI": "plait.lm.aliases", "HFClientVLLM": "plait.lm.aliases", "OllamaLocal": "plait.lm.aliases",
    # adapters
    "Adapter": "plait.adapters", "ChatAdapter": "plait.adapters", "JSONAdapter": "plait.adapters",
    "TemplateAdapter": "plait.adapters",
    # async and streaming
    "asyncify": "plait.async_tools", "streamify": "plait.streaming", "StreamListener": "plait.streaming",
    "StreamResponse": "plait.streaming",
    # settings
    "configure": "plait.settings", "context": "plait.settings",
    # retrieval
    "Retrieve": "plait.retrieve", "Passage": "plait.retrieve", "Retriever": "plait.retrieve",
    "Embedder": "plait.retrieve",
    # DSPy-style retriever clients (each plugin imports its SDK only when one is built)
    "ColBERTv2": "plait_colbert", "QdrantRM": "plait_qdrant", "ChromadbRM": "plait_chroma",
    "PineconeRM": "plait_pinecone", "MarqoRM": "plait_marqo",
    # optimizers (DSPy exposes them at the top level too)
    "LabeledFewShot": "plait.teleprompt", "BootstrapFewShot": "plait.teleprompt",
    "BootstrapFewShotWithRandomSearch": "plait.teleprompt", "KNNFewShot": "plait.teleprompt",
    "Ensemble": "plait.teleprompt", "COPRO": "plait.teleprompt", "MIPROv2": "plait.teleprompt",
    "Budget": "plait.teleprompt", "BootstrapFinetune": "plait.teleprompt",
    # evaluation
    "Evaluate": "plait.evaluate",
    # plugins and registry
    "hookimpl": "plait.hookspecs", "retriever": "plait.registry", "embedder": "plait.registry",
    "teleprompter": "plait.registry",
    # errors
    "PlaitError": "plait.errors", "SignatureError": "plait.errors", "AdapterParseError": "plait.errors",
    "ConfigurationError": "plait.errors", "StateError": "plait.errors", "PluginError": "plait.errors",
    "MissingExtraError": "plait.errors", "UnknownBackendError": "plait.errors", "LMError": "plait.errors",
}
_ALIASES = {"BaseLM": "LM"}
_SUBMODULES = frozenset({"evaluate", "teleprompt", "adapters", "signatures", "primitives", "predict",
                         "lm", "testing", "settings", "plugins", "registry", "hookspecs", "backends",
                         "errors", "utils", "datasets", "retrieve", "assertions", "sandbox", "streaming"})

# ``plait.settings`` is the settings module; it forwards attribute reads to the Settings object,
# so ``plait.settings.lm`` and ``plait.settings.configure(...)`` both work as in DSPy.
__all__ = sorted(_EXPORTS) + ["__version__", "settings"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), _ALIASES.get(name, name))
        globals()[name] = value   # later lookups skip __getattr__
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"plait.{name}")
    raise AttributeError(f"module 'plait' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
