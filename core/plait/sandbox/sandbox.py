"""Sandbox: run LM-written Python in a separate, limited subprocess and get a JSON result back.

Each run starts ``python -I -S -B _runner.py`` with a fresh temp dir as its working directory,
an almost empty environment, stdin on /dev/null and its own process group. The child lowers its
resource limits (memory, CPU, file size, open files, processes) and installs an audit hook that
refuses network, process, native-code and outside-file events before the code runs; the parent
enforces the wall-clock timeout by killing the process group and caps what it reads back.
See docs/sandbox.md for what this does and does not guarantee.
"""

from __future__ import annotations

import asyncio
import json
import marshal
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plait.errors import PlaitError

RUNNER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_runner.py")
JOB_NAME = ".plait-job.json"
_STDERR_CAP = 4096   # bytes of the child's raw stderr kept for crash reports
_READ_SIZE = 65536


class SandboxError(PlaitError, RuntimeError):
    """The sandbox itself could not run (bad settings, unsupported platform, missing Python)."""


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What one run produced. ``ok`` is False when the code raised, broke a rule or a limit.

    ``value`` is the value of the code's final expression, or what it passed to ``SUBMIT(...)``
    (``submitted`` is then True); ``error`` is a traceback-style message meant for the LM,
    ``error_type`` its class name ("ZeroDivisionError", "SandboxViolation", "TimeoutError",
    "MemoryError", "CPULimitError", "OutputLimitError", "Crashed"); ``violations`` lists the
    events the sandbox refused, even ones the code caught and ignored.
    """

    ok: bool
    value: Any = None
    submitted: bool = False
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    error_type: str | None = None
    violations: tuple[str, ...] = ()
    truncated: bool = False
    value_is_repr: bool = False
    duration: float = 0.0
    exit_code: int | None = None

    @property
    def output(self) -> Any:
        """DSPy's notion of the output: the submitted or final value, else the printed text."""
        if self.submitted or self.value is not None:
            return self.value
        return self.stdout


@dataclass(frozen=True, slots=True)
class _Launch:
    argv: tuple[str, ...]
    workdir: str
    env: dict[str, str]
    started: float


