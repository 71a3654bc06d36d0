"""The LM response cache (plait.lm.cache) and its built-in plugin (plait.builtins.cache)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import threading
import warnings
from pathlib import Path

import pluggy
import pytest

import plait.hookspecs
from plait.builtins import cache as cache_plugin
from plait.hookspecs import hookimpl
from plait.lm import cache as cache_mod
from plait.lm.cache import CacheWarning, ResponseCache, configure_cache, get_cache, is_cache_enabled
from plait.lm.types import LMRequest, LMResponse, Usage


def response(text: str, **kw) -> LMResponse:
    return LMResponse([text], Usage(3, 5, 8, 0.001), "test-model", **kw)


@pytest.fixture
def make_cache(tmp_path):
    """Build caches in tmp_path and close them all afterwards."""
    made: list[ResponseCache] = []

    def make(**kw) -> ResponseCache:
        kw.setdefault("directory", tmp_path)
        cache = ResponseCache(**kw)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def isolated_default(tmp_path, monkeypatch):
    """A fresh, unconfigured process-wide cache that lives in tmp_path (never the real home)."""
    monkeypatch.setenv("PLAIT_CACHE_DIR", str(tmp_path / "default"))
    monkeypatch.delenv("PLAIT_CACHE", raising=False)
    monkeypatch.setattr(cache_mod, "_default_cache", None)
    monkeypatch.setattr(cache_mod, "_enabled", None)
    yield
    if cache_mod._default_cache is not None:
        cache_mod._default_cache.close()


# --- memory ---------------------------------------------------------------------------------

def test_lru_evicts_least_recently_used(make_cache):
    cache = make_cache(disk=False, memory_entries=3)
    for key in "abc":
        cache.put(key, response(key))
    assert cache.get("a").outputs == ["a"]          # "a" is now the most recent; "b" the oldest
    cache.put("d", response("d"))
    assert cache.get("b") is None
    assert [cache.get(k).outputs[0] for k in "acd"] == ["a", "c", "d"]
    cache.put("e", response("e"))                    # order now a, c, d: "a" goes
    assert cache.get("a") is None
    assert cache.stats()["memory_entries"] == 3


def test_get_returns_a_fresh_copy_marked_cached(make_cache):
    cache = make_cache(disk=False)
    original = response("hello", raw={"secret": "backend object"}, finish_reasons=["stop"])
    cache.put("k", original)
    original.outputs.append("mutated after put")
    assert original.cached is False                  # put does not touch the caller's object

    first = cache.get("k")
    assert first.cached is True and first.raw is None
    assert first.outputs == ["hello"] and first.finish_reasons == ["stop"]
    first.outputs[0] = "changed"
    first.usage.prompt_tokens = 999
    first.finish_reasons.append("length")

    second = cache.get("k")
    assert second is not first
    assert second.outputs == ["hello"]
    assert second.usage == Usage(3, 5, 8, 0.001)
    assert second.finish_reasons == ["stop"]


def test_memory_and_disk_both_off_is_a_no_op(make_cache, tmp_path):
    cache = make_cache(memory=False, disk=False)
    cache.put("k", response("x"))
    assert cache.get("k") is None
    assert not (tmp_path / cache_mod.DB_FILENAME).exists()


@pytest.mark.parametrize("bad", [{"memory_entries": 0}, {"memory_entries": True},
                                 {"disk_size_limit_bytes": -1}, {"memory_entries": 1.5}])
def test_bad_sizes_are_rejected_with_a_fix(make_cache, bad):
    with pytest.raises(ValueError, match="must be a positive int"):
        make_cache(**bad)


# --- disk -----------------------------------------------------------------------------------

def test_disk_is_opened_lazily(make_cache, tmp_path):
    directory = tmp_path / "not-yet"
    cache = make_cache(directory=directory)
    assert not directory.exists()
    assert cache.get("missing") is None
    assert (directory / cache_mod.DB_FILENAME).exists()


def test_disk_persists_across_instances_and_promotes_to_memory(make_cache, tmp_path):
    writer = make_cache()
    writer.put("k", response("persisted", finish_reasons=["stop"]))
    writer.close()

    reader = make_cache()
    hit = reader.get("k")
    assert hit.outputs == ["persisted"] and hit.cached is True
    assert hit.usage == Usage(3, 5, 8, 0.001) and hit.finish_reasons == ["stop"]
    assert reader.stats()["disk_hits"] == 1 and reader.stats()["memory_entries"] == 1

    again = reader.get("k")                          # promoted: served from memory now
    assert again.outputs == ["persisted"]
    stats = reader.stats()
    assert stats["memory_hits"] == 1 and stats["disk_hits"] == 1
    assert reader.get("other") is None
    assert reader.stats()["disk_misses"] == 1


def test_values_on_disk_are_json(make_cache, tmp_path):
    cache = make_cache()
    cache.put("k", response("plain json", raw=object()))
    with sqlite3.connect(tmp_path / cache_mod.DB_FILENAME) as conn:
        value, created, accessed = conn.execute(
            "SELECT value, created, accessed FROM responses WHERE key = 'k'").fetchone()
    conn.close()
    assert value.startswith("{") and '"outputs":["plain json"]' in value
    assert created <= accessed


def test_undecodable_value_is_a_miss(make_cache, tmp_path):
    cache = make_cache(memory=False)
    cache.put("good", response("ok"))
    with sqlite3.connect(tmp_path / cache_mod.DB_FILENAME) as conn:
        for key, value in [("garbage", "not json{"), ("wrong-shape", '{"outputs": "abc"}'),
                           ("no-outputs", "[1, 2]"), ("bad-usage", '{"outputs": ["x"], "usage": {"zz": 1}}')]:
            conn.execute("INSERT INTO responses VALUES (?, ?, 0, 0)", (key, value))
    conn.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for key in ("garbage", "wrong-shape", "no-outputs", "bad-usage"):
            assert cache.get(key) is None
        assert cache.get("good").outputs == ["ok"]
    assert cache.stats()["disk_misses"] == 4


def test_size_limit_evicts_least_recently_accessed(make_cache, tmp_path):
    limit = 200_000                                  # about 45 rows of this size
    cache = make_cache(memory=False, disk_size_limit_bytes=limit)
    cache.size_check_every = 10
    cache.put("keep-me", response("k" * 2000))
    for i in range(30):
        cache.put(f"old{i}", response("o" * 2000))
    assert cache.get("keep-me") is not None          # a disk read refreshes "accessed"
    for i in range(30):
        cache.put(f"new{i}", response("n" * 2000))

    with sqlite3.connect(tmp_path / cache_mod.DB_FILENAME) as conn:
        page_size, pages, free = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                                  for p in ("page_size", "page_count", "freelist_count"))
        keys = {row[0] for row in conn.execute("SELECT key FROM responses")}
    conn.close()
    assert (pages - free) * page_size <= limit
    assert "keep-me" in keys                         # written first, but read recently
    assert "old0" not in keys and "old1" not in keys  # the least recently accessed went first
    assert {f"new{i}" for i in range(30)} <= keys
    assert 30 < len(keys) < 61


def test_clear_empties_memory_and_disk(make_cache):
    cache = make_cache()
    cache.put("k", response("x"))
    cache.clear()
    assert cache.get("k") is None
    assert make_cache().get("k") is None


def test_close_then_reuse_reopens(make_cache):
    cache = make_cache(memory=False)
    cache.put("k", response("x"))
    cache.close()
    assert cache.get("k").outputs == ["x"]
    cache.put("k2", response("y"))
    assert cache.get("k2").outputs == ["y"]


def test_corrupt_file_warns_once_and_continues_memory_only(make_cache, tmp_path):
    (tmp_path / cache_mod.DB_FILENAME).write_bytes(b"this is not sqlite \x00\xff" * 500)
    cache = make_cache()
    with pytest.warns(CacheWarning, match="memory cache only") as record:
        cache.put("k", response("still works"))
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no second warning
        assert cache.get("k").outputs == ["still works"]
        assert cache.get("missing") is None
        cache.put("k2", response("two"))
        assert cache.get("k2").outputs == ["two"]
        cache.clear()
    assert cache.stats()["disk"] == "failed"


def test_unwritable_directory_falls_back_to_memory(make_cache, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache directory should be")
    cache = make_cache(directory=blocker / "cache")
    with pytest.warns(CacheWarning):
        cache.put("k", response("x"))
    assert cache.get("k").outputs == ["x"]


# --- concurrency ----------------------------------------------------------------------------

def test_threads_mixed_get_and_put(make_cache):
    cache = make_cache(memory_entries=20)            # small LRU: many reads go to disk and promote
    errors: list[BaseException] = []
    wrong: list[tuple[str, list[str]]] = []
    start = threading.Barrier(16)

    def work(thread: int) -> None:
        try:
            start.wait()
            for i in range(200):
                key = f"k{(thread * 7 + i) % 60}"
                if i % 3 == 0:
                    cache.put(key, response(f"value-of-{key}"))
                else:
                    hit = cache.get(key)
                    if hit is not None and hit.outputs != [f"value-of-{key}"]:
                        wrong.append((key, hit.outputs))
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and wrong == []
    assert cache.stats()["disk"] == "on"
    fresh = make_cache(memory=False)
    for key in {f"k{(t * 7 + i) % 60}" for t in range(16) for i in range(0, 200, 3)}:
        assert fresh.get(key).outputs == [f"value-of-{key}"]


def _process_worker(directory: str, index: int, count: int) -> None:
    """Runs in a spawned process: write its own keys and shared ones, read everything back."""
    warnings.simplefilter("error", CacheWarning)
    cache = ResponseCache(directory=directory, memory_entries=5)
    for i in range(count):
        cache.put(f"p{index}-{i}", response(f"p{index}-{i}"))
        cache.put(f"shared-{i}", response(f"shared-{i}"))
        other = cache.get(f"p{1 - index}-{i}")
        assert other is None or other.outputs == [f"p{1 - index}-{i}"]
    for i in range(count):
        assert cache.get(f"p{index}-{i}").outputs == [f"p{index}-{i}"]
    assert cache.stats()["disk"] == "on"
    cache.close()


def test_processes_share_one_directory(make_cache, tmp_path):
    context = multiprocessing.get_context("spawn")
    count = 40
    workers = [context.Process(target=_process_worker, args=(str(tmp_path), i, count)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    cache = make_cache(memory=False)
    for i in range(count):
        for key in (f"p0-{i}", f"p1-{i}", f"shared-{i}"):
            assert cache.get(key).outputs == [key]


def _forked_child(cache: ResponseCache) -> None:
    warnings.simplefilter("error", CacheWarning)
    assert cache.get("from-parent").outputs == ["parent"]
    cache.put("from-child", response("child"))
    assert cache.stats()["disk"] == "on"
    assert cache._local.pid == os.getpid()           # the child opened its own connection


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX-only")
def test_forked_child_opens_its_own_connection(make_cache):
    cache = make_cache(memory=False)
    cache.put("from-parent", response("parent"))     # the parent now holds an open connection
    child = multiprocessing.get_context("fork").Process(target=_forked_child, args=(cache,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert cache.get("from-child").outputs == ["child"]  # the parent's connection still works


# --- the process-wide default ---------------------------------------------------------------

def test_default_cache_reads_the_environment_lazily(isolated_default, tmp_path):
    cache = get_cache()
    assert get_cache() is cache
    assert cache.directory == tmp_path / "default"
    assert not (tmp_path / "default").exists()       # nothing touched the disk yet
    assert is_cache_enabled()


@pytest.mark.parametrize(("value", "enabled", "disk"), [("0", False, False), ("off", False, False),
                                                        ("memory", True, False), ("1", True, True)])
def test_plait_cache_env(isolated_default, monkeypatch, value, enabled, disk):
    monkeypatch.setenv("PLAIT_CACHE", value)
    assert is_cache_enabled() is enabled
    assert get_cache().disk is disk


def test_plait_cache_env_typo_is_a_clear_error(isolated_default, monkeypatch):
    from plait.errors import ConfigurationError

    monkeypatch.setenv("PLAIT_CACHE", "maybe")
    with pytest.raises(ConfigurationError, match="PLAIT_CACHE='maybe'.*'memory'"):
        get_cache()


def test_configure_cache_replaces_the_default(isolated_default, monkeypatch, tmp_path):
    monkeypatch.setenv("PLAIT_CACHE", "0")           # explicit configuration wins over the env
    old = get_cache()
    new = configure_cache(directory=tmp_path / "configured", memory_entries=7)
    assert get_cache() is new and new is not old
    assert new.memory_entries == 7 and new.directory == tmp_path / "configured"
    assert is_cache_enabled()


# --- the plugin -----------------------------------------------------------------------------

class FakeBackend:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    @hookimpl(trylast=True)
    def plait_lm_call(self, lm, request):
        self.calls += 1
        if self.fail:
            raise RuntimeError("backend down")
        return LMResponse([f"answer {self.calls}"], Usage(1, 1, 2), request.model, raw={"id": self.calls})


@pytest.fixture
def hook(isolated_default, tmp_path):
    configure_cache(directory=tmp_path / "plugin-cache")
    pm = pluggy.PluginManager("plait")
    pm.add_hookspecs(plait.hookspecs)
    for plugin in cache_plugin.plugins():
        pm.register(plugin)
    backend = FakeBackend()
    pm.register(backend)

    def call(**kw) -> LMResponse:
        kw.setdefault("messages", [{"role": "user", "content": "hi"}])
        return pm.hook.plait_lm_call(lm=None, request=LMRequest("test/model", **kw))

    call.backend = backend
    return call


def test_plugin_serves_the_second_identical_call_from_cache(hook):
    first = hook(params={"temperature": 0.0})
    second = hook(params={"temperature": 0.0})
    assert hook.backend.calls == 1
    assert first.cached is False and first.raw == {"id": 1}
    assert second.cached is True and second.outputs == ["answer 1"] and second.raw is None


def test_plugin_keys_ignore_credentials_but_not_generation_settings(hook):
    hook(params={"temperature": 0.0, "api_key": "sk-one"})
    assert hook(params={"temperature": 0.0, "api_key": "sk-two"}).cached is True
    assert hook.backend.calls == 1
    hook(params={"temperature": 0.7, "api_key": "sk-one"})
    hook(params={"temperature": 0.0, "n": 3})
    hook(params={"temperature": 0.0}, messages=[{"role": "user", "content": "hello"}])
    assert hook.backend.calls == 4


def test_plugin_respects_request_cache_false(hook):
    hook(cache=False)
    second = hook(cache=False)
    assert hook.backend.calls == 2 and second.cached is False
    assert get_cache().stats()["memory_entries"] == 0


def test_plugin_does_nothing_when_caching_is_disabled(hook, tmp_path):
    configure_cache(enabled=False, directory=tmp_path / "off")
    request = LMRequest("test/model", prompt="p")
    assert cache_plugin.lookup_plugin.plait_lm_call(None, request) is None
    hook()
    hook()
    assert hook.backend.calls == 2
    assert get_cache().stats()["memory_entries"] == 0


def test_plugin_lookup_with_disabled_cache_ignores_stored_entries(isolated_default, tmp_path):
    configure_cache(directory=tmp_path / "c").put(LMRequest("m", prompt="p").cache_key(), response("x"))
    request = LMRequest("m", prompt="p")
    assert cache_plugin.lookup_plugin.plait_lm_call(None, request).outputs == ["x"]
    configure_cache(enabled=False, directory=tmp_path / "c")
    assert cache_plugin.lookup_plugin.plait_lm_call(None, request) is None


def test_plugin_never_stores_failures(hook):
    hook.backend.fail = True
    with pytest.raises(RuntimeError, match="backend down"):
        hook()
    hook.backend.fail = False
    assert hook().cached is False
    assert hook.backend.calls == 2


def test_plugin_cache_survives_a_new_process_default(hook, tmp_path):
    hook(prompt="persist me", messages=None)
    configure_cache(directory=tmp_path / "plugin-cache")   # same directory, empty memory
    again = hook(prompt="persist me", messages=None)
    assert again.cached is True and hook.backend.calls == 1
    assert Path(tmp_path / "plugin-cache" / cache_mod.DB_FILENAME).exists()
