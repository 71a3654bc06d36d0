"""plait server (``pip install 'plait[server]'``): retrievers and programs over HTTP.

``plait serve retriever CONFIG`` hosts any registered retriever (config format: see
:mod:`plait_server.config`), speaking the ColBERTv2 protocol at ``/search`` (so ``dspy.ColBERTv2``
and ``plait.ColBERTv2`` can use it) and plait's own ``/retrieve``; ``plait serve program
MODULE:ATTR [--state FILE]`` hosts a program at ``/predict``. ``create_app(retriever=..., program=...)``
builds the FastAPI app for embedding in your own server. Endpoints: see :mod:`plait_server.app`.

Importing this package imports neither fastapi nor uvicorn.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_app", "load_program", "program_app", "read_config", "retriever_app", "run"]

_LAZY = {"create_app": "plait_server.app", "read_config": "plait_server.config",
         "load_program": "plait_server.program", "retriever_app": "plait_server.serve",
         "program_app": "plait_server.serve", "run": "plait_server.serve"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_server' has no attribute {name!r}")
    if module == "plait_server.app":
        from plait_server.serve import require_server_extra
        require_server_extra()
    return getattr(importlib.import_module(module), name)