class Sandbox:
    """``Sandbox(timeout=5).run("import math\\nmath.sqrt(2)").value == 1.4142135623730951``.

    Limits: ``timeout`` wall-clock seconds (the parent kills the process group), ``memory_mb``
    address space (RLIMIT_AS), ``cpu_seconds`` (RLIMIT_CPU; default: the timeout rounded up, plus
    one), ``max_output_chars`` per captured stream and for the value, ``max_file_mb`` per written
    file, ``max_open_files``. ``site_packages=True`` lets the code import installed packages
    (read-only); by default it gets the standard library only. Thread-safe; every run is fresh.
    """

    def __init__(self, *, timeout: float = 5.0, memory_mb: int = 512, cpu_seconds: int | None = None,
                 max_output_chars: int = 20_000, max_file_mb: int = 16, max_open_files: int = 64,
                 site_packages: bool = False, python: str | None = None):
        if os.name != "posix":
            raise SandboxError("the sandbox needs a POSIX system (it relies on resource limits and "
                               "process groups); run ProgramOfThought on Linux or macOS")
        _check_positive("timeout", timeout)
        for name, value in (("memory_mb", memory_mb), ("max_output_chars", max_output_chars),
                            ("max_file_mb", max_file_mb), ("max_open_files", max_open_files)):
            _check_positive(name, value, integer=True)
        if memory_mb < 64:
            raise SandboxError(f"memory_mb={memory_mb} is too small for a Python interpreter; use 64 or more")
        if cpu_seconds is not None:
            _check_positive("cpu_seconds", cpu_seconds, integer=True)
        self.timeout = float(timeout)
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds if cpu_seconds is not None else math.ceil(timeout) + 1
        self.max_output_chars = max_output_chars
        self.max_file_mb = max_file_mb
        self.max_open_files = max_open_files
        self.site_packages = site_packages
        self.python = python or sys.executable
        if not self.python or not os.path.exists(self.python):
            raise SandboxError(f"no Python interpreter at {self.python!r}; pass python='/path/to/python'")
        flags = ("-I", "-B") if site_packages else ("-I", "-S", "-B")
        self._argv = (self.python, *flags, RUNNER_PATH, JOB_NAME)
        self._limits = {"RLIMIT_AS": memory_mb * 1024 * 1024, "RLIMIT_CPU": self.cpu_seconds,
                        "RLIMIT_FSIZE": max_file_mb * 1024 * 1024, "RLIMIT_NOFILE": max_open_files,
                        "RLIMIT_NPROC": 0, "RLIMIT_CORE": 0}
        # stdout, stderr, value and error are each capped at max_output_chars in the child; ASCII
        # JSON escaping grows a character up to 12 bytes. Past this the child is writing around
        # its capture, and is stopped.
        self._result_cap = 4 * 12 * max_output_chars + 262144

    def __repr__(self) -> str:
        return (f"Sandbox(timeout={self.timeout:g}, memory_mb={self.memory_mb}, "
                f"cpu_seconds={self.cpu_seconds}, site_packages={self.site_packages})")

    # --- running ----------------------------------------------------------------------------
    def run(self, code: str, variables: Mapping[str, Any] | None = None) -> SandboxResult:
        """Run ``code`` (with ``variables`` as globals, JSON values) and return what it produced."""
        launch = self._prepare(code, variables)
        try:
            process = subprocess.Popen(launch.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, cwd=launch.workdir, env=launch.env,
                                       start_new_session=True, close_fds=True)
        except OSError as error:
            shutil.rmtree(launch.workdir, ignore_errors=True)
            raise SandboxError(f"could not start the sandbox's Python ({self.python}): {error}") from error
        result, errors = bytearray(), bytearray()
        timed_out = overflow = False
        try:
            with process, selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ, (result, self._result_cap))
                selector.register(process.stderr, selectors.EVENT_READ, (errors, _STDERR_CAP))
                deadline = launch.started + self.timeout
                while selector.get_map() and not overflow:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        timed_out = True
                        break
                    for key, _ in selector.select(remaining):
                        chunk = os.read(key.fd, _READ_SIZE)
                        buffer, cap = key.data
                        if not chunk:
                            selector.unregister(key.fileobj)
                        elif len(buffer) + len(chunk) <= cap:
                            buffer += chunk
                        elif buffer is result:
                            overflow = True
                        else:
                            buffer += chunk[:max(0, cap - len(buffer))]
                # Done (both pipes closed), late or flooding: kill the group while the child is not
                # yet reaped, so its group id cannot belong to anyone else.
                _kill_group(process.pid)
                process.wait()
        finally:   # also on KeyboardInterrupt: no child outlives the call, no temp dir is left
            if process.returncode is None:
                _kill_group(process.pid)
            shutil.rmtree(launch.workdir, ignore_errors=True)
        return self._finish(launch, process.returncode, bytes(result), bytes(errors), timed_out, overflow)

    async def arun(self, code: str, variables: Mapping[str, Any] | None = None) -> SandboxResult:
        """``run`` for asyncio: the child runs while the event loop serves other tasks."""
        launch = self._prepare(code, variables)
        try:
            process = await asyncio.create_subprocess_exec(
                *launch.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=launch.workdir, env=launch.env, start_new_session=True)
        except OSError as error:
            shutil.rmtree(launch.workdir, ignore_errors=True)
            raise SandboxError(f"could not start the sandbox's Python ({self.python}): {error}") from error
        result, errors = bytearray(), bytearray()
        timed_out = overflow = False
        deadline = launch.started + self.timeout
        tasks = [asyncio.ensure_future(_drain(process.stdout, result, self._result_cap, True)),
                 asyncio.ensure_future(_drain(process.stderr, errors, _STDERR_CAP, False))]
        try:
            _, pending = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0),
                                            return_when=asyncio.FIRST_EXCEPTION)
            overflow = any(task.done() and not task.cancelled() and task.exception() is not None
                           for task in tasks)
            timed_out = bool(pending) and not overflow
        finally:   # also on cancellation: no child outlives the call, no temp dir is left
            if process.returncode is None:
                _kill_group(process.pid)
            shutil.rmtree(launch.workdir, ignore_errors=True)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await process.wait()
        return self._finish(launch, process.returncode, bytes(result), bytes(errors), timed_out, overflow)

    # --- the two ends of a run ----------------------------------------------------------------
    def _prepare(self, code: str, variables: Mapping[str, Any] | None) -> _Launch:
        if not isinstance(code, str):
            raise TypeError(f"the sandbox runs Python source text (str), not {type(code).__name__}")
        job = {"code": code, "variables": _check_variables(variables), "limits": self._limits,
               "max_output_chars": self.max_output_chars}
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="plait-sandbox-"))
        with open(os.path.join(workdir, JOB_NAME), "wb") as handle:
            handle.write(marshal.dumps(job))   # the child reads it with a builtin: no json import there
        env = {"HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        return _Launch(self._argv, workdir, env, time.monotonic())

    def _finish(self, launch: _Launch, returncode: int | None, result: bytes, errors: bytes,
                timed_out: bool, overflow: bool) -> SandboxResult:
        duration = time.monotonic() - launch.started
        if timed_out:
            return SandboxResult(False, error=f"TimeoutError: the code ran longer than the sandbox's "
                                 f"{self.timeout:g} s limit and was killed", error_type="TimeoutError",
                                 duration=duration, exit_code=returncode)
        if overflow:
            return SandboxResult(False, error="OutputLimitError: the code wrote more than the sandbox "
                                 "reads back, around its captured stdout; it was killed",
                                 error_type="OutputLimitError", duration=duration, exit_code=returncode)
        try:
            report = json.loads(result) if result else None
        except ValueError:
            report = None
        if not isinstance(report, dict):
            return self._crashed(returncode, errors, duration)
        error, error_type = report.get("error"), report.get("error_type")
        if error_type == "MemoryError":
            error = f"{error}\n(the sandbox allows {self.memory_mb} MiB of memory)"
        return SandboxResult(bool(report.get("ok")), report.get("value"), bool(report.get("submitted")),
                             str(report.get("stdout", "")), str(report.get("stderr", "")), error, error_type,
                             tuple(report.get("violations") or ()), bool(report.get("truncated")),
                             bool(report.get("value_is_repr")), duration, returncode)

    def _crashed(self, returncode: int | None, errors: bytes, duration: float) -> SandboxResult:
        detail = errors.decode("utf-8", "replace").strip()
        if returncode == -signal.SIGXCPU:
            return SandboxResult(False, error=f"CPULimitError: the code used more than the sandbox's "
                                 f"{self.cpu_seconds} s of CPU time and was killed",
                                 error_type="CPULimitError", duration=duration, exit_code=returncode)
        if "MemoryError" in detail or "Cannot allocate memory" in detail:
            return SandboxResult(False, error=f"MemoryError: the code ran out of memory (the sandbox "
                                 f"allows {self.memory_mb} MiB)", error_type="MemoryError",
                                 duration=duration, exit_code=returncode)
        how = (f"was killed by {signal.Signals(-returncode).name}" if returncode is not None and returncode < 0
               and -returncode in signal.valid_signals() else f"exited with code {returncode}")
        message = f"Crashed: the sandboxed process {how} before reporting a result"
        if returncode == -signal.SIGKILL:
            message += " (it used up its CPU time, or closed its output and was stopped)"
        if detail:
            message += f"; its stderr ends with:\n{detail[-1000:]}"
        return SandboxResult(False, error=message, error_type="Crashed", duration=duration, exit_code=returncode)


class _Overflow(Exception):
    pass


async def _drain(stream: asyncio.StreamReader | None, buffer: bytearray, cap: int, is_result: bool) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_READ_SIZE):
        if len(buffer) + len(chunk) <= cap:
            buffer += chunk
        elif is_result:
            raise _Overflow
        else:
            buffer += chunk[:max(0, cap - len(buffer))]


def _kill_group(pid: int) -> None:
    # the child leads its own session, so its group id is its pid; it may be gone already
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        raise SandboxError(f"Sandbox {name}= must be {kind}, got {value!r}")


def _check_variables(variables: Mapping[str, Any] | None) -> dict[str, Any]:
    if not variables:
        return {}
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables= must be a mapping of names to JSON values, not {type(variables).__name__}")
    for name in variables:
        if not isinstance(name, str) or not name.isidentifier():
            raise SandboxError(f"variable name {name!r} is not a Python identifier")
    try:
        json.dumps(dict(variables))
    except (TypeError, ValueError) as error:
        raise SandboxError(f"variables= must hold JSON values (str, numbers, lists, dicts): {error}") from error
    return dict(variables)
