"""The conformance servers' own semantics, over plain HTTP (no SDK): auth, gaps named, filters, scoring."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from plait.testing.conformance import MarqoConformanceServer, PineconeConformanceServer
from plait.testing.conformance._filter_dsl import parse_filter
from plait.testing.conformance.pinecone_server import matches


def _call(url: str, method: str = "GET", body=None, headers=None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def pinecone():
    with PineconeConformanceServer(api_key="k") as server:
        yield server


def test_pinecone_stand_in_requires_the_api_key_and_names_its_gaps(pinecone):
    assert _call(pinecone.url + "/indexes")[0] == 401
    assert _call(pinecone.url + "/indexes", headers={"Api-Key": "wrong"})[0] == 401
    status, body = _call(pinecone.url + "/collections", headers={"Api-Key": "k"})
    assert status == 404 and "not implemented by the conformance server" in body["error"]["message"]
    status, body = _call(pinecone.url + "/indexes", "POST", {"name": "s", "schema": {"fields": {
        "body": {"type": "string", "full_text_search": {}}}}}, {"Api-Key": "k"})
    assert status == 400 and "dense vector indexes only" in body["error"]["message"]


def test_pinecone_stand_in_ranks_euclidean_ascending_and_checks_dimensions(pinecone):
    key = {"Api-Key": "k"}
    assert _call(pinecone.url + "/indexes", "POST", {"name": "e", "dimension": 2, "metric": "euclidean"}, key)[0] == 201
    data = pinecone.url + "/index/e"
    vectors = [{"id": "near", "values": [1.0, 0.0]}, {"id": "far", "values": [5.0, 5.0]}]
    assert _call(data + "/vectors/upsert", "POST", {"vectors": vectors}, key) == (200, {"upsertedCount": 2})
    status, body = _call(data + "/query", "POST", {"topK": 2, "vector": [1.0, 0.1]}, key)
    assert [m["id"] for m in body["matches"]] == ["near", "far"] and body["matches"][0]["score"] == pytest.approx(0.01)
    status, body = _call(data + "/query", "POST", {"topK": 2, "vector": [1.0, 0.1, 0.0]}, key)
    assert status == 400 and "dimension" in body["error"]["message"]


@pytest.mark.parametrize("condition, expected", [
    ({"year": {"$gt": 2000, "$lte": 2010}}, True),
    ({"year": {"$lt": 2000}}, False),
    ({"$or": [{"topic": "x"}, {"tags": {"$in": ["b"]}}]}, True),
    ({"tags": "a"}, True),                                   # a list field matches when it holds the value
    ({"tags": {"$nin": ["a", "z"]}}, False),
    ({"missing": {"$exists": False}, "topic": {"$ne": "x"}}, True),
    ({"ok": {"$eq": 1}}, False),                             # booleans never equal numbers
])
def test_pinecone_filter_operators(condition, expected):
    assert matches({"year": 2005.0, "topic": "y", "tags": ["a", "b"], "ok": True}, condition) is expected


@pytest.mark.parametrize("text, expected", [
    ("topic:(new york) AND year:2001", True),
    ("topic:(new york) AND NOT ok:true", False),
    ("(topic:boston OR year:[2000 TO 2002]) AND tags:b", True),
    (r"title:(a \(b\)\: c)", True),
    ("year:[2002 TO *]", False),
])
def test_marqo_filter_dsl_subset(text, expected):
    doc = {"topic": "new york", "year": 2001, "ok": True, "tags": ["a", "b"], "title": "a (b): c"}
    assert parse_filter(text)(doc) is expected


@pytest.mark.parametrize("text", ["topic:", "topic:(x", "topic:x AND", "topic:x*", "year:[1 TO]"])
def test_marqo_filter_dsl_rejects_what_it_does_not_understand(text):
    with pytest.raises(ValueError):
        parse_filter(text)


def test_marqo_stand_in_names_unimplemented_search_features():
    with MarqoConformanceServer() as server:
        assert _call(server.url + "/")[1]["version"] == server.version
        assert _call(server.url + "/indexes/i", "POST", {"model": "no_model",
                                                       "modelProperties": {"type": "no_model", "dimensions": 2}})[0] == 200
        status, body = _call(server.url + "/indexes/i/search", "POST", {"q": "x", "searchMethod": "LEXICAL"})
        assert status == 400 and "not implemented" in body["message"]
        status, body = _call(server.url + "/indexes/i/search", "POST", {"q": "x", "bogus": 1})
        assert status == 400 and "extra fields not permitted" in body["message"]
        status, body = _call(server.url + "/indexes/i/search", "POST", {"q": "text on a no_model index"})
        assert status == 400 and "no_model" in body["message"]
        assert _call(server.url + "/indexes/nope/search", "POST", {"q": "x"})[1]["code"] == "index_not_found"


def test_stop_cuts_open_connections_like_a_killed_process():
    server = PineconeConformanceServer().start()
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    connection.sendall(b"GET /indexes HTTP/1.1\r\nHost: x\r\nApi-Key: k\r\n\r\n")
    response = b""
    while not response.endswith(b'{"indexes": []}'):             # headers and body may come apart
        chunk = connection.recv(4096)
        assert chunk, f"connection closed early after {response!r}"
        response += chunk
    assert response.startswith(b"HTTP/1.1 200")                  # a live keep-alive connection
    server.stop()
    connection.sendall(b"GET /indexes HTTP/1.1\r\nHost: x\r\nApi-Key: k\r\n\r\n")
    assert connection.recv(4096) == b""                           # cut, not answered
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)
    connection.close()
