"""The child side of plait's sandbox, run as ``python -I -S -B _runner.py JOB_FILE`` in a temp dir.

Standard library only: the child sees neither site-packages nor plait. The order matters: read
the job, lower the resource limits, point stdin/stdout at /dev/null (the result goes out on a
private duplicate of the original stdout), install the audit hook, and only then compile and run
the caller's code. The result is one JSON object written to that private descriptor.

The hook's policy lives only in its own keyword defaults (tuples, frozensets and C functions), so
monkeypatching ``os``, ``posixpath`` or ``builtins`` from the sandboxed code does not change it,
and nothing the code can reach holds a reference to the hook function.
"""

import _ast   # the C module: ``ast`` itself costs ~14 ms of start-up
import _imp
import builtins
import gc
import marshal
import os
import resource
import sys
from _json import encode_basestring_ascii as quote   # ``json`` itself would pull in ``re``: ~20 ms

SOURCE_NAME = "<sandbox>"

# Modules whose import alone opens a way around the hook: foreign calls, process spawning that
# raises no audit event, interpreters without our hook, C code that opens files on its own, and
# CPython's test helpers (raw memory access).
DENIED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels",
    "_interpreters", "_interpchannels", "_dbm", "_gdbm", "readline", "_posixshmem", "_tkinter",
    "_testcapi", "_testinternalcapi", "_testmultiphase", "_testbuffer", "_ctypes_test",
    "_testimportmultiple", "_xxtestfuzz", "_testsinglephase",
})
# Audit events refused whatever their arguments, by prefix, with the reason given to the code.
DENIED_EVENTS = (
    ("socket.", "network access"),
    ("subprocess.", "starting processes"),
    ("os.system", "starting processes"),
    ("os.exec", "starting processes"),
    ("os.posix_spawn", "starting processes"),
    ("os.spawn", "starting processes"),
    ("os.fork", "starting processes"),
    ("os.startfile", "starting processes"),
    ("pty.", "starting processes"),
    ("os.kill", "signalling processes"),
    ("ctypes.", "calling native code"),
    ("cpython.PyInterpreterState_New", "creating interpreters"),
    ("sqlite3.", "opening sqlite databases (sqlite opens files outside the audit hook's view)"),
    ("syslog.", "writing to the system log"),
    ("resource.setrlimit", "changing resource limits"),
    ("resource.prlimit", "changing resource limits"),
    ("gc.get_", "walking the object graph"),
    ("os.symlink", "creating links"),
    ("os.link", "creating links"),
    ("webbrowser.", "opening a browser"),
    ("winreg.", "the Windows registry"),
)
READ_EVENTS = frozenset({"os.listdir", "os.scandir", "os.chdir", "os.getxattr", "os.listxattr"})
WRITE_EVENTS = frozenset({"os.mkdir", "os.rmdir", "os.remove", "os.rename", "os.truncate", "os.utime",
                          "os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.setxattr",
                          "os.removexattr", "shutil.rmtree"})
