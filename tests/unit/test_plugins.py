"""The plugin manager: built-ins, entry points loaded one by one, runtime plugins, emit()."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from types import MappingProxyType

import pytest

from plait import plugins
from plait.backends import Event, LMBackend
from plait.errors import PluginError
from plait.hookspecs import hookimpl
from plait.lm.types import LMResponse

GOOD_PLUGIN = """
from plait.backends import LMBackend
from plait.hookspecs import hookimpl

SEEN = []

@hookimpl
def plait_register_lms():
    return [LMBackend(name="{provider}", factory=lambda model, **kw: (model, kw))]

@hookimpl
def plait_event(event):
    SEEN.append(event.kind)
"""


REAL_BUILTINS = plugins.BUILTIN_PLUGINS  # read before any fixture replaces it


def only_test_distributions(monkeypatch):
    """Hide installed plugins: keep entry points of distributions named "test-*" only."""
    real = importlib.metadata.entry_points

    def entry_points(**selection):
        return [ep for ep in real(**selection)
                if ep.dist is not None and ep.dist.metadata["Name"].startswith("test-")]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    only_test_distributions(monkeypatch)
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ("plait.builtins.progress",))
    for variable in ("PLAIT_PLUGINS", "PLAIT_STRICT_PLUGINS", "PLAIT_PROGRESS"):
        monkeypatch.delenv(variable, raising=False)
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Write distributions (a *.dist-info with entry points + modules) onto sys.path."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    written: list[str] = []

    def make(dist: str, version: str, entry_points: dict[str, str],
             modules: dict[str, str] | None = None) -> Path:
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text("[plait]\n" + lines)
        for module, source in (modules or {}).items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
            written.append(module)
        return root

    yield make
    for module in written:
        sys.modules.pop(module, None)


def names() -> list[str]:
    return [info.name for info in plugins.loaded_plugins()]


def test_importing_plait_loads_no_plugin():
    code = ("import sys, plait, plait.plugins, plait.registry, plait.cli\n"
            "assert plait.plugins._manager is None\n"
            "print('plait.builtins.progress' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_builtins_first_then_entry_points_in_name_order(site, monkeypatch):
    site("test-acme-plait", "1.2.3",
         {"zeta": "acme_zeta", "alpha": "acme_alpha"},
         {"acme_zeta": GOOD_PLUGIN.format(provider="zeta"),
          "acme_alpha": GOOD_PLUGIN.format(provider="alpha")})
    monkeypatch.setenv("PLAIT_PLUGINS", "alpha,zeta")
    infos = plugins.loaded_plugins()
    assert [info.name for info in infos] == ["plait.builtins.progress", "alpha", "zeta"]
    builtin, alpha, _ = infos
    assert builtin == plugins.PluginInfo("plait.builtins.progress", "plait", builtin.version,
                                         True, ("plait_event",))
    assert alpha == plugins.PluginInfo("alpha", "test-acme-plait", "1.2.3", False,
                                       ("plait_event", "plait_register_lms"))
    # registered later, called earlier: an entry point can override a built-in
    impls = plugins.get_plugin_manager().hook.plait_event.get_hookimpls()
    assert [impl.plugin_name for impl in impls] == ["plait.builtins.progress", "alpha", "zeta"]


def test_entry_point_plugin_hooks_are_called(site, monkeypatch):
    site("test-acme-plait", "0.1", {"acme": "acme_good"},
         {"acme_good": GOOD_PLUGIN.format(provider="x")})
    monkeypatch.setenv("PLAIT_PLUGINS", "acme")
    plugins.emit("compile.start", source="test")
    assert sys.modules["acme_good"].SEEN == ["compile.start"]
    results = plugins.get_plugin_manager().hook.plait_register_lms()
    assert [backend.name for group in results for backend in group] == ["x"]


@pytest.mark.parametrize(("source", "error"), [
    ("import plait_no_such_sdk_xyz\n", "ModuleNotFoundError"),
    ("raise RuntimeError('boom in body')\n", "boom in body"),
    ("from plait.hookspecs import hookimpl\n@hookimpl\ndef plait_register_lm():\n    return []\n",
     "plait_register_lm"),
    ("from plait.hookspecs import hookimpl\n@hookimpl\ndef plait_event(event, extra):\n    pass\n",
     "extra"),
])
def test_broken_plugin_warns_naming_itself_and_the_rest_load(site, monkeypatch, source, error):
    site("test-broken-dist", "9.9", {"broken": "broken_mod"}, {"broken_mod": source})
    site("test-good-dist", "1.0", {"good": "good_mod"},
         {"good_mod": GOOD_PLUGIN.format(provider="g")})
    monkeypatch.setenv("PLAIT_PLUGINS", "broken,good")
    with pytest.warns(plugins.PluginLoadWarning) as caught:
        loaded = names()
    message = str(caught[0].message)
    assert "'broken'" in message and "test-broken-dist 9.9" in message and error in message
    assert "PLAIT_STRICT_PLUGINS" in message
    assert loaded == ["plait.builtins.progress", "good"]
    assert plugins.get_plugin_manager().hook.plait_register_lms()[0][0].name == "g"


def test_strict_mode_raises_plugin_error(site, monkeypatch):
    site("test-broken-dist", "9.9", {"broken": "broken_mod"},
         {"broken_mod": "raise ValueError('bad')"})
    monkeypatch.setenv("PLAIT_PLUGINS", "broken")
    monkeypatch.setenv("PLAIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'broken'.*test-broken-dist 9.9.*bad") as raised:
        plugins.get_plugin_manager()
    assert isinstance(raised.value.__cause__, ValueError)
    monkeypatch.delenv("PLAIT_STRICT_PLUGINS")
    with pytest.warns(plugins.PluginLoadWarning):  # not half-built: the next use loads again
        assert names() == ["plait.builtins.progress"]


def test_allow_list_loads_only_named_entry_points(site, monkeypatch):
    site("test-two-dist", "1.0", {"one": "mod_one", "two": "mod_two"},
         {"mod_one": GOOD_PLUGIN.format(provider="one"),
          "mod_two": GOOD_PLUGIN.format(provider="two")})
    monkeypatch.setenv("PLAIT_PLUGINS", " two ")
    assert names() == ["plait.builtins.progress", "two"]
    assert "mod_one" not in sys.modules


def test_allow_list_naming_a_missing_plugin_warns(monkeypatch):
    monkeypatch.setenv("PLAIT_PLUGINS", "nosuchplugin")
    with pytest.warns(plugins.PluginLoadWarning, match="PLAIT_PLUGINS names 'nosuchplugin'"):
        assert names() == ["plait.builtins.progress"]


def test_same_object_under_two_entry_points_loads_once(site, monkeypatch):
    site("test-twin-dist", "1.0", {"a": "twin_mod", "b": "twin_mod"},
         {"twin_mod": GOOD_PLUGIN.format(provider="t")})
    monkeypatch.setenv("PLAIT_PLUGINS", "a,b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert names() == ["plait.builtins.progress", "a"]


def test_entry_point_name_clash_warns_naming_the_owner(site, monkeypatch):
    site("test-first-dist", "1.0", {"same": "clash_one"},
         {"clash_one": GOOD_PLUGIN.format(provider="a")})
    site("test-second-dist", "1.0", {"same": "clash_two"},
         {"clash_two": GOOD_PLUGIN.format(provider="b")})
    monkeypatch.setenv("PLAIT_PLUGINS", "same")
    with pytest.warns(plugins.PluginLoadWarning, match="already taken by a plugin from"):
        assert names() == ["plait.builtins.progress", "same"]


def test_the_real_builtins_all_load_before_anything_else(monkeypatch):
    assert REAL_BUILTINS == ("plait.builtins.adapters", "plait.builtins.dummy",
                             "plait.builtins.cache", "plait.builtins.lm_call",
                             "plait.builtins.progress", "plait.builtins.retrieval",
                             "plait.builtins.teleprompters")
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", REAL_BUILTINS)
    with plugins.plugin(Listener(), name="runtime"):
        infos = plugins.loaded_plugins()
    assert [info.builtin for info in infos] == [True] * (len(infos) - 1) + [False]
    for module in REAL_BUILTINS:  # a module may register several objects ("module.Class")
        assert any(info.name == module or info.name.startswith(module + ".") for info in infos)


def test_missing_builtin_module_raises(monkeypatch):
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ("plait.builtins.progress",
                                                     "plait.builtins.no_such_builtin"))
    with pytest.raises(PluginError, match="plait.builtins.no_such_builtin"):
        plugins.get_plugin_manager()


def test_builtin_with_plugins_function_registers_each_object(site, monkeypatch):
    site("test-unused", "0", {}, {"multi_builtin": """
        from plait.hookspecs import hookimpl
        class First:
            @hookimpl
            def plait_event(self, event): pass
        class Second:
            @hookimpl
            def plait_event(self, event): pass
        def plugins():
            return [First(), Second()]
    """})
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ("multi_builtin",))
    assert names() == ["multi_builtin.First", "multi_builtin.Second"]
    assert all(info.builtin and info.distribution == "plait" for info in plugins.loaded_plugins())


def test_plugin_module_using_plait_while_loading_gets_clear_error(site, monkeypatch):
    site("test-unused", "0", {},
         {"eager_builtin": "import plait.plugins\nplait.plugins.emit('x')\n"})
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", ("eager_builtin",))
    with pytest.raises(PluginError, match="still loading"):
        plugins.get_plugin_manager()


def test_manager_is_built_once_across_threads(monkeypatch):
    barrier = threading.Barrier(8)
    managers = []

    def use() -> None:
        barrier.wait()
        managers.append(plugins.get_plugin_manager())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(managers) == 8 and len({id(manager) for manager in managers}) == 1


class Listener:
    def __init__(self):
        self.events: list[Event] = []

    @hookimpl
    def plait_event(self, event):
        self.events.append(event)


def test_register_unregister_and_generation():
    listener = Listener()
    before = plugins.generation()
    assert plugins.register(listener, name="listener") == "listener"
    assert plugins.generation() != before
    assert plugins.plugin_info("listener") == plugins.PluginInfo("listener", None, None, False,
                                                                ("plait_event",))
    with pytest.raises(PluginError, match="already registered"):
        plugins.register(Listener(), name="listener")
    changed = plugins.generation()
    assert plugins.unregister("listener") is listener
    assert plugins.generation() != changed
    with pytest.raises(PluginError, match="no plugin named 'listener'"):
        plugins.unregister("listener")
    with pytest.raises(PluginError, match="not a registered plugin"):
        plugins.unregister(listener)


class Typo:
    @hookimpl
    def plait_evnt(self, event):
        pass


class WrongArguments:
    @hookimpl
    def plait_event(self, event, verbose):
        pass


@pytest.mark.parametrize(("bad", "mentioned"), [(Typo, "plait_evnt"), (WrongArguments, "verbose")])
def test_register_rejects_bad_hooks_and_leaves_nothing_behind(bad, mentioned):
    with pytest.raises(PluginError, match=mentioned):
        plugins.register(bad(), name="bad")
    assert "bad" not in names()
    plugins.emit("still works")


def test_registering_one_object_twice_is_an_error():
    listener = Listener()
    plugins.register(listener, name="first")
    with pytest.raises(PluginError, match="cannot register"):
        plugins.register(listener, name="second")
    assert plugins.get_plugin_manager().get_plugin("first") is listener


def test_plugin_context_manager_registers_for_the_block():
    listener = Listener()
    with plugins.plugin(listener) as name:
        assert name in names()
        plugins.emit("inside")
    plugins.emit("outside")
    assert [event.kind for event in listener.events] == ["inside"]
    assert name not in names()


def test_emit_builds_an_event_with_read_only_data():
    listener = Listener()
    with plugins.plugin(listener):
        plugins.emit("evaluate.progress", source="Evaluate", done=3, total=9, display=False)
    (event,) = listener.events
    assert (event.kind, event.source) == ("evaluate.progress", "Evaluate")
    assert dict(event.data) == {"done": 3, "total": 9, "display": False}
    assert isinstance(event.data, MappingProxyType)


def test_raising_listener_warns_and_the_others_still_run():
    class Raiser:
        @hookimpl
        def plait_event(self, event):
            raise RuntimeError("listener exploded")

    first, last = Listener(), Listener()
    with plugins.plugin(first), plugins.plugin(Raiser(), name="raiser"), plugins.plugin(last):
        with pytest.warns(plugins.EventListenerWarning, match="'raiser'.*listener exploded"):
            plugins.emit("tick", source="loop")
    assert len(first.events) == 1 and len(last.events) == 1


def test_emit_supports_listeners_without_arguments_and_wrappers():
    calls: list[str] = []

    class NoArgs:
        @hookimpl
        def plait_event(self):
            calls.append("no-args")

    class Wrapper:
        @hookimpl(wrapper=True)
        def plait_event(self, event):
            calls.append("before " + event.kind)
            result = yield
            calls.append("after")
            return result

    with plugins.plugin(NoArgs()):
        plugins.emit("one")
        with plugins.plugin(Wrapper()):
            plugins.emit("two")
        plugins.emit("three")
    assert calls == ["no-args", "before two", "no-args", "after", "no-args"]


def test_lm_call_is_firstresult_and_trylast_runs_last():
    class BuiltinLike:
        @hookimpl(trylast=True)
        def plait_lm_call(self, lm, request):
            return LMResponse(outputs=["from backend"])

    class Passes:
        @hookimpl
        def plait_lm_call(self, lm, request):
            return None

    class Answers:
        @hookimpl(tryfirst=True)
        def plait_lm_call(self, lm, request):
            return LMResponse(outputs=[f"answered {request}"])

    hook = plugins.get_plugin_manager().hook.plait_lm_call
    with plugins.plugin(BuiltinLike()), plugins.plugin(Passes()):
        assert hook(lm=None, request="r").outputs == ["from backend"]
        with plugins.plugin(Answers()):
            assert hook(lm=None, request="r").outputs == ["answered r"]


def test_plait_retrieve_is_firstresult():
    class Fallback:
        @hookimpl(trylast=True)
        def plait_retrieve(self, retriever, queries, k):
            return [["fallback"] * k for _ in queries]

    class Override:
        @hookimpl
        def plait_retrieve(self, retriever, queries, k):
            return [[f"{query}!"] for query in queries] if retriever == "mine" else None

    hook = plugins.get_plugin_manager().hook.plait_retrieve
    with plugins.plugin(Fallback()), plugins.plugin(Override()):
        assert hook(retriever="mine", queries=["a", "b"], k=2, options={}) == [["a!"], ["b!"]]
        assert hook(retriever="other", queries=["a"], k=2, options={}) == [["fallback", "fallback"]]


def test_hookimpl_is_re_exported_and_register_hooks_collect_lists():
    assert plugins.hookimpl is hookimpl

    class Provider:
        @hookimpl
        def plait_register_lms(self):
            return [LMBackend(name="p", factory=dict)]

    with plugins.plugin(Provider()):
        assert plugins.get_plugin_manager().hook.plait_register_lms() == [
            [LMBackend(name="p", factory=dict)]]
