"""``plait serve``: build the app from a config (or a program) and run it under uvicorn."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from plait.errors import MissingExtraError

DEFAULT_HOST = "127.0.0.1"   # loopback unless the user asks otherwise
DEFAULT_PORT = 8893


def require_server_extra() -> None:
    """Raise MissingExtraError with the install line when fastapi or uvicorn is missing."""
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"plait serve needs {' and '.join(missing)}, which "
                                f"{'is' if len(missing) == 1 else 'are'} not installed: "
                                f"pip install 'plait[server]'")


def retriever_app(config_path: str | Path) -> Any:
    """The app for ``plait serve retriever CONFIG`` (the retriever built and its corpus indexed)."""
    require_server_extra()
    from plait_server.app import create_app
    from plait_server.config import build_retriever, read_config

    config = read_config(config_path)
    return create_app(retriever=build_retriever(config), allow_writes=config.allow_writes, max_k=config.max_k,
                      title=f"plait server: {config.retriever}")


def program_app(target: str, state: str | Path | None = None) -> Any:
    """The app for ``plait serve program MODULE:ATTR [--state FILE]``."""
    require_server_extra()
    from plait_server.app import create_app
    from plait_server.program import load_program

    if os.getcwd() not in sys.path:   # as `python -m`: modules in the current folder can be served
        sys.path.insert(0, os.getcwd())
    return create_app(program=load_program(target, state), title=f"plait server: {target}")


def run(app: Any, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log_level: str = "info") -> None:
    """Serve until interrupted (uvicorn handles SIGINT / SIGTERM)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level)