# Frequent events with nothing to check: answered first so hot loops stay fast.
HARMLESS_EVENTS = frozenset({"builtins.id", "object.__getattr__", "object.__setattr__",
                             "object.__delattr__", "compile", "exec", "marshal.loads", "sys._getframe",
                             "code.__new__", "function.__new__", "time.sleep", "mmap.__new__"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class SandboxViolation(PermissionError):
    """Raised inside the sandbox when the code tries something the policy forbids."""


class SandboxImportViolation(ImportError):
    """A refused import: an ImportError, so libraries that treat a module as optional
    (``try: import ctypes except ImportError``) carry on without it."""


class _Submit(BaseException):
    # BaseException, so the code's own ``except Exception`` does not swallow a SUBMIT
    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


class _Capture:
    """A text stream keeping the first ``limit`` characters written to it."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, limit: int) -> None:
        self.parts = []
        self.room = limit
        self.truncated = False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        size = len(text)
        if size > self.room:
            self.truncated = True
            text = text[:self.room] if self.room > 0 else ""
        if text:
            self.parts.append(text)
            self.room -= len(text)
        return size

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def getvalue(self) -> str:
        return "".join(self.parts)


def apply_limits(limits: dict[str, int]) -> None:
    """Lower soft and hard limits together, so the code cannot raise them again."""
    for name, value in limits.items():
        if value is None:
            continue
        which = getattr(resource, name)
        hard = resource.getrlimit(which)[1]
        new_hard = value + 1 if name == "RLIMIT_CPU" else value   # SIGXCPU first, SIGKILL a second later
        if hard != resource.RLIM_INFINITY:
            new_hard = min(new_hard, hard)
            value = min(value, new_hard)
        resource.setrlimit(which, (value, new_hard))


def redirect_fds() -> int:
    """Keep a private copy of stdout for the result; stdin and stdout become /dev/null."""
    result_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return result_fd


def make_hook(writable_root: str, readable_roots: tuple[str, ...], violations: list[str]) -> object:
    # Everything the hook uses is a keyword default: immutable values and C functions that the
    # code cannot rebind (it can rebind os.getcwd or builtins.isinstance, not these references).
    def hook(event: str, args: tuple, *, _rw=writable_root + "/", _ro=readable_roots, _getcwd=os.getcwd,
             _fspath=os.fspath, _isinstance=isinstance, _str=str, _bytes=bytes, _int=int,
             _denied_imports=DENIED_IMPORTS, _denied=DENIED_EVENTS, _read=READ_EVENTS,
             _write=WRITE_EVENTS, _write_flags=WRITE_FLAGS, _ext=tuple(_imp.extension_suffixes()),
             _harmless=HARMLESS_EVENTS, _record=violations.append, _Violation=SandboxViolation,
             _ImportViolation=SandboxImportViolation):
        if event in _harmless:
            return
        if event == "open":
            paths, writing = (args[0],), False
            mode, flags = args[1], args[2]
            if _isinstance(mode, _str):
                writing = "w" in mode or "a" in mode or "x" in mode or "+" in mode
            if _isinstance(flags, _int) and flags & _write_flags:
                writing = True
        elif event == "import":
            # the last component too: an extension's init symbol comes from it ("x._ctypes")
            if args[0] in _denied_imports or _str(args[0]).rpartition(".")[2] in _denied_imports:
                _record(f"import {args[0]}")
                raise _ImportViolation(f"sandbox: importing {args[0]} is not allowed (it would bypass the "
                                 f"sandbox's checks on processes, native code and files)")
            return
        elif event in _read:
            paths, writing = (args[0],), False
        elif event in _write:
            paths, writing = ((args[0], args[1]) if event == "os.rename" else (args[0],)), True
            if event == "os.rename" and (args[2] not in (None, -1) or args[3] not in (None, -1)):
                _record(event)
                raise _Violation("sandbox: os.rename with dir_fd is not allowed; use plain paths")
        else:
            for prefix, what in _denied:
                if event.startswith(prefix):
                    _record(event)
                    raise _Violation(f"sandbox: {what} is not allowed (audit event {event!r})")
            return
        for path in paths:
            if _isinstance(path, _int):
                continue   # an already-open descriptor: it passed this check when opened
            if _isinstance(path, _bytes):
                path = path.decode("utf-8", "surrogateescape")
            elif not _isinstance(path, _str):
                path = _fspath(path)
                if _isinstance(path, _bytes):
                    path = path.decode("utf-8", "surrogateescape")
            full = path if path.startswith("/") else _getcwd() + "/" + path
            parts = []
            for part in full.split("/"):
                if part == "" or part == ".":
                    continue
                if part == "..":
                    if parts:
                        parts.pop()
                    continue
                parts.append(part)
            norm = "/" + "/".join(parts)
            inside = (norm + "/").startswith(_rw)
            if writing:
                if not inside:
                    _record(f"{event} {norm}")
                    raise _Violation(f"sandbox: writing {norm!r} is not allowed; the code may write only "
                                     f"inside its working directory (use relative paths)")
                if norm.endswith(_ext):
                    _record(f"{event} {norm}")
                    raise _Violation(f"sandbox: writing native extension files ({norm!r}) is not allowed")
            elif not inside and not (norm + "/").startswith(_ro):
                _record(f"{event} {norm}")
                raise _Violation(f"sandbox: reading {norm!r} is not allowed; the code may read only its "
                                 f"working directory and the Python standard library")
    return hook


def readable_roots() -> tuple[str, ...]:
    roots = []
    for entry in sys.path:
        if entry:
            for root in {os.path.abspath(entry), os.path.realpath(entry)}:
                roots.append(root.rstrip("/") + "/")
    return tuple(roots)


def split_final_expression(code: str) -> tuple[object, object]:
    tree = compile(code, SOURCE_NAME, "exec", _ast.PyCF_ONLY_AST)
    final = None
    if tree.body and isinstance(tree.body[-1], _ast.Expr):
        final = compile(_ast.Expression(tree.body.pop().value), SOURCE_NAME, "eval")
    return compile(tree, SOURCE_NAME, "exec"), final


def submit(*args: object, **kwargs: object) -> None:
    """SUBMIT(value) or SUBMIT(field=value, ...): end the program with this final output."""
    if args and kwargs or len(args) > 1:
        raise TypeError("SUBMIT takes one value, or keyword arguments naming the output fields")
    raise _Submit(args[0] if args else kwargs)


def format_error(error: BaseException, runner_file: str, code: str) -> str:
    import linecache, traceback   # only on errors: keeps start-up light
    linecache.cache[SOURCE_NAME] = (len(code), None, code.splitlines(True), SOURCE_NAME)
    if isinstance(error, SyntaxError):
        return "".join(traceback.format_exception_only(type(error), error)).rstrip()
    frames = traceback.StackSummary.extract(traceback.walk_tb(error.__traceback__), lookup_lines=False)
    kept = [frame for frame in frames if frame.filename != runner_file]
    lines = traceback.StackSummary.from_list(kept[-8:]).format() if kept else []
    head = ["Traceback (most recent call last):\n"] if lines else []
    tail = traceback.format_exception_only(type(error), error)
    return "".join(head + lines + tail).rstrip()


def to_json(value: object, depth: int = 0) -> str:
    """JSON text for plain data (what ``json.dumps`` accepts); TypeError/ValueError otherwise."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if depth > 64:
        raise ValueError("the value is nested too deeply to send back")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join([to_json(item, depth + 1) for item in value]) + "]"
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                if key is None or isinstance(key, (bool, int, float)):
                    key = to_json(key)
                else:
                    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
            items.append(quote(key) + ": " + to_json(item, depth + 1))
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_value(value: object, limit: int) -> tuple[str, bool, bool]:
    """(JSON text, is_repr, truncated): the value as JSON when it fits in ``limit`` characters,
    else its JSON text or repr cut to ``limit`` and sent as a string."""
    if isinstance(value, str) and len(value) > limit:
        return quote(value[:limit]), False, True
    try:
        text = to_json(value)
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and len(text) <= limit:
        return text, False, False
    try:
        shown = repr(value) if text is None else text
    except Exception as error:   # a broken __repr__ or an int too long to print
        shown = f"<unprintable {type(value).__name__}: {error}>"
    return quote(shown[:limit]), True, len(shown) > limit


def main() -> None:
    job_path = sys.argv[1]
    with open(job_path, "rb") as handle:
        job = marshal.loads(handle.read())   # written by the parent: trusted
    os.remove(job_path)
    apply_limits(job["limits"])
    result_fd = redirect_fds()
    limit = job["max_output_chars"]
    stdout, stderr = _Capture(limit), _Capture(limit)
    sys.stdout = sys.__stdout__ = stdout
    sys.stderr = sys.__stderr__ = stderr
    sys.stdin = sys.__stdin__ = None
    code = job["code"]
    namespace = {"__name__": "__main__", "__builtins__": builtins, "SUBMIT": submit}
    namespace.update(job["variables"])
    violations = []
    _disarm_fork_exec(violations)
    write, exit_now, builtin_names = os.write, os._exit, dict(builtins.__dict__)
    sys.addaudithook(make_hook(os.path.realpath(os.getcwd()), readable_roots(), violations))
    reserve = [bytearray(1 << 20)]   # freed on MemoryError so reporting it has room
    raw_value, submitted, failure = None, False, None
    try:
        body, final = split_final_expression(code)
        exec(body, namespace)
        if final is not None:
            raw_value = eval(final, namespace)
    except _Submit as done:
        raw_value, submitted = done.value, True
    except BaseException as caught:   # the code's failure, reported rather than raised
        failure = caught
    # the code may have replaced builtins (isinstance, len, ...) that reporting relies on
    builtins.__dict__.clear()
    builtins.__dict__.update(builtin_names)
    value, value_is_repr, value_truncated, error_type, error = "null", False, False, None, None
    if failure is not None:
        if isinstance(failure, MemoryError):
            namespace.clear()
            reserve.clear()
            gc.collect()
        error_type = ("SandboxViolation" if isinstance(failure, SandboxImportViolation)
                      else type(failure).__name__)
        try:
            error = format_error(failure, __file__, code)
        except BaseException:   # e.g. the code broke the import system traceback needs
            error = f"{error_type}: {_safe_str(failure)}"
        if len(error) > limit:   # keep the start of the traceback and the exception line
            error = error[:limit // 2] + "\n[...]\n" + error[-(limit // 2):]
    else:
        try:
            value, value_is_repr, value_truncated = encode_value(raw_value, limit)
        except BaseException as problem:
            value, value_is_repr = quote(f"<the value could not be sent back: {_safe_str(problem)}>"), True
    fields = [("ok", to_json(error is None)), ("value", value), ("value_is_repr", to_json(value_is_repr)),
              ("submitted", to_json(submitted)), ("error_type", to_json(error_type)),
              ("error", to_json(error)), ("stdout", quote(stdout.getvalue())),
              ("stderr", quote(stderr.getvalue())), ("violations", to_json([entry[:300] for entry in violations[:50]])),
              ("truncated", to_json(stdout.truncated or stderr.truncated or value_truncated))]
    data = ("{" + ", ".join(f'"{name}": {text}' for name, text in fields) + "}").encode("ascii")
    while data:
        data = data[write(result_fd, data):]
    exit_now(0)   # skip atexit handlers and threads the code may have left behind


def _disarm_fork_exec(violations: list[str]) -> None:
    """``_posixsubprocess.fork_exec`` starts processes without an audit event: load the module
    now and replace the function, so ``import subprocess`` works and starting one fails. The
    hook refuses any later re-import that could bring the original back."""
    import _posixsubprocess

    def fork_exec(*args: object, **kwargs: object) -> None:
        violations.append("_posixsubprocess.fork_exec")
        raise SandboxViolation("sandbox: starting processes is not allowed (_posixsubprocess.fork_exec)")

    _posixsubprocess.fork_exec = fork_exec


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except BaseException:
        return f"<{type(error).__name__} with an unprintable message>"


if __name__ == "__main__":
    main()
