"""The BM25 retriever holds to the retriever contract: in memory, persisted, and reloaded from disk."""

import pytest

import plait
from plait.testing.retriever_contract import CORPUS, QUERIES, RetrieverContract

pytest.importorskip("bm25s", reason="the bm25 extra is not installed: pip install 'plait[bm25]'")


class TestBM25InMemory(RetrieverContract):
    @pytest.fixture
    def make_retriever(self):
        return lambda: plait.retriever("bm25")

    def bad_config(self):
        plait.retriever("bm25", b=1.5)          # b must lie in [0, 1]


class TestBM25Persisted(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, tmp_path):
        folders = iter(range(1000))
        return lambda: plait.retriever("bm25", path=tmp_path / f"index-{next(folders)}")

    def bad_config(self):
        plait.retriever("bm25", stopwords="klingon")


class TestBM25Reloaded(RetrieverContract):
    """Each retriever is filled in one object and searched through another that loaded the folder.

    A wrapper forwards ``add`` to a writer and every search to a fresh reader, so the whole
    contract runs against what was read back from disk.
    """

    @pytest.fixture
    def make_retriever(self, tmp_path):
        folders = iter(range(1000))

        def make():
            return _ReloadingRetriever(tmp_path / f"index-{next(folders)}")
        return make

    def bad_config(self):
        plait.retriever("bm25", k1=-1)


class _ReloadingRetriever(plait.Retriever):
    supports_filters = True

    def __init__(self, path):
        self.path = path
        self.writer = plait.retriever("bm25", path=path)

    def add(self, texts, ids=None, metadata=None):
        return self.writer.add(texts, ids, metadata)

    def search(self, queries, k, *, filter=None):
        return plait.retriever("bm25", path=self.path).search(queries, k, filter=filter)


def test_reload_after_search_uses_the_saved_index(tmp_path):
    first = plait.retriever("bm25", path=tmp_path / "idx")
    ids, texts, metadata = zip(*CORPUS)
    first.add(list(texts), ids=list(ids), metadata=list(metadata))
    expected = {query: [(p.id, p.score, dict(p.metadata)) for p in first(query, k=3)] for query in QUERIES}
    second = plait.retriever("bm25", path=tmp_path / "idx")
    assert len(second) == len(CORPUS)
    assert {query: [(p.id, p.score, dict(p.metadata)) for p in second(query, k=3)] for query in QUERIES} == expected
    assert second.builds == 0          # loaded bm25s's files, no rebuild
