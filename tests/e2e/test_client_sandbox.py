"""Clinic24 client against the sandbox over HTTP: outcomes, auth, token expiry and a fault run."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mvg_sync.clinic24.client import Clinic24AuthError, Clinic24Client, UpsertEntry
from mvg_sync.clinic24.payloads import build_appointment, build_service_request
from mvg_sync.clinic24.sandbox.runner import start_sandbox

pytestmark = pytest.mark.slow

CLIENT_ID = "mvg-sync"
SECRET = "sandbox-secret"  # noqa: S105 - the sandbox's documented default
UNIT = "SE2321000198-HC0001"
OTHER_UNIT = "SE2321000198-HC0002"
UNKNOWN_UNIT = "SE2321000198-XX9999"


def pnr(birth: str, serial: str) -> str:
    """A 12-digit personnummer with a valid Luhn check digit (R13)."""
    ten = birth[2:] + serial
    total = 0
    for i, ch in enumerate(ten):
        digit = int(ch) * (2 if i % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return birth[:2] + ten + str((10 - total % 10) % 10)


ADULT = pnr("19581124", "326")
CHILD = pnr("20180505", "123")


def appointment(booking_id, *, seq=1, unit=UNIT, patient=ADULT, kind="physical", **overrides):
    start = datetime(2026, 12, 3, 8, 0, tzinfo=UTC) + timedelta(
        minutes=int(str(booking_id)[-3:] or 0)
    )
    row = {
        "booking_id": str(booking_id),
        "status": "booked",
        "cancel_reason": None,
        "start_at": start,
        "end_at": start + timedelta(minutes=20),
        "care_service": "Primärvård|mottagning|sjuksköterska|diabetes",
        "clinic24_role": "sjukskoterska",
        "visit_kind": kind,
        "patient_id": patient,
        "patient_id_kind": "personnummer",
        "patient_name": "Test Testsson",
        "unit_hsa_id": unit,
        "resource_hsa_id": "SE2321000198-P0001",
        "resource_name": "Sara Sköterska",
        "booking_info": None,
        "contact_type": "Distansbesök - video" if kind == "digital" else "Mottagningsbesök",
        "visit_type": "Nybesök",
        "patient_may_rebook": True,
        "patient_may_cancel": True,
    }
    row.update(overrides)
    key = row["booking_id"]
    return UpsertEntry(
        f"a-{key}-{seq}", "Appointment", key, build_appointment(row, source_sequence=seq)
    )


def ticket(basis_id, *, seq=1, status="active"):
    row = {
        "basis_id": str(basis_id),
        "status": status,
        "care_service": "Primärvård|mottagning|läkare|allmänmedicin",
        "clinic24_role": "lakare",
        "patient_id": ADULT,
        "patient_id_kind": "personnummer",
        "patient_name": "Test Testsson",
        "unit_hsa_id": UNIT,
        "issue_date": datetime(2026, 12, 1, tzinfo=UTC).date(),
        "monitoring_date": datetime(2026, 12, 30, tzinfo=UTC).date(),
        "authored_at": datetime(2026, 12, 1, 6, 0, tzinfo=UTC),
        "contact_type": "Mottagningsbesök",
        "visit_type": "Nybesök",
        "referral_id": None,
    }
    return UpsertEntry(
        f"t-{basis_id}-{seq}",
        "ServiceRequest",
        str(basis_id),
        build_service_request(row, source_sequence=seq),
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with start_sandbox(tmp_path_factory.mktemp("clinic24")) as handle:
        yield handle


@pytest.fixture
def sb(sandbox):
    sandbox.reset()
    return sandbox


def client_for(sb, secret=SECRET, **kwargs):
    kwargs.setdefault("backoff_base_s", 0.02)
    kwargs.setdefault("backoff_cap_s", 0.5)
    return Clinic24Client(sb.base_url, CLIENT_ID, secret, **kwargs)


def test_reads_locations_guardians_and_search(sb, caplog):
    caplog.set_level(logging.DEBUG)
    with client_for(sb) as client:
        units = client.list_locations()
        assert units == sb.state()["units"]
        assert client.has_primary_guardian(CHILD, "personnummer") is False
        sb.add_guardian(CHILD)
        assert client.has_primary_guardian(CHILD, "personnummer") is True
        assert client.get_appointment("1001") is None
        client.upsert([appointment(1001), appointment(1002, unit=OTHER_UNIT), ticket("U1")])
        found = client.search_appointments(UNIT, "2026-12-01", "2026-12-31")
        assert [a["identifier"][0]["value"] for a in found] == ["1001"]
        assert client.search_appointments(UNIT, "2026-12-04", "2026-12-31") == []
        assert client.get_appointment("1001")["status"] == "booked"
        assert client.get_service_request("U1")["status"] == "active"
    assert "RelatedPerson" in caplog.text  # httpx did log the call...
    assert CHILD not in caplog.text  # ...without the personnummer in its query


def test_search_follows_next_links(sb):
    with client_for(sb) as client:
        entries = [appointment(2000 + i) for i in range(130)]
        assert {o.outcome for o in client.upsert(entries)} == {"accepted"}
        found = client.search_appointments(UNIT, "2026-12-01", "2026-12-31")
    assert sorted(a["identifier"][0]["value"] for a in found) == sorted(e.key for e in entries)
    searches = [
        r for r in sb.requests() if r["path"] == "/fhir/Appointment" and r["method"] == "GET"
    ]
    assert len(searches) == 2  # 130 at _count=100: one next link


def test_create_update_identical(sb):
    with client_for(sb) as client:
        created = client.upsert([appointment(1001), appointment(1002), ticket("U1")])
        assert [(o.outcome, o.http_status, o.version) for o in created] == [
            ("accepted", 201, "1")
        ] * 3
        again = client.upsert(
            [
                appointment(1001, seq=2, booking_info="Ta med remiss"),
                appointment(1002),  # identical body: no new version
                ticket("U1", seq=2, status="revoked"),
            ]
        )
    assert [(o.change_id, o.outcome, o.http_status, o.version) for o in again] == [
        ("a-1001-2", "accepted", 200, "2"),
        ("a-1002-1", "accepted", 200, "1"),
        ("t-U1-2", "accepted", 200, "2"),
    ]
    stored = {r["identifier"]: r for r in sb.state()["resources"]}
    assert stored["1001"]["resource"]["comment"] == "Ta med remiss"
    assert stored["1002"]["version"] == 1
    assert stored["U1"]["status"] == "revoked"


def test_every_request_sends_a_fresh_request_id(sb):
    with client_for(sb) as client:
        client.list_locations()
        client.upsert([appointment(1001)])
        client.get_appointment("1001")
    log = sb.requests()
    assert [r["path"] for r in log] == [
        "/oauth/token",
        "/fhir/Location",
        "/fhir",
        "/fhir/Appointment",
    ]
    ids = [r["request_id"] for r in log]
    assert len(set(ids)) == 4
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_mixed_batch_outcomes_in_input_order(sb):
    with client_for(sb) as client:
        client.upsert([appointment(1003, seq=5)])
        mismatched = appointment(1005)
        mismatched = UpsertEntry("a-mismatch", "Appointment", "1006", mismatched.resource)
        outcomes = client.upsert(
            [
                appointment(1001),
                appointment(1002, unit=UNKNOWN_UNIT),
                appointment(1003, seq=3, booking_info="older"),
                appointment(1004, patient=CHILD, kind="digital"),
                mismatched,
                appointment(1007, status="cancelled", cancel_reason="Patienten avbokar"),
            ]
        )
        got = [
            (o.change_id, o.outcome, o.http_status, o.code, o.diagnostics, o.expression)
            for o in outcomes
        ]
        assert got[0] == ("a-1001-1", "accepted", 201, None, None, None)
        assert got[1] == (
            "a-1002-1",
            "rejected",
            404,
            "not-found",
            "unknown unit",
            ["Appointment.participant"],
        )
        assert got[2][:4] == ("a-1003-3", "stale", 409, "conflict")
        assert got[3] == (
            "a-1004-1",
            "rejected",
            422,
            "business-rule",
            "primary-guardian-missing",
            ["Appointment.participant"],
        )
        assert got[4][:4] == ("a-mismatch", "rejected", 400, "invalid")
        assert got[5][:4] == ("a-1007-1", "rejected", 404, "not-found")
        # R12: once the child has a primary guardian the held booking goes through.
        sb.add_guardian(CHILD)
        (retried,) = client.upsert([appointment(1004, patient=CHILD, kind="digital")])
        assert (retried.outcome, retried.version) == ("accepted", "1")


def test_batches_of_100_settle_one_by_one_through_the_callback(sb):
    settled = []
    entries = [appointment(3000 + i) for i in range(250)]
    with client_for(sb, max_concurrency=3) as client:
        outcomes = client.upsert(
            entries, on_batch_settled=lambda batch: settled.append(list(batch))
        )
    assert [o.change_id for o in outcomes] == [e.change_id for e in entries]
    assert sorted(len(b) for b in settled) == [50, 100, 100]
    assert sorted(o.change_id for b in settled for o in b) == sorted(e.change_id for e in entries)
    batch_sizes = sorted(r["entries"] for r in sb.requests() if r["path"] == "/fhir")
    assert batch_sizes == [50, 100, 100]


def test_wrong_credentials_raise_auth_error_without_the_secret(sb, caplog):
    secret = "wrong-secret-5f1c9"  # noqa: S105
    caplog.set_level(logging.DEBUG)
    with client_for(sb, secret=secret) as client:
        with pytest.raises(Clinic24AuthError) as info:
            client.upsert([appointment(1001)])
        with pytest.raises(Clinic24AuthError):
            client.list_locations()
        assert secret not in repr(client)
    assert secret not in str(info.value)
    assert secret not in repr(info.value)
    assert secret not in caplog.text
    token_calls = [r for r in sb.requests() if r["path"] == "/oauth/token"]
    assert len(token_calls) == 2  # refused once per call, never retried
    assert {r["status"] for r in token_calls} == {401}
    assert sb.state()["resources"] == []


def test_token_expiry_mid_run_is_renewed(sb):
    sb.set_faults(token_ttl_s=1)
    with client_for(sb) as client:
        first = client.upsert([appointment(1001)])
        sb.expire_tokens()  # the server forgets the token: the client must renew on 401
        second = client.upsert([appointment(1002)])
        time.sleep(1.1)  # past the TTL the server gave
        third = client.upsert([appointment(1003)])
        fetches = client.stats()["token_fetches"]
    assert [o.outcome for o in first + second + third] == ["accepted"] * 3
    log = sb.requests()
    assert [r["status"] for r in log if r["path"] == "/fhir"] == [200, 401, 200, 200]
    assert fetches == 3


def _scenario(client):
    """Two sync cycles' worth of upserts with every kind of outcome; returns all outcomes."""
    round1 = [appointment(10_000 + i, unit=UNIT if i % 3 else OTHER_UNIT) for i in range(420)]
    round1 += [appointment(11_000 + i, unit=UNKNOWN_UNIT) for i in range(10)]
    round1 += [appointment(12_000 + i, patient=CHILD, kind="digital") for i in range(10)]
    round1 += [ticket(f"U{i}") for i in range(60)]
    outcomes = client.upsert(round1)
    round2 = [appointment(10_000 + i, seq=2, booking_info="Ny info") for i in range(0, 200)]
    round2 += [appointment(10_000 + i) for i in range(200, 260)]  # identical: no new version
    round2 += [
        appointment(10_000 + i, seq=2, status="cancelled", cancel_reason="Felaktig registrering")
        for i in range(260, 300)
    ]
    round2 += [appointment(10_000 + i, seq=0, booking_info="old") for i in range(300, 320)]  # stale
    round2 += [appointment(13_000 + i, status="cancelled", cancel_reason="x") for i in range(5)]
    round2 += [ticket(f"U{i}", seq=2, status="completed") for i in range(30)]
    return outcomes + client.upsert(round2)


