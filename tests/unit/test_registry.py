"""Name -> backend resolution: caching, validation, duplicates, suggestions, missing extras."""

from __future__ import annotations

import sys

import pytest

from plait import plugins, registry
from plait.backends import (AdapterBackend, EmbedderBackend, LMBackend, RetrieverBackend,
                            TeleprompterBackend)
from plait.errors import MissingExtraError, PluginError, UnknownBackendError
from plait.hookspecs import hookimpl


# installed plugins are hidden: only the distributions these tests write ("test-*") load
pytestmark = pytest.mark.usefixtures("only_test_plugins")


class Registers:
    """A plugin registering whatever it is given, counting how often each hook is asked."""

    def __init__(self, lms=(), retrievers=(), embedders=(), teleprompters=(), adapters=()):
        self.items = {"lms": list(lms), "retrievers": list(retrievers),
                      "embedders": list(embedders), "teleprompters": list(teleprompters),
                      "adapters": list(adapters)}
        self.calls = 0

    @hookimpl
    def plait_register_lms(self):
        self.calls += 1
        return self.items["lms"]

    @hookimpl
    def plait_register_retrievers(self):
        return self.items["retrievers"]

    @hookimpl
    def plait_register_embedders(self):
        return self.items["embedders"]

    @hookimpl
    def plait_register_teleprompters(self):
        return self.items["teleprompters"]

    @hookimpl
    def plait_register_adapters(self):
        return self.items["adapters"]


def echo(**config):
    return config


def test_every_kind_resolves_to_the_registering_plugin():
    plugin = Registers(lms=[LMBackend("prov", echo)], retrievers=[RetrieverBackend("r", echo)],
                       embedders=[EmbedderBackend("e", echo)],
                       teleprompters=[TeleprompterBackend("t", echo)],
                       adapters=[AdapterBackend("a", echo)])
    with plugins.plugin(plugin, name="mine"):
        for kind, name in [("lm", "prov"), ("retriever", "r"), ("embedder", "e"),
                           ("teleprompter", "t"), ("adapter", "a")]:
            table = registry.backends(kind)
            assert list(table) == [name]
            assert table[name].plugin_name == "mine" and table[name].distribution is None
            assert table[name].name == name
        assert registry.retriever("r", name="config named name", k=3) == {
            "name": "config named name", "k": 3}
        assert registry.embedder("e", dim=8) == {"dim": 8}
        assert registry.teleprompter("t", seed=1) == {"seed": 1}
        assert registry.adapter("a") == {}


def test_tables_are_cached_until_plugins_change():
    first = Registers(lms=[LMBackend("one", echo)])
    with plugins.plugin(first):
        registry.backends("lm")
        registry.get_backend("lm", "one")
        registry.resolve_lm("one/model")
        assert first.calls == 1
        with plugins.plugin(Registers(lms=[LMBackend("two", echo)])):
            assert sorted(registry.backends("lm")) == ["one", "two"]
            assert first.calls == 2
        assert list(registry.backends("lm")) == ["one"]
    assert registry.backends("lm") == {}


def test_returned_dict_is_a_copy():
    with plugins.plugin(Registers(lms=[LMBackend("one", echo)])):
        registry.backends("lm").clear()
        assert list(registry.backends("lm")) == ["one"]


class Junk:
    def __init__(self, value):
        self.value = value

    @hookimpl
    def plait_register_retrievers(self):
        return self.value


@pytest.mark.parametrize(("value", "problem"), [
    ("not a list", "returned str"),
    ([LMBackend("wrong-kind", echo)], "must be a plait.backends.RetrieverBackend"),
    ([RetrieverBackend("", echo)], "invalid name ''"),
    ([RetrieverBackend("x", "not callable")], "not callable"),
])
def test_junk_from_a_plugin_names_the_plugin(value, problem):
    with plugins.plugin(Junk(value), name="junky"):
        with pytest.raises(PluginError, match="junky") as raised:
            registry.backends("retriever")
    assert problem in str(raised.value)


def test_lm_provider_names_cannot_contain_a_slash():
    with plugins.plugin(Registers(lms=[LMBackend("a/b", echo)]), name="slashy"):
        with pytest.raises(PluginError, match="slashy.*without '/'"):
            registry.backends("lm")


def test_none_means_nothing_registered():
    with plugins.plugin(Junk(None)):
        assert registry.backends("retriever") == {}


def test_a_raising_register_hook_names_the_plugin():
    class Raises:
        @hookimpl
        def plait_register_embedders(self):
            raise KeyError("oops")

    with plugins.plugin(Raises(), name="raiser"):
        with pytest.raises(PluginError, match="'raiser' raised KeyError") as raised:
            registry.backends("embedder")
    assert isinstance(raised.value.__cause__, KeyError)


def test_a_wrapper_register_hook_is_rejected():
    class Wraps:
        @hookimpl(wrapper=True)
        def plait_register_adapters(self):
            return (yield)

    with plugins.plugin(Wraps(), name="wrapping"):
        with pytest.raises(PluginError, match="'wrapping' implements plait_register_adapters as"):
            registry.backends("adapter")


