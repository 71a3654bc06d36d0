"""Saved program files: versioned JSON, written atomically, validated whole before use. No pickle.

A file looks like::

    {"format": "plait.program", "version": 1, "plait_version": "0.1.0",
     "program": "RAG", "parameters": {"generate.predict": {...}}, "metadata": {"python": "3.11.9"}}

``save_state`` writes any JSON-safe document atomically; ``read_state`` reads a program file and
checks its envelope (the per-parameter states are checked by the parameters themselves).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from plait.errors import StateError

FORMAT = "plait.program"
VERSION = 1   # bump when the envelope changes; read_state refuses files from a newer version

PathLike = str | os.PathLike[str]


def make_document(program: str, parameters: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The envelope ``save_state`` writes for a program: its class name and each parameter's state."""
    from plait import __version__

    info = {"python": "{}.{}.{}".format(*sys.version_info[:3])}
    if metadata:
        info.update(metadata)
    return {"format": FORMAT, "version": VERSION, "plait_version": __version__, "program": program,
            "parameters": parameters, "metadata": info}


def save_state(path: PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` as JSON to ``path`` atomically: the file is either the old one or the new one.

    The text goes to a temporary file in the same directory, is flushed and fsynced, then renamed
    over ``path``; the directory is fsynced too where the OS allows it.
    """
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {target}: directory {directory} does not exist; create it first")
    try:
        text = json.dumps(state, indent=2, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        where = _first_unserializable(state, "state") or "state"
        raise StateError(f"cannot save to {target}: {where} is not JSON-safe ({error}); dump_state() must "
                         f"return only dicts with string keys, lists, strings, numbers, booleans and None") from error

    temp = os.path.join(directory, f".{os.path.basename(target)}.{os.urandom(6).hex()}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as a plain open() would.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.exists(target):   # keep the permissions of the file being replaced
            os.chmod(temp, os.stat(target).st_mode & 0o7777)
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; not possible on every OS (Windows), so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_state(path: PathLike) -> dict[str, Any]:
    """Read and check a program file written by ``Module.save``; returns the whole document.

    The file is parsed completely before anything is returned, so callers can validate everything
    before they change a program. Raises StateError naming what is wrong.
    """
    source = os.fspath(path)
    with open(source, "rb") as handle:
        raw = handle.read()
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise StateError(f"{source} is not a plait program file: it is not UTF-8 text ({error})") from error
    except json.JSONDecodeError as error:
        raise StateError(f"{source} is not valid JSON (line {error.lineno}, column {error.colno}, "
                         f"character {error.pos}: {error.msg}); the file may be truncated or not a "
                         f"plait program file. Save the program again with program.save(path)") from error
    return check_document(document, source)


def check_document(document: Any, source: str = "state") -> dict[str, Any]:
    """Check the envelope of a program document (format, version, field types); returns it."""
    if not isinstance(document, dict):
        raise StateError(f"{source} is not a plait program file: it holds a JSON {_json_type(document)}, "
                         f"not an object")
    if "format" not in document:
        hint = (" It looks like a file saved by DSPy; plait reads only its own format: build the program, "
                "compile or set its state, then program.save(path).") if "metadata" in document else ""
        raise StateError(f"{source} is not a plait program file: it has no 'format' key.{hint}")
    if document["format"] != FORMAT:
        raise StateError(f"{source} is not a plait program file: format is {document['format']!r}, "
                         f"expected {FORMAT!r}")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"{source}: 'version' must be a positive integer, got {version!r}")
    if version > VERSION:
        raise StateError(f"{source} was saved by a newer plait (file format version {version}; this plait "
                         f"reads up to version {VERSION}): upgrade plait to load it")
    parameters = document.get("parameters")
    if not isinstance(parameters, dict):
        raise StateError(f"{source}: 'parameters' must be an object mapping parameter names to states, "
                         f"got a JSON {_json_type(parameters)}")
    for name, state in parameters.items():
        if not isinstance(state, dict):
            raise StateError(f"{source}: the state of parameter {name!r} must be an object, "
                             f"got a JSON {_json_type(state)}")
    if not isinstance(document.get("program", ""), str):
        raise StateError(f"{source}: 'program' must be a string, got a JSON {_json_type(document['program'])}")
    if not isinstance(document.get("metadata", {}), dict):
        raise StateError(f"{source}: 'metadata' must be an object, got a JSON {_json_type(document['metadata'])}")
    return document


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _first_unserializable(value: Any, where: str, seen: set[int] | None = None) -> str | None:
    """The path of the first value json cannot write, e.g. "state['parameters']['qa']['lm']"."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return None
    if not isinstance(value, (dict, list, tuple)):
        return f"{where} (a value of type {type(value).__name__})"
    seen = set() if seen is None else seen
    if id(value) in seen:
        return f"{where} (a circular reference)"
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if key is not None and not isinstance(key, (str, int, float, bool)):
                return f"the key {key!r} in {where}"
            found = _first_unserializable(item, f"{where}[{key!r}]", seen)
            if found:
                return found
    else:
        for index, item in enumerate(value):
            found = _first_unserializable(item, f"{where}[{index}]", seen)
            if found:
                return found
    seen.discard(id(value))   # only an ancestor is circular; a shared sibling is fine
    return None
