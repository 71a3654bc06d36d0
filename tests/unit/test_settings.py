import threading

import pytest

import plait
from plait.settings import ContextThreadPoolExecutor, settings


def test_configure_sets_process_wide_defaults_seen_by_new_threads():
    plait.configure(lm="global-lm")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(settings.lm))
    thread.start()
    thread.join()
    assert seen == ["global-lm"]


def test_context_overrides_only_inside_block_and_nests():
    plait.configure(lm="a", num_threads=3)
    with plait.context(lm="b"):
        assert settings.lm == "b"
        assert settings.num_threads == 3
        with plait.context(num_threads=5):
            assert (settings.lm, settings.num_threads) == ("b", 5)
        assert settings.num_threads == 3
    assert settings.lm == "a"


def test_context_does_not_leak_into_plain_threads_but_wrap_carries_it():
    plait.configure(lm="global")
    seen = {}
    with plait.context(lm="local"):
        plain = threading.Thread(target=lambda: seen.setdefault("plain", settings.lm))
        wrapped = threading.Thread(target=settings.wrap(lambda: seen.setdefault("wrapped", settings.lm)))
        plain.start(); wrapped.start(); plain.join(); wrapped.join()
    assert seen == {"plain": "global", "wrapped": "local"}


def test_context_thread_pool_copies_callers_context():
    with plait.context(lm="pool-lm"):
        with ContextThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: settings.lm, range(8)))
    # map() goes through submit(), so every task ran in the caller's context
    assert results == ["pool-lm"] * 8


def test_settings_module_forwards_like_dspy_settings():
    plait.settings.configure(adapter="json")
    assert plait.settings.adapter == "json"
    assert plait.settings.get("adapter") == "json"


def test_unknown_setting_names_the_known_ones():
    with pytest.raises(AttributeError, match="known"):
        settings.no_such_setting


def test_invalid_setting_name_rejected():
    with pytest.raises(ValueError):
        plait.configure(**{"_private": 1})