def test_two_plugins_with_one_name_error_naming_both():
    with plugins.plugin(Registers(retrievers=[RetrieverBackend("dup", echo)]), name="first"), \
            plugins.plugin(Registers(retrievers=[RetrieverBackend("dup", echo)]), name="second"):
        with pytest.raises(PluginError, match="'dup'.*'first'.*'second'|'dup'.*'second'.*'first'"):
            registry.get_backend("retriever", "dup")


def test_one_plugin_registering_a_name_twice_errors():
    twice = Registers(lms=[LMBackend("same", echo), LMBackend("same", dict)])
    with plugins.plugin(twice, name="twice"):
        with pytest.raises(PluginError, match="'twice'.*'same' twice"):
            registry.backends("lm")


def test_unknown_name_suggests_the_closest_and_lists_known():
    with plugins.plugin(Registers(retrievers=[RetrieverBackend("qdrant", echo),
                                              RetrieverBackend("chroma", echo)])):
        with pytest.raises(UnknownBackendError) as raised:
            registry.retriever("qdrnt")
    message = str(raised.value)
    assert "Did you mean 'qdrant'?" in message
    assert "chroma, qdrant" in message and "plait plugins" in message
    assert isinstance(raised.value, LookupError)


def test_unknown_name_with_nothing_registered_says_so():
    with pytest.raises(UnknownBackendError, match="no embedders are registered"):
        registry.get_backend("embedder", "anything")


def test_unknown_kind_lists_kinds():
    with pytest.raises(UnknownBackendError, match="lm, retriever, embedder, teleprompter, adapter"):
        registry.backends("vectorstore")


def needs_sdk(**config):
    import plait_fake_sdk_not_installed  # noqa: F401


def needs_broken_plait(**config):
    import plait.no_such_core_module  # noqa: F401


def test_missing_dependency_names_the_extra_with_the_cause_chained():
    backend = RetrieverBackend("qdrant", needs_sdk, extra="qdrant", requires=("qdrant_client",))
    with plugins.plugin(Registers(retrievers=[backend])):
        with pytest.raises(MissingExtraError) as raised:
            registry.retriever("qdrant", url="http://localhost")
    message = str(raised.value)
    assert "pip install 'plait[qdrant]'" in message
    assert "plait_fake_sdk_not_installed" in message
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, PluginError)


def test_missing_dependency_without_an_extra_names_the_module():
    with plugins.plugin(Registers(embedders=[EmbedderBackend("e", needs_sdk)])):
        with pytest.raises(MissingExtraError, match="pip install plait_fake_sdk_not_installed"):
            registry.embedder("e")


def test_a_missing_dependency_of_a_third_party_plugin_names_its_distribution(tmp_path,
                                                                           monkeypatch):
    info = tmp_path / "test_acme_plait-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: test-acme-plait\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text("[plait]\nacme = plait_test_acme_plugin\n")
    (tmp_path / "plait_test_acme_plugin.py").write_text(
        "from plait.backends import LMBackend\n"
        "from plait.hookspecs import hookimpl\n"
        "def make(model, **config):\n"
        "    import acme_sdk_not_installed\n"
        "@hookimpl\n"
        "def plait_register_lms():\n"
        "    return [LMBackend('acme', make, extra='fast')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "plait_test_acme_plugin", raising=False)
    assert registry.get_backend("lm", "acme").distribution == "test-acme-plait"
    with pytest.raises(MissingExtraError, match=r"pip install 'test-acme-plait\[fast\]'"):
        registry.create("lm", "acme", model="m")
    sys.modules.pop("plait_test_acme_plugin", None)


def test_an_import_error_inside_plait_itself_is_not_called_a_missing_extra():
    with plugins.plugin(Registers(adapters=[AdapterBackend("a", needs_broken_plait, extra="x")])):
        with pytest.raises(ModuleNotFoundError) as raised:
            registry.adapter("a")
    assert not isinstance(raised.value, MissingExtraError)


def test_a_factory_raising_missing_extra_passes_through():
    def factory(**config):
        raise MissingExtraError("already explained")

    with plugins.plugin(Registers(adapters=[AdapterBackend("a", factory)])):
        with pytest.raises(MissingExtraError, match="^already explained$"):
            registry.adapter("a")


def test_is_installed_finds_modules_without_importing_them(tmp_path, monkeypatch):
    (tmp_path / "plait_sdk_that_explodes.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    present = RetrieverBackend("p", echo, requires=("plait_sdk_that_explodes", "json.decoder"))
    absent = RetrieverBackend("a", echo, requires=("json", "plait_sdk_not_installed_anywhere"))
    assert registry.is_installed(present)
    assert "plait_sdk_that_explodes" not in sys.modules
    assert not registry.is_installed(absent)
    assert registry.is_installed(RetrieverBackend("none", echo))
    assert registry.is_installed(registry.RegisteredBackend(present, "p", None))


def test_resolve_lm_splits_on_the_first_slash():
    with plugins.plugin(Registers(lms=[LMBackend("openai", echo), LMBackend("dummy", echo)])):
        registered, model = registry.resolve_lm("openai/org/model-7b")
        assert (registered.name, model) == ("openai", "org/model-7b")
        for bad in ("gpt-4o-mini", "/model", "openai/", ""):
            with pytest.raises(UnknownBackendError, match="'provider/model'.*dummy, openai"):
                registry.resolve_lm(bad)
        with pytest.raises(UnknownBackendError, match="Did you mean 'openai'"):
            registry.resolve_lm("opneai/gpt")
