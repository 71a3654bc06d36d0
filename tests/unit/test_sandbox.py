"""The sandbox: normal code works; escapes (network, processes, outside files, limits) are contained.

Each escape test checks both that the caller gets a clear error and that the effect did not
happen (no connection reached the listening socket, no marker file appeared, ...).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import sys
import time

import pytest

from plait.sandbox import Sandbox, SandboxError, SandboxResult

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox relies on POSIX resource limits")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(timeout=2, memory_mb=128)


def assert_blocked(result: SandboxResult, *words: str) -> None:
    assert not result.ok, result
    assert result.error_type == "SandboxViolation", result.error
    assert result.violations, "the refused event should be recorded"
    for word in words:
        assert word in result.error, result.error


# --- normal code ------------------------------------------------------------------------------
def test_final_expression_value_and_stdout(sandbox):
    code = ("import json, math, collections\n"
            "counts = collections.Counter('abracadabra')\n"
            "print('most common:', counts.most_common(1)[0][0])\n"
            "{'a': counts['a'], 'root': math.isqrt(144), 'doc': json.loads('[1, 2]'), 't': (1, None)}")
    result = sandbox.run(code)
    assert result.ok and result.error is None and result.violations == ()
    assert result.value == {"a": 5, "root": 12, "doc": [1, 2], "t": [1, None]}
    assert result.stdout == "most common: a\n"
    assert result.output == result.value


def test_printed_text_is_the_output_without_a_final_value(sandbox):
    result = sandbox.run("total = sum(range(10))\nprint(total)")
    assert result.ok and result.value is None and result.output == "45\n"


def test_submit_ends_the_program_with_its_value(sandbox):
    result = sandbox.run("SUBMIT(answer=42, unit='m')\nprint('never')")
    assert result.ok and result.submitted and result.value == {"answer": 42, "unit": "m"}
    assert result.stdout == ""
    single = sandbox.run("try:\n    SUBMIT([1, 2])\nexcept Exception:\n    pass")   # not swallowed
    assert single.submitted and single.output == [1, 2]


def test_variables_become_globals_and_non_json_values_come_back_as_repr(sandbox):
    result = sandbox.run("sorted({n * factor for n in numbers})", {"numbers": [3, 1, 3], "factor": 2})
    assert result.value == [2, 6]
    as_repr = sandbox.run("{1, 2}")
    assert as_repr.ok and as_repr.value_is_repr and as_repr.value == "{1, 2}"


def test_files_inside_the_working_directory_work_and_vanish_afterwards(sandbox):
    code = ("import os, pathlib, tempfile\n"
            "pathlib.Path('notes.txt').write_text('hello')\n"
            "os.mkdir('sub')\n"
            "with tempfile.TemporaryFile() as handle:\n"
            "    handle.write(b'x')\n"
            "[os.getcwd(), pathlib.Path('notes.txt').read_text(), sorted(os.listdir('.'))]")
    first = sandbox.run(code)
    assert first.ok, first.error
    workdir, text, listing = first.value
    assert text == "hello" and listing == ["notes.txt", "sub"]
    assert not os.path.exists(workdir)                     # removed after the run
    second = sandbox.run("import os\nos.listdir('.')")
    assert second.value == []                              # every run starts empty


def test_errors_come_back_with_a_traceback_of_the_code_only(sandbox):
    result = sandbox.run("def half(x):\n    return x / 0\nprint('before')\nhalf(3)")
    assert not result.ok and result.error_type == "ZeroDivisionError"
    assert 'File "<sandbox>", line 2, in half' in result.error
    assert result.error.endswith("ZeroDivisionError: division by zero")
    assert "_runner.py" not in result.error
    assert result.stdout == "before\n"                   # printed output before the error is kept
    syntax = sandbox.run("x = = 1")
    assert syntax.error_type == "SyntaxError" and "line 1" in syntax.error


def test_environment_is_scrubbed_and_stdin_closed(sandbox, monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_SECRET_TOKEN", "hunter2")
    result = sandbox.run("import os\nsorted(os.environ)")
    assert result.ok and "PLAIT_TEST_SECRET_TOKEN" not in result.value
    assert set(result.value) <= {"HOME", "TMPDIR", "LANG", "LC_ALL"}
    no_stdin = sandbox.run("input()")
    assert not no_stdin.ok and no_stdin.error_type == "RuntimeError"


def test_only_the_standard_library_is_importable_by_default(sandbox):
    result = sandbox.run("import pytest")
    assert result.error_type == "ModuleNotFoundError"


# --- network ------------------------------------------------------------------------------------
def test_network_connection_is_refused_and_never_reaches_the_server(sandbox):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        port = server.getsockname()[1]
        high_level = sandbox.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
        raw = sandbox.run(f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))")
        readable, _, _ = select.select([server], [], [], 0.2)
        assert readable == [], "a connection reached the test's server"
    assert_blocked(high_level, "network access is not allowed")
    assert_blocked(raw, "network access is not allowed", "socket.__new__")


def test_a_caught_violation_is_still_recorded(sandbox):
    result = sandbox.run("import socket\ntry:\n    socket.socket()\nexcept PermissionError:\n    pass\n'went on'")
    assert result.ok and result.value == "went on"
    assert any(event.startswith("socket.") for event in result.violations)


# --- processes -------------------------------------------------------------------------------------
def test_os_system_is_refused(sandbox, tmp_path):
    marker = tmp_path / "system-ran"
    result = sandbox.run(f"import os\nos.system('touch {marker}')")
    assert_blocked(result, "starting processes is not allowed", "os.system")
    assert not marker.exists()


def test_subprocess_is_refused(sandbox, tmp_path):
    marker = tmp_path / "subprocess-ran"
    result = sandbox.run(f"import subprocess\nsubprocess.run(['touch', '{marker}'])")
    assert_blocked(result, "starting processes is not allowed", "subprocess.Popen")
    assert not marker.exists()
    direct = sandbox.run("import _posixsubprocess\n_posixsubprocess.fork_exec()")   # no audit event of its own
    assert_blocked(direct, "starting processes is not allowed")
    reimport = sandbox.run("import sys\ndel sys.modules['_posixsubprocess']\nimport _posixsubprocess")
    assert_blocked(reimport, "importing _posixsubprocess")
    exec_result = sandbox.run(f"import os\nos.execv('/usr/bin/touch', ['touch', '{marker}'])")
    assert_blocked(exec_result, "starting processes")
    assert not marker.exists()


def test_fork_bomb_is_refused_at_the_first_fork(sandbox):
    started = time.monotonic()
    result = sandbox.run("import os\nwhile True:\n    os.fork()")
    assert_blocked(result, "starting processes is not allowed", "os.fork")
    assert result.violations == ("os.fork",)
    assert time.monotonic() - started < 2


# --- files outside the working directory -----------------------------------------------------------
def test_reading_a_file_outside_is_refused(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-value")
    depth = "../" * 30
    attempts = [f"open({str(secret)!r}).read()",
                f"import pathlib\npathlib.Path({str(secret)!r}).read_text()",
                f"import os\nos.read(os.open({str(secret)!r}, os.O_RDONLY), 100)",
                f"open({depth + str(secret).lstrip('/')!r}).read()",   # climbing out of the temp dir
                f"import os\nos.listdir({str(tmp_path)!r})"]
    for code in attempts:
        result = sandbox.run(code)
        assert_blocked(result, "is not allowed")
        assert "the-secret-value" not in repr(result), code


def test_writing_outside_is_refused(sandbox, tmp_path):
    target = tmp_path / "written.txt"
    attempts = [f"open({str(target)!r}, 'w').write('x')",
                f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
                f"import os\nos.mkdir({str(tmp_path / 'newdir')!r})",
                f"open('x', 'w').close()\nimport os\nos.rename('x', {str(target)!r})",
                "import os\nos.symlink('/etc/passwd', 'link')"]
    for code in attempts:
        result = sandbox.run(code)
        assert_blocked(result, "not allowed")
    assert sorted(os.listdir(tmp_path)) == []


def test_monkeypatching_the_standard_library_does_not_weaken_the_checks(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-value")
    code = ("import builtins, os, posixpath\n"
            "posixpath.normpath = posixpath.realpath = lambda p: '/tmp'\n"
            "os.getcwd = lambda: '/'\n"
            "builtins.isinstance = lambda *a: False\n"
            f"open({str(secret)!r}).read()")
    result = sandbox.run(code)
    assert_blocked(result, "reading")
    assert "the-secret-value" not in repr(result)


def test_native_code_and_object_graph_walks_are_refused(sandbox):
    assert_blocked(sandbox.run("import ctypes"), "importing ctypes")
    optional = sandbox.run("try:\n    import ctypes\nexcept ImportError:\n    ctypes = None\nctypes is None")
    assert optional.ok and optional.value is True       # libraries treating ctypes as optional load
    renamed = sandbox.run("import _imp, importlib.util, sys, glob\n"
                          "path = glob.glob(sys.path[-1] + '/_ctypes.*')[0]\n"
                          "_imp.create_dynamic(importlib.util.spec_from_file_location('x._ctypes', path))")
    assert_blocked(renamed, "importing x._ctypes")
    assert_blocked(sandbox.run("import gc\ngc.get_objects()"), "walking the object graph")
    assert_blocked(sandbox.run("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))"),
                   "changing resource limits")
    assert_blocked(sandbox.run("import sqlite3\nsqlite3.connect(':memory:')"), "sqlite")
    assert_blocked(sandbox.run("open('evil.so', 'wb').write(b'x')"), "native extension")


# --- limits ------------------------------------------------------------------------------------------
def test_infinite_loop_is_killed_at_the_timeout():
    started = time.monotonic()
    result = Sandbox(timeout=1).run("while True:\n    pass")
    elapsed = time.monotonic() - started
    assert not result.ok and result.error_type == "TimeoutError"
    assert "1 s limit" in result.error
    assert elapsed < 3


def test_cpu_limit_stops_a_busy_loop_before_the_wall_clock_timeout():
    result = Sandbox(timeout=10, cpu_seconds=1).run("while True:\n    pass")
    assert not result.ok and result.error_type == "CPULimitError", result.error   # not the timeout


def test_memory_bombs_are_refused(sandbox):
    started = time.monotonic()
    huge = sandbox.run("x = bytearray(10**10)")
    growing = sandbox.run("x = []\nwhile True:\n    x.append(' ' * 10**6)")
    assert huge.error_type == "MemoryError" and "128 MiB" in huge.error
    assert growing.error_type == "MemoryError" and "128 MiB" in growing.error
    assert time.monotonic() - started < 4


def test_huge_stdout_is_capped():
    small = Sandbox(timeout=2, max_output_chars=1000)
    result = small.run("print('x' * 10**7)\nfor i in range(10**4):\n    print(i)\n'done'")
    assert result.ok and result.value == "done"
    assert result.truncated and len(result.stdout) == 1000
    raw = small.run("import os\nos.write(1, b'y' * 10**6)\nos.write(2, b'z' * 10**6)\n7")
    assert raw.ok and raw.value == 7                     # raw descriptors cannot corrupt the result
    big_value = small.run("'v' * 5000")
    assert big_value.truncated and big_value.value == "v" * 1000


def test_file_size_limit():
    result = Sandbox(timeout=2, max_file_mb=1).run("open('big', 'wb').write(b'0' * (2 * 1024 * 1024))")
    assert not result.ok and "File too large" in result.error


# --- async, settings -----------------------------------------------------------------------------------
async def test_arun_runs_many_programs_concurrently(sandbox):
    results = await asyncio.gather(*(sandbox.arun(f"{n} * 2") for n in range(8)))
    assert [r.value for r in results] == [n * 2 for n in range(8)]


async def test_arun_enforces_the_timeout_and_the_policy():
    quick = Sandbox(timeout=1)
    started = time.monotonic()
    looping, escaping = await asyncio.gather(quick.arun("while True:\n    pass"), quick.arun("import os\nos.fork()"))
    assert looping.error_type == "TimeoutError" and time.monotonic() - started < 3
    assert_blocked(escaping, "os.fork")


@pytest.mark.parametrize("settings", [{"timeout": 0}, {"memory_mb": 16}, {"max_output_chars": -1},
                                      {"cpu_seconds": 1.5}, {"python": "/no/such/python"}])
def test_bad_settings_name_the_problem(settings):
    with pytest.raises(SandboxError, match=next(iter(settings)) if "python" not in settings else "python="):
        Sandbox(**settings)


def test_bad_arguments_name_the_problem(sandbox):
    with pytest.raises(TypeError, match="source text"):
        sandbox.run(b"1 + 1")
    with pytest.raises(SandboxError, match="JSON"):
        sandbox.run("x", {"x": object()})
    with pytest.raises(SandboxError, match="identifier"):
        sandbox.run("x", {"not valid": 1})


def test_site_packages_can_be_allowed():
    result = Sandbox(timeout=5, site_packages=True).run("import pytest\npytest.__name__")   # imports subprocess
    assert result.ok and result.value == "pytest", result.error


def test_runs_with_this_interpreter_by_default():
    assert Sandbox().python == sys.executable
