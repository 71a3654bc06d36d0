"""The ``plait`` command: ``plait plugins`` lists every backend and the plugin behind it;
``plait serve`` hosts a retriever or a program over HTTP (the plait_server package, plait[server])."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from plait import plugins, registry
from plait.errors import MissingExtraError, PlaitError

BACKEND_COLUMNS = ("kind", "name", "plugin", "extra", "installed", "summary")
HOOK_COLUMNS = ("plugin", "distribution", "version", "builtin", "hooks")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plait", description="plait: programming, not prompting, language models.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser(
        "plugins", help="list every registered backend (or, with --hooks, every plugin)",
        description="List every registered backend: its kind, name, plugin, the extra that "
                    "installs its dependencies, and whether they are installed.")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--hooks", action="store_true",
                         help="list the loaded plugins and the hooks each implements")
    _add_serve_parser(commands)
    return parser


def _add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve a retriever or a program over HTTP (needs plait[server])",
        description="Serve a retriever (ColBERTv2 protocol at /search, plait JSON at /retrieve) or a "
                    "program (/predict) over HTTP, with an OpenAPI schema at /openapi.json.")
    kinds = serve.add_subparsers(dest="serve_kind", metavar="WHAT")
    retriever = kinds.add_parser(
        "retriever", help="serve a configured retriever",
        description='CONFIG is a JSON or TOML file naming a registered retriever and its settings, '
                    'e.g. {"retriever": "bm25", "path": "index", "corpus": "passages.jsonl"}.')
    retriever.add_argument("config", help="the retriever config file (.json or .toml)")
    program = kinds.add_parser(
        "program", help="serve a program at /predict",
        description="TARGET is MODULE:ATTR: a plait Module, or a factory returning one (configure the "
                    "LM there).")
    program.add_argument("target", help="MODULE:ATTR of the program or its factory")
    program.add_argument("--state", help="a saved program file (program.save) to load into it")
    for parser in (retriever, program):
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8893, help="port to listen on (default 8893)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed by argparse
        return stop.code if isinstance(stop.code, int) else 2
    if args.command == "plugins":
        return _plugins_command(as_json=args.json, hooks=args.hooks)
    if args.command == "serve":
        if args.serve_kind is None:
            print("plait: error: say what to serve: plait serve retriever CONFIG | plait serve program "
                  "MODULE:ATTR (see plait serve --help)", file=sys.stderr)
            return 2
        return _serve_command(args)
    parser.print_help(sys.stderr)
    return 2


def _serve_command(args: argparse.Namespace) -> int:
    try:  # the server lives in plait_server; fastapi / uvicorn are checked there, before any work
        try:
            from plait_server import serve
        except ImportError as exc:
            raise MissingExtraError("plait serve needs the plait_server package with fastapi and "
                                    "uvicorn: pip install 'plait[server]'") from exc
        if args.serve_kind == "retriever":
            app = serve.retriever_app(args.config)
        else:
            app = serve.program_app(args.target, args.state)
    except (PlaitError, ValueError, TypeError, OSError) as exc:
        print(f"plait: error: {exc}", file=sys.stderr)
        return 1
    serve.run(app, host=args.host, port=args.port)
    return 0


def _plugins_command(*, as_json: bool, hooks: bool) -> int:
    errors: list[str] = []
    try:
        plugins.get_plugin_manager()  # a load failure (strict mode) is reported once, here
        rows = _hook_rows() if hooks else _backend_rows(errors)
    except PlaitError as exc:
        print(f"plait: error: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        columns = HOOK_COLUMNS if hooks else BACKEND_COLUMNS
        print(_table(columns, [[_cell(row[column]) for column in columns] for row in rows]))
    for message in errors:
        print(f"plait: error: {message}", file=sys.stderr)
    return 1 if errors else 0


def _backend_rows(errors: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for kind in registry.KINDS:
        try:  # one kind's broken plugin must not hide the other kinds
            table = registry.backends(kind)
        except PlaitError as exc:
            errors.append(str(exc))
            continue
        for name in sorted(table):
            registered = table[name]
            backend = registered.backend
            rows.append({"kind": kind, "name": name, "plugin": registered.plugin_name,
                         "distribution": registered.distribution, "extra": backend.extra,
                         "installed": registry.is_installed(backend), "summary": backend.summary})
    return rows


def _hook_rows() -> list[dict[str, Any]]:
    return [{"plugin": info.name, "distribution": info.distribution, "version": info.version,
             "builtin": info.builtin, "hooks": list(info.hooks)}
            for info in plugins.loaded_plugins()]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or "-"
    return str(value)


def _table(columns: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max([len(column)] + [len(row[index]) for row in rows])
              for index, column in enumerate(columns)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in [list(columns), ["-" * width for width in widths], *rows]]
    return "\n".join(lines)
