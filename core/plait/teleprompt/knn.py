"""KNNFewShot: at call time, demos bootstrapped from the training examples nearest the inputs.

``compile`` embeds the trainset once (any registered Embedder, e.g. ``plait.embedder("hashing")``,
or any callable ``texts -> array``) and returns a program that, for each call, finds the ``k``
nearest training examples by cosine similarity of their inputs, runs BootstrapFewShot on them
and answers with the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.primitives.example import Example
from plait.primitives.module import Module
from plait.teleprompt.base import CallEstimate, Teleprompter, check_trainset
from plait.teleprompt.bootstrap import BootstrapFewShot
from plait.teleprompt.labeled import check_count
from plait.teleprompt.session import compile_session


def input_text(values: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """The text embedded for a set of inputs: their values joined by " | ", in key order."""
    names = sorted(values) if keys is None else [key for key in keys if key in values]
    return " | ".join(str(values[name]) for name in names)


@dataclass(frozen=True, slots=True)
class NeighbourIndex:
    """The embedded trainset, built once per compile and shared by every copy of the program."""

    trainset: tuple[Example, ...]
    input_keys: tuple[str, ...]
    vectors: Any                  # float32 array (len(trainset), dim), rows L2-normalised
    embed: Callable[[list[str]], Any]
    k: int

    @classmethod
    def build(cls, trainset: list[Example], embed: Callable[[list[str]], Any], k: int) -> NeighbourIndex:
        keys = sorted({key for example in trainset for key in example.inputs()})
        vectors = _normalised(embed([input_text(example.inputs(), keys) for example in trainset]))
        if vectors.ndim != 2 or vectors.shape[0] != len(trainset):
            raise ValueError(f"the embedder returned an array of shape {vectors.shape} for {len(trainset)} "
                             "texts; it must return one row per text")
        return cls(tuple(trainset), tuple(keys), vectors, embed, k)

    def nearest(self, inputs: Mapping[str, Any]) -> list[Example]:
        """The ``k`` training examples most similar to ``inputs``, most similar first (ties: trainset order)."""
        import numpy as np

        keys = self.input_keys if any(key in inputs for key in self.input_keys) else None
        query = _normalised(self.embed([input_text(inputs, keys)]))[0]
        scores = self.vectors @ query
        order = np.argsort(-scores, kind="stable")[: self.k]
        return [self.trainset[index] for index in order]

    def __deepcopy__(self, memo: dict[int, Any]) -> NeighbourIndex:
        return self   # immutable: copies of the program share it


def _normalised(matrix: Any) -> Any:
    import numpy as np

    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


class KNNFewShotProgram(Module):
    """What KNNFewShot compiles to: ``program`` (the student, without demos) plus the index.

    Only ``program``'s parameters are saved; the index and the bootstrap settings are rebuilt by
    compiling again (they are data and configuration, not learned state).
    """

    def __init__(self, program: Module, index: NeighbourIndex, optimizer: BootstrapFewShot,
                 teacher: Module | None):
        super().__init__()
        self.program = program
        # Kept out of parameter discovery (not Modules): a frozen holder.
        self._neighbours = _Setup(index, optimizer, teacher)

    def forward(self, **kwargs: Any) -> Any:
        setup = self._neighbours
        neighbours = setup.index.nearest(kwargs)
        with compile_session(setup.optimizer.name, None, None, quiet=True) as session:
            compiled = setup.optimizer.bootstrap(session, self.program, trainset=neighbours,
                                                 teacher=setup.teacher, display=False).program
        return compiled(**kwargs)


@dataclass(frozen=True, slots=True)
class _Setup:
    index: NeighbourIndex
    optimizer: BootstrapFewShot
    teacher: Module | None

    def __deepcopy__(self, memo: dict[int, Any]) -> _Setup:
        return self


class KNNFewShot(Teleprompter):
    """``KNNFewShot(k, trainset, embedder=plait.embedder("hashing"), **bootstrap_args)``.

    ``embedder`` is an Embedder, the name of a registered one, or a callable ``texts -> array``
    (``vectorizer=`` is accepted as DSPy's name for it). ``bootstrap_args`` go to
    BootstrapFewShot, which runs on the ``k`` neighbours at every call of the compiled program.
    """

    name = "knn-few-shot"

    def __init__(self, k: int, trainset: Sequence[Example] | None = None, embedder: Any = None, *,
                 vectorizer: Any = None, **bootstrap_args: Any):
        check_count("KNNFewShot", "k", k, 1)
        if embedder is not None and vectorizer is not None:
            raise ValueError("KNNFewShot takes embedder= or vectorizer= (DSPy's name), not both")
        embedder = embedder if embedder is not None else vectorizer
        if embedder is None:
            raise ValueError("KNNFewShot needs an embedder: pass embedder=plait.embedder('hashing') (no model), "
                             "plait.embedder('sentence-transformers'), or any callable texts -> array")
        if not isinstance(embedder, str) and not callable(embedder):
            raise TypeError(f"KNNFewShot(embedder=...) must be an Embedder, a registered embedder name or a "
                            f"callable texts -> array, not {type(embedder).__name__}")
        self.k = k
        self.trainset = None if trainset is None else list(trainset)
        self.embedder = embedder
        self.bootstrap_args = dict(bootstrap_args)
        BootstrapFewShot(**self.bootstrap_args)   # bad bootstrap arguments fail here, not at call time

    def estimate_calls(self, student: Module, *, trainset: Sequence[Example] | None = None,
                       valset: Sequence[Example] | None = None) -> CallEstimate:
        return CallEstimate(0, "KNNFewShot embeds the trainset at compile time; each call of the compiled "
                               f"program then bootstraps on its {self.k} nearest examples")

    def compile(self, student: Module, *, trainset: Sequence[Example] | None = None,
                teacher: Module | None = None, valset: Sequence[Example] | None = None) -> Module:
        chosen = trainset if trainset is not None else self.trainset
        if chosen is None:
            raise ValueError("KNNFewShot needs a trainset: KNNFewShot(k, trainset, embedder=...) or "
                             "compile(student, trainset=...)")
        examples = check_trainset(chosen)
        estimate = self.estimate_calls(student, trainset=examples)
        with compile_session(self.name, None, estimate, trainset=len(examples)):
            embed = self._embed_function()
            index = NeighbourIndex.build(examples, embed, self.k)
            optimizer = BootstrapFewShot(**self.bootstrap_args)
            program = KNNFewShotProgram(student.reset_copy(), index, optimizer,
                                        None if teacher is None else teacher.deepcopy())
            program._compiled = True
        return program

    def _embed_function(self) -> Callable[[list[str]], Any]:
        if isinstance(self.embedder, str):
            from plait.registry import embedder as build_embedder
            return build_embedder(self.embedder)
        return self.embedder
