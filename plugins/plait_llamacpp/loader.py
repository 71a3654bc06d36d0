"""Loading GGUF models once and sharing them safely between LMs and threads.

A ``llama_cpp.Llama`` object is not thread-safe: it holds one KV cache and one sampler. So every
loaded model belongs to a :class:`ModelPool`, and a call borrows a model from the pool for its
whole generation. Pools are shared process-wide by (path, load settings): two ``plait.LM``
objects for the same file and settings use the same loaded model, and the model is freed when
the last LM using it is gone (the registry holds pools weakly).

``pool_size`` (default 1) is how many copies of the model a pool may load; copies beyond the first
load only when calls actually overlap. Measured on this project's 2-core machine with SmolLM2
(n_threads=1 per copy, 8 chat calls of up to 48 tokens, benchmarks/llamacpp_speed.py): one shared
model serves 1 and 4 calling threads at the same throughput (calls are serialised); a pool of 2
served 4 threads 1.8x faster on idle cores, 1.24x with one other busy process, and no faster
under the usual load of other jobs. The default stays 1: memory and KV cache are paid once, the
model's prompt-prefix cache keeps helping consecutive calls, and a shared box does not reward a
second copy reliably. Pass ``pool_size=2`` (with ``n_threads=1``) for multi-threaded evaluation
on free cores.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ModelFacts", "ModelPool", "describe_model", "json_grammar", "loaded_pools",
           "make_chat_renderer", "shared_pool"]


class ModelPool:
    """Up to ``size`` copies of one model; :meth:`borrow` lends one to a single caller at a time."""

    def __init__(self, load: Callable[[], Any], size: int = 1):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"pool_size must be a positive int, got {size!r}")
        self._load = load
        self.size = size
        self._idle: list[Any] = []          # LIFO: the most recently used copy has the warmest cache
        self._count = 0
        self._cond = threading.Condition()
        self._first: Any = None
        self.facts: ModelFacts | None = None   # set by shared_pool once the first copy is loaded

    @property
    def loaded(self) -> int:
        """How many copies are loaded now."""
        return self._count

    def first(self) -> Any:
        """The first copy (loaded now if needed), for reading facts such as metadata; not a loan."""
        if self._first is None:
            with self.borrow():
                pass
        return self._first

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        model = self._take()
        try:
            yield model
        finally:
            with self._cond:
                self._idle.append(model)
                self._cond.notify()

    def _take(self) -> Any:
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._count < self.size:
                    self._count += 1     # reserve the slot; load outside the lock
                    break
                self._cond.wait()
        try:
            model = self._load()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        if self._first is None:
            self._first = model
        return model


# (resolved path, sorted load settings, pool size) -> pool; weak, so unused models are freed.
_pools: weakref.WeakValueDictionary[tuple[str, str, int], ModelPool] = weakref.WeakValueDictionary()
_pools_lock = threading.Lock()


def shared_pool(path: Path, llama_kwargs: dict[str, Any], pool_size: int) -> ModelPool:
    """The process-wide pool for this file and these settings, its first copy loaded and
    described (``pool.facts``) now: a bad file fails where the LM is built, not on a call."""
    key = (str(path), repr(sorted(llama_kwargs.items())), pool_size)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = ModelPool(lambda: _load_llama(path, llama_kwargs), pool_size)
            pool.facts = describe_model(pool.first())   # a failed load leaves no pool behind
            _pools[key] = pool
    return pool


def loaded_pools() -> list[ModelPool]:
    """The pools alive now (for tests and diagnostics)."""
    with _pools_lock:
        return list(_pools.values())


def _load_llama(path: Path, llama_kwargs: dict[str, Any]) -> Any:
    import llama_cpp

    try:
        return llama_cpp.Llama(str(path), **llama_kwargs)
    except ValueError as exc:   # llama.cpp rejects a corrupt or unsupported file with ValueError
        from plait.errors import ConfigurationError
        raise ConfigurationError(f"llama.cpp could not load {str(path)!r}: {exc}. Check that it "
                                 "is a complete GGUF file for a model llama.cpp supports.") from exc


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the backend needs to know about a loaded model."""

    n_params: int
    n_ctx: int
    chat_template: str | None     # the GGUF's Jinja chat template (tokenizer.chat_template)
    eos_text: str                 # e.g. "<|im_end|>": rendered into templates, used as a stop
    bos_text: str


def describe_model(llama: Any) -> ModelFacts:
    import llama_cpp

    def token_text(token: int) -> str:
        if token < 0:
            return ""
        return llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    return ModelFacts(int(llama_cpp.llama_model_n_params(llama.model)), int(llama.n_ctx()),
                      llama.metadata.get("tokenizer.chat_template"), token_text(llama.token_eos()),
                      token_text(llama.token_bos()))


def make_chat_renderer(template: str, facts: ModelFacts) -> Callable[[list[dict[str, Any]]], str]:
    """messages -> the prompt text the model's own chat template makes, ending with the
    assistant turn's opening (``add_generation_prompt``)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=template, eos_token=facts.eos_text,
                                    bos_token=facts.bos_text, add_generation_prompt=True)

    def render(messages: list[dict[str, Any]]) -> str:
        return formatter(messages=messages).prompt

    return render


_grammars: dict[str, Any] = {}
_grammars_lock = threading.Lock()


def json_grammar(schema_json: str | None = None) -> Any:
    """A llama.cpp grammar for any JSON object, or for ``schema_json`` (a JSON schema as text).

    Grammars are immutable once built (each call makes its own sampler from one), so they are
    built once and shared. A schema llama-cpp-python cannot convert falls back to any JSON object.
    """
    key = schema_json or ""
    with _grammars_lock:
        grammar = _grammars.get(key)
    if grammar is not None:
        return grammar
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if schema_json is None:
        grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    else:
        try:
            grammar = LlamaGrammar.from_json_schema(schema_json, verbose=False)
        except Exception:   # an unsupported schema feature: plain JSON still helps the parser
            grammar = json_grammar(None)
    with _grammars_lock:
        if len(_grammars) > 256:   # bounded: schemas come from signatures, a handful per program
            _grammars.clear()
        _grammars[key] = grammar
    return grammar