def _comparable(outcomes):
    return [(o.change_id, o.outcome, o.version, o.code, o.diagnostics) for o in outcomes]


def _stored(sb):
    rows = []
    for r in sb.state()["resources"]:
        resource = {k: v for k, v in r["resource"].items() if k != "meta"}
        rows.append(
            (
                r["resourceType"],
                r["identifier"],
                r["version"],
                r["status"],
                r["source_sequence"],
                resource,
            )
        )
    return rows


def test_fault_run_settles_every_entry_like_a_fault_free_run(sb):
    with client_for(sb) as client:
        clean_outcomes = _scenario(client)
    clean_state = _stored(sb)
    counts = {}
    for o in clean_outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    assert counts == {"accepted": 810, "rejected": 25, "stale": 20}

    sb.reset()
    sb.set_faults(
        # throttle 0.2, not 0.05: with ~25 /fhir calls whose draws depend on thread timing, 0.05
        # drew no 429 in about 1 run of 4 (seen on main d2a810e as well).
        fail_before_share=0.2, fail_after_share=0.1, throttle_share=0.2, token_ttl_s=1, seed=11
    )
    with client_for(sb, max_attempts=15) as client:
        faulty_outcomes = _scenario(client)
        stats = client.stats()

    assert _comparable(faulty_outcomes) == _comparable(clean_outcomes)
    assert "transient" not in {o.outcome for o in faulty_outcomes}
    assert _stored(sb) == clean_state
    statuses = [r["status"] for r in sb.requests() if r["path"] == "/fhir"]
    assert statuses.count(503) >= 2
    assert statuses.count(429) >= 1
    assert stats["token_fetches"] >= 2  # a 429 pauses >= 1 s, past the 1 s token TTL
    assert stats["retries"] >= 3


def test_lost_answers_become_transient_then_resend_keeps_the_version(sb):
    sb.set_faults(fail_after_share=1.0)  # applied, then 503: every answer is lost
    with client_for(sb, max_attempts=3) as client:
        (lost,) = client.upsert([appointment(1001)])
        assert (lost.outcome, lost.http_status, lost.version) == ("transient", 503, None)
        assert [r["version"] for r in sb.state()["resources"]] == [1]
        sb.set_faults(fail_after_share=0.0)
        (resent,) = client.upsert([appointment(1001)])
    assert (resent.outcome, resent.http_status, resent.version) == ("accepted", 200, "1")
    assert [r["status"] for r in sb.requests() if r["path"] == "/fhir"] == [503, 503, 503, 200]
