"""plait_server: the app's endpoints (FastAPI TestClient, no sockets), the retriever config
format, corpus files and program loading."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

pytest.importorskip("fastapi", reason="plait[server] (fastapi) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

import plait  # noqa: E402
from plait.testing.retriever_contract import CORPUS  # noqa: E402
from plait_colbert import ColBERTv2  # noqa: E402
from plait_server.app import create_app  # noqa: E402
from plait_server.config import build_retriever, parse_config, read_config, read_corpus  # noqa: E402
from plait_server.program import load_program  # noqa: E402

HIT_KEYS = {"text", "long_text", "pid", "rank", "score", "prob"}


def memory_retriever():
    retriever = plait.retriever("memory", embedder=plait.embedder("hashing", dim=1024))
    pids, texts, metas = zip(*CORPUS)
    retriever.add(list(texts), list(pids), list(metas))
    return retriever


@pytest.fixture
def client():
    return TestClient(create_app(retriever=memory_retriever()))


class Echo(plait.Module):
    """A program without an LM: enough to check /predict's plumbing."""

    def forward(self, question: str, shout: bool = False):
        answer = question.upper() if shout else question
        return plait.Prediction(answer=answer, passages=[plait.Passage("p", 1.0, "id1")], n=len(question))


def make_echo():
    return Echo()


# --- the ColBERTv2 protocol -------------------------------------------------------------------

def test_get_search_answers_the_colbertv2_shape(client):
    answer = client.get("/search", params={"query": "How is espresso coffee brewed?", "k": 3}).json()
    assert answer["query"] == "How is espresso coffee brewed?" and len(answer["topk"]) == 3
    top = answer["topk"][0]
    assert HIT_KEYS <= set(top) and top["pid"] == "p-espresso" and top["long_text"] == top["text"]
    assert top["topic"] == "food" and top["year"] == 2012          # metadata rides along
    assert [hit["rank"] for hit in answer["topk"]] == [1, 2, 3]
    scores = [hit["score"] for hit in answer["topk"]]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(hit["prob"] for hit in answer["topk"]) - 1.0) < 1e-9


def test_post_search_matches_get(client):
    got = client.get("/search", params={"query": "jazz music", "k": 2}).json()
    posted = client.post("/search", json={"query": "jazz music", "k": 2}).json()
    assert got == posted and posted["topk"][0]["pid"] == "p-jazz"


def test_default_k_is_ten_capped_by_the_index(client):
    assert len(client.get("/search", params={"query": "capital"}).json()["topk"]) == len(CORPUS)


@pytest.mark.parametrize("k", [0, -3, 101])
def test_bad_k_is_a_422_with_a_clear_message(client, k):
    for response in (client.get("/search", params={"query": "q", "k": k}),
                     client.post("/search", json={"query": "q", "k": k}),
                     client.post("/retrieve", json={"queries": ["q"], "k": k})):
        assert response.status_code == 422
        assert response.json()["error"] is True
        assert response.json()["message"] == f"k must be between 1 and 100, got {k}"


def test_malformed_requests_name_the_field(client):
    response = client.get("/search", params={"query": "q", "k": "many"})
    assert response.status_code == 422 and response.json()["message"].startswith("query.k: ")
    response = client.get("/search")
    assert response.status_code == 422 and "query.query: Field required" in response.json()["message"]
    response = client.post("/search", json={"k": 3})
    assert response.status_code == 422 and "body.query" in response.json()["message"]


def test_max_k_is_configurable():
    small = TestClient(create_app(retriever=memory_retriever(), max_k=2))
    assert small.get("/search", params={"query": "q", "k": 2}).status_code == 200
    assert small.get("/search", params={"query": "q", "k": 3}).json()["message"] == "k must be between 1 and 2, got 3"


def test_metadata_named_like_a_hit_field_does_not_clobber_it():
    retriever = plait.retriever("memory", embedder=plait.embedder("hashing", dim=64))
    retriever.add(["owls hoot"], ids=["o"], metadata=[{"score": "five stars", "rank": 9, "colour": "brown"}])
    hit = TestClient(create_app(retriever=retriever)).get("/search", params={"query": "owls", "k": 1}).json()["topk"][0]
    assert hit["rank"] == 1 and isinstance(hit["score"], float) and hit["colour"] == "brown"


