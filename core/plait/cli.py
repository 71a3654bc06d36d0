"""The ``plait`` command: ``plait plugins`` lists every backend and the plugin behind it;
``plait demo`` compiles the seed's RAG program on bundled HotPotQA with a local LM (docs/demo.md);
``plait serve`` hosts a retriever or a program over HTTP (the plait_server package, plait[server])."""

from __future__ import annotations

import argparse
import json
import logging
import os
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
    _add_demo_parser(commands)
    _add_serve_parser(commands)
    return parser


def _add_demo_parser(commands: Any) -> None:
    from plait.demo.defaults import DEFAULT_DEV, DEFAULT_TRAIN, RETRIEVERS

    demo = commands.add_parser(
        "demo", help="compile the seed's RAG program on bundled HotPotQA with a local LM",
        description="Index the bundled HotPotQA corpus, evaluate the seed's RAG program zero-shot, "
                    "compile it with BootstrapFewShot, evaluate it again, save and reload it, and "
                    "print a table comparing the two runs. LM calls are cached, so a re-run is fast.")
    demo.add_argument("--lm", help="provider/model: llamacpp/qwen2.5-coder-0.5b (the default when its "
                                   "part wheels are installed), llamacpp/smollm2-135m (the fallback), "
                                   "any llamacpp GGUF path, or openai/<model> with --api-base")
    demo.add_argument("--api-base", help="an OpenAI-compatible server's URL, e.g. http://127.0.0.1:8000/v1")
    demo.add_argument("--retriever", choices=RETRIEVERS, default="bm25",
                      help="bm25 (default, no model), qdrant or chroma (MiniLM embeddings), "
                           "colbert (local late interaction over MiniLM)")
    demo.add_argument("--train", type=int, default=DEFAULT_TRAIN,
                      help=f"training questions for BootstrapFewShot (default {DEFAULT_TRAIN})")
    demo.add_argument("--dev", type=int, default=DEFAULT_DEV,
                      help=f"dev questions evaluated before and after (default {DEFAULT_DEV})")
    demo.add_argument("--k", type=int, default=3, help="passages retrieved per query (default 3)")
    demo.add_argument("--multihop", action="store_true",
                      help="the two-hop variant: search queries written by the LM (SimplifiedBaleen)")
    demo.add_argument("--out", help="folder for the index, the compiled program and the report "
                                    "(default $PLAIT_CACHE_DIR/demo, i.e. ~/.cache/plait/demo)")
    demo.add_argument("--threads", type=int, default=1,
                      help="llama.cpp CPU threads (default 1: best on a busy machine); with an "
                           "openai LM, requests in flight at once")


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
    if args.command == "demo":
        return _demo_command(args)
    if args.command == "serve":
        if args.serve_kind is None:
            print("plait: error: say what to serve: plait serve retriever CONFIG | plait serve program "
                  "MODULE:ATTR (see plait serve --help)", file=sys.stderr)
            return 2
        return _serve_command(args)
    parser.print_help(sys.stderr)
    return 2


def _demo_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from plait.demo.pipeline import DemoConfig, run_demo

    if sys.stderr.isatty():   # progress bars on a terminal, whatever the environment says
        os.environ["PLAIT_PROGRESS"] = "1"
    # A small model's unparseable answers are counted in the table ("errors", "failed"); one
    # warning line each would bury the progress bars.
    plait_logger = logging.getLogger("plait")
    level = plait_logger.level
    plait_logger.setLevel(logging.ERROR)
    options: dict[str, Any] = {"lm": args.lm, "api_base": args.api_base, "retriever": args.retriever,
                               "train": args.train, "dev": args.dev, "k": args.k,
                               "multihop": args.multihop, "threads": args.threads}
    if args.out:
        options["out"] = Path(args.out).expanduser()
    try:
        config = DemoConfig(**options)
        report = run_demo(config, log=lambda line: print(line, flush=True))
    except (PlaitError, ValueError, OSError) as exc:
        print(f"plait: error: {exc}", file=sys.stderr)
        return 1
    finally:
        plait_logger.setLevel(level)
    compile_stats = report.compile
    print()
    print(f"{report.program} program, {report.lm}, {report.retriever} retriever, "
          f"{report.dev_size} dev questions:")
    print(report.table())
    print()
    print(f"compile: {compile_stats.optimizer} on {compile_stats.train_size} train questions "
          f"({compile_stats.attempted} tried, {compile_stats.errors} failed), "
          f"{compile_stats.bootstrapped} bootstrapped demos (demos per predictor: "
          f"{', '.join(f'{name} {count}' for name, count in compile_stats.demos.items())}), "
          f"LM calls {compile_stats.calls - compile_stats.cached_calls} sent / "
          f"{compile_stats.cached_calls} cached, {compile_stats.seconds:.1f} s")
    sample = report.sample
    print(f"saved to {report.program_path}; reloaded into a fresh program, it answers:")
    print(f"  Q: {sample.question}")
    print(f"  A: {sample.answer}   (gold: {sample.gold}; "
          f"{'same as' if sample.same_as_compiled else 'DIFFERS from'} the compiled program)")
    print(f"total {report.total_seconds:.1f} s (index {'reused' if report.index_reused else 'built'} "
          f"in {report.index_seconds:.1f} s); LM answers are cached: a re-run takes seconds")
    return 0


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
