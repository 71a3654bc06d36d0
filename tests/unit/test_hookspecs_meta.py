"""Every hook is documented in three places: its docstring, the docs, and at least one test."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import types
from pathlib import Path

import pluggy
import pytest

from plait import hookspecs, plugins

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if name.startswith("plait_") and inspect.isfunction(value))


def documented_hooks(path: Path) -> set[str]:
    """Hook names that appear in backticks in a markdown heading of ``path``."""
    headings = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    return {name for name in HOOKS if any(f"`{name}`" in heading for heading in headings)}


def test_the_hookspecs_module_declares_the_hooks_plait_calls():
    assert HOOKS == ["plait_event", "plait_lm_call", "plait_register_adapters",
                     "plait_register_embedders", "plait_register_lms",
                     "plait_register_retrievers", "plait_register_teleprompters",
                     "plait_retrieve"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_has_a_returns_section(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert doc.strip(), f"{hook} has no docstring"
    assert re.search(r"^Returns:\n\s+\S", doc, re.MULTILINE), f"{hook}'s docstring has no Returns:"


def spec_options(hook: str) -> dict:
    manager = pluggy.PluginManager("plait")
    manager.add_hookspecs(hookspecs)
    return getattr(manager.hook, hook).spec.opts


@pytest.mark.parametrize("hook", HOOKS)
def test_firstresult_hooks_say_so_in_their_docstring(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert spec_options(hook)["firstresult"] == ("firstresult" in doc), (
        f"{hook}: the docstring must mention firstresult exactly when the spec is firstresult")


def test_docs_hooks_md_has_a_section_per_hook():
    missing = sorted(set(HOOKS) - documented_hooks(ROOT / "docs" / "hooks.md"))
    assert not missing, f"docs/hooks.md lacks a '### `hook`' section for: {', '.join(missing)}"


def test_readme_has_a_section_per_hook():
    readme = ROOT / "README.md"
    assert readme.is_file(), ("README.md is missing: it needs a section per hook (copy them from "
                              "docs/hooks.md): " + ", ".join(HOOKS))
    missing = sorted(set(HOOKS) - documented_hooks(readme))
    assert not missing, ("README.md lacks a heading with the hook name in backticks for: "
                         + ", ".join(missing))


def test_every_hook_is_mentioned_by_some_test():
    this_file = Path(__file__).resolve()
    sources = [path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("*.py")
               if path.resolve() != this_file]
    untested = [hook for hook in HOOKS if not any(hook in source for source in sources)]
    assert not untested, f"no test under tests/ mentions: {', '.join(untested)}"


def test_every_example_plugin_in_docs_hooks_md_registers(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [])
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ())
    plugins.reset()
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    hooks_part = text[text.index("## Hooks"):]
    examples = re.findall(r"```python\n(.*?)```", hooks_part, re.DOTALL)
    implemented: set[str] = set()
    try:
        for index, source in enumerate(examples):
            module = types.ModuleType(f"plait_docs_example_{index}")
            exec(compile(source, f"docs/hooks.md example {index}", "exec"), vars(module))
            with plugins.plugin(module) as name:  # PluginError on a wrong hook name or argument
                implemented.update(plugins.plugin_info(name).hooks)
    finally:
        plugins.reset()
    assert implemented == set(HOOKS)