def test_plait_colbert_client_reads_the_server(client):
    for post in (False, True):
        retriever = ColBERTv2("http://testserver/search", post_requests=post, client=client)
        passages = retriever(["Which planet has bright rings, Saturn?", "What is castling in chess?"], k=2)
        assert [ps[0].id for ps in passages] == ["p-saturn", "p-chess"]
        assert passages[0][0].metadata["topic"] == "astronomy"


# --- plait's own endpoints --------------------------------------------------------------------

def test_retrieve_batches_and_filters(client):
    answer = client.post("/retrieve", json={"queries": ["capital city", "espresso"], "k": 2,
                                            "filter": {"topic": "geography"}}).json()
    assert [{p["id"] for p in ps} for ps in answer["results"]] == [{"p-paris", "p-tokyo"}] * 2
    assert answer["results"][0][0]["id"] == "p-paris"
    assert all(p["metadata"]["topic"] == "geography" for ps in answer["results"] for p in ps)
    assert set(answer["results"][0][0]) == {"text", "score", "id", "metadata"}


def test_retriever_complaints_become_400s():
    retriever = plait.retriever("colbert-local", encoder="hashing")

    class NoFilters(type(retriever)):
        supports_filters = False
    app = TestClient(create_app(retriever=NoFilters(encoder="hashing")))
    response = app.post("/retrieve", json={"queries": ["q"], "k": 1, "filter": {"topic": "x"}})
    assert response.status_code == 400 and "does not support filters" in response.json()["message"]


def test_writes_are_refused_unless_allowed(client):
    response = client.post("/add", json={"texts": ["new"]})
    assert response.status_code == 403 and "allow_writes = true" in response.json()["message"]
    assert client.post("/clear").status_code == 403


def test_add_and_clear_when_allowed():
    app = TestClient(create_app(retriever=plait.retriever("colbert-local", encoder="hashing"), allow_writes=True))
    answer = app.post("/add", json={"texts": ["owls hoot at night", "newts swim"], "ids": ["o", "n"],
                                    "metadata": [{"kind": "bird"}, {"kind": "amphibian"}]})
    assert answer.status_code == 200 and answer.json() == {"ids": ["o", "n"]}
    assert app.get("/search", params={"query": "owls", "k": 1}).json()["topk"][0]["kind"] == "bird"
    assert app.get("/health").json()["passages"] == 2
    bad = app.post("/add", json={"texts": ["a", "b"], "ids": ["one"]})
    assert bad.status_code == 400 and "2 texts but 1 ids" in bad.json()["message"]
    assert app.post("/clear").json() == {"cleared": True}
    assert app.get("/search", params={"query": "owls"}).json()["topk"] == []


def test_clear_on_a_retriever_without_clear_is_501():
    app = TestClient(create_app(retriever=memory_retriever(), allow_writes=True))
    response = app.post("/clear")
    assert response.status_code == 501 and "cannot clear()" in response.json()["message"]


def test_health_and_openapi(client):
    assert client.get("/health").json() == {"status": "ok", "retriever": "InMemoryRetriever",
                                            "passages": len(CORPUS), "writes": False, "program": None}
    schema = client.get("/openapi.json").json()
    assert {"/search", "/retrieve", "/add", "/clear", "/health"} <= set(schema["paths"])
    assert set(schema["paths"]["/search"]) == {"get", "post"} and "/predict" not in schema["paths"]
    assert client.get("/nowhere").json() == {"error": True, "message": "Not Found", "detail": "Not Found"}


# --- programs ---------------------------------------------------------------------------------

def test_predict_runs_the_program():
    app = TestClient(create_app(program=Echo()))
    answer = app.post("/predict", json={"inputs": {"question": "hi", "shout": True}}).json()
    assert answer == {"prediction": {"answer": "HI", "n": 2,
                                     "passages": [{"text": "p", "score": 1.0, "id": "id1", "metadata": {}}]}}
    assert "/search" not in app.get("/openapi.json").json()["paths"]
    missing = app.post("/predict", json={"inputs": {"query": "hi"}})
    assert missing.status_code == 400 and "unexpected keyword argument 'query'" in missing.json()["message"]
    assert app.post("/predict", json={"question": "hi"}).status_code == 422


def test_create_app_needs_something_to_serve():
    with pytest.raises(ValueError, match="needs a retriever, a program or both"):
        create_app()
    with pytest.raises(TypeError, match="Retriever"):
        create_app(retriever=object())
    with pytest.raises(ValueError, match="max_k"):
        create_app(retriever=memory_retriever(), max_k=0)


