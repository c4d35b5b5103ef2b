"""Contract tests of the Clinic24 sandbox over real HTTP (clinic24-api.md, status table and rules)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from mvg_sync.clinic24.sandbox.examples import (
    ADULT,
    BASIS,
    BOOKING,
    CHILD_ADDED_LATER,
    CHILD_WITH_GUARDIAN,
    CHILD_WITHOUT_GUARDIAN,
    OTHER_UNIT,
    PNR,
    SAMN,
    SAMORDNING,
    UNIT,
    appointment,
    digital,
    entry,
    service_request,
    set_ext,
    set_patient,
    with_check_digit,
)
from mvg_sync.clinic24.sandbox.examples import (
    ExampleApi as Api,
)
from mvg_sync.clinic24.sandbox.runner import SandboxHandle, start_sandbox


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("seeds")
    units = folder / "enheter.csv"
    units.write_text(
        f"EnhetHSAID;Enhet;Enhetstyp\n{UNIT};Testcentralen;Hälsocentral\n{OTHER_UNIT};Andra;Hälsocentral\n",
        encoding="windows-1252",
    )
    guardians = folder / "guardians.csv"
    # The 10-digit form with a dash: the sandbox normalises it to 12 digits (R13).
    short = CHILD_WITH_GUARDIAN[2:8] + "-" + CHILD_WITH_GUARDIAN[8:]
    guardians.write_text(f"Personnummer\n{short}\n", encoding="utf-8")
    return units, guardians


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, seeds: tuple[Path, Path]):
    units, guardians = seeds
    state_dir = tmp_path_factory.mktemp("sandbox-state")
    with start_sandbox(state_dir, units=units, guardians=guardians, faults={"rate_limit": False}) as handle:
        yield handle


@pytest.fixture
def api(sandbox: SandboxHandle) -> Api:
    # Every test starts from the module's fault settings; tests that switch faults restore them.
    sandbox.set_faults(rate_limit=False, fail_before_share=0, fail_after_share=0, throttle_share=0, latency_ms=0, token_ttl_s=300)
    return Api(sandbox)


def outcome_of(answer: httpx.Response) -> dict:
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return body["issue"][0]


# --- 201 / 200 ------------------------------------------------------------------------------


def test_new_appointment_is_201_with_etag_version_1(api: Api) -> None:
    answer = api.put(appointment(new_id()))
    assert answer.status_code == 201
    assert answer.headers["ETag"] == 'W/"1"'
    assert answer.json()["meta"]["versionId"] == "1"


def test_changed_appointment_is_200_with_next_version(api: Api) -> None:
    key = new_id()
    api.put(appointment(key))
    answer = api.put(appointment(key, comment="ny info"))
    assert answer.status_code == 200
    assert answer.headers["ETag"] == 'W/"2"'


def test_identical_appointment_is_200_with_same_version(api: Api, sandbox: SandboxHandle) -> None:
    key = new_id()
    api.put(appointment(key))
    answer = api.put(appointment(key))
    assert answer.status_code == 200
    assert answer.headers["ETag"] == 'W/"1"'
    stored = [r for r in sandbox.state("Appointment")["resources"] if r["identifier"] == key]
    assert [r["version"] for r in stored] == [1]


def test_service_request_create_update_identical(api: Api) -> None:
    key = new_id()
    assert api.put(service_request(key)).status_code == 201
    assert api.put(service_request(key)).headers["ETag"] == 'W/"1"'
    revoked = api.put(set_ext(service_request(key, status="revoked"), "source-sequence", 11))
    assert (revoked.status_code, revoked.headers["ETag"]) == (200, 'W/"2"')


def test_request_id_is_echoed(api: Api) -> None:
    answer = api.http.get("/fhir/Location", headers=api.headers(**{"X-Request-ID": "req-42"}))
    assert answer.headers["X-Request-ID"] == "req-42"


# --- 400 ------------------------------------------------------------------------------------


def test_body_not_json_is_400(api: Api) -> None:
    answer = api.put(b"{not json", key=new_id(), kind="Appointment")
    assert answer.status_code == 400
    outcome_of(answer)


def test_wrong_resource_type_is_400(api: Api) -> None:
    key = new_id()
    answer = api.put(service_request(key), key=key, kind="Appointment")
    assert answer.status_code == 400
    outcome_of(answer)


def test_body_identifier_differing_from_url_is_400(api: Api) -> None:
    answer = api.put(appointment("A-1"), key="A-2", kind="Appointment")
    assert answer.status_code == 400
    assert "differs" in outcome_of(answer)["diagnostics"]


# --- 404 ------------------------------------------------------------------------------------


def test_unknown_unit_is_404_not_found_on_participant(api: Api) -> None:
    res = appointment(new_id())
    res["participant"][1]["actor"]["identifier"]["value"] = "SE2321000198-NOPE"
    answer = api.put(res)
    assert answer.status_code == 404
    issue = outcome_of(answer)
    assert (issue["code"], issue["expression"]) == ("not-found", ["Appointment.participant"])


def test_cancel_of_unknown_appointment_is_404(api: Api) -> None:
    answer = api.put(appointment(new_id(), status="cancelled", cancelationReason={"text": "Patienten avbokar"}))
    assert answer.status_code == 404
    assert outcome_of(answer)["code"] == "not-found"


def test_revoke_of_unknown_ticket_is_404(api: Api) -> None:
    answer = api.put(service_request(new_id(), status="revoked"))
    assert answer.status_code == 404
    assert outcome_of(answer)["code"] == "not-found"


def test_cancel_of_stored_appointment_is_200(api: Api) -> None:
    key = new_id()
    api.put(appointment(key))
    cancelled = set_ext(appointment(key, status="cancelled", cancelationReason={"text": "Sjuk"}), "source-sequence", 11)
    answer = api.put(cancelled)
    assert (answer.status_code, answer.json()["status"]) == (200, "cancelled")


# --- 409 ------------------------------------------------------------------------------------


def test_lower_source_sequence_is_409_conflict(api: Api) -> None:
    key = new_id()
    api.put(set_ext(appointment(key), "source-sequence", 20))
    answer = api.put(set_ext(appointment(key, comment="old"), "source-sequence", 19))
    assert answer.status_code == 409
    assert outcome_of(answer)["code"] == "conflict"


# --- 422 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "start"}, "required"),
        (lambda r: {k: v for k, v in r.items() if k != "specialty"}, "required"),  # R05
        (lambda r: {k: v for k, v in r.items() if k != "participant"}, "required"),
        (lambda r: set_ext(r, "source-sequence", "ten"), "value"),
        (lambda r: {**r, "end": r["start"]}, "invalid"),
        (lambda r: {**r, "start": "2026-12-03T10:30:00+01:00"}, "invalid"),
        (lambda r: {**r, "start": "2026-12-03T09:30:00"}, "value"),
        (lambda r: {**r, "status": "arrived"}, "value"),
        (lambda r: {**r, "status": "cancelled"}, "required"),
        (lambda r: {**r, "appointmentType": {"coding": [{"system": "urn:clinic24:visit-kind", "code": "phone"}]}}, "value"),  # R04
        (lambda r: set_patient(r, PNR, ADULT[:-1] + str((int(ADULT[-1]) + 1) % 10)), "value"),  # bad Luhn, R13
        (lambda r: set_patient(r, PNR, ADULT[2:]), "value"),  # 10 digits, R13
        (lambda r: set_patient(r, PNR, SAMORDNING), "value"),  # samordningsnummer under the wrong system
        (lambda r: set_patient(r, PNR, with_check_digit("19811324326")), "value"),  # month 13
        (lambda r: set_ext(r, "change-deadline", "2026-12-02T10:30:00+01:00"), "value"),  # R24
        (lambda r: set_ext(r, "patient-may-cancel", "yes"), "value"),  # R26
    ],
    ids=[
        "start-missing", "r05-specialty-missing", "participant-missing", "sequence-not-integer",
        "start-equals-end", "start-after-end", "start-without-offset", "unknown-status",
        "cancelled-without-reason", "r04-unknown-visit-kind", "r13-bad-luhn", "r13-ten-digits",
        "r13-system-mismatch", "r13-impossible-date", "r24-change-deadline", "r26-flag-not-boolean",
    ],
)  # fmt: skip
def test_invalid_appointment_is_422(api: Api, change, code: str) -> None:
    answer = api.put(change(appointment(new_id())))
    assert answer.status_code == 422, answer.text
    assert outcome_of(answer)["code"] == code


def test_r13_samordningsnummer_under_its_system_is_accepted(api: Api) -> None:
    answer = api.put(set_patient(appointment(new_id()), SAMN, SAMORDNING))
    assert answer.status_code == 201, answer.text


def test_r12_digital_child_without_primary_guardian_is_422_business_rule(api: Api) -> None:
    answer = api.put(digital(set_patient(appointment(new_id()), PNR, CHILD_WITHOUT_GUARDIAN)))
    assert answer.status_code == 422
    issue = outcome_of(answer)
    assert (issue["code"], issue["diagnostics"]) == ("business-rule", "primary-guardian-missing")


def test_r12_digital_child_with_guardian_from_seed_file_is_accepted(api: Api) -> None:
    answer = api.put(digital(set_patient(appointment(new_id()), PNR, CHILD_WITH_GUARDIAN)))
    assert answer.status_code == 201, answer.text


def test_r12_physical_child_without_guardian_is_accepted(api: Api) -> None:
    assert api.put(set_patient(appointment(new_id()), PNR, CHILD_WITHOUT_GUARDIAN)).status_code == 201


def test_r12_guardian_added_at_run_time_releases_the_booking(api: Api, sandbox: SandboxHandle) -> None:
    res = digital(set_patient(appointment(new_id()), PNR, CHILD_ADDED_LATER))
    assert api.put(res).status_code == 422
    lookup = api.get("/fhir/RelatedPerson", **{"patient-identifier": f"{PNR}|{CHILD_ADDED_LATER}", "primary": "true"})
    assert lookup.json()["total"] == 0
    sandbox.add_guardian(CHILD_ADDED_LATER)
    assert api.put(res).status_code == 201
    lookup = api.get("/fhir/RelatedPerson", **{"patient-identifier": f"{PNR}|{CHILD_ADDED_LATER}", "primary": "true"})
    assert lookup.json()["total"] == 1


def test_r12_guardian_lookup_of_seeded_child(api: Api) -> None:
    answer = api.get("/fhir/RelatedPerson", **{"patient-identifier": f"{PNR}|{CHILD_WITH_GUARDIAN}", "primary": "true"})
    body = answer.json()
    assert (answer.status_code, body["total"], len(body["entry"])) == (200, 1, 1)
    assert body["entry"][0]["resource"]["resourceType"] == "RelatedPerson"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda r: {**r, "status": "draft"}, "value"),
        (lambda r: {**r, "intent": "plan"}, "value"),
        (lambda r: {k: v for k, v in r.items() if k != "performerType"}, "required"),  # R05
        (lambda r: {**r, "subject": {"identifier": {"system": PNR, "value": "195811243260"}, "display": "X"}}, "value"),  # R13
        (lambda r: {**r, "authoredOn": "2026-11-26T07:00:00"}, "value"),
        (lambda r: {k: v for k, v in r.items() if k != "extension"}, "required"),
    ],
    ids=["unknown-status", "intent-not-order", "r05-role-missing", "r13-bad-luhn", "authored-without-offset", "sequence-missing"],
)
def test_invalid_service_request_is_422(api: Api, change, code: str) -> None:
    answer = api.put(change(service_request(new_id())))
    assert answer.status_code == 422, answer.text
    assert outcome_of(answer)["code"] == code


# --- 401 ------------------------------------------------------------------------------------


def test_missing_token_is_401_with_challenge(api: Api) -> None:
    answer = api.http.get("/fhir/Location")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    outcome_of(answer)


def test_expired_token_is_401_and_a_new_token_works(api: Api, sandbox: SandboxHandle) -> None:
    sandbox.set_faults(token_ttl_s=0)
    answer = api.get("/fhir/Location")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert outcome_of(answer)["code"] == "expired"
    sandbox.set_faults(token_ttl_s=300)
    api.token = api.fetch_token()
    assert api.get("/fhir/Location").status_code == 200


def test_wrong_client_credentials_are_401(api: Api) -> None:
    answer = api.http.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": "mvg-sync", "client_secret": "wrong"}
    )
    assert answer.status_code == 401
    outcome_of(answer)


# --- 429 ------------------------------------------------------------------------------------


def test_rate_limit_gives_429_with_retry_after(api: Api, sandbox: SandboxHandle) -> None:
    sandbox.set_faults(rate_limit=True)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: api.get("/fhir/Location", _count=1), range(120)))
    limited = [a for a in statuses if a.status_code == 429]
    assert limited, "120 requests at once exceed a burst of 40"
    assert sum(a.status_code == 200 for a in statuses) >= 40
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert outcome_of(limited[0])["code"] == "throttled"


# --- batch ----------------------------------------------------------------------------------


def test_batch_answers_each_entry_in_order(api: Api) -> None:
    stored = new_id()
    api.put(set_ext(appointment(stored), "source-sequence", 30))
    unknown_unit = appointment(new_id())
    unknown_unit["participant"][1]["actor"]["identifier"]["value"] = "SE2321000198-NOPE"
    entries = [
        entry(appointment(new_id())),
        entry(set_ext(appointment(stored), "source-sequence", 30)),
        entry(unknown_unit),
        entry(set_ext(appointment(stored, comment="stale"), "source-sequence", 29)),
        entry({**appointment(new_id()), "status": "arrived"}),
        entry(service_request(new_id())),
    ]
    answer = api.batch(entries)
    assert answer.status_code == 200
    body = answer.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "200 OK", "404 Not Found", "409 Conflict", "422 Unprocessable Entity", "201 Created"]
    assert body["entry"][0]["response"]["etag"] == 'W/"1"'
    assert body["entry"][2]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert "outcome" not in body["entry"][0]["response"]


def test_batch_with_the_same_key_twice_applies_in_order(api: Api) -> None:
    key = new_id()
    answer = api.batch([entry(appointment(key)), entry(appointment(key, comment="second"))])
    assert [e["response"]["etag"] for e in answer.json()["entry"]] == ['W/"1"', 'W/"2"']


def test_batch_over_100_entries_is_413(api: Api) -> None:
    answer = api.batch([entry(appointment(new_id())) for _ in range(101)])
    assert answer.status_code == 413
    outcome_of(answer)


def test_batch_of_100_counts_as_one_request(api: Api, sandbox: SandboxHandle) -> None:
    answer = api.batch([entry(appointment(new_id())) for _ in range(100)])
    assert answer.status_code == 200
    assert {e["response"]["status"] for e in answer.json()["entry"]} == {"201 Created"}
    last = sandbox.requests()[-1]
    assert (last["method"], last["path"], last["status"], last["entries"]) == ("POST", "/fhir", 200, 100)


# --- reading --------------------------------------------------------------------------------


def test_location_paging_follows_next_links(api: Api) -> None:
    seen: list[str] = []
    url: str | None = "/fhir/Location?_count=1"
    while url:
        body = api.http.get(url, headers=api.headers()).json()
        seen += [e["resource"]["identifier"][0]["value"] for e in body["entry"]]
        url = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), None)
    assert sorted(seen) == [UNIT, OTHER_UNIT]


def test_search_by_identifier_returns_zero_or_one(api: Api) -> None:
    key = new_id()
    api.put(appointment(key))
    found = api.get("/fhir/Appointment", identifier=f"{BOOKING}|{key}").json()
    missing = api.get("/fhir/Appointment", identifier=f"{BOOKING}|{new_id()}").json()
    assert (found["total"], found["entry"][0]["resource"]["identifier"][0]["value"]) == (1, key)
    assert (missing["total"], missing["entry"]) == (0, [])
    basis = new_id()
    api.put(service_request(basis))
    assert api.get("/fhir/ServiceRequest", identifier=f"{BASIS}|{basis}").json()["total"] == 1


def test_search_by_unit_and_date_range_pages(api: Api) -> None:
    keys = []
    for day in ("2027-03-01", "2027-03-02", "2027-03-03", "2027-03-09"):
        key = new_id()
        keys.append(key)
        res = appointment(key, start=f"{day}T09:00:00+01:00", end=f"{day}T09:20:00+01:00")
        res["participant"][1]["actor"]["identifier"]["value"] = OTHER_UNIT
        deadline = f"{date.fromisoformat(day) - timedelta(days=1)}T09:00:00+01:00"
        assert api.put(set_ext(res, "change-deadline", deadline)).status_code == 201
    first = api.http.get(
        "/fhir/Appointment",
        params=[("location", OTHER_UNIT), ("date", "ge2027-03-01"), ("date", "le2027-03-03"), ("_count", "2")],
        headers=api.headers(),
    ).json()
    assert first["total"] == 3
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = api.http.get(next_url, headers=api.headers()).json()
    assert not any(link["relation"] == "next" for link in second["link"])
    got = [e["resource"]["identifier"][0]["value"] for e in first["entry"] + second["entry"]]
    assert got == keys[:3]


# --- faults ---------------------------------------------------------------------------------


def test_fail_before_share_answers_503_without_applying(api: Api, sandbox: SandboxHandle) -> None:
    key = new_id()
    sandbox.set_faults(fail_before_share=1.0)
    answer = api.put(appointment(key))
    sandbox.set_faults(fail_before_share=0)
    assert answer.status_code == 503
    outcome_of(answer)
    assert api.get("/fhir/Appointment", identifier=f"{BOOKING}|{key}").json()["total"] == 0


def test_fail_after_share_applies_then_answers_503(api: Api, sandbox: SandboxHandle) -> None:
    key = new_id()
    sandbox.set_faults(fail_after_share=1.0)
    answer = api.put(appointment(key))
    sandbox.set_faults(fail_after_share=0)
    assert answer.status_code == 503
    assert api.get("/fhir/Appointment", identifier=f"{BOOKING}|{key}").json()["total"] == 1
    retry = api.put(appointment(key))  # a retry after a lost answer is safe
    assert (retry.status_code, retry.headers["ETag"]) == (200, 'W/"1"')


def test_throttle_share_answers_429_with_retry_after(api: Api, sandbox: SandboxHandle) -> None:
    sandbox.set_faults(throttle_share=1.0)
    answer = api.get("/fhir/Location")
    sandbox.set_faults(throttle_share=0)
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) >= 1


def test_latency_ms_delays_answers(api: Api, sandbox: SandboxHandle) -> None:
    sandbox.set_faults(latency_ms=300)
    answer = api.get("/fhir/Location")
    sandbox.set_faults(latency_ms=0)
    assert answer.status_code == 200
    assert answer.elapsed.total_seconds() >= 0.3


def test_seeded_faults_are_deterministic(api: Api, sandbox: SandboxHandle) -> None:
    runs = []
    for _ in range(2):
        sandbox.set_faults(fail_before_share=0.5, seed=7)
        runs.append([api.get("/fhir/Location").status_code for _ in range(20)])
    sandbox.set_faults(fail_before_share=0)
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


def test_control_health_is_open_and_tells_nothing_else(sandbox: SandboxHandle) -> None:
    answer = httpx.get(f"{sandbox.base_url}/_control/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_openapi_describes_the_fhir_endpoints(api: Api) -> None:
    doc = api.http.get("/openapi.json").json()
    put = doc["paths"]["/fhir/Appointment"]["put"]
    assert "application/fhir+json" in put["requestBody"]["content"]
    assert {"201", "200", "400", "404", "409", "422", "429"} <= set(put["responses"])
    assert "/fhir" in doc["paths"] and "/fhir/Location" in doc["paths"]


def test_unknown_token_is_401(api: Api) -> None:
    answer = api.http.get("/fhir/Location", headers={"Authorization": "Bearer not-a-token"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_service_request_at_unknown_unit_is_404_on_performer(api: Api) -> None:
    res = service_request(new_id())
    res["performer"][0]["identifier"]["value"] = "SE2321000198-NOPE"
    answer = api.put(res)
    assert answer.status_code == 404
    assert outcome_of(answer)["expression"] == ["ServiceRequest.performer"]


def test_batch_entry_with_a_bad_url_fails_alone(api: Api) -> None:
    good = appointment(new_id())
    answer = api.batch([{"request": {"method": "DELETE", "url": "Appointment?identifier=x"}, "resource": good}, entry(good)])
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses == ["400 Bad Request", "201 Created"]


def test_fail_after_share_on_a_batch_applies_every_entry(api: Api, sandbox: SandboxHandle) -> None:
    keys = [new_id() for _ in range(3)]
    sandbox.set_faults(fail_after_share=1.0)
    answer = api.batch([entry(appointment(k)) for k in keys])
    sandbox.set_faults(fail_after_share=0)
    assert answer.status_code == 503
    retry = api.batch([entry(appointment(k)) for k in keys])
    assert [e["response"]["status"] for e in retry.json()["entry"]] == ["200 OK"] * 3


def test_control_state_filters_by_resource_and_log_names_request_ids(api: Api, sandbox: SandboxHandle) -> None:
    basis = new_id()
    api.http.put(
        "/fhir/ServiceRequest",
        params={"identifier": f"{BASIS}|{basis}"},
        json=service_request(basis),
        headers=api.headers(**{"X-Request-ID": f"rid-{basis}"}),
    )
    tickets = sandbox.state("ServiceRequest")["resources"]
    assert {r["resourceType"] for r in tickets} == {"ServiceRequest"}
    assert [(r["version"], r["status"]) for r in tickets if r["identifier"] == basis] == [(1, "active")]
    logged = [r for r in sandbox.requests() if r["request_id"] == f"rid-{basis}"]
    assert [(r["method"], r["path"], r["status"], r["entries"]) for r in logged] == [("PUT", "/fhir/ServiceRequest", 201, 1)]


def test_every_unknown_route_answers_an_operation_outcome(api: Api) -> None:
    answer = api.http.get("/fhir/Patient", headers=api.headers())
    assert answer.status_code == 404
    outcome_of(answer)
    answer = api.http.delete("/fhir/Appointment", headers=api.headers())
    assert answer.status_code == 405
    outcome_of(answer)
