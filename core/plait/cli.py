"""The ``plait`` command: ``plait plugins`` lists every backend and the plugin behind it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from plait import plugins, registry
from plait.errors import PlaitError

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed by argparse
        return stop.code if isinstance(stop.code, int) else 2
    if args.command == "plugins":
        return _plugins_command(as_json=args.json, hooks=args.hooks)
    parser.print_help(sys.stderr)
    return 2


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
