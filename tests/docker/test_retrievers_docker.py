"""The retriever contract against the REAL engines, each started from its pinned image.

Runs wherever a Docker engine answers; skipped here otherwise (see conftest.py). The same
contract runs without Docker against embedded engines and plait's conformance servers.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request

import pytest

from plait.testing.retriever_contract import RetrieverContract

pytestmark = [pytest.mark.docker, pytest.mark.slow]
_names = itertools.count()


@pytest.fixture(scope="module")
def embedder():
    import plait
    return plait.embedder("hashing", dim=1024)


# --- Qdrant ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qdrant_url(containers):
    for _, url in containers("qdrant", 6333, ready_path="/readyz"):
        yield url


class TestQdrantServer(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, qdrant_url, embedder):
        import plait
        return lambda: plait.retriever("qdrant", url=qdrant_url, collection=f"contract_{next(_names)}",
                                       embedder=embedder)


# --- Chroma ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chroma_address(containers):
    for container, url in containers("chroma", 8000, ready_path="/api/v2/heartbeat"):
        yield container.get_container_host_ip(), int(url.rsplit(":", 1)[1])


class TestChromaServer(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, chroma_address, embedder):
        import plait
        host, port = chroma_address
        return lambda: plait.retriever("chroma", host=host, port=port, collection=f"contract_{next(_names)}",
                                       embedder=embedder)


# --- Marqo ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def marqo_url(containers):
    for _, url in containers("marqo", 8882, ready_path="/", env={"MARQO_MODELS_TO_PRELOAD": "[]"}, timeout=600):
        yield url


class TestMarqoServer(RetrieverContract):
    """Custom vectors into no_model indexes: no model download, the same embedder as elsewhere."""

    @pytest.fixture
    def make_retriever(self, marqo_url, embedder):
        import plait
        return lambda: plait.retriever("marqo", url=marqo_url, index=f"contract-{next(_names)}", embedder=embedder,
                                       create_index=True)

    def bad_config(self):
        import plait
        plait.retriever("marqo", url="localhost:8882", index="x")   # not a URL


# --- Pinecone Local ---------------------------------------------------------------------------------

def _create_index_2025_01(control: str, name: str, dimension: int) -> str:
    """Pinecone Local's control plane speaks API 2025-01 (SDK 10 speaks 2026-07): create it directly."""
    headers = {"Api-Key": "pclocal", "X-Pinecone-API-Version": "2025-01", "Content-Type": "application/json"}
    body = {"name": name, "dimension": dimension, "metric": "cosine",
            "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}}
    request = urllib.request.Request(f"{control}/indexes", data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        host = json.load(response)["host"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with urllib.request.urlopen(urllib.request.Request(f"{control}/indexes/{name}", headers=headers),
                                    timeout=30) as response:
            if json.load(response).get("status", {}).get("ready"):
                break
        time.sleep(1.0)
    return "http://" + host.split("://", 1)[-1]


@pytest.fixture(scope="module")
def pinecone_local(containers):
    # The index host Pinecone Local reports is its own port (localhost:5081): bind ports 1:1.
    for _, control in containers("pinecone", 5080, ready_path="/indexes",
                                    env={"PORT": "5080", "PINECONE_HOST": "localhost"}, bind={5080: 5080, 5081: 5081}):
        yield control, _create_index_2025_01(control, "plait-contract", 1024)


class TestPineconeLocal(RetrieverContract):
    """The data plane through index_host=, one namespace per retriever."""

    @pytest.fixture
    def make_retriever(self, pinecone_local, embedder):
        import plait
        _, index_host = pinecone_local
        return lambda: plait.retriever("pinecone", index_host=index_host, namespace=f"ns-{next(_names)}",
                                       embedder=embedder)

    def bad_config(self):
        import plait
        plait.retriever("pinecone", index_host="http://localhost:5081")   # no embedder


def test_pinecone_local_control_plane_works_or_names_the_workaround(pinecone_local, embedder):
    import plait
    from plait.errors import ConfigurationError

    control, _ = pinecone_local
    retriever = plait.retriever("pinecone", index="plait-contract", host=control, embedder=embedder,
                                namespace="control-plane-check")
    try:
        found = retriever("anything at all", k=1)
    except ConfigurationError as exc:      # SDK 10 cannot read a 2025-01 describe: say what to do instead
        assert "index_host=" in str(exc)
    else:
        assert found == []
