"""`plait plugins`: the backend table, --json and --hooks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from plait import cli, plugins
from plait.backends import LMBackend, RetrieverBackend
from plait.hookspecs import hookimpl


# installed plugins are hidden: only the distributions these tests write ("test-*") load
pytestmark = pytest.mark.usefixtures("only_test_plugins")


def make(**config):
    return config


class Provides:
    @hookimpl
    def plait_register_lms(self):
        return [LMBackend("localish", make, summary="a local LM")]

    @hookimpl
    def plait_register_retrievers(self):
        return [RetrieverBackend("vectors", make, extra="qdrant", summary="vector search",
                                 requires=("plait_cli_test_sdk_missing",))]


def test_plugins_table_lists_every_backend(capsys):
    with plugins.plugin(Provides(), name="provider-plugin"):
        assert cli.main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["kind", "name", "plugin", "extra", "installed", "summary"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["lm", "localish", "provider-plugin", "-", "yes", "a", "local", "LM"]
    assert lines[3].split() == ["retriever", "vectors", "provider-plugin", "qdrant", "no",
                                "vector", "search"]
    assert lines[2].index("provider-plugin") == lines[0].index("plugin")  # columns line up
    assert len(lines) == 4


def test_plugins_json(capsys):
    with plugins.plugin(Provides(), name="provider-plugin"):
        assert cli.main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"kind": "lm", "name": "localish", "plugin": "provider-plugin", "distribution": None,
         "extra": None, "installed": True, "summary": "a local LM"},
        {"kind": "retriever", "name": "vectors", "plugin": "provider-plugin",
         "distribution": None, "extra": "qdrant", "installed": False,
         "summary": "vector search"},
    ]


def test_plugins_hooks_table_and_json(capsys):
    with plugins.plugin(Provides(), name="provider-plugin"):
        assert cli.main(["plugins", "--hooks"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert cli.main(["plugins", "--hooks", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
    assert table[0].split() == ["plugin", "distribution", "version", "builtin", "hooks"]
    assert table[2].split() == ["plait.builtins.progress", "plait", table[2].split()[2], "yes",
                                "plait_event"]
    assert table[3].split() == ["provider-plugin", "-", "-", "no", "plait_register_lms,",
                                "plait_register_retrievers"]
    assert rows[1] == {"plugin": "provider-plugin", "distribution": None, "version": None,
                       "builtin": False,
                       "hooks": ["plait_register_lms", "plait_register_retrievers"]}


def test_a_broken_kind_is_reported_and_the_rest_still_listed(capsys):
    class Clash:
        @hookimpl
        def plait_register_retrievers(self):
            return [RetrieverBackend("vectors", make)]

    with plugins.plugin(Provides(), name="one"), plugins.plugin(Clash(), name="two"):
        assert cli.main(["plugins"]) == 1
    captured = capsys.readouterr()
    assert "localish" in captured.out and "vectors" not in captured.out
    assert "plait: error: two plugins register the retriever 'vectors'" in captured.err


def test_plugin_load_errors_in_strict_mode_exit_1(tmp_path, monkeypatch, capsys):
    info = tmp_path / "test_bad-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: test-bad\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[plait]\nbad = plait_cli_test_missing_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PLAIT_STRICT_PLUGINS", "1")
    assert cli.main(["plugins"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("plait: error: plait plugin 'bad'")


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "plugins" in capsys.readouterr().err


def test_usage_errors_and_help_return_argparse_codes(capsys):
    assert cli.main(["plugins", "--nope"]) == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "plugins" in capsys.readouterr().out


def test_python_dash_m_plait_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "plait", "plugins", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert "--hooks" in result.stdout and "--json" in result.stdout


# --- plait serve (plumbing only: the app itself is tested in test_server.py) -----------------

def test_serve_needs_to_know_what_to_serve(capsys):
    assert cli.main(["serve"]) == 2
    assert "plait serve retriever CONFIG | plait serve program MODULE:ATTR" in capsys.readouterr().err


def test_serve_without_the_server_extra_names_the_install_line(monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "uvicorn" else real(name, *rest))
    assert cli.main(["serve", "retriever", "config.json"]) == 1
    err = capsys.readouterr().err
    assert "plait serve needs uvicorn" in err and "pip install 'plait[server]'" in err


def test_serve_builds_the_app_and_binds_loopback_by_default(monkeypatch, capsys):
    from plait_server import serve
    calls = []
    monkeypatch.setattr(serve, "retriever_app", lambda path: ("retriever-app", path))
    monkeypatch.setattr(serve, "program_app", lambda target, state: ("program-app", target, state))
    monkeypatch.setattr(serve, "run", lambda app, host, port: calls.append((app, host, port)))
    assert cli.main(["serve", "retriever", "cfg.toml"]) == 0
    assert cli.main(["serve", "program", "app:make", "--state", "p.json", "--host", "0.0.0.0",
                     "--port", "9000"]) == 0
    assert calls == [(("retriever-app", "cfg.toml"), "127.0.0.1", 8893),
                     (("program-app", "app:make", "p.json"), "0.0.0.0", 9000)]


def test_serve_reports_config_errors_without_a_traceback(tmp_path, capsys):
    (tmp_path / "cfg.json").write_text('{"path": "idx"}')
    assert cli.main(["serve", "retriever", str(tmp_path / "cfg.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plait: error: ") and "must name a registered retriever" in err
