"""Clinic24 client transport safety (issues 11, 13, 14): https only, credentials and outages fail once, clearly."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest

from mvg_sync.clinic24.baseurl import InsecureBaseURL, base_url_host, is_loopback_url
from mvg_sync.clinic24.client import (
    Clinic24Client,
    Clinic24CredentialsRejected,
    Clinic24ProtocolError,
    Clinic24UnavailableError,
    Clinic24Unreachable,
    RetryPolicy,
    UpsertEntry,
)
from mvg_sync.settings import SANDBOX_CLIENT_SECRET, Settings

SECRET = "s3cret-value-never-shown"  # noqa: S105 - a test value, looked for in messages


class Counting:
    """A transport that records every request it is asked to send."""

    def __init__(self, answer=None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json={"access_token": "t", "expires_in": 300}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


FOREIGN_HTTP = [
    "http://clinic24.example.test",
    "http://127.0.0.1:8024@clinic24.example.test",  # userinfo: the host is clinic24.example.test
    "http://localhost@clinic24.example.test:8024",
    "http://127.0.0.1.nip.io:8024",
    "http://localhost.example.test",
    "http://10.0.0.5:8024",
    "http://[2001:db8::1]:8024",
]


@pytest.mark.parametrize("url", FOREIGN_HTTP)
def test_plain_http_to_a_foreign_host_is_refused_before_any_request(url):
    transport = Counting()
    with pytest.raises(InsecureBaseURL) as refused:
        client = Clinic24Client(url, "mvg-sync", SECRET, transport=httpx.MockTransport(transport))
        client.list_locations()  # not reached: the refusal comes at construction
    assert transport.requests == []
    message = str(refused.value)
    assert "\n" not in message and SECRET not in message
    assert "https" in message and "CLINIC24_BASE_URL" in message


@pytest.mark.parametrize("url", FOREIGN_HTTP)
def test_settings_never_hand_sandbox_credentials_to_a_foreign_host(url):
    settings = Settings(CLINIC24_BASE_URL=url)
    assert settings.is_sandbox is False
    with pytest.raises(InsecureBaseURL):
        settings.clinic24_credentials()


def test_the_userinfo_trick_is_parsed_to_its_real_host():
    assert base_url_host("http://127.0.0.1:8024@clinic24.example.test") == "clinic24.example.test"
    assert not is_loopback_url("http://127.0.0.1:8024@clinic24.example.test")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8024", "http://127.0.0.2:9000/", "http://localhost:8024", "http://[::1]:8024"]
)
def test_loopback_http_is_the_sandbox_and_gets_its_default_credentials(url):
    settings = Settings(CLINIC24_BASE_URL=url)
    assert settings.is_sandbox is True
    assert settings.clinic24_credentials()[1] == SANDBOX_CLIENT_SECRET
    transport = Counting()
    with Clinic24Client(url, "mvg-sync", SECRET, transport=httpx.MockTransport(transport)) as client:
        client._current_token()
    assert [r.url.path for r in transport.requests] == ["/oauth/token"]


def test_https_to_a_real_host_is_accepted_and_needs_real_credentials(monkeypatch):
    settings = Settings(CLINIC24_BASE_URL="https://clinic24.example.test", CLINIC24_CLIENT_ID="id", CLINIC24_CLIENT_SECRET=SECRET)
    assert settings.is_sandbox is False
    assert settings.clinic24_credentials() == ("id", SECRET)
    transport = Counting()
    with Clinic24Client(settings.clinic24_base_url, "id", SECRET, transport=httpx.MockTransport(transport)) as client:
        client._current_token()
    assert transport.requests[0].url.scheme == "https"


@pytest.mark.parametrize(
    ("status", "body"),
    [(401, {"error": "invalid_client"}), (400, {"error": "invalid_request"}), (403, None)],
)
def test_refused_credentials_fail_at_once_in_one_line(status, body):
    transport = Counting(lambda request: httpx.Response(status, json=body) if body else httpx.Response(status))
    started = time.monotonic()
    with Clinic24Client(
        "https://clinic24.example.test", "mvg-sync", SECRET, transport=httpx.MockTransport(transport)
    ) as client, pytest.raises(Clinic24CredentialsRejected) as refused:
        client.upsert([UpsertEntry("c1", "Appointment", "K1", {"resourceType": "Appointment"})])
    assert len(transport.requests) == 1, "a credentials error is never retried (clinic24-api.md)"
    assert time.monotonic() - started < 5
    message = str(refused.value)
    print(message)
    assert "\n" not in message and SECRET not in message
    assert "https://clinic24.example.test" in message
    assert "CLINIC24_CLIENT_ID" in message and "CLINIC24_CLIENT_SECRET" in message and "Secret block" in message
    if body:
        assert body["error"] in message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe closes


def test_unreachable_clinic24_fails_within_a_minute_in_one_line(caplog):
    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    # The default policy and timeouts: what a sync run gets.
    with Clinic24Client(url, "mvg-sync", SECRET) as client, pytest.raises(Clinic24Unreachable) as down:
        client.list_locations()
    elapsed = time.monotonic() - started
    message = str(down.value)
    print(f"{elapsed:.1f} s: {message}")
    assert elapsed < 60
    assert isinstance(down.value, Clinic24UnavailableError)  # callers that catch the old class still do
    assert message.startswith(f"Clinic24 at {url} unreachable: connection refused")
    assert "CLINIC24_BASE_URL" in message and "\n" not in message
    warnings = [r for r in caplog.records if r.name == "mvg_sync.clinic24.client" and r.levelno >= logging.WARNING]
    assert len(warnings) == RetryPolicy().attempts - 1  # one per retry, no more
    for record in warnings:
        assert record.exc_info is None and "\n" not in record.getMessage()
        assert len(record.getMessage()) < 120
    assert SECRET not in caplog.text


def test_the_retry_budget_bounds_a_call_even_with_many_attempts():
    transport = Counting(lambda request: httpx.Response(503))
    policy = RetryPolicy(attempts=50, backoff_base_s=0.3, backoff_cap_s=0.3, budget_s=1.0)
    started = time.monotonic()
    with Clinic24Client(
        "https://clinic24.example.test", "mvg-sync", SECRET, retry=policy, transport=httpx.MockTransport(transport)
    ) as client, pytest.raises(Clinic24UnavailableError) as gave_up:
        client.list_locations()
    assert time.monotonic() - started < 2.5
    assert 2 <= len(transport.requests) < 50
    assert "https://clinic24.example.test" in str(gave_up.value) and "HTTP 503" in str(gave_up.value)


def _token_then(answer):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        return answer(request)

    return handler


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_one_policy_never_retries_a_refusal_on_reads(status):
    transport = Counting(_token_then(lambda request: httpx.Response(status)))
    with Clinic24Client(
        "https://clinic24.example.test", "mvg-sync", SECRET, backoff_base_s=0, backoff_cap_s=0,
        transport=httpx.MockTransport(transport),
    ) as client, pytest.raises(Clinic24ProtocolError):
        client.get_appointment("K1")
    assert [r.url.path for r in transport.requests] == ["/oauth/token", "/fhir/Appointment"]


@pytest.mark.parametrize("transient", ["429", "500", "503", "connect"])
def test_one_policy_retries_429_5xx_and_connect_errors_for_token_reads_and_batches(transient):
    """The same failure, once, before each kind of call succeeds: each call retries it once."""
    failed: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        kind = request.url.path
        if kind not in failed:
            failed.add(kind)
            if transient == "connect":
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            return httpx.Response(int(transient), headers={"Retry-After": "0"} if transient == "429" else {})
        if kind == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        if kind == "/fhir":
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response",
                                             "entry": [{"response": {"status": "201 Created", "etag": 'W/"1"'}}]})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []})

    transport = Counting(handler)
    with Clinic24Client(
        "https://clinic24.example.test", "mvg-sync", SECRET, backoff_base_s=0, backoff_cap_s=0,
        transport=httpx.MockTransport(transport),
    ) as client:
        assert client.get_appointment("K1") is None
        outcomes = client.upsert([UpsertEntry("c1", "Appointment", "K1", {"resourceType": "Appointment"})])
        stats = client.stats()
    assert [o.outcome for o in outcomes] == ["accepted"]
    assert [r.url.path for r in transport.requests] == [
        "/oauth/token", "/oauth/token", "/fhir/Appointment", "/fhir/Appointment", "/fhir", "/fhir",
    ]
    assert stats["retries"] == 3
    assert stats["throttled"] == (3 if transient == "429" else 0)


@pytest.mark.parametrize(("diagnostics", "shown"), [
    ("patient 19581127-1009 Öberg, Åsa not found", "(diagnostics withheld)"),
    ("primary-guardian-missing", "primary-guardian-missing"),
])
def test_a_refusal_names_clinic24s_code_but_withholds_free_text(diagnostics, shown):
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "not-found", "diagnostics": diagnostics}]}
    transport = Counting(_token_then(lambda request: httpx.Response(404, json=outcome)))
    with Clinic24Client(
        "https://clinic24.example.test", "mvg-sync", SECRET, backoff_base_s=0, backoff_cap_s=0,
        transport=httpx.MockTransport(transport),
    ) as client, pytest.raises(Clinic24ProtocolError) as raised:
        client.get_appointment("K1")
    assert f"(not-found: {shown})" in str(raised.value)
    assert "1958" not in str(raised.value) and "Öberg" not in str(raised.value)