def test_load_program_from_a_factory_an_instance_and_a_state_file(tmp_path, monkeypatch):
    (tmp_path / "served_prog.py").write_text(textwrap.dedent("""
        import plait

        class QA(plait.Module):
            def __init__(self):
                super().__init__()
                self.answer = plait.Predict("question -> answer")

            def forward(self, question):
                return self.answer(question=question)

        def make():
            return QA()

        ready = QA()
        not_a_program = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "served_prog", raising=False)
    program = load_program("served_prog:make")
    program.answer.signature = program.answer.signature.with_instructions("Answer in one word.")
    program.save(tmp_path / "state.json")
    loaded = load_program("served_prog:make", state=tmp_path / "state.json")
    assert loaded.answer.signature.instructions == "Answer in one word."
    assert type(load_program("served_prog:ready")).__name__ == "QA"
    with pytest.raises(ValueError, match="MODULE:ATTR"):
        load_program("served_prog")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        load_program("served_prog:nope")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        load_program("no_such_module_xyz:make")
    with pytest.raises(TypeError, match="plait Module or a factory"):
        load_program("served_prog:not_a_program")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_program("served_prog:make", state=tmp_path / "missing.json")


# --- config files and corpora -----------------------------------------------------------------

def test_json_and_toml_configs_resolve_paths_next_to_the_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"retriever": "colbert-local", "path": "idx", "encoder": "hashing",
                                                 "corpus": "c.jsonl", "allow_writes": True, "max_k": 20}))
    (tmp_path / "b.toml").write_text('retriever = "memory"\ncorpus = "c.jsonl"\n'
                                     'embedder = {name = "hashing", dim = 64}\n')
    first, second = read_config(tmp_path / "a.json"), read_config(tmp_path / "b.toml")
    assert first.retriever == "colbert-local" and first.settings == {"path": str(tmp_path / "idx"), "encoder": "hashing"}
    assert first.corpus == tmp_path / "c.jsonl" and first.allow_writes and first.max_k == 20
    assert second.embedder == {"name": "hashing", "dim": 64} and second.settings == {} and not second.allow_writes


@pytest.mark.parametrize("document, problem", [
    ([1], "one object"), ({"path": "x"}, "must name a registered retriever"),
    ({"retriever": "bm25", "corpus": 3}, "corpus must be the path"),
    ({"retriever": "bm25", "allow_writes": "yes"}, "allow_writes must be true or false"),
    ({"retriever": "bm25", "max_k": 0}, "max_k must be a positive integer"),
    ({"retriever": "bm25", "embedder": 5}, "embedder must be"),
])
def test_bad_configs_name_the_problem(document, problem):
    with pytest.raises(ValueError, match=problem):
        parse_config(document, source="cfg.json")


def test_unreadable_config_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_config(tmp_path / "none.json")
    (tmp_path / "bad.toml").write_text("retriever = ")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config(tmp_path / "bad.toml")


def test_corpus_lines_and_their_errors(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "Alpha", "id": 1, "metadata": {"a": 1}, "title": "T"}\n\n"Bare text"\n')
    texts, ids, metadata = read_corpus(corpus)
    assert texts == ["Alpha", "Bare text"] and ids[0] == "1" and len(ids[1]) == 16
    assert metadata == [{"title": "T", "a": 1}, {}]
    corpus.write_text('{"text": "ok"}\n{"txt": "typo"}\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2 has no \"text\""):
        read_corpus(corpus)
    corpus.write_text('{"text": "ok"\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:1 is not valid JSON"):
        read_corpus(corpus)


def test_build_retriever_indexes_the_corpus_only_into_an_empty_index(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": pid, "text": text, "metadata": meta}) + "\n"
                              for pid, text, meta in CORPUS))
    config = parse_config({"retriever": "colbert-local", "encoder": "hashing", "path": "idx", "corpus": "c.jsonl"},
                          base=tmp_path)
    retriever = build_retriever(config)
    assert len(retriever) == len(CORPUS) and retriever("espresso coffee", k=1)[0].id == "p-espresso"
    retriever.add(["extra passage"], ids=["extra"])
    assert len(build_retriever(config)) == len(CORPUS) + 1        # loaded from disk, not re-indexed
    memory = build_retriever(parse_config({"retriever": "memory", "embedder": {"name": "hashing", "dim": 64},
                                           "corpus": str(corpus)}))
    assert len(memory) == len(CORPUS)
