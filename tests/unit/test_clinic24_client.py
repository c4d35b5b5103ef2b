"""Clinic24 client over an in-process transport: how whole-batch answers are settled."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from mvg_sync.clinic24.client import (
    Clinic24BatchRefusedError,
    Clinic24Client,
    Clinic24Error,
    EntryOutcome,
    UpsertEntry,
)

CLIENT_ID = "mvg-sync-client"
SECRET = "s3cret-value-never-shown"  # noqa: S105 - a test value, looked for in messages
TOKEN = "t0ken-value-never-shown"  # noqa: S105 - a test value, looked for in messages
PATIENT_ID = "191212121212"
FHIR_JSON = "application/fhir+json"


def outcome(code: str, diagnostics: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def entries(count: int) -> list[UpsertEntry]:
    return [
        UpsertEntry(
            f"c-{n}",
            "Appointment",
            f"K{n}",
            {"resourceType": "Appointment", "subject": {"identifier": PATIENT_ID}},
        )
        for n in range(count)
    ]


class FakeClinic24:
    """Token endpoint that always works; `/fhir` answers with what `batch_answer` returns."""

    def __init__(self, batch_answer: Callable[[dict], httpx.Response]) -> None:
        self.batch_answer = batch_answer
        self.batch_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 300})
        assert request.url.path == "/fhir"
        self.batch_requests += 1
        return self.batch_answer(json.loads(request.content))


def client_for(fake: FakeClinic24) -> Clinic24Client:
    return Clinic24Client(
        "https://clinic24.test",
        CLIENT_ID,
        SECRET,
        max_concurrency=1,
        max_attempts=3,
        requests_per_second=None,
        backoff_base_s=0.0,
        backoff_cap_s=0.0,
        transport=httpx.MockTransport(fake),
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "forbidden"), (400, "structure"), (404, "not-found"), (405, "not-supported")],
)
def test_whole_batch_refused_outside_the_contract_raises_and_settles_nothing(
    status: int, code: str
) -> None:
    # Clinic24's diagnostics may echo what was sent: they must not reach the message.
    fake = FakeClinic24(
        lambda _: httpx.Response(
            status,
            content=json.dumps(outcome(code, f"refused for {PATIENT_ID}")),
            headers={"Content-Type": FHIR_JSON},
        )
    )
    settled: list[list[EntryOutcome]] = []
    with client_for(fake) as client, pytest.raises(Clinic24BatchRefusedError) as caught:
        client.upsert(entries(100), on_batch_settled=settled.append)

    assert settled == []
    assert fake.batch_requests == 1  # a configuration problem is not retried
    error = caught.value
    assert isinstance(error, Clinic24Error)
    assert (error.http_status, error.code) == (status, code)
    message = str(error)
    assert f"HTTP {status}" in message
    for secret in (SECRET, TOKEN, CLIENT_ID, PATIENT_ID):
        assert secret not in message


def test_whole_batch_refused_without_a_body_still_raises() -> None:
    fake = FakeClinic24(lambda _: httpx.Response(302, headers={"Location": "https://elsewhere"}))
    with client_for(fake) as client, pytest.raises(Clinic24BatchRefusedError) as caught:
        client.upsert(entries(2))
    assert (caught.value.http_status, caught.value.code) == (302, None)


def test_entry_refusals_inside_a_batch_response_stay_per_entry() -> None:
    def answer(bundle: dict) -> httpx.Response:
        answers = [
            {"response": {"status": "201 Created", "etag": 'W/"1"'}},
            {
                "response": {
                    "status": "404 Not Found",
                    "outcome": outcome("not-found", "unknown unit"),
                }
            },
            {"response": {"status": "409 Conflict", "outcome": outcome("conflict", "older")}},
        ]
        assert len(bundle["entry"]) == len(answers)
        return httpx.Response(
            200,
            content=json.dumps(
                {"resourceType": "Bundle", "type": "batch-response", "entry": answers}
            ),
            headers={"Content-Type": FHIR_JSON},
        )

    with client_for(FakeClinic24(answer)) as client:
        got = client.upsert(entries(3))
    assert [(o.change_id, o.outcome, o.http_status, o.code) for o in got] == [
        ("c-0", "accepted", 201, None),
        ("c-1", "rejected", 404, "not-found"),
        ("c-2", "stale", 409, "conflict"),
    ]


def test_whole_batch_5xx_stays_transient_after_every_attempt() -> None:
    fake = FakeClinic24(lambda _: httpx.Response(503))
    with client_for(fake) as client:
        got = client.upsert(entries(2))
    assert [(o.outcome, o.http_status) for o in got] == [("transient", 503)] * 2
    assert fake.batch_requests == 3


def test_a_resource_given_as_outbox_json_text_is_sent_as_that_json_verbatim() -> None:
    bodies: list[dict] = []

    def answer(body: dict) -> httpx.Response:
        bodies.append(body)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"response": {"status": "201 Created", "etag": 'W/"1"'}} for _ in body["entry"]
        ]})

    resource = {"resourceType": "Appointment", "status": "booked", "comment": "Åter om två veckor"}
    text = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
    with client_for(FakeClinic24(answer)) as client:
        outcomes = client.upsert([UpsertEntry("c-1", "Appointment", "K1", text), *entries(1)])
    assert [o.outcome for o in outcomes] == ["accepted", "accepted"]
    sent = [e["resource"] for e in bodies[0]["entry"]]
    assert sent == [resource, entries(1)[0].resource], "text is embedded as JSON, not as a string"
