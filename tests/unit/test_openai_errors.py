"""The openai plugin's error mapping, Retry-After, retries through plait.LM, and credentials.

Failures come from the real openai SDK reading fake HTTP responses (see openai_fakes.py).
"""

from __future__ import annotations

import email.utils
import time

import pytest
from openai_fakes import API_BASE, FakeServer, chat_body, fail, httpx, make_lm, ok, record_sleeps

import plait
from plait.errors import (LMAuthError, LMBadRequestError, LMConnectionError, LMContextWindowError,
                          LMRateLimitError, LMServerError, LMTimeoutError)
from plait_openai.errors import retry_after_seconds

KEY = "sk-test-SECRET-4b1d9c"


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


def _fails_with(reply, **lm_kwargs):
    server = FakeServer(reply)
    with pytest.raises(plait.errors.LMError) as caught:
        make_lm(server, **lm_kwargs)("hi")
    return caught.value, server


@pytest.mark.parametrize(("reply", "error_type", "status", "words"), [
    (fail(401, "Incorrect API key"), LMAuthError, 401, "OPENAI_API_KEY"),
    (fail(403, "not allowed"), LMAuthError, 403, "may use this model"),
    (fail(429, "slow down"), LMRateLimitError, 429, "rate-limited"),
    (fail(500, "kaput"), LMServerError, 500, "kaput"),
    (fail(503, "overloaded"), LMServerError, 503, "HTTP 503"),
    (fail(409, "busy"), LMServerError, 409, "conflict"),
    (fail(408, "too slow"), LMTimeoutError, 408, "timed out"),
    (fail(400, "This model's maximum context length is 2048 tokens", code="context_length_exceeded"),
     LMContextWindowError, 400, "context window"),
    (fail(400, "Requested tokens (3000) exceed context window of 2048"), LMContextWindowError, 400, "Shorten"),
    (fail(400, "temperature must be <= 2"), LMBadRequestError, 400, "temperature must be"),
    (fail(422, "unprocessable"), LMBadRequestError, 422, "unprocessable"),
    (fail(404, "model not found"), LMBadRequestError, 404, "/v1"),
    (fail(500, "1 validation error:\n {'loc': ('body', 'messages')}"), LMBadRequestError, 500, "validate"),
], ids=lambda value: value.__name__ if isinstance(value, type) else None)
def test_http_failures_map_to_typed_errors(reply, error_type, status, words):
    error, _ = _fails_with(reply)
    assert type(error) is error_type
    assert error.status == status and error.provider == "openai"
    assert words in str(error) and API_BASE in str(error)
    assert error.retryable == (error_type in (LMRateLimitError, LMServerError, LMTimeoutError))


def test_transport_failures_map_to_connection_and_timeout_errors():
    refused, _ = _fails_with(httpx.ConnectError("[Errno 111] Connection refused"))
    assert type(refused) is LMConnectionError and refused.retryable
    assert "Connection refused" in str(refused) and "is api_base right" in str(refused)
    stalled, _ = _fails_with(httpx.ReadTimeout("read timed out"), timeout=2)
    assert type(stalled) is LMTimeoutError and stalled.retryable and "after 2s" in str(stalled)


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "7"}, 7.0), ({"retry-after": "1.5"}, 1.5), ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25), ({"retry-after": "soon"}, None), ({}, None),
    ({"retry-after": "-3"}, 0.0),
])
def test_retry_after_header_forms(headers, seconds):
    assert retry_after_seconds(httpx.Headers(headers)) == seconds


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(httpx.Headers({"retry-after": when})) <= 31


def test_rate_limit_and_server_errors_carry_retry_after():
    limited, _ = _fails_with(fail(429, "slow", {"retry-after": "3"}))
    assert limited.retry_after == 3.0
    unavailable, _ = _fails_with(fail(503, "later", {"retry-after-ms": "1500"}))
    assert unavailable.retry_after == 1.5


def test_lm_retries_a_503_honouring_retry_after_then_succeeds(monkeypatch):
    delays = record_sleeps(monkeypatch)
    server = FakeServer(fail(503, "warming up", {"retry-after": "0.25"}), ok(chat_body("done")))
    assert make_lm(server, num_retries=2)("hi") == ["done"]
    assert len(server.requests) == 2 and delays == [0.25]


def test_lm_gives_up_on_connection_refused_after_bounded_retries(monkeypatch):
    delays = record_sleeps(monkeypatch)
    server = FakeServer(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(LMConnectionError, match="could not connect"):
        make_lm(server, num_retries=2)("hi")
    assert len(server.requests) == 3 and len(delays) == 2   # the SDK itself never retries


def test_auth_and_bad_requests_are_not_retried(monkeypatch):
    delays = record_sleeps(monkeypatch)
    for reply in (fail(401, "bad key"), fail(400, "bad param")):
        server = FakeServer(reply)
        with pytest.raises((LMAuthError, LMBadRequestError)):
            make_lm(server, num_retries=3)("hi")
        assert len(server.requests) == 1
    assert delays == []


# --- credentials -------------------------------------------------------------------------------

def test_the_api_key_never_appears_in_errors_repr_history_or_state():
    server = FakeServer(ok(chat_body("fine")), fail(401, f"Incorrect API key provided: {KEY}"))
    lm = make_lm(server, api_key=KEY)
    assert lm("first") == ["fine"]
    with pytest.raises(LMAuthError) as caught:
        lm("second")
    error = caught.value
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"   # it is sent...
    assert KEY not in str(error) and "<redacted>" in str(error)              # ...and never shown
    assert error.__cause__ is None and error.__context__ is None             # SDK request not chained
    for text in (repr(lm), repr(lm.backend), repr(list(lm.history)), repr(lm.dump_state()),
                 lm.inspect_history(1)):
        assert KEY not in text


def test_missing_key_is_a_clear_error_for_remote_servers():
    with pytest.raises(LMAuthError, match="OPENAI_API_KEY"):
        plait.LM("openai/gpt-4o-mini")
    with pytest.raises(LMAuthError, match="example.com.*OPENAI_API_KEY"):
        plait.LM("openai/m", api_base="https://user:pw@example.com/v1")


def test_missing_key_uses_a_placeholder_for_local_servers_and_the_env_var_otherwise(monkeypatch):
    server = FakeServer(ok(chat_body("x")))
    plait.LM("openai/m", api_base="http://localhost:8080/v1", http_client=server.client(), cache=False)("hi")
    assert server.requests[0].headers["authorization"].startswith("Bearer no-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1234")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://example.com/v1")
    lm = plait.LM("openai/m", http_client=server.client(), cache=False)
    lm("hi")
    assert server.requests[1].headers["authorization"] == "Bearer sk-from-env-1234"
    assert str(server.requests[1].url) == "https://example.com/v1/chat/completions"
