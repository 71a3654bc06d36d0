"""The in-memory dense index holds to the retriever contract (with the hashing embedder)."""

import pytest

import plait
from plait.testing.retriever_contract import RetrieverContract


class TestMemoryRetriever(RetrieverContract):
    @pytest.fixture
    def make_retriever(self):
        return lambda: plait.retriever("memory", embedder=plait.embedder("hashing", dim=1024))

    def bad_config(self):
        plait.retriever("memory")          # no embedder
